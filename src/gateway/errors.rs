//! JSON errors of the HTTP gateway: `{"code": "<grpc code name>", "message": "…"}` with a matching HTTP
//! status, the shape Connect clients expect.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

/// The lowercase snake_case gRPC code name used in JSON errors.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status for a gRPC code (Connect's mapping).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of an error; the message is cut to a bounded size.
pub fn body(code: Code, message: &str) -> String {
    json!({ "code": code_name(code), "message": super::bounded_errors::bounded_message(message) }).to_string()
}

/// An error response for a gRPC status. A `google.rpc.RetryInfo` detail (throttled logins) becomes
/// `Retry-After` in whole seconds, rounded up so a client that waits exactly that long is let in.
pub fn response(status: &tonic::Status) -> Response {
    let mut response = (
        http_status(status.code()),
        [(http::header::CONTENT_TYPE, "application/json")],
        body(status.code(), status.message()),
    )
        .into_response();
    let retry_delay = status.get_details_retry_info().and_then(|info| info.retry_delay);
    if let Some(delay) = retry_delay {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response.headers_mut().insert(http::header::RETRY_AFTER, seconds.into());
    }
    response
}
