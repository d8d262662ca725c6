//! One row (id 1) holding a value sealed with the root key, so a start with another key is refused before
//! anything is served (`crate::keys::check`). Written on the first start, and again by each rotation.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "root_key_check")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// `RootKey::seal_check` (nonce || ciphertext || tag).
    pub sealed_check: Vec<u8>,
    /// When the current root key was first used for this data: first start, upgrade or last rotation.
    pub sealed_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
