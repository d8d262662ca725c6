//! Which identities each permission version changed (`authz_version`): written in the same transaction as the
//! bump, so live streams and cached tokens of other identities stay valid. `identity_id` `*` means every
//! identity (a project or environment deleted).

use sea_orm::entity::prelude::*;

/// The `identity_id` of a change that may affect anyone.
pub const EVERYONE: &str = "*";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "permission_changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub identity_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
