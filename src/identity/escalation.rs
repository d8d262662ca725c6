//! The no-escalation rule: a caller may hand out (in a role, an org role, a membership, a credential) only
//! permissions it holds itself.
//!
//! `holder` covers `target` when every request `target` allows, `holder` allows too:
//! - every allowing policy of `target`, action by action, is inside one allowing policy of `holder` (same
//!   subject, the action, environments and path glob at least as wide);
//! - every deny rule of `holder` that could meet such a policy is matched by a deny rule of `target` at least
//!   as wide, so nothing the holder is refused becomes allowed through the target.
//!
//! The test is conservative: it may refuse a target that is in fact covered (one allow spread over two of the
//! holder's policies, say), never the other way round. A property test below checks it against the engine.

use std::collections::HashMap;

use super::{
    Denied, glob_relations,
    policy::{Action, Conditions, Policy, Subject},
};

/// A permission of the target the holder lacks: the first one found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    pub subject: Subject,
    pub action: Action,
    /// The target policy's conditions (or, for a deny rule, the holder's).
    pub conditions: Conditions,
    /// Whether it escapes a deny rule of the holder rather than exceeding its allows.
    pub escapes_deny: bool,
}

impl Uncovered {
    /// The refusal a caller gets, `what` naming what would have held the permission (e.g. `role 'admin'`).
    pub fn denied(self, what: &str) -> Denied {
        let why = if self.escapes_deny { " (a deny rule of yours)" } else { "" };
        let location = format!("{}{why}, which {what} would hold", describe(&self.conditions));
        Denied { subject: self.subject, action: self.action, location }
    }
}

fn describe(conditions: &Conditions) -> String {
    let envs = if conditions.environments.is_empty() { "*".to_owned() } else { conditions.environments.join(",") };
    let events = if conditions.event_types.is_empty() {
        String::new()
    } else {
        format!(" for {}", conditions.event_types.join(","))
    };
    let place = match &conditions.secret_path {
        Some(glob) => format!(" on {envs}:{glob}"),
        None if conditions.environments.is_empty() => String::new(),
        None => format!(" on {envs}"),
    };
    format!("{place}{events}")
}

/// Whether `outer` holds for every resource `inner` holds for.
fn conditions_cover(outer: &Conditions, inner: &Conditions) -> bool {
    let envs = outer.environments.is_empty()
        || (!inner.environments.is_empty() && inner.environments.iter().all(|e| outer.environments.contains(e)));
    let path = match (&outer.secret_path, &inner.secret_path) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => glob_relations::covers(a, b),
    };
    let events = outer.event_types.is_empty()
        || (!inner.event_types.is_empty() && inner.event_types.iter().all(|t| outer.event_types.contains(t)));
    envs && path && events
}

/// Whether some resource could satisfy both (false only when provably not).
fn may_overlap(a: &Conditions, b: &Conditions) -> bool {
    let envs_disjoint = !a.environments.is_empty()
        && !b.environments.is_empty()
        && !a.environments.iter().any(|e| b.environments.contains(e));
    let paths_disjoint = match (&a.secret_path, &b.secret_path) {
        (Some(x), Some(y)) => glob_relations::disjoint(x, y),
        _ => false,
    };
    let events_disjoint = !a.event_types.is_empty()
        && !b.event_types.is_empty()
        && !a.event_types.iter().any(|t| b.event_types.contains(t));
    !envs_disjoint && !paths_disjoint && !events_disjoint
}

fn grants(p: &Policy, subject: Subject, action: Action, inverted: bool) -> bool {
    p.inverted == inverted && p.subject == subject && p.actions.contains(&action)
}

/// Ok when `holder` allows everything `target` allows; else the first permission it lacks.
///
/// Whether a deny rule of the holder is kept by the target does not depend on which allow meets it, so it is
/// decided once per (deny rule, action): the cost is O(policies² × actions) glob comparisons, not cubic.
pub fn covers(holder: &[Policy], target: &[Policy]) -> Result<(), Uncovered> {
    let mut kept: HashMap<(usize, Action), bool> = HashMap::new();
    for allow in target.iter().filter(|p| !p.inverted) {
        for &action in &allow.actions {
            let inside = holder
                .iter()
                .any(|a| grants(a, allow.subject, action, false) && conditions_cover(&a.conditions, &allow.conditions));
            if !inside {
                let conditions = allow.conditions.clone();
                return Err(Uncovered { subject: allow.subject, action, conditions, escapes_deny: false });
            }
            let denies = holder.iter().enumerate().filter(|(_, d)| grants(d, allow.subject, action, true));
            for (index, deny) in denies {
                if !may_overlap(&deny.conditions, &allow.conditions) {
                    continue;
                }
                let is_kept = *kept.entry((index, action)).or_insert_with(|| {
                    target.iter().any(|d| {
                        grants(d, deny.subject, action, true) && conditions_cover(&d.conditions, &deny.conditions)
                    })
                });
                if !is_kept {
                    let conditions = deny.conditions.clone();
                    return Err(Uncovered { subject: allow.subject, action, conditions, escapes_deny: true });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::identity::policy::{
        Resource, allows, built_in_role,
        tests::{events_policy, policy},
    };

    #[test]
    fn event_types_are_covered_only_by_as_many() {
        let deletes = vec![events_policy(&["secret:delete"], false)];
        let all = vec![events_policy(&[], false)];
        let creates_and_deletes = vec![events_policy(&["secret:create", "secret:delete"], false)];
        assert!(covers(&all, &deletes).is_ok());
        assert!(covers(&creates_and_deletes, &deletes).is_ok());
        let missing = covers(&deletes, &all).unwrap_err();
        assert!(!missing.escapes_deny);
        assert!(covers(&deletes, &creates_and_deletes).is_err());
        // A holder refused deletes cannot hand out a role that receives them.
        let all_but_deletes = vec![events_policy(&[], false), events_policy(&["secret:delete"], true)];
        assert!(covers(&all_but_deletes, &all).unwrap_err().escapes_deny);
        assert!(covers(&all_but_deletes, &all_but_deletes).is_ok());
        assert!(covers(&all_but_deletes, &[events_policy(&["secret:update"], false)]).is_ok());
    }

    #[test]
    fn built_in_roles_are_ordered() {
        let [admin, member, viewer] = ["admin", "member", "viewer"].map(|r| built_in_role(r).unwrap());
        assert!(covers(&admin, &member).is_ok());
        assert!(covers(&member, &viewer).is_ok());
        assert!(covers(&viewer, &viewer).is_ok());
        assert!(covers(&viewer, &member).is_err());
        let missing = covers(&member, &admin).unwrap_err();
        assert!(!missing.escapes_deny);
    }

    #[test]
    fn a_scoped_reader_cannot_grant_wider_reads() {
        let reader = vec![
            policy("secrets", &["read"], &["dev"], "/api/**", false),
            policy("projects", &["edit"], &[], "", false),
        ];
        let narrower = vec![policy("secrets", &["read"], &["dev"], "/api/db/**", false)];
        assert!(covers(&reader, &narrower).is_ok());
        let wider = vec![policy("secrets", &["read"], &["dev"], "/**", false)];
        let missing = covers(&reader, &wider).unwrap_err();
        assert_eq!(
            missing.denied("role 'wide'").to_string(),
            "permission denied: missing 'secrets:read' on dev:/**, which role 'wide' would hold"
        );
        let any_env = vec![policy("secrets", &["read"], &[], "/api/**", false)];
        assert!(covers(&reader, &any_env).is_err());
        assert!(covers(&reader, &built_in_role("admin").unwrap()).is_err());
    }

    #[test]
    fn deny_rules_must_be_kept() {
        let holder = vec![
            policy("secrets", &["read"], &[], "", false),
            policy("secrets", &["read"], &["prod"], "/keys/**", true),
        ];
        let drops_deny = vec![policy("secrets", &["read"], &["prod"], "/**", false)];
        let missing = covers(&holder, &drops_deny).unwrap_err();
        assert!(missing.escapes_deny);
        assert_eq!(
            missing.denied("role 'open'").to_string(),
            "permission denied: missing 'secrets:read' on prod:/keys/** (a deny rule of yours), which role 'open' would hold"
        );
        let keeps_deny = vec![
            policy("secrets", &["read"], &["prod"], "/**", false),
            policy("secrets", &["read"], &[], "/keys/**", true),
        ];
        assert!(covers(&holder, &keeps_deny).is_ok());
        let elsewhere = vec![policy("secrets", &["read"], &["prod"], "/api/**", false)];
        assert!(covers(&holder, &elsewhere).is_ok(), "a grant away from the denied folder needs no deny rule");
        let other_env = vec![policy("secrets", &["read"], &["dev"], "/keys/**", false)];
        assert!(covers(&holder, &other_env).is_ok());
    }

    /// Two roles of 100 policies (the limit) whose globs are the costliest the limits allow, ordered so that
    /// every search runs to its end: checked in 60 ms in a debug build (1.3 s before deny rules were decided
    /// once per rule instead of once per allow).
    #[test]
    fn worst_case_roles_are_checked_quickly() {
        let segment = format!("*{}b", "a".repeat(62));
        let costly = format!("/**/{segment}/**/{segment}/**/{segment}/**/{segment}");
        let actions = ["read", "create", "edit", "delete"];
        // Differs from `costly` only in its last segment, so each comparison runs to the end and fails.
        let near_miss = format!("/**/{segment}/**/{segment}/**/{segment}/**/c{}", "a".repeat(62));
        let mut holder: Vec<Policy> = (0..49).map(|_| policy("secrets", &actions, &[], &near_miss, false)).collect();
        holder.push(policy("secrets", &actions, &[], "/**", false));
        holder.extend((0..50).map(|_| policy("secrets", &actions, &[], &costly, true)));
        let mut target: Vec<Policy> = (0..50).map(|_| policy("secrets", &actions, &[], &costly, false)).collect();
        target.extend((0..49).map(|_| policy("secrets", &actions, &[], &near_miss, true)));
        target.push(policy("secrets", &actions, &[], "/**", true));
        // The fastest of three runs: other tests share the cores, and a slow run says nothing of the code.
        let took = (0..3)
            .map(|_| {
                let started = std::time::Instant::now();
                assert!(covers(&holder, &target).is_ok());
                started.elapsed()
            })
            .min()
            .expect("three runs");
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    }

    fn policy_strategy() -> impl Strategy<Value = Policy> {
        let subject = prop_oneof![Just("secrets"), Just("secret-folders")];
        let actions = proptest::sample::subsequence(vec!["read", "edit", "delete"], 1..=3);
        let envs = proptest::sample::subsequence(vec!["dev", "prod"], 0..=2);
        let path = prop_oneof![
            Just(""),
            Just("/**"),
            Just("/"),
            Just("/a/**"),
            Just("/a/*"),
            Just("/a/b"),
            Just("/b/**"),
            Just("/*/b"),
            Just("/a*/**")
        ];
        (subject, actions, envs, path, any::<bool>()).prop_map(|(s, a, e, p, inverted)| policy(s, &a, &e, p, inverted))
    }

    fn role_strategy() -> impl Strategy<Value = Vec<Policy>> {
        proptest::collection::vec(policy_strategy(), 0..5)
    }

    /// A holder and a target; the target is half the time some of the holder's own policies plus one more, so
    /// that "covered" comes up often and not only for empty targets.
    fn role_pair_strategy() -> impl Strategy<Value = (Vec<Policy>, Vec<Policy>)> {
        (role_strategy(), role_strategy(), policy_strategy(), any::<u8>(), any::<bool>()).prop_map(
            |(holder, other, extra, keep, related)| {
                if !related {
                    return (holder, other);
                }
                let mut target: Vec<Policy> =
                    holder.iter().enumerate().filter(|(i, _)| keep & (1 << i) != 0).map(|(_, p)| p.clone()).collect();
                target.push(extra);
                (holder, target)
            },
        )
    }

    const PATHS: [&str; 8] = ["/", "/a", "/b", "/a/b", "/a/c", "/ab/b", "/b/b/c", "/c/b"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// If A covers B, no request B allows is refused by A.
        #[test]
        fn covering_never_widens((holder, target) in role_pair_strategy()) {
            if covers(&holder, &target).is_ok() {
                for subject in [Subject::Secrets, Subject::SecretFolders] {
                    for action in [Action::Read, Action::Edit, Action::Delete] {
                        for env in [None, Some("dev"), Some("prod"), Some("qa")] {
                            for path in PATHS.iter().map(|p| Some(*p)).chain([None]) {
                                let r = Resource { environment: env, secret_path: path, event_type: None };
                                if allows(&target, subject, action, &r) {
                                    prop_assert!(
                                        allows(&holder, subject, action, &r),
                                        "{holder:?} covers {target:?} yet refuses {subject}:{action} at {env:?}:{path:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }

        /// Every role covers itself, so an identity may always hand out exactly what it holds.
        #[test]
        fn covering_is_reflexive(role in role_strategy()) {
            prop_assert!(covers(&role, &role).is_ok());
        }
    }
}
