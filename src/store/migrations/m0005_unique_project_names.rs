//! Project names become unique in their org, so a name can address a project. Projects that share a name keep
//! it on the oldest one; the others are renamed `name (2)`, `name (3)`, … (the first suffix no project of the
//! org uses), then the unique index `(org_id, name)` is created.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_unique_project_names"
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    OrgId,
    Name,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        // Ids are UUIDv7, so id order is creation order: the first of each name keeps it.
        let rows = db
            .query_all_raw(Statement::from_string(backend, "SELECT id, org_id, name FROM projects ORDER BY org_id, id"))
            .await?;
        let mut names: HashMap<String, HashSet<String>> = HashMap::new();
        let mut projects = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, org_id, name): (String, String, String) =
                (row.try_get("", "id")?, row.try_get("", "org_id")?, row.try_get("", "name")?);
            names.entry(org_id.clone()).or_default().insert(name.clone());
            projects.push((id, org_id, name));
        }
        let mut kept: HashSet<(String, String)> = HashSet::new();
        for (id, org_id, name) in projects {
            if kept.insert((org_id.clone(), name.clone())) {
                continue;
            }
            let used = names.get_mut(&org_id).expect("every org was seen");
            let renamed = (2..).map(|n| format!("{name} ({n})")).find(|c| !used.contains(c)).expect("unbounded");
            used.insert(renamed.clone());
            tracing::warn!(project_id = %id, from = %name, to = %renamed, "project renamed: names are now unique");
            let update = Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DbBackend::Postgres => "UPDATE projects SET name = $1 WHERE id = $2",
                    _ => "UPDATE projects SET name = ? WHERE id = ?",
                },
                [renamed.into(), id.into()],
            );
            db.execute_raw(update).await?;
        }
        let index = Index::create()
            .name("idx-projects-projects_org_name")
            .table(Projects::Table)
            .col(Projects::OrgId)
            .col(Projects::Name)
            .unique()
            .to_owned();
        manager.create_index(index).await
    }
}
