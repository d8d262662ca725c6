//! What a subscription asks for: event type patterns with environment and path conditions.

use super::{Event, EventType, EventsError};
use crate::identity::glob::PathGlob;

/// Most registrations in one subscription.
pub const MAX_REGISTRATIONS: usize = 100;

/// An event type or wildcard: `secret:create`, `secret:*`, `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventPattern {
    /// Every event type.
    Any,
    /// One event type.
    Exact(EventType),
}

impl EventPattern {
    /// Parses a pattern; unknown types are rejected so a typo does not silently match nothing.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "*" | "secret:*" => Some(EventPattern::Any),
            other => EventType::parse(other).map(EventPattern::Exact),
        }
    }

    /// The one event type it names, or None for every type.
    pub fn exact_type(self) -> Option<&'static str> {
        match self {
            EventPattern::Any => None,
            EventPattern::Exact(t) => Some(t.as_str()),
        }
    }

    fn matches(self, event_type: EventType) -> bool {
        match self {
            EventPattern::Any => true,
            EventPattern::Exact(t) => t == event_type,
        }
    }
}

/// One registration: a pattern and optional conditions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registration {
    pub pattern: EventPattern,
    /// Environment slug; None = any.
    pub environment: Option<String>,
    /// Path glob; None = any.
    pub secret_path: Option<PathGlob>,
}

impl Registration {
    /// Validates the registration at `index` of a request.
    pub fn parse(index: usize, event_type: &str, environment: &str, secret_path: &str) -> Result<Self, EventsError> {
        let invalid = |field: &str, reason: String| EventsError::InvalidArgument {
            field: format!("registrations[{index}].{field}"),
            reason,
        };
        let pattern = EventPattern::parse(event_type).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            invalid(
                "event_type",
                format!("unknown event type '{event_type}' (known: {}, secret:*, *)", known.join(", ")),
            )
        })?;
        let environment = match environment {
            "" => None,
            slug => {
                crate::secrets::validate::environment_slug("conditions.environment_slug", slug).map_err(
                    |e| match e {
                        crate::secrets::SecretsError::InvalidArgument { field, reason } => invalid(&field, reason),
                        other => invalid("conditions.environment_slug", other.to_string()),
                    },
                )?;
                Some(slug.to_owned())
            }
        };
        let secret_path = match secret_path {
            "" => None,
            glob => Some(PathGlob::parse(glob).map_err(|e| invalid("conditions.secret_path", e.to_string()))?),
        };
        Ok(Self { pattern, environment, secret_path })
    }

    /// Whether the registration wants an event of this type at `(environment, path)`.
    pub fn matches(&self, event_type: EventType, environment: &str, path: &str) -> bool {
        self.pattern.matches(event_type)
            && self.environment.as_deref().is_none_or(|e| e == environment)
            && self.secret_path.as_ref().is_none_or(|g| g.matches(path))
    }
}

/// Validates a subscription's registrations; none at all means "every event".
pub fn parse_all<'a>(
    registrations: impl ExactSizeIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<Vec<Registration>, EventsError> {
    if registrations.len() > MAX_REGISTRATIONS {
        return Err(EventsError::InvalidArgument {
            field: "registrations".into(),
            reason: format!("at most {MAX_REGISTRATIONS} registrations"),
        });
    }
    let parsed: Vec<Registration> = registrations
        .enumerate()
        .map(|(i, (t, env, path))| Registration::parse(i, t, env, path))
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Ok(vec![Registration { pattern: EventPattern::Any, environment: None, secret_path: None }]);
    }
    Ok(parsed)
}

/// Whether any registration wants `event` at `(environment, path)`.
pub fn wanted(registrations: &[Registration], event: &Event, environment: &str, path: &str) -> bool {
    registrations.iter().any(|r| r.matches(event.event_type, environment, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_conditions() {
        let r = Registration::parse(0, "secret:*", "dev", "/api/**").unwrap();
        assert!(r.matches(EventType::Delete, "dev", "/api/x"));
        assert!(!r.matches(EventType::Delete, "prod", "/api/x"));
        assert!(!r.matches(EventType::Create, "dev", "/web"));
        let exact = Registration::parse(0, "secret:update", "", "").unwrap();
        assert!(exact.matches(EventType::Update, "prod", "/any"));
        assert!(!exact.matches(EventType::Create, "prod", "/any"));
        let err = Registration::parse(3, "secret:created", "", "").unwrap_err();
        assert!(err.to_string().starts_with("registrations[3].event_type"), "{err}");
        let err = Registration::parse(0, "*", "", "api/**").unwrap_err();
        assert!(err.to_string().starts_with("registrations[0].conditions.secret_path"), "{err}");
    }
}
