//! The policy engine: pure functions from (policies, subject, action, resource) to allow or deny.
//!
//! A policy names a subject, actions and optional conditions (environment slugs, a secret-path glob), and may
//! be `inverted` (a deny). A request is allowed when at least one allowing policy matches it and no denying
//! policy does: deny beats allow, and no policy at all means nothing is allowed.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use super::glob::{GlobError, PathGlob};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!(
                        "unknown {} '{s}' (known: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),*].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// What a policy is about.
    Subject {
        Secrets => "secrets",
        SecretFolders => "secret-folders",
        SecretImports => "secret-imports",
        SecretEvents => "secret-events",
        Projects => "projects",
        Identities => "identities",
        Roles => "roles",
        AuditLogs => "audit-logs",
        AuditStreams => "audit-streams",
    }
);

string_enum!(
    /// What may be done to a subject.
    Action {
        Read => "read",
        Create => "create",
        Edit => "edit",
        Delete => "delete",
        Subscribe => "subscribe",
    }
);

impl Subject {
    /// Whether the subject lives inside a project (and so is granted by project roles).
    pub fn is_project_level(self) -> bool {
        matches!(
            self,
            Subject::Secrets
                | Subject::SecretFolders
                | Subject::SecretImports
                | Subject::SecretEvents
                | Subject::Projects
        )
    }

    /// Whether environment and secret-path conditions mean anything for this subject.
    fn takes_conditions(self) -> bool {
        matches!(self, Subject::Secrets | Subject::SecretFolders | Subject::SecretImports | Subject::SecretEvents)
    }
}

/// Where a request points, for condition matching.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resource<'a> {
    /// Environment slug, when the request is inside one.
    pub environment: Option<&'a str>,
    /// Normalised folder path, when the request is inside one.
    pub secret_path: Option<&'a str>,
    /// The event type, when the request is an event to deliver.
    pub event_type: Option<&'a str>,
}

impl<'a> Resource<'a> {
    /// A folder of an environment.
    pub fn at(environment: &'a str, secret_path: &'a str) -> Self {
        Self { environment: Some(environment), secret_path: Some(secret_path), event_type: None }
    }

    /// An event of `event_type` about a folder of an environment.
    pub fn event(event_type: &'a str, environment: &'a str, secret_path: &'a str) -> Self {
        Self { event_type: Some(event_type), ..Self::at(environment, secret_path) }
    }
}

/// The secret event types (`events::EventType`'s wire names), which `secret-events` policies may list.
pub const SECRET_EVENT_TYPES: [&str; 4] = ["secret:create", "secret:update", "secret:delete", "secret:import-mutation"];

/// The exact event types `patterns` allow (`*` and `secret:*` are all of them), sorted; empty when that is all
/// of them, as no list means.
fn expand_event_types(patterns: &[String]) -> Result<Vec<String>, String> {
    let mut types = Vec::new();
    for pattern in patterns {
        match pattern.as_str() {
            "*" | "secret:*" => return Ok(Vec::new()),
            exact if SECRET_EVENT_TYPES.contains(&exact) => types.push(exact.to_owned()),
            unknown => {
                return Err(format!(
                    "unknown event type '{unknown}' (known: {}, secret:*, *)",
                    SECRET_EVENT_TYPES.join(", ")
                ));
            }
        }
    }
    types.sort();
    types.dedup();
    if types.len() == SECRET_EVENT_TYPES.len() {
        types.clear();
    }
    Ok(types)
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.environment, self.secret_path) {
            (Some(env), Some(path)) => write!(f, " on {env}:{path}"),
            (Some(env), None) => write!(f, " on {env}"),
            _ => Ok(()),
        }
    }
}

/// Optional limits of a policy. Empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Environment slugs: one means equals, several mean in.
    pub environments: Vec<String>,
    /// Secret-path glob.
    pub secret_path: Option<PathGlob>,
    /// Exact event types (`secret-events` policies only), sorted; empty means all.
    pub event_types: Vec<String>,
}

impl Conditions {
    fn is_empty(&self) -> bool {
        self.environments.is_empty() && self.secret_path.is_none() && self.event_types.is_empty()
    }

    /// Whether events of `event_type` (`None`: a request that is not an event) satisfy the event type condition.
    /// As for environments, a condition on a field the resource lacks is not satisfied.
    fn events_hold_for(&self, event_type: Option<&str>) -> bool {
        self.event_types.is_empty() || event_type.is_some_and(|t| self.event_types.iter().any(|e| e == t))
    }

    /// Whether some event of a registration for `event_type` (`None`: any type) could satisfy the condition.
    fn events_could_overlap(&self, event_type: Option<&str>) -> bool {
        self.event_types.is_empty() || event_type.is_none_or(|t| self.event_types.iter().any(|e| e == t))
    }

    /// Whether the resource satisfies every condition. A condition on a field the resource lacks is not
    /// satisfied: a policy limited to `dev` says nothing about a request that is not inside an environment.
    fn hold_for(&self, resource: &Resource<'_>) -> bool {
        let env_ok = self.environments.is_empty()
            || resource.environment.is_some_and(|env| self.environments.iter().any(|e| e == env));
        let path_ok = match &self.secret_path {
            None => true,
            Some(glob) => resource.secret_path.is_some_and(|path| glob.matches(path)),
        };
        env_ok && path_ok && self.events_hold_for(resource.event_type)
    }

    /// Whether some path of the resource's environment could satisfy the conditions.
    fn could_hold_in(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == environment)
    }

    /// Whether some folder inside `environment` (`None`: any) and `glob` (`None`: any path) could satisfy the
    /// conditions. Conservative: "yes" when the globs' overlap cannot be ruled out.
    fn could_overlap(&self, environment: Option<&str>, glob: Option<&PathGlob>, event_type: Option<&str>) -> bool {
        let env_ok = environment.is_none_or(|env| self.could_hold_in(env));
        let path_ok = match (&self.secret_path, glob) {
            (Some(ours), Some(theirs)) => !super::glob_relations::disjoint(ours, theirs),
            _ => true,
        };
        env_ok && path_ok && self.events_could_overlap(event_type)
    }

    /// Whether every folder inside `environment` (`None`: any) and `glob` (`None`: any path) satisfies the
    /// conditions. Conservative: "no" when that cannot be shown.
    fn cover(&self, environment: Option<&str>, glob: Option<&PathGlob>, event_type: Option<&str>) -> bool {
        let env_ok = self.environments.is_empty() || environment.is_some_and(|env| self.could_hold_in(env));
        let path_ok = match (&self.secret_path, glob) {
            (None, _) => true,
            (Some(ours), Some(theirs)) => super::glob_relations::covers(ours, theirs),
            (Some(_), None) => false,
        };
        env_ok && path_ok && self.events_hold_for(event_type)
    }
}

/// One rule of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub subject: Subject,
    pub actions: Vec<Action>,
    pub conditions: Conditions,
    /// A deny rule.
    pub inverted: bool,
}

/// Why a policy as written cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policies[{index}].subject: {message}")]
    Subject { index: usize, message: String },
    #[error("policies[{index}].actions: {message}")]
    Action { index: usize, message: String },
    #[error("policies[{index}].conditions: {message}")]
    Conditions { index: usize, message: String },
    #[error("policies[{index}].conditions.secret_path: {source}")]
    Glob { index: usize, source: GlobError },
}

impl PolicyError {
    /// The request field the error is about.
    pub fn field(&self) -> String {
        match self {
            PolicyError::Subject { index, .. } => format!("policies[{index}].subject"),
            PolicyError::Action { index, .. } => format!("policies[{index}].actions"),
            PolicyError::Conditions { index, .. } => format!("policies[{index}].conditions"),
            PolicyError::Glob { index, .. } => format!("policies[{index}].conditions.secret_path"),
        }
    }

    /// What is wrong, without the field name.
    pub fn reason(&self) -> String {
        match self {
            PolicyError::Subject { message, .. }
            | PolicyError::Action { message, .. }
            | PolicyError::Conditions { message, .. } => message.clone(),
            PolicyError::Glob { source, .. } => source.to_string(),
        }
    }
}

/// A policy as stored (JSON in the roles table), as received from the API and as the CLI reads and prints it,
/// before validation. Unknown fields are refused, so a typo such as `enviroments` cannot silently widen a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub subject: String,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_path: String,
    /// `secret-events` only: the event types allowed (`secret:delete`, `secret:*`, `*`); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub inverted: bool,
}

impl RawPolicy {
    /// Validates the policy at position `index` of its role.
    pub fn validate(&self, index: usize) -> Result<Policy, PolicyError> {
        let subject: Subject = self.subject.parse().map_err(|message| PolicyError::Subject { index, message })?;
        if self.actions.is_empty() {
            return Err(PolicyError::Action { index, message: "at least one action is required".into() });
        }
        let mut actions = Vec::with_capacity(self.actions.len());
        for action in &self.actions {
            let action: Action = action.parse().map_err(|message| PolicyError::Action { index, message })?;
            if (action == Action::Subscribe) != (subject == Subject::SecretEvents) {
                let message = format!(
                    "'{action}' does not apply to '{subject}' (subscribe is only for secret-events, and secret-events only has subscribe)"
                );
                return Err(PolicyError::Action { index, message });
            }
            actions.push(action);
        }
        let secret_path = match self.secret_path.as_str() {
            "" => None,
            glob => Some(PathGlob::parse(glob).map_err(|source| PolicyError::Glob { index, source })?),
        };
        if !self.event_types.is_empty() && subject != Subject::SecretEvents {
            let message = "only secret-events policies take event types".to_owned();
            return Err(PolicyError::Conditions { index, message });
        }
        let event_types =
            expand_event_types(&self.event_types).map_err(|message| PolicyError::Conditions { index, message })?;
        let conditions = Conditions { environments: self.environments.clone(), secret_path, event_types };
        if !subject.takes_conditions() && !conditions.is_empty() {
            let message = format!("'{subject}' takes no environment or secret path conditions");
            return Err(PolicyError::Conditions { index, message });
        }
        Ok(Policy { subject, actions, conditions, inverted: self.inverted })
    }
}

impl From<&Policy> for RawPolicy {
    fn from(p: &Policy) -> Self {
        Self {
            subject: p.subject.as_str().into(),
            actions: p.actions.iter().map(|a| a.as_str().into()).collect(),
            environments: p.conditions.environments.clone(),
            secret_path: p.conditions.secret_path.as_ref().map(|g| g.as_str().to_owned()).unwrap_or_default(),
            event_types: p.conditions.event_types.clone(),
            inverted: p.inverted,
        }
    }
}

impl Policy {
    fn applies(&self, subject: Subject, action: Action, resource: &Resource<'_>) -> bool {
        self.subject == subject && self.actions.contains(&action) && self.conditions.hold_for(resource)
    }
}

/// Whether `policies` allow `action` on `subject` at `resource`.
pub fn allows(policies: &[Policy], subject: Subject, action: Action, resource: &Resource<'_>) -> bool {
    let denied = policies.iter().any(|p| p.inverted && p.applies(subject, action, resource));
    !denied && policies.iter().any(|p| !p.inverted && p.applies(subject, action, resource))
}

/// Whether `policies` could allow `action` on `subject` for some folder of `environment` (used to tell "you
/// may read nothing here" from "some entries are filtered out").
pub fn allows_somewhere_in(policies: &[Policy], subject: Subject, action: Action, environment: &str) -> bool {
    policies.iter().any(|p| {
        !p.inverted && p.subject == subject && p.actions.contains(&action) && p.conditions.could_hold_in(environment)
    })
}

/// Whether `policies` could allow `action` on `subject` for some folder inside `environment` (`None`: any) and
/// `glob` (`None`: any path): some allowing policy overlaps that scope and no deny rule covers all of it.
/// Conservative: "yes" whenever "no" cannot be shown, so only a scope where nothing can ever be allowed is
/// refused.
pub fn could_allow_within(
    policies: &[Policy],
    subject: Subject,
    action: Action,
    environment: Option<&str>,
    glob: Option<&PathGlob>,
    event_type: Option<&str>,
) -> bool {
    let names = |p: &Policy| p.subject == subject && p.actions.contains(&action);
    let allowed =
        policies.iter().any(|p| !p.inverted && names(p) && p.conditions.could_overlap(environment, glob, event_type));
    let denied = policies.iter().any(|p| p.inverted && names(p) && p.conditions.cover(environment, glob, event_type));
    allowed && !denied
}

/// Names of the built-in roles; their ids are their names.
pub const BUILT_IN_ROLES: [&str; 3] = ["admin", "member", "viewer"];

fn grant(subject: Subject, actions: &[Action]) -> Policy {
    Policy { subject, actions: actions.to_vec(), conditions: Conditions::default(), inverted: false }
}

/// The policies of a built-in role, or None for an unknown name.
///
/// - `admin`: everything.
/// - `member`: read and write secrets, folders and imports; subscribe to events; read and create projects.
/// - `viewer`: read secrets, folders and imports; subscribe to events; read projects.
pub fn built_in_role(name: &str) -> Option<Vec<Policy>> {
    use Action::*;
    const RWD: &[Action] = &[Read, Create, Edit, Delete];
    match name {
        "admin" => Some(
            Subject::ALL
                .iter()
                .map(|&s| grant(s, if s == Subject::SecretEvents { &[Subscribe] } else { RWD }))
                .collect(),
        ),
        "member" => Some(vec![
            grant(Subject::Secrets, RWD),
            grant(Subject::SecretFolders, RWD),
            grant(Subject::SecretImports, RWD),
            grant(Subject::SecretEvents, &[Subscribe]),
            grant(Subject::Projects, &[Read, Create]),
        ]),
        "viewer" => Some(vec![
            grant(Subject::Secrets, &[Read]),
            grant(Subject::SecretFolders, &[Read]),
            grant(Subject::SecretImports, &[Read]),
            grant(Subject::SecretEvents, &[Subscribe]),
            grant(Subject::Projects, &[Read]),
        ]),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A validated policy, for tests.
    pub(crate) fn policy(subject: &str, actions: &[&str], envs: &[&str], path: &str, inverted: bool) -> Policy {
        RawPolicy {
            subject: subject.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            environments: envs.iter().map(|e| e.to_string()).collect(),
            secret_path: path.into(),
            event_types: Vec::new(),
            inverted,
        }
        .validate(0)
        .unwrap()
    }

    /// A `secret-events` subscribe policy limited to `event_types`.
    pub(crate) fn events_policy(event_types: &[&str], inverted: bool) -> Policy {
        RawPolicy {
            subject: "secret-events".into(),
            actions: vec!["subscribe".into()],
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            inverted,
            ..Default::default()
        }
        .validate(0)
        .unwrap()
    }

    #[test]
    fn event_type_conditions() {
        use Action::Subscribe;
        use Subject::SecretEvents;
        let deletes = vec![events_policy(&["secret:delete"], false)];
        let event = |t| Resource::event(t, "dev", "/");
        assert!(allows(&deletes, SecretEvents, Subscribe, &event("secret:delete")));
        assert!(!allows(&deletes, SecretEvents, Subscribe, &event("secret:create")));
        assert!(!allows(&deletes, SecretEvents, Subscribe, &Resource::at("dev", "/")), "not an event: not allowed");
        // Registrations: one for creates only can never receive anything; one for every type can.
        assert!(!could_allow_within(&deletes, SecretEvents, Subscribe, None, None, Some("secret:create")));
        assert!(could_allow_within(&deletes, SecretEvents, Subscribe, None, None, None));
        // A deny of deletes on top of "all": everything but deletes.
        let all_but_deletes = vec![events_policy(&[], false), events_policy(&["secret:delete"], true)];
        assert!(allows(&all_but_deletes, SecretEvents, Subscribe, &event("secret:update")));
        assert!(!allows(&all_but_deletes, SecretEvents, Subscribe, &event("secret:delete")));
        assert!(!could_allow_within(&all_but_deletes, SecretEvents, Subscribe, None, None, Some("secret:delete")));
        // `*`, `secret:*` and the full list all mean "all types"; unknown types and other subjects are refused.
        for all in [&["*"][..], &["secret:*"], &SECRET_EVENT_TYPES] {
            assert!(events_policy(all, false).conditions.event_types.is_empty(), "{all:?}");
        }
        let raw = |subject: &str, action: &str, types: &[&str]| RawPolicy {
            subject: subject.into(),
            actions: vec![action.into()],
            event_types: types.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        assert!(raw("secret-events", "subscribe", &["secret:rename"]).validate(0).is_err());
        assert!(raw("secrets", "read", &["secret:delete"]).validate(0).is_err());
    }

    /// A decision case: its name, the policies, what is asked, and whether it is allowed.
    type Case<'a> = (&'a str, &'a [Policy], Subject, Action, Resource<'a>, bool);

    #[test]
    fn decisions() {
        use Action::*;
        use Subject::*;
        let dev_api_reader = vec![policy("secrets", &["read"], &["dev"], "/api/**", false)];
        let reader_minus_keys = vec![
            policy("secrets", &["read", "edit"], &[], "", false),
            policy("secrets", &["read"], &["prod"], "/keys/**", true),
        ];
        let staging_or_dev = vec![policy("secrets", &["create"], &["dev", "staging"], "", false)];
        let cases: Vec<Case<'_>> = vec![
            ("allow inside env and glob", &dev_api_reader, Secrets, Read, Resource::at("dev", "/api/x"), true),
            ("glob root itself", &dev_api_reader, Secrets, Read, Resource::at("dev", "/api"), true),
            ("other env", &dev_api_reader, Secrets, Read, Resource::at("prod", "/api/x"), false),
            ("outside glob", &dev_api_reader, Secrets, Read, Resource::at("dev", "/web"), false),
            ("other action", &dev_api_reader, Secrets, Edit, Resource::at("dev", "/api/x"), false),
            ("other subject", &dev_api_reader, SecretFolders, Read, Resource::at("dev", "/api/x"), false),
            ("no env in request", &dev_api_reader, Secrets, Read, Resource::default(), false),
            ("deny beats allow", &reader_minus_keys, Secrets, Read, Resource::at("prod", "/keys/a"), false),
            ("deny is scoped", &reader_minus_keys, Secrets, Read, Resource::at("dev", "/keys/a"), true),
            ("deny only its action", &reader_minus_keys, Secrets, Edit, Resource::at("prod", "/keys/a"), true),
            ("env in list", &staging_or_dev, Secrets, Create, Resource::at("staging", "/"), true),
            ("env not in list", &staging_or_dev, Secrets, Create, Resource::at("prod", "/"), false),
            ("no policies, nothing", &[], Secrets, Read, Resource::at("dev", "/"), false),
        ];
        for (name, policies, subject, action, resource, expected) in cases {
            assert_eq!(allows(policies, subject, action, &resource), expected, "{name}");
        }
    }

    #[test]
    fn built_in_roles() {
        let admin = built_in_role("admin").unwrap();
        let viewer = built_in_role("viewer").unwrap();
        let anywhere = Resource::at("prod", "/deep/path");
        assert!(allows(&admin, Subject::AuditStreams, Action::Delete, &Resource::default()));
        assert!(allows(&admin, Subject::SecretEvents, Action::Subscribe, &anywhere));
        assert!(allows(&viewer, Subject::Secrets, Action::Read, &anywhere));
        assert!(!allows(&viewer, Subject::Secrets, Action::Create, &anywhere));
        assert!(built_in_role("root").is_none());
    }

    #[test]
    fn invalid_policies_name_the_field() {
        let bad_subject = RawPolicy { subject: "secretz".into(), actions: vec!["read".into()], ..Default::default() };
        assert_eq!(bad_subject.validate(2).unwrap_err().field(), "policies[2].subject");
        let subscribe_on_secrets =
            RawPolicy { subject: "secrets".into(), actions: vec!["subscribe".into()], ..Default::default() };
        assert!(subscribe_on_secrets.validate(0).is_err());
        let climbing = RawPolicy {
            subject: "secrets".into(),
            actions: vec!["read".into()],
            secret_path: "/api/../etc".into(),
            ..Default::default()
        };
        assert_eq!(climbing.validate(0).unwrap_err().field(), "policies[0].conditions.secret_path");
        let conditions_on_roles = RawPolicy {
            subject: "roles".into(),
            actions: vec!["read".into()],
            environments: vec!["dev".into()],
            ..Default::default()
        };
        assert!(conditions_on_roles.validate(0).is_err());
    }

    #[test]
    fn somewhere_in_environment() {
        let dev_api_reader = vec![policy("secrets", &["read"], &["dev"], "/api/**", false)];
        assert!(allows_somewhere_in(&dev_api_reader, Subject::Secrets, Action::Read, "dev"));
        assert!(!allows_somewhere_in(&dev_api_reader, Subject::Secrets, Action::Read, "prod"));
    }
}
