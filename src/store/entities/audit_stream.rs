//! An org's audit log destination. Its provider configuration, credentials included, is sealed with the root
//! key; only the name and provider kind are stored in clear.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub org_id: String,
    pub name: String,
    /// `custom`, `datadog`, `splunk`, `cribl` or `azure`.
    pub provider: String,
    /// `streams::ProviderConfig` as JSON, sealed with the root key and bound to this stream's id.
    pub sealed_config: Vec<u8>,
    /// `drop` or `pause`: what happens to a batch the destination still refuses after the last retry.
    #[sea_orm(default_value = "drop")]
    pub on_failure: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
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
    #[sea_orm(has_one = "super::audit_stream_state::Entity")]
    State,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::audit_stream_state::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::State.def()
    }
}
