//! One row holding a counter that every change to what an identity may do increments, in the same
//! transaction as the change (role edits, memberships, revocations, identity deletion). Live streams watch it
//! to re-check their caller's permissions; all instances share it through the database.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authz_version")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
