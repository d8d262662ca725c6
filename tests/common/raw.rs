//! Raw calls: arbitrary bytes as a gRPC request body (over HTTP/2) or a grpc-web one (over HTTP/1.1), for
//! tests that send what no generated client would.

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use tonic::{body::Body, transport::Channel};
use tower::{Service, ServiceExt};

/// A gRPC frame around `payload`: no compression, big-endian length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend((payload.len() as u32).to_be_bytes());
    framed.extend(payload);
    framed
}

/// The status of an answer: from the headers (an error before any message) or the trailers; `None` for a
/// streaming answer that opened (it is not read further). `Err` is a transport failure.
pub async fn grpc(
    channel: &Channel,
    url: &str,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
    streaming: bool,
) -> Result<Option<tonic::Status>, String> {
    let mut request = Request::post(format!("{url}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(Full::new(Bytes::from(body))))
        .expect("valid request");
    if let Some(value) = authorization {
        request.headers_mut().insert("authorization", value.parse().map_err(|_| "unsendable authorization")?);
    }
    let mut channel = channel.clone();
    let ready = channel.ready().await.map_err(|e| format!("channel: {e}"))?;
    let response = ready.call(request).await.map_err(|e| format!("transport error: {e}"))?;
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return Ok(Some(status));
    }
    if streaming {
        return Ok(None);
    }
    let collected = response.into_body().collect().await.map_err(|e| format!("reading the answer: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers).map(Some).ok_or_else(|| "gRPC answer without grpc-status".to_owned())
}

/// The gRPC status carried by a grpc-web answer: in its headers, or in the trailer frame (flag 0x80) of its body.
fn grpc_web_status(headers: &HeaderMap, body: &[u8]) -> Option<tonic::Status> {
    if let Some(status) = tonic::Status::from_header_map(headers) {
        return Some(status);
    }
    let mut rest = body;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = rest.get(5..5 + len)?;
        if rest[0] & 0x80 != 0 {
            let mut trailers = HeaderMap::new();
            for line in String::from_utf8_lossy(frame).split("\r\n") {
                if let Some((name, value)) = line.split_once(':')
                    && let (Ok(name), Ok(value)) = (name.trim().parse::<http::HeaderName>(), value.trim().parse())
                {
                    trailers.insert(name, value);
                }
            }
            return tonic::Status::from_header_map(&trailers);
        }
        rest = &rest[5 + len..];
    }
    None
}

/// Sends `body` as a grpc-web request over HTTP/1.1 with `client`; the answer's status as in [`grpc`] (`None`
/// also for an HTTP 4xx without one).
pub async fn grpc_web(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
    streaming: bool,
) -> Result<Option<tonic::Status>, String> {
    grpc_web_as(client, url, path, authorization, "application/grpc-web+proto", body, streaming).await
}

/// [`grpc_web`] with the request's `content_type` (say `application/grpc-web-text`, whose body is base64).
pub async fn grpc_web_as(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    authorization: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
    streaming: bool,
) -> Result<Option<tonic::Status>, String> {
    let mut request = client.post(format!("{url}{path}")).header("content-type", content_type).body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.map_err(|e| format!("transport error: {e}"))?;
    let http_status = response.status();
    if http_status.is_server_error() {
        return Err(format!("HTTP {http_status}"));
    }
    let headers = response.headers().clone();
    if streaming && tonic::Status::from_header_map(&headers).is_none() {
        return Ok(None);
    }
    let body = response.bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
    match grpc_web_status(&headers, &body) {
        Some(status) => Ok(Some(status)),
        // Refused at the HTTP level, before gRPC: the caller's fault all the same.
        None if http_status.is_client_error() => Ok(None),
        None => Err("grpc-web answer without grpc-status".to_owned()),
    }
}
