//! An environment (`dev`, `prod`, ...) of a project.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "environments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "environments_project_slug")]
    pub project_id: String,
    #[sea_orm(unique_key = "environments_project_slug")]
    pub slug: String,
    pub name: String,
    pub position: i32,
    pub created_at: ChronoDateTimeUtc,
    /// Whether some folder imports from this environment: set by the database when the first import of it is
    /// inserted (a trigger, see migration m0009; its creation holds the environment locked), never cleared. Read
    /// with the environment's lock by every write of its secrets on PostgreSQL, which looks up the importing
    /// folders only when it is set (see `WriteTxn::may_be_imported_from`).
    #[sea_orm(default_value = false)]
    pub import_source: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id",
        on_delete = "Cascade"
    )]
    Project,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}
