//! A project, with its data encryption key sealed by the root key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed, unique_key = "projects_org_name")]
    pub org_id: String,
    /// Unique in its org (since migration 5), so a name addresses a project.
    #[sea_orm(unique_key = "projects_org_name")]
    pub name: String,
    /// The project's data key, AES-256-GCM sealed with the root key (nonce || ciphertext).
    pub sealed_data_key: Vec<u8>,
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
