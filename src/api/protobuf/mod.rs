//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), read into the JSON the
//! rest of the API works on. Typed clients send them whatever the server advertises:
//! `kubectl create configmap|secret|deployment …` POST protobuf and accept JSON back.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope (type, raw message). The raw
//! message is decoded with the field table of `messages.json` (generated from the
//! `generated.proto` and `types.go` files of Kubernetes' GA API groups by
//! `tools/generate_protobuf.py`); the apimachinery types that JSON spells differently (`Time`,
//! `IntOrString`, `Quantity`, `RawExtension`, `FieldsV1`, `Duration`) are converted here, and
//! fields JSON omits when zero are left out as Go's encoder does.
//!
//! Answers stay JSON (clients accept both). Types outside the table are refused with 415.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::status::ApiError;
use crate::engine::clock::rfc3339;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Nesting deeper than this is refused (no Kubernetes type comes close).
const MAX_DEPTH: usize = 100;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

#[derive(Debug)]
enum Label {
    Optional,
    /// Optional, and left out when zero (`omitempty` on a value field).
    OmittedWhenZero,
    Repeated,
    /// A map; `value` is the value type.
    Map,
}

#[derive(Debug)]
struct Field {
    name: String,
    label: Label,
    kind: String,
    value: String,
}

type Table = HashMap<String, HashMap<u64, Field>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Generated and checked by a unit test; a broken file only leaves protobuf unread.
        let raw: HashMap<String, Vec<Vec<Value>>> =
            serde_json::from_str(include_str!("messages.json")).unwrap_or_default();
        raw.into_iter()
            .map(|(message, fields)| {
                let fields = fields
                    .into_iter()
                    .filter_map(|f| {
                        let text = |i: usize| f.get(i).and_then(Value::as_str).unwrap_or_default();
                        let label = match text(2) {
                            "o" => Label::Optional,
                            "z" => Label::OmittedWhenZero,
                            "r" => Label::Repeated,
                            "m" => Label::Map,
                            _ => return None,
                        };
                        let number = f.first().and_then(Value::as_u64)?;
                        Some((
                            number,
                            Field {
                                name: text(1).to_string(),
                                label,
                                kind: text(3).to_string(),
                                value: text(4).to_string(),
                            },
                        ))
                    })
                    .collect();
                (message, fields)
            })
            .collect()
    })
}

/// Reads a protobuf object body into its JSON form (`apiVersion` and `kind` first).
pub fn decode_object(body: &[u8]) -> Result<Value, ApiError> {
    let raw = body.strip_prefix(MAGIC).ok_or_else(|| {
        unreadable("the protobuf body does not start with the Kubernetes magic number")
    })?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut message: &[u8] = &[];
    for field in Reader(raw) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for meta_field in Reader(type_meta) {
                    match meta_field? {
                        (1, Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => message = b,
            _ => {}
        }
    }
    let name = message_name(&api_version, &kind);
    if !table().contains_key(&name) {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - protobuf is read for the GA types of Kubernetes, not {kind} of {api_version:?}; send application/json"
            ),
        ));
    }
    let decoded = decode_message(message, &name, 0)?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::from(api_version));
    object.insert("kind".into(), Value::from(kind));
    object.extend(decoded);
    Ok(Value::Object(object))
}

/// `apps/v1` + `Deployment` → `k8s.io.api.apps.v1.Deployment` (`v1` → `core`; options such as
/// `DeleteOptions` live in meta/v1).
fn message_name(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let own = |package: &str| format!("{package}.{kind}");
    let meta = own(META);
    if group == "meta.k8s.io" || (kind.ends_with("Options") && table().contains_key(&meta)) {
        return meta;
    }
    let dir = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    own(&format!("k8s.io.api.{dir}.{version}"))
}

fn unreadable(cause: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the object provided is unrecognized: {cause}"))
}

fn utf8(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| unreadable("a string field is not UTF-8"))
}

/// One field's wire value.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in wire order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or_else(|| unreadable("truncated protobuf varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(unreadable("protobuf varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        if self.0.len() < n {
            return Err(unreadable("truncated protobuf field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), ApiError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.bytes(8)?.try_into().unwrap_or_default(),
            )),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| unreadable("protobuf length out of range"))?;
                Wire::Bytes(self.bytes(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(
                self.bytes(4)?.try_into().unwrap_or_default(),
            )),
            other => return Err(unreadable(format!("protobuf wire type {other}"))),
        };
        Ok((key >> 3, wire))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), ApiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

fn decode_message(bytes: &[u8], name: &str, depth: usize) -> Result<Map<String, Value>, ApiError> {
    if depth > MAX_DEPTH {
        return Err(unreadable("protobuf message nested too deeply"));
    }
    let fields = table()
        .get(name)
        .ok_or_else(|| unreadable(format!("no protobuf schema for {name}")))?;
    let mut out = Map::new();
    for item in Reader(bytes) {
        let (number, wire) = item?;
        let Some(field) = fields.get(&number) else {
            continue;
        };
        match field.label {
            Label::Map => {
                let (key, value) = map_entry(wire, field, depth)?;
                if let Value::Object(map) = out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    map.insert(key, value);
                }
            }
            Label::Repeated => {
                let values = repeated(wire, field, depth)?;
                if let Value::Array(list) = out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    list.extend(values);
                }
            }
            Label::Optional | Label::OmittedWhenZero => {
                let value = value(wire, &field.kind, &field.name, depth)?;
                let zero = matches!(&value, Value::String(s) if s.is_empty())
                    || value == Value::Bool(false)
                    || value.as_f64() == Some(0.0);
                if value.is_null() || (zero && matches!(field.label, Label::OmittedWhenZero)) {
                    out.remove(&field.name);
                } else {
                    out.insert(field.name.clone(), value);
                }
            }
        }
    }
    Ok(out)
}

fn map_entry(wire: Wire<'_>, field: &Field, depth: usize) -> Result<(String, Value), ApiError> {
    let Wire::Bytes(entry) = wire else {
        return Err(mismatch(&field.name));
    };
    let mut key = String::new();
    let mut value = Value::Null;
    for item in Reader(entry) {
        match item? {
            (1, w) => {
                key = match self::value(w, &field.kind, &field.name, depth)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            }
            (2, w) => value = self::value(w, &field.value, &field.name, depth)?,
            _ => {}
        }
    }
    if value.is_null() {
        // An absent value is the type's zero value.
        value = match field.value.as_str() {
            "string" | "bytes" => Value::from(""),
            "bool" => Value::from(false),
            k if is_number(k) => Value::from(0),
            _ => Value::Object(Map::new()),
        };
    }
    Ok((key, value))
}

fn is_number(kind: &str) -> bool {
    matches!(
        kind,
        "int32"
            | "int64"
            | "uint32"
            | "uint64"
            | "sint32"
            | "sint64"
            | "fixed32"
            | "fixed64"
            | "sfixed32"
            | "sfixed64"
            | "double"
            | "float"
    )
}

fn repeated(wire: Wire<'_>, field: &Field, depth: usize) -> Result<Vec<Value>, ApiError> {
    match wire {
        // Packed scalars: one length-delimited run of values.
        Wire::Bytes(run) if is_number(&field.kind) || field.kind == "bool" => {
            let mut reader = Reader(run);
            let mut values = Vec::new();
            while !reader.0.is_empty() {
                let w = match field.kind.as_str() {
                    "double" | "fixed64" | "sfixed64" => Wire::Fixed64(u64::from_le_bytes(
                        reader.bytes(8)?.try_into().unwrap_or_default(),
                    )),
                    "float" | "fixed32" | "sfixed32" => Wire::Fixed32(u32::from_le_bytes(
                        reader.bytes(4)?.try_into().unwrap_or_default(),
                    )),
                    _ => Wire::Varint(reader.varint()?),
                };
                values.push(value(w, &field.kind, &field.name, depth)?);
            }
            Ok(values)
        }
        w => Ok(vec![value(w, &field.kind, &field.name, depth)?]),
    }
}

fn mismatch(name: &str) -> ApiError {
    unreadable(format!("field {name}: unexpected protobuf wire type"))
}

fn value(wire: Wire<'_>, kind: &str, name: &str, depth: usize) -> Result<Value, ApiError> {
    Ok(match (kind, wire) {
        ("string", Wire::Bytes(b)) => Value::from(utf8(b)?),
        ("bytes", Wire::Bytes(b)) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ("bool", Wire::Varint(v)) => Value::from(v != 0),
        // Two's complement: negative int32 values are sign-extended to 64 bits on the wire.
        ("int32", Wire::Varint(v)) => Value::from(v as i64 as i32),
        ("int64", Wire::Varint(v)) => Value::from(v as i64),
        ("uint32" | "uint64", Wire::Varint(v)) => Value::from(v),
        ("sint32" | "sint64", Wire::Varint(v)) => Value::from((v >> 1) as i64 ^ -((v & 1) as i64)),
        ("double", Wire::Fixed64(v)) => Value::from(f64::from_bits(v)),
        ("fixed64", Wire::Fixed64(v)) => Value::from(v),
        ("sfixed64", Wire::Fixed64(v)) => Value::from(v as i64),
        ("float", Wire::Fixed32(v)) => Value::from(f64::from(f32::from_bits(v))),
        ("fixed32", Wire::Fixed32(v)) => Value::from(v),
        ("sfixed32", Wire::Fixed32(v)) => Value::from(v as i32),
        (message, Wire::Bytes(b)) if !is_number(message) && message != "bool" => {
            special(message, b)?.map_or_else(
                || decode_message(b, message, depth + 1).map(Value::Object),
                Ok,
            )?
        }
        _ => return Err(mismatch(name)),
    })
}

/// The apimachinery types whose JSON is not their message's shape.
fn special(message: &str, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    let Some(short) = message
        .strip_prefix("k8s.io.apimachinery.pkg.")
        .map(|rest| rest.rsplit('.').next().unwrap_or(rest))
    else {
        return Ok(None);
    };
    let fields = |bytes| -> Result<HashMap<u64, Wire<'_>>, ApiError> { Reader(bytes).collect() };
    let int = |w: Option<&Wire<'_>>| match w {
        Some(Wire::Varint(v)) => *v as i64,
        _ => 0,
    };
    let text = |w: Option<&Wire<'_>>| match w {
        Some(Wire::Bytes(b)) => utf8(b),
        _ => Ok(String::new()),
    };
    let json = |w: Option<&Wire<'_>>| match w {
        Some(Wire::Bytes(b)) if !b.is_empty() => serde_json::from_slice(b)
            .map_err(|e| unreadable(format!("embedded JSON in {short}: {e}"))),
        _ => Ok(Value::Null),
    };
    Ok(Some(match short {
        "Time" | "MicroTime" => {
            let f = fields(bytes)?;
            let (seconds, nanos) = (int(f.get(&1)), int(f.get(&2)));
            if seconds == 0 && nanos == 0 {
                Value::Null
            } else if short == "Time" {
                Value::from(rfc3339(seconds.saturating_mul(1000)))
            } else {
                let whole = rfc3339(seconds.saturating_mul(1000));
                let base = whole.trim_end_matches('Z');
                Value::from(format!("{base}.{:06}Z", nanos / 1000))
            }
        }
        "IntOrString" => {
            let f = fields(bytes)?;
            if int(f.get(&1)) == 1 {
                Value::from(text(f.get(&3))?)
            } else {
                Value::from(int(f.get(&2)) as i32)
            }
        }
        "Quantity" => Value::from(text(fields(bytes)?.get(&1))?),
        "RawExtension" | "FieldsV1" => json(fields(bytes)?.get(&1))?,
        "Duration" => Value::from(go_duration(int(fields(bytes)?.get(&1)))),
        _ => return Ok(None),
    }))
}

/// Go's `time.Duration.String()` for the values API objects carry.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", trim(n as f64 / 1e3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", trim(n as f64 / 1e6));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = trim((n % 60_000_000_000) as f64 / 1e9);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn varint_field(number: u64, value: u64, out: &mut Vec<u8>) {
        varint(number << 3, out);
        varint(value, out);
    }

    fn envelope(api_version: &str, kind: &str, message: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut body = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut body);
        bytes_field(2, message, &mut body);
        bytes_field(3, b"", &mut body);
        bytes_field(4, b"", &mut body);
        body
    }

    /// A ConfigMap as gogo-protobuf writes it: every value field of ObjectMeta present,
    /// empty ones included, and a zero creationTimestamp.
    fn config_map() -> Vec<u8> {
        let mut meta = Vec::new();
        bytes_field(1, b"settings", &mut meta);
        bytes_field(2, b"", &mut meta);
        bytes_field(3, b"demo", &mut meta);
        varint_field(7, 0, &mut meta);
        bytes_field(8, &[], &mut meta);
        let mut label = Vec::new();
        bytes_field(1, b"app", &mut label);
        bytes_field(2, b"web", &mut label);
        bytes_field(11, &label, &mut meta);
        let mut cm = Vec::new();
        bytes_field(1, &meta, &mut cm);
        for (k, v) in [("a", "1"), ("b", "")] {
            let mut entry = Vec::new();
            bytes_field(1, k.as_bytes(), &mut entry);
            bytes_field(2, v.as_bytes(), &mut entry);
            bytes_field(2, &entry, &mut cm);
        }
        let mut bin = Vec::new();
        bytes_field(1, b"raw", &mut bin);
        bytes_field(2, &[0xff, 0x00], &mut bin);
        bytes_field(3, &bin, &mut cm);
        envelope("v1", "ConfigMap", &cm)
    }

    #[test]
    fn a_config_map_reads_as_its_json() {
        let object = decode_object(&config_map()).expect("decoded");
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "demo", "labels": {"app": "web"}},
                   "data": {"a": "1", "b": ""}, "binaryData": {"raw": "/wA="}})
        );
        let keys: Vec<&String> = object
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys[..2], ["apiVersion", "kind"]);
    }

    #[test]
    fn apimachinery_types_read_as_their_json() {
        // A Deployment's maxSurge (IntOrString, string form) and a pod's resources.
        let mut surge = Vec::new();
        varint_field(1, 1, &mut surge);
        bytes_field(3, b"25%", &mut surge);
        let mut rolling = Vec::new();
        bytes_field(2, &surge, &mut rolling);
        let mut strategy = Vec::new();
        bytes_field(1, b"RollingUpdate", &mut strategy);
        bytes_field(2, &rolling, &mut strategy);
        let mut spec = Vec::new();
        varint_field(1, 3, &mut spec);
        bytes_field(4, &strategy, &mut spec);
        varint_field(5, 0, &mut spec); // minReadySeconds 0: omitted, as Go's JSON does
        let mut deployment = Vec::new();
        bytes_field(2, &spec, &mut deployment);
        let object = decode_object(&envelope("apps/v1", "Deployment", &deployment)).expect("ok");
        assert_eq!(
            object["spec"],
            json!({"replicas": 3, "strategy": {"type": "RollingUpdate",
                   "rollingUpdate": {"maxSurge": "25%"}}})
        );
        let mut time = Vec::new();
        varint_field(1, 1_700_000_000, &mut time);
        let decoded = special("k8s.io.apimachinery.pkg.apis.meta.v1.Time", &time).expect("time");
        assert_eq!(decoded, Some(json!("2023-11-14T22:13:20Z")));
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }

    #[test]
    fn malformed_or_unknown_bodies_are_refused() {
        let mut truncated = config_map();
        truncated.truncate(truncated.len() - 3);
        let err = decode_object(&truncated).expect_err("truncated");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("truncated"), "{}", err.message);
        assert_eq!(decode_object(b"{}").expect_err("no magic").code, 400);
        let err = decode_object(&envelope("example.com/v1", "Widget", &[])).expect_err("unknown");
        assert_eq!(err.code, 415);
        // A wire type that does not fit the field's type.
        let mut wrong = Vec::new();
        varint_field(1, 5, &mut wrong); // metadata as a number
        assert_eq!(
            decode_object(&envelope("v1", "ConfigMap", &wrong))
                .expect_err("mismatch")
                .code,
            400
        );
    }

    #[test]
    fn the_table_knows_the_kinds_kubectl_create_sends() {
        for name in [
            "k8s.io.api.core.v1.ConfigMap",
            "k8s.io.api.core.v1.Secret",
            "k8s.io.api.apps.v1.Deployment",
            "k8s.io.api.core.v1.Namespace",
            "k8s.io.api.core.v1.Service",
            "k8s.io.api.batch.v1.Job",
            "k8s.io.api.rbac.v1.Role",
            "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        ] {
            assert!(table().contains_key(name), "{name}");
        }
        assert_eq!(message_name("v1", "Secret"), "k8s.io.api.core.v1.Secret");
        assert_eq!(
            message_name("rbac.authorization.k8s.io/v1", "Role"),
            "k8s.io.api.rbac.v1.Role"
        );
    }
}
