//! A folder importing the secrets of another environment and path of the same project.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "secret_imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub environment_id: String,
    pub path: String,
    /// Indexed: every secret write looks up the folders importing its folder by it.
    #[sea_orm(indexed)]
    pub import_environment_id: String,
    pub import_path: String,
    pub position: i32,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::environment::Entity",
        from = "Column::EnvironmentId",
        to = "super::environment::Column::Id",
        on_delete = "Cascade"
    )]
    Environment,
    #[sea_orm(
        belongs_to = "super::environment::Entity",
        from = "Column::ImportEnvironmentId",
        to = "super::environment::Column::Id",
        on_delete = "Cascade"
    )]
    ImportEnvironment,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::environment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Environment.def()
    }
}
