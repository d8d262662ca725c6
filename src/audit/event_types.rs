//! Every audit event type hush records, so a filter naming another one is refused (INVALID_ARGUMENT) instead
//! of matching nothing in silence: `--event create-secrte` would otherwise look like "no such activity".

/// The event types, sorted. An entry of a type not listed here fails a debug assertion when it is made.
pub const EVENT_TYPES: [&str; 50] = [
    "backfill-audit-stream",
    "create-audit-stream",
    "create-client-secret",
    "create-environment",
    "create-folder",
    "create-identity",
    "create-project",
    "create-role",
    "create-secret",
    "create-secret-import",
    "create-secrets-batch",
    "delete-audit-stream",
    "delete-environment",
    "delete-folder",
    "delete-identity",
    "delete-project",
    "delete-role",
    "delete-secret",
    "delete-secret-import",
    "delete-secrets-batch",
    "export-audit-logs",
    "get-audit-logs",
    "get-audit-stream",
    "get-audit-streams",
    "get-current-identity",
    "get-environments",
    "get-folders",
    "get-identities",
    "get-project",
    "get-project-members",
    "get-projects",
    "get-roles",
    "get-secret",
    "get-secret-imports",
    "get-secret-versions",
    "get-secrets",
    "login-identity",
    "permission-denied",
    "revoke-client-secret",
    "revoke-identity-tokens",
    "revoke-token",
    "rollback-secret",
    "set-project-role",
    "subscribe-events",
    "test-audit-stream",
    "token-rejected",
    "update-audit-stream",
    "update-role",
    "update-secret",
    "update-secrets-batch",
];

/// Whether hush records entries of `event_type`.
pub fn is_known(event_type: &str) -> bool {
    EVENT_TYPES.contains(&event_type)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorted_and_listed_once_each() {
        assert!(super::EVENT_TYPES.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
