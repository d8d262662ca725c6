//! A folder path inside an environment. The root `/` always exists implicitly and has no row.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "folders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "folders_environment_path")]
    pub environment_id: String,
    #[sea_orm(unique_key = "folders_environment_path")]
    pub path: String,
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
}

impl ActiveModelBehavior for ActiveModel {}
