//! The one mapping from domain errors to `tonic::Status`. Every variant is named (no catch-all) so a new
//! variant forces a decision. Internal failures are logged in full and answered with a generic message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    audit::denials,
    events::EventsError,
    identity::{Denied, IdentityError},
    secrets::SecretsError,
    store::DbError,
    streams::StreamsError,
};

/// Message of every INTERNAL answer; the detail goes to the log only.
const INTERNAL: &str = "internal error; the server log has details";

fn internal(error: &dyn std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::internal(INTERNAL)
}

/// A database failure, as the store classified it (`src/store/error.rs`): a duplicate or lost race is not the
/// server's fault, and its answer never echoes the database's text.
fn database(error: &DbError) -> Status {
    match error {
        DbError::Duplicate => Status::already_exists(error.to_string()),
        DbError::Contention(cause) => {
            tracing::warn!(error = %cause, "a write lost a race the database resolved by aborting it");
            Status::aborted(error.to_string())
        }
        DbError::Gone(cause) => {
            tracing::warn!(error = %cause, "a write refers to a row a concurrent write deleted");
            Status::not_found(error.to_string())
        }
        DbError::Other(cause) => internal(cause),
    }
}

/// INVALID_ARGUMENT naming the field in the message and in a `google.rpc.BadRequest` detail.
pub fn invalid_argument(field: String, reason: String) -> Status {
    let message = format!("{field}: {reason}");
    Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request_violation(field, reason))
}

/// PERMISSION_DENIED naming what was missing; the denial is also reported for the audit log (see
/// [`denials`]).
fn permission_denied(denied: Denied) -> Status {
    denials::note(format!("{}:{}", denied.subject, denied.action), &denied.location);
    Status::permission_denied(denied.to_string())
}

impl From<SecretsError> for Status {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::InvalidArgument { field, reason } => invalid_argument(field, reason),
            SecretsError::PermissionDenied(denied) => permission_denied(denied),
            SecretsError::NotFound(_) => Status::not_found(error.to_string()),
            SecretsError::AlreadyExists(_) => Status::already_exists(error.to_string()),
            SecretsError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            SecretsError::Aborted(_) | SecretsError::PermissionsChanged => Status::aborted(error.to_string()),
            // Not INTERNAL: the data itself is damaged, and the operator must be told which record.
            SecretsError::Integrity { .. } => {
                tracing::error!(%error, "stored ciphertext failed authentication");
                Status::data_loss(error.to_string())
            }
            SecretsError::Db(ref db) => database(db),
        }
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Unauthenticated(message) => Status::unauthenticated(message),
            // RetryInfo carries the wait to gRPC clients; the HTTP gateway turns it into `Retry-After`.
            IdentityError::Throttled { retry_after } => Status::with_error_details(
                Code::ResourceExhausted,
                error.to_string(),
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            IdentityError::PermissionDenied(denied) => permission_denied(denied),
            IdentityError::InvalidArgument { field, reason } => invalid_argument(field, reason),
            IdentityError::NotFound(_) => Status::not_found(error.to_string()),
            IdentityError::AlreadyExists(_) => Status::already_exists(error.to_string()),
            IdentityError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            IdentityError::Db(ref db) => database(db),
            IdentityError::Io { .. } => internal(&error),
        }
    }
}

impl From<EventsError> for Status {
    fn from(error: EventsError) -> Self {
        match error {
            EventsError::InvalidArgument { field, reason } => invalid_argument(field, reason),
            EventsError::NotFound(_) => Status::not_found(error.to_string()),
            EventsError::PermissionDenied(denied) => permission_denied(denied),
            EventsError::Unauthenticated(message) => Status::unauthenticated(message),
            EventsError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            EventsError::ResourceExhausted(message) => Status::resource_exhausted(message),
            EventsError::Db(ref db) => database(db),
        }
    }
}

impl From<StreamsError> for Status {
    fn from(error: StreamsError) -> Self {
        match error {
            StreamsError::InvalidArgument { field, reason } => invalid_argument(field, reason),
            StreamsError::NotFound(_) => Status::not_found(error.to_string()),
            StreamsError::PermissionDenied(denied) => permission_denied(denied),
            StreamsError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            StreamsError::Aborted(_) => Status::aborted(error.to_string()),
            StreamsError::Integrity(..) => {
                tracing::error!(%error, "stored stream configuration failed authentication");
                Status::data_loss(error.to_string())
            }
            StreamsError::Db(ref db) => database(db),
        }
    }
}
