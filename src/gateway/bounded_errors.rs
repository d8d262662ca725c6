//! Error answers of bounded size, so an error can never echo a huge input back: a gRPC `grpc-message` (and a
//! JSON error's `message`) is cut to [`MAX_MESSAGE_BYTES`], and `grpc-status-details-bin` larger than
//! [`MAX_DETAILS_BYTES`] is dropped (the message still says what is wrong).

use std::borrow::Cow;

use http::{HeaderMap, Response, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::{Status, body::Body};

/// Longest error message sent, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest error details sent, in bytes (before base64).
pub const MAX_DETAILS_BYTES: usize = 4096;
/// Appended to a cut message.
const CUT: &str = " …(cut)";

/// `message` cut at a character boundary to at most [`MAX_MESSAGE_BYTES`] bytes.
pub fn bounded_message(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE_BYTES {
        return Cow::Borrowed(message);
    }
    let mut end = MAX_MESSAGE_BYTES - CUT.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT}", &message[..end]))
}

/// Rewrites the gRPC status in `headers` (response headers or trailers) if it is too large.
fn bound_status(headers: &mut HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else { return };
    let message = bounded_message(status.message());
    let oversized_details = status.details().len() > MAX_DETAILS_BYTES;
    if !oversized_details && matches!(message, Cow::Borrowed(_)) {
        return;
    }
    let details = if oversized_details { Default::default() } else { status.details().to_vec().into() };
    let bounded = Status::with_details(status.code(), message.into_owned(), details);
    headers.remove(Status::GRPC_MESSAGE);
    headers.remove(Status::GRPC_STATUS_DETAILS);
    // A cut message is valid UTF-8 and percent-encoded, so writing it cannot fail.
    let _ = bounded.add_header(headers);
}

/// Bounds the gRPC status of a response, whether it travels in the headers (an error before any message) or
/// in the trailers.
pub fn bound(mut response: Response<Body>) -> Response<Body> {
    let grpc = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc {
        return response;
    }
    bound_status(response.headers_mut());
    response.map(|body| {
        Body::new(body.map_frame(|frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                bound_status(&mut trailers);
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(bounded_message("short"), "short");
        let long = "é".repeat(4000);
        let cut = bounded_message(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES && cut.ends_with(CUT), "{}", cut.len());
    }

    #[test]
    fn large_details_are_dropped_and_messages_cut() {
        let status = Status::with_details(tonic::Code::InvalidArgument, "x".repeat(100_000), vec![7; 10_000].into());
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        bound_status(&mut headers);
        let bounded = Status::from_header_map(&headers).unwrap();
        assert_eq!(bounded.code(), tonic::Code::InvalidArgument);
        assert!(bounded.message().len() <= MAX_MESSAGE_BYTES);
        assert!(bounded.details().is_empty());
    }
}
