//! What a caller may know exists. Where it may not read, something that exists answers exactly like something
//! missing (NOT_FOUND with the same message), so ids, environment slugs and folder paths cannot be probed:
//!
//! - a project is visible to its members (any project-level grant) and to org admins;
//! - an environment is visible to whoever may read the project (and so list its environments) or may do
//!   something somewhere in that environment;
//! - a folder is visible to whoever may read there with the subject asked about; the root always exists.

use crate::identity::{
    Grants,
    policy::{Action, Resource, Subject},
};

fn project_level_subjects() -> impl Iterator<Item = Subject> {
    Subject::ALL.iter().copied().filter(|s| s.is_project_level())
}

/// Whether the caller may know that the project its `grants` (project-level grants, as loaded for one
/// project) were loaded for exists: it may do something there.
pub fn sees_project(grants: &Grants) -> bool {
    !grants.is_empty()
}

/// Whether the caller may know that environment `slug` of the project exists.
pub fn sees_environment(grants: &Grants, slug: &str) -> bool {
    grants.can(Subject::Projects, Action::Read, Resource::default())
        || project_level_subjects()
            .any(|s| Action::ALL.iter().any(|a| grants.require_somewhere_in(s, *a, slug).is_ok()))
}
