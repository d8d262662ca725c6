//! The `hush identities` and `hush roles` commands end to end: an admin gives a new machine identity a custom
//! dev-only role in a project, and the identity logs in with the client secret the CLI printed.

mod common;

use std::path::Path;

use common::{Backend, TestServer, cli::hush};

/// `hush secrets get K --project P --env ENV --path PATH`.
async fn get_secret(config_dir: &Path, project: &str, env: &str, path: &str) -> Result<String, String> {
    hush(config_dir, &["secrets", "get", "K", "--project", project, "--env", env, "--path", path]).await
}

/// `hush roles list --output json`, parsed.
async fn roles(config_dir: &Path) -> Vec<serde_json::Value> {
    let out = hush(config_dir, &["roles", "list", "--output", "json"]).await.unwrap();
    out.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect()
}

const DEV_API_READ: &str =
    r#"[{"subject": "secrets", "actions": ["read"], "environments": ["dev"], "secret_path": "/api/**"}]"#;

async fn cli_manages_identities_and_roles(backend: Backend) {
    let server = TestServer::start(backend).await;
    let url = server.url();
    let (admin_config, bot_config, files) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (admin, bot) = (admin_config.path(), bot_config.path());

    let bootstrap = server.data_dir.path().join("bootstrap.json");
    hush(admin, &["login", "--server", &url, "--from-file", bootstrap.to_str().unwrap()]).await.unwrap();
    let project = hush(admin, &["projects", "create", "iam-demo"]).await.unwrap().trim().to_owned();
    for (env, path) in [("dev", "/api"), ("prod", "/api"), ("dev", "/web")] {
        let args =
            ["secrets", "set", "K", &format!("{env}:{path}"), "--project", &project, "--env", env, "--path", path];
        hush(admin, &args).await.unwrap();
    }

    // --policies: bad JSON is refused before any call, naming the flag.
    let err = hush(admin, &["roles", "create", "bad", "--policies", r#"[{"subject": 1}]"#]).await.unwrap_err();
    assert!(err.contains("--policies") && err.contains("invalid type"), "{err}");
    let err = hush(admin, &["roles", "create", "bad", "--policies", "@/nonexistent.json"]).await.unwrap_err();
    assert!(err.contains("--policies: reading /nonexistent.json"), "{err}");

    // A custom role from a policies file.
    let policies_file = files.path().join("policies.json");
    std::fs::write(&policies_file, DEV_API_READ).unwrap();
    let policies_arg = format!("@{}", policies_file.display());
    let create_role = ["roles", "create", "api-reader", "--policies", &policies_arg, "--description", "dev /api"];
    let role = hush(admin, &create_role).await.unwrap().trim().to_owned();
    assert!(uuid::Uuid::parse_str(&role).is_ok(), "prints the role id: {role}");

    // An identity with no org role, and a client secret for it saved as a login file.
    let created = hush(admin, &["identities", "create", "ci-bot"]).await.unwrap();
    let (identity, client_id) = created.trim().split_once('\t').expect("id<TAB>client_id");
    let listed = hush(admin, &["identities", "list"]).await.unwrap();
    assert!(listed.lines().any(|l| l == format!("{identity}\tci-bot\t{client_id}\t")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with(&server.bootstrap.identity_id)), "lists the admin too: {listed}");
    let secret_args =
        ["identities", "secret", "create", identity, "--description", "ci", "--ttl", "1h", "--max-uses", "5"];
    let secret_json = hush(admin, &secret_args).await.unwrap();
    let secret: serde_json::Value = serde_json::from_str(&secret_json).expect("JSON on stdout");
    assert_eq!(secret["client_id"], client_id);
    assert!(secret["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "{secret}");
    let secret_id = secret["client_secret_id"].as_str().expect("client_secret_id").to_owned();
    let credentials = files.path().join("ci-bot.json");
    std::fs::write(&credentials, &secret_json).unwrap();

    // Before it is a member of the project, the project does not exist for the identity.
    hush(bot, &["login", "--server", &url, "--from-file", credentials.to_str().unwrap()]).await.unwrap();
    assert!(get_secret(bot, &project, "dev", "/api").await.unwrap_err().contains("NotFound"));

    hush(admin, &["roles", "assign", "--project", &project, "--identity", identity, "--role", &role]).await.unwrap();
    assert_eq!(get_secret(bot, &project, "dev", "/api").await.unwrap(), "dev:/api\n");
    let err = get_secret(bot, &project, "prod", "/api").await.unwrap_err();
    assert!(err.contains("NotFound"), "prod is outside the role, so missing to it: {err}");
    assert!(get_secret(bot, &project, "dev", "/web").await.unwrap_err().contains("PermissionDenied"));
    let err = hush(bot, &["roles", "create", "mine", "--policies", "[]"]).await.unwrap_err();
    assert!(err.contains("PermissionDenied"), "the role grants no role management: {err}");

    // roles list: the three built-ins and the custom role; as text a line each, as JSON the Role messages.
    let text = hush(admin, &["roles", "list"]).await.unwrap();
    assert_eq!(text.lines().nth(3), Some(format!("{role}\tapi-reader\tcustom\tdev /api").as_str()), "{text}");
    let listed = roles(admin).await;
    let names: Vec<_> = listed.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "member", "viewer", "api-reader"], "{listed:?}");
    assert!(listed[..3].iter().all(|r| r["builtIn"] == true), "{listed:?}");
    let custom = &listed[3];
    assert_eq!(custom["id"], role.as_str());
    assert_eq!(custom["builtIn"], false);
    assert_eq!(custom["description"], "dev /api");
    let expected = serde_json::json!([{
        "subject": "secrets", "actions": ["read"],
        "conditions": {"environments": ["dev"], "secretPath": "/api/**", "eventTypes": []}, "inverted": false
    }]);
    assert_eq!(custom["policies"], expected);
    // The listed policies are a valid --policies value as they are.
    let listed_policies = custom["policies"].to_string();
    hush(admin, &["roles", "update", &role, "--name", "api-reader", "--policies", &listed_policies]).await.unwrap();
    assert_eq!(roles(admin).await[3]["policies"], expected, "given back unchanged");

    // roles update replaces the policies: prod too, except an inverted rule for prod:/api/internal.
    let both = r#"[{"subject": "secrets", "actions": ["read"], "environments": ["dev", "prod"], "secret_path": "/api/**"},
                   {"subject": "secrets", "actions": ["read"], "secret_path": "/api/internal", "inverted": true}]"#;
    hush(admin, &["roles", "update", &role, "--name", "api-reader", "--policies", both]).await.unwrap();
    assert_eq!(get_secret(bot, &project, "prod", "/api").await.unwrap(), "prod:/api\n");
    assert_eq!(roles(admin).await[3]["policies"][1]["inverted"], true);

    // Revoking the session's own token ends it: the next call is unauthenticated.
    hush(bot, &["identities", "token", "revoke"]).await.unwrap();
    let err = get_secret(bot, &project, "dev", "/api").await.unwrap_err();
    assert!(err.contains("Unauthenticated"), "{err}");

    // A revoked client secret no longer logs in.
    hush(admin, &["identities", "secret", "revoke", identity, &secret_id]).await.unwrap();
    let err = hush(bot, &["login", "--server", &url, "--from-file", credentials.to_str().unwrap()]).await.unwrap_err();
    assert!(err.contains("Unauthenticated"), "{err}");

    // Removing the membership, the role and the identity.
    hush(admin, &["roles", "assign", "--project", &project, "--identity", identity, "--role", ""]).await.unwrap();
    hush(admin, &["roles", "delete", &role]).await.unwrap();
    assert_eq!(roles(admin).await.len(), 3, "only the built-ins are left");
    assert!(hush(admin, &["roles", "delete", "admin"]).await.is_err(), "built-in roles stay");
    hush(admin, &["identities", "delete", identity]).await.unwrap();
    assert!(!hush(admin, &["identities", "list"]).await.unwrap().contains("ci-bot"));
}

backend_tests!(cli_manages_identities_and_roles);
