//! A machine identity that logs in with its client id and one of its client secrets.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed, unique_key = "org_id-name")]
    pub org_id: String,
    /// Unique in the org.
    #[sea_orm(unique_key = "org_id-name")]
    pub name: String,
    #[sea_orm(unique)]
    pub client_id: String,
    /// Org-level role (`admin`, `member`, `viewer` or a custom role id); None = no org role.
    pub org_role: Option<String>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::org::Entity",
        from = "Column::OrgId",
        to = "super::org::Column::Id",
        on_delete = "Cascade"
    )]
    Org,
}

impl ActiveModelBehavior for ActiveModel {}
