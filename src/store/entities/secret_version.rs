//! One stored version of a secret; each write appends one.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "secret_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "secret_versions_secret_version")]
    pub secret_id: String,
    #[sea_orm(unique_key = "secret_versions_secret_version")]
    pub version: i32,
    /// nonce || AES-256-GCM ciphertext, bound to this version number.
    pub sealed_value: Vec<u8>,
    pub comment: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::secret::Entity",
        from = "Column::SecretId",
        to = "super::secret::Column::Id",
        on_delete = "Cascade"
    )]
    Secret,
}

impl ActiveModelBehavior for ActiveModel {}
