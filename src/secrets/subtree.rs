//! Subtrees: selecting "a folder and everything below it" in SQL, and checking that a caller may delete every
//! member of one before a recursive delete (a folder, an environment, a project) removes anything.
//!
//! A recursive delete is allowed only when the caller could have deleted each member one by one: deny rules
//! and path conditions apply to every folder, secret and import it touches, not only to the folder named in
//! the request. Conditions depend on `(environment, path)` only, so the check reads distinct paths (never
//! values) and costs one pass over them.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func},
};

use super::{SecretsError, scope::EnvScope};
use crate::{
    identity::policy::{Action, Subject},
    store::entities::{environment, folder, secret, secret_import},
};

/// SQL condition: the path in `column` is `folder` itself or lies below it. Exact on both backends: a prefix
/// comparison with `substr` (SQLite's `LIKE` ignores case, and both treat `_` in paths as a wildcard).
pub(super) fn within(column: impl ColumnTrait, folder: &str) -> Condition {
    if folder == "/" {
        return Condition::all();
    }
    let prefix = format!("{folder}/");
    let head = Func::cust("substr").arg(column.into_expr()).arg(1).arg(prefix.len() as i32);
    Condition::any().add(column.eq(folder)).add(Expr::expr(head).eq(prefix))
}

/// The imports a delete of `root` in `scope`'s environment removes: those of folders in the subtree, and those
/// of other folders that import from it.
pub(super) async fn imports_touching(
    db: &impl ConnectionTrait,
    scope: &EnvScope,
    root: &str,
) -> Result<Vec<secret_import::Model>, SecretsError> {
    let env_id = scope.env.id.as_str();
    Ok(secret_import::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(secret_import::Column::EnvironmentId.eq(env_id))
                        .add(within(secret_import::Column::Path, root)),
                )
                .add(
                    Condition::all()
                        .add(secret_import::Column::ImportEnvironmentId.eq(env_id))
                        .add(within(secret_import::Column::ImportPath, root)),
                ),
        )
        .all(db)
        .await?)
}

/// Fails with PERMISSION_DENIED naming the first member the caller may not delete, unless it may delete the
/// folder `root` of `scope`'s environment with every subfolder, secret and import under it
/// (`secret-folders:delete`, `secrets:delete`, `secret-imports:delete` where each lives).
pub(super) async fn require_delete(
    db: &impl ConnectionTrait,
    scope: &EnvScope,
    root: &str,
) -> Result<(), SecretsError> {
    let env_id = scope.env.id.as_str();
    let folders: Vec<String> = folder::Entity::find()
        .select_only()
        .column(folder::Column::Path)
        .filter(folder::Column::EnvironmentId.eq(env_id))
        .filter(within(folder::Column::Path, root))
        .order_by_asc(folder::Column::Path)
        .into_tuple()
        .all(db)
        .await?;
    // The root has no row of its own but goes with the subtree all the same.
    for path in std::iter::once(root).chain(folders.iter().map(String::as_str)) {
        scope.require(Subject::SecretFolders, Action::Delete, path)?;
    }
    let secret_paths: Vec<String> = secret::Entity::find()
        .select_only()
        .column(secret::Column::Path)
        .distinct()
        .filter(secret::Column::EnvironmentId.eq(env_id))
        .filter(within(secret::Column::Path, root))
        .order_by_asc(secret::Column::Path)
        .into_tuple()
        .all(db)
        .await?;
    for path in &secret_paths {
        scope.require(Subject::Secrets, Action::Delete, path)?;
    }
    let imports = imports_touching(db, scope, root).await?;
    let mut by_env: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for import in &imports {
        by_env.entry(import.environment_id.as_str()).or_default().insert(import.path.as_str());
    }
    for (import_env_id, paths) in by_env {
        // An import belongs to the importing folder, which may be in another environment of the project.
        let owner = if import_env_id == env_id {
            scope.with_env(scope.env.clone())
        } else {
            match environment::Entity::find_by_id(import_env_id).one(db).await? {
                Some(env) => scope.with_env(env),
                None => continue,
            }
        };
        for path in paths {
            owner.require(Subject::SecretImports, Action::Delete, path)?;
        }
    }
    Ok(())
}
