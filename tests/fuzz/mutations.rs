//! Turning a generated request into a malformed input for one transport: JSON bodies with wrong types, deep
//! nesting, truncation and invalid UTF-8; protobuf with flipped bytes, wrong wire types, invalid UTF-8 and
//! deep nesting; gRPC frames with wrong lengths, compression flags and truncated headers; SSE bodies with
//! pathological globs and `Last-Event-ID`s.

use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use rand::{Rng, rngs::StdRng, seq::SliceRandom};
use serde_json::{Value, json};

use super::templates::{self, Targets};

/// How an input reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /hush.v1.<Service>/<Method>` with a JSON body.
    Json,
    /// gRPC over HTTP/2.
    Grpc,
    /// grpc-web over HTTP/1.1.
    GrpcWeb,
    /// The SSE subscription route.
    Sse,
}

/// Which credentials a case carries.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    Admin,
    None,
    Garbage,
}

/// One generated input.
#[derive(Debug)]
pub struct Case {
    pub transport: Transport,
    pub path: String,
    pub body: Vec<u8>,
    pub auth: Auth,
    pub last_event_id: Option<String>,
    /// Whether the RPC answers with a stream (its success never ends on its own).
    pub streaming: bool,
}

impl Case {
    /// A short, printable description of the input for an assertion message.
    pub fn describe(&self) -> String {
        const SHOWN: usize = 300;
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(SHOWN)]).escape_debug().to_string();
        format!(
            "{:?} {} ({} bytes, auth {:?}, last-event-id {:?}): {body}{}",
            self.transport,
            self.path,
            self.body.len(),
            self.auth,
            self.last_event_id.as_deref().map(|s| &s[..s.len().min(80)]),
            if self.body.len() > SHOWN { "…" } else { "" }
        )
    }
}

/// A case drawn from `rng` (seeded per case, so each case is reproducible on its own).
pub fn case(rng: &mut StdRng, methods: &[MethodDescriptor], targets: &Targets) -> Case {
    let auth = match rng.gen_range(0..20) {
        0 => Auth::None,
        1 => Auth::Garbage,
        _ => Auth::Admin,
    };
    let transport = *[Transport::Json, Transport::Grpc, Transport::GrpcWeb, Transport::Sse].choose(rng).unwrap();
    if transport == Transport::Sse {
        let body = sse_body(rng, targets);
        return Case {
            transport,
            path: "/api/v1/events/subscribe/project-events".to_owned(),
            body: json_bytes(rng, body),
            auth,
            last_event_id: rng.gen_bool(0.5).then(|| last_event_id(rng)),
            streaming: true,
        };
    }
    let unary: Vec<&MethodDescriptor> = methods.iter().filter(|m| !m.is_server_streaming()).collect();
    // JSON reaches unary RPCs only; the binary transports reach all.
    let method = if transport == Transport::Json { *unary.choose(rng).unwrap() } else { methods.choose(rng).unwrap() };
    let message = templates::message(rng, &method.input(), targets, 0);
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let body = match transport {
        // A well-known type out of its JSON range (a timestamp in year 300 000) has no JSON form: send `{}`.
        Transport::Json => json_bytes(rng, serde_json::to_value(&message).unwrap_or_else(|_| json!({}))),
        _ => {
            let payload = protobuf(rng, &message);
            frame(rng, payload)
        }
    };
    Case { transport, path, body, auth, last_event_id: None, streaming: method.is_server_streaming() }
}

fn last_event_id(rng: &mut StdRng) -> String {
    match rng.gen_range(0..6) {
        0 => "0".to_owned(),
        1 => "-1".to_owned(),
        2 => "99999999999999999999999".to_owned(),
        3 => "abc".to_owned(),
        4 => "9".repeat(rng.gen_range(1..4_000)),
        _ => rng.gen_range(0..1_000_000).to_string(),
    }
}

/// An SSE subscription body, glob bombs included.
fn sse_body(rng: &mut StdRng, targets: &Targets) -> Value {
    let register: Vec<Value> = (0..rng.gen_range(0..4))
        .map(|_| {
            let path = if rng.gen_bool(0.3) {
                templates::glob_bomb(rng.gen_range(1..4_000))
            } else {
                templates::text(rng, "secret_path", targets)
            };
            json!({
                "event": templates::text(rng, "event", targets),
                "conditions": {
                    "environmentSlug": templates::text(rng, "environment_slug", targets),
                    "secretPath": path,
                },
            })
        })
        .collect();
    json!({ "projectId": templates::text(rng, "project_id", targets), "register": register })
}

/// A JSON body, mutated at random.
fn json_bytes(rng: &mut StdRng, mut value: Value) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 | 1 => serde_json::to_vec(&value).unwrap(),
        2 => {
            wrong_type(rng, &mut value);
            serde_json::to_vec(&value).unwrap()
        }
        3 => {
            let depth = rng.gen_range(100..50_000);
            if let Value::Object(fields) = &mut value {
                fields.insert("deep".to_owned(), Value::Null);
            }
            let text = serde_json::to_string(&value).unwrap();
            text.replacen("null", &format!("{}{}", "[".repeat(depth), "]".repeat(depth)), 1).into_bytes()
        }
        4 => {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            bytes.truncate(rng.gen_range(0..=bytes.len()));
            bytes
        }
        5 => {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            let at = rng.gen_range(0..=bytes.len());
            bytes.splice(at..at, [0xC3, 0x28, 0xFF, 0xFE]);
            bytes
        }
        6 => {
            if let Value::Object(fields) = &mut value {
                fields.insert("x".repeat(rng.gen_range(1..100_000)), json!(1));
            }
            serde_json::to_vec(&value).unwrap()
        }
        7 => {
            let mut text = serde_json::to_string(&value).unwrap();
            text = text.replacen('"', "\"\\u0000", 1);
            text.into_bytes()
        }
        8 => (0..rng.gen_range(0..512)).map(|_| rng.r#gen::<u8>()).collect(),
        _ => json!([value, 1, "x"]).to_string().into_bytes(),
    }
}

/// Replaces one top-level field's value with a value of another type.
fn wrong_type(rng: &mut StdRng, value: &mut Value) {
    let Value::Object(fields) = value else { return };
    let Some(key) = fields.keys().cloned().collect::<Vec<_>>().choose(rng).cloned() else { return };
    let replacement =
        [json!(1e308), json!(-1), json!(true), json!(null), json!([1, [2]]), json!({"a": {}}), json!("7")]
            .choose(rng)
            .unwrap()
            .clone();
    fields.insert(key, replacement);
}

/// Encodes `message`, then mutates the bytes at random.
fn protobuf(rng: &mut StdRng, message: &DynamicMessage) -> Vec<u8> {
    let mut bytes = message.encode_to_vec();
    match rng.gen_range(0..9) {
        0 | 1 => {}
        2 => {
            for _ in 0..rng.gen_range(1..8) {
                if !bytes.is_empty() {
                    let at = rng.gen_range(0..bytes.len());
                    bytes[at] = rng.r#gen();
                }
            }
        }
        3 => bytes.truncate(rng.gen_range(0..=bytes.len())),
        4 => {
            // A length-delimited field holding invalid UTF-8: a string field must refuse it.
            let field = rng.gen_range(1..12u8);
            bytes.extend([field << 3 | 2, 4, 0xC3, 0x28, 0xFF, 0xFE]);
        }
        5 => {
            // Any field number with any wire type, the invalid ones (3, 4, 6, 7) included.
            let tag = rng.gen_range(1..16u8) << 3 | rng.gen_range(0..8u8);
            bytes.extend([tag, 0x01, 0x02]);
        }
        6 => bytes.extend([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        7 => {
            // Nesting deeper than any decoder's recursion limit.
            let mut nested = Vec::new();
            for _ in 0..rng.gen_range(50..2_000) {
                let mut outer = vec![0x0A];
                prost::encoding::encode_varint(nested.len() as u64, &mut outer);
                outer.extend(nested);
                nested = outer;
            }
            bytes = nested;
        }
        _ => bytes = (0..rng.gen_range(0..256)).map(|_| rng.r#gen::<u8>()).collect(),
    }
    bytes
}

/// Wraps a payload in a gRPC frame, usually a correct one.
fn frame(rng: &mut StdRng, payload: Vec<u8>) -> Vec<u8> {
    let len = payload.len() as u32;
    let (flag, announced) = match rng.gen_range(0..12) {
        0 => (1, len),
        1 => (rng.gen_range(2..=255), len),
        2 => (0, len.saturating_add(rng.gen_range(1..100))),
        3 => (0, len.saturating_sub(1)),
        4 => (0, u32::MAX),
        5 => return vec![0; rng.gen_range(0..5)],
        6 => return Vec::new(),
        _ => (0, len),
    };
    let mut framed = vec![flag];
    framed.extend(announced.to_be_bytes());
    framed.extend(&payload);
    if rng.gen_bool(0.05) {
        framed.extend(framed.clone());
    }
    framed
}
