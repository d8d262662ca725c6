//! Request messages for every hush RPC, generated from the descriptor set: plausible enough to reach the
//! services' validation (real project id, `dev`, `/`), hostile enough to test it (NUL and control characters,
//! huge strings, pathological globs, out-of-range numbers, unknown enum values).

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, MethodDescriptor, Value,
};
use rand::{Rng, rngs::StdRng, seq::SliceRandom};

/// Things that exist on the server, so generated requests get past "not found".
pub struct Targets {
    pub project_id: String,
    pub identity_id: String,
}

/// RPCs left out: with an empty field `RevokeToken` revokes the token the whole run uses.
const LEFT_OUT: [&str; 1] = ["RevokeToken"];

/// Every hush RPC but those [`LEFT_OUT`].
pub fn methods() -> Vec<MethodDescriptor> {
    let pool = DescriptorPool::decode(hush::pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    pool.services()
        .filter(|s| s.package_name() == "hush.v1")
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| !LEFT_OUT.contains(&m.name()))
        .collect()
}

/// A path glob of `n` `**` segments: the shape that froze the server before globs were bounded.
pub fn glob_bomb(n: usize) -> String {
    format!("{}/zz", "/**".repeat(n))
}

/// Text chosen for a field named `name`: mostly plausible, often hostile.
pub fn text(rng: &mut StdRng, name: &str, targets: &Targets) -> String {
    if rng.gen_bool(0.45) {
        return plausible(rng, name, targets);
    }
    match rng.gen_range(0..14) {
        0 => String::new(),
        1 => format!("{}\0{}", plausible(rng, name, targets), "x"),
        2 => "\u{1}\u{7}\u{1b}[31m\u{7f}\u{85}".to_owned(),
        3 => "x".repeat(rng.gen_range(1_000..200_000)),
        4 => glob_bomb(rng.gen_range(5..4_000)),
        5 => "/**/a/**/b/**/c/**/d/**/e".to_owned(),
        6 => "../../../etc/passwd".to_owned(),
        7 => "'; DROP TABLE secrets; --".to_owned(),
        8 => "🔐é\u{202e}\u{feff}\u{10ffff}".to_owned(),
        9 => uuid::Uuid::new_v4().to_string(),
        10 => "*".repeat(rng.gen_range(1..600)),
        11 => format!("/{}", "a/".repeat(rng.gen_range(1..3_000))),
        12 => (0..rng.gen_range(1..64)).map(|_| rng.r#gen::<char>()).collect(),
        _ => "%00%ff{{.}}${HOME}".to_owned(),
    }
}

fn plausible(rng: &mut StdRng, name: &str, targets: &Targets) -> String {
    let name = name.to_ascii_lowercase();
    if name.contains("project") && name.ends_with("id") {
        targets.project_id.clone()
    } else if name.contains("identity") && name.ends_with("id") {
        targets.identity_id.clone()
    } else if name.ends_with("id") {
        uuid::Uuid::new_v4().to_string()
    } else if name.contains("environment") || name.contains("slug") {
        ["dev", "staging", "prod"].choose(rng).unwrap().to_string()
    } else if name.contains("path") {
        ["/", "/api", "/api/keys", "/**", "/api/*"].choose(rng).unwrap().to_string()
    } else if name.contains("key") {
        format!("K{}", rng.gen_range(0..5))
    } else if name.contains("event") {
        ["secret:create", "secret:update", "*", "nope"].choose(rng).unwrap().to_string()
    } else {
        format!("fuzz-{}", rng.gen_range(0..1_000))
    }
}

fn scalar(rng: &mut StdRng, field: &FieldDescriptor, kind: &Kind, targets: &Targets, depth: usize) -> Value {
    let edge = rng.gen_bool(0.3);
    match kind {
        Kind::String => Value::String(text(rng, field.name(), targets)),
        Kind::Bytes => Value::Bytes((0..rng.gen_range(0..64)).map(|_| rng.r#gen::<u8>()).collect::<Vec<_>>().into()),
        Kind::Bool => Value::Bool(rng.r#gen()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(if edge { *[i32::MIN, -1, 0, i32::MAX].choose(rng).unwrap() } else { rng.gen_range(-5..2_000) })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(if edge { *[i64::MIN, -1, 0, i64::MAX].choose(rng).unwrap() } else { rng.gen_range(-5..2_000) })
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(if edge { u32::MAX } else { rng.gen_range(0..2_000) }),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(if edge { u64::MAX } else { rng.gen_range(0..2_000) }),
        Kind::Float => Value::F32(if edge { f32::NAN } else { rng.r#gen() }),
        Kind::Double => Value::F64(if edge { f64::INFINITY } else { rng.r#gen() }),
        Kind::Enum(e) => {
            let values: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(if edge { rng.gen_range(-3..1_000) } else { *values.choose(rng).unwrap() })
        }
        Kind::Message(m) => Value::Message(message(rng, m, targets, depth + 1)),
    }
}

/// A message of type `descriptor` with each field set or left out at random.
pub fn message(rng: &mut StdRng, descriptor: &MessageDescriptor, targets: &Targets, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if depth > 4 {
        return message;
    }
    for field in descriptor.fields() {
        if rng.gen_bool(0.2) {
            continue;
        }
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field is an entry message") };
            let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            let entries = (0..rng.gen_range(0..3))
                .filter_map(|_| {
                    let key = match scalar(rng, &key_field, &key_field.kind(), targets, depth) {
                        Value::String(s) => MapKey::String(s),
                        other => other.into_map_key()?,
                    };
                    Some((key, scalar(rng, &value_field, &value_field.kind(), targets, depth)))
                })
                .collect();
            Value::Map(entries)
        } else if field.is_list() {
            let n = if rng.gen_bool(0.05) { rng.gen_range(50..300) } else { rng.gen_range(0..3) };
            Value::List((0..n).map(|_| scalar(rng, &field, &field.kind(), targets, depth)).collect())
        } else {
            scalar(rng, &field, &field.kind(), targets, depth)
        };
        message.set_field(&field, value);
    }
    message
}
