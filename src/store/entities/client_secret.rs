//! A client secret of an identity, stored only as a SHA-256 hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub identity_id: String,
    #[sea_orm(unique)]
    pub secret_hash: String,
    /// First characters of the secret, so a person can recognise it in a list.
    pub prefix: String,
    pub description: String,
    pub expires_at: Option<ChronoDateTimeUtc>,
    /// 0 = unlimited.
    pub max_uses: i64,
    pub uses: i64,
    pub revoked_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::identity::Entity",
        from = "Column::IdentityId",
        to = "super::identity::Column::Id",
        on_delete = "Cascade"
    )]
    Identity,
}

impl ActiveModelBehavior for ActiveModel {}
