//! The current state of a secret. The value is sealed with the project's data key; the history lives in
//! `secret_versions`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "secrets_environment_path_key")]
    pub environment_id: String,
    #[sea_orm(unique_key = "secrets_environment_path_key")]
    pub path: String,
    #[sea_orm(unique_key = "secrets_environment_path_key")]
    pub key: String,
    pub version: i32,
    /// nonce || AES-256-GCM ciphertext of the current version's value.
    pub sealed_value: Vec<u8>,
    pub comment: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
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
