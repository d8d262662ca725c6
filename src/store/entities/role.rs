//! A custom role of an org: a name and its policies. Built-in roles (`admin`, `member`, `viewer`) have no row.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "roles_org_name")]
    pub org_id: String,
    #[sea_orm(unique_key = "roles_org_name")]
    pub name: String,
    pub description: String,
    /// `Vec<RawPolicy>` as JSON.
    pub policies: Json,
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
