//! One row recording up to which `seq` the outbox has been pruned, so a resume from an older cursor can be
//! refused instead of silently skipping pruned events (sequence gaps from rolled-back transactions are normal
//! and say nothing about pruning).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub pruned_through: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
