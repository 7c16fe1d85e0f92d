//! Hostile requests generated from descriptors: for any request type, messages that are
//! oversized (strings near and past every limit, repeated fields of 10,000 elements), out of
//! range (calendar ends, negative and huge numbers, unknown enum values), duplicated, and
//! malformed at the wire level. The adversarial suite (`tests/tests/hostile.rs`) sends them to
//! every RPC of every registered service; a new service gets them without writing any, and a
//! service's own tests can send them to its server alone.
//!
//! Messages are handled as raw wire fields (number and value), so a valid base request can be
//! decoded, one field replaced, and encoded again without knowing its Rust type.

use std::collections::HashMap;

use prost::Message;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};

/// One field of a message on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Vec<u8>),
}

/// A message as its wire fields, in order.
pub type Fields = Vec<(u32, Value)>;

/// Encodes wire fields.
pub fn encode(fields: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, value) in fields {
        let wire = match value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        };
        varint(&mut out, u64::from(*number) << 3 | wire);
        match value {
            Value::Varint(v) => varint(&mut out, *v),
            Value::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bytes(b) => {
                varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a well-formed message into wire fields (`None` if it is not one).
pub fn decode(mut bytes: &[u8]) -> Option<Fields> {
    fn read_varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = read_varint(&mut bytes)?;
        let number = u32::try_from(tag >> 3).ok()?;
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(&mut bytes)?),
            1 => {
                let (head, rest) = bytes.split_at_checked(8)?;
                bytes = rest;
                Value::Fixed64(u64::from_le_bytes(head.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                let (head, rest) = bytes.split_at_checked(len)?;
                bytes = rest;
                Value::Bytes(head.to_vec())
            }
            5 => {
                let (head, rest) = bytes.split_at_checked(4)?;
                bytes = rest;
                Value::Fixed32(u32::from_le_bytes(head.try_into().ok()?))
            }
            _ => return None,
        };
        fields.push((number, value));
    }
    Some(fields)
}

/// What a hostile request is, and so what the answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Strings near and past limits, huge bytes.
    Oversized,
    /// Numbers at their ends, unknown enum values, calendar ends.
    OutOfRange,
    /// A repeated field of 10,000 elements (or a map of 10,000 entries).
    Repeated,
    /// Elements repeated within one list.
    Duplicated,
    /// Not a valid protobuf encoding: must be INVALID_ARGUMENT.
    Malformed,
    /// Over the message-size limit: must be RESOURCE_EXHAUSTED.
    TooLarge,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which field and which value, for the failure report.
    pub label: String,
    pub class: Class,
    pub body: Vec<u8>,
    /// A repeated field of the request itself (or its update mask) got 10,000 elements: every
    /// such field has a documented maximum below that, so the call must not succeed.
    pub over_any_limit: bool,
}

/// The message types of some descriptor sets, by full name (`pkg.Message`, no leading dot).
#[derive(Debug, Default)]
pub struct Schema {
    messages: HashMap<String, DescriptorProto>,
}

/// Elements of a repeated field in the `Repeated` cases.
pub const MANY: usize = 10_000;

/// Wire-level sizes near tonic's decode limit.
const LIMIT: usize = 4 * 1024 * 1024;

/// Nesting deeper than prost's recursion limit (100).
const DEEP: usize = 200;

impl Schema {
    pub fn new(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut schema = Self::default();
        for set in sets {
            for file in FileDescriptorSet::decode(*set)?.file {
                let package = file.package().to_owned();
                for m in file.message_type {
                    schema.add(&package, m);
                }
            }
        }
        Ok(schema)
    }

    fn add(&mut self, scope: &str, message: DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add(&name, nested.clone());
        }
        self.messages.insert(name, message);
    }

    pub fn message(&self, full_name: &str) -> Option<&DescriptorProto> {
        self.messages.get(full_name.trim_start_matches('.'))
    }

    /// Every hostile variant of a request of type `type_name`, starting from `base` (a valid
    /// request's encoding, or empty).
    pub fn cases(&self, type_name: &str, base: &[u8]) -> Vec<Case> {
        let mut cases = Vec::new();
        let base_fields = decode(base).unwrap_or_default();
        if let Some(message) = self.message(type_name) {
            self.field_cases(message, &base_fields, "", 0, &mut vec![type_name.to_owned()], &mut cases);
        }
        wire_cases(self.message(type_name), &base_fields, &mut cases);
        cases
    }

    fn field_cases(
        &self,
        message: &DescriptorProto,
        base: &Fields,
        prefix: &str,
        depth: usize,
        path: &mut Vec<String>,
        out: &mut Vec<Case>,
    ) {
        // Two string fields of this message at once at the same edge value: a range whose two
        // ends are both at the end of the calendar, say.
        let strings: Vec<&FieldDescriptorProto> = message
            .field
            .iter()
            .filter(|f| f.r#type() == Type::String && f.label() != Label::Repeated)
            .collect();
        for (i, a) in strings.iter().enumerate() {
            for b in &strings[i + 1..] {
                let pair = [a.number() as u32, b.number() as u32];
                for edge in ["9999-12-31", "0001-01-01", ""] {
                    let mut fields: Fields =
                        base.iter().filter(|(n, _)| !pair.contains(n)).cloned().collect();
                    fields.extend(pair.iter().map(|n| (*n, Value::Bytes(edge.as_bytes().to_vec()))));
                    out.push(Case {
                        label: format!("{prefix}{} and {}: both {edge:?}", a.name(), b.name()),
                        class: Class::OutOfRange,
                        body: encode(&fields),
                        over_any_limit: false,
                    });
                }
            }
        }
        for field in &message.field {
            let number = field.number() as u32;
            let name = format!("{prefix}{}", field.name());
            let repeated = field.label() == Label::Repeated;
            let existing: Vec<Value> =
                base.iter().filter(|(n, _)| *n == number).map(|(_, v)| v.clone()).collect();
            let top_level_list =
                repeated && (depth == 0 || path.last().is_some_and(|t| t.ends_with("FieldMask")));
            let mut emit = |label: String, class: Class, values: Vec<Value>, over: bool| {
                let mut fields: Fields = base.iter().filter(|(n, _)| *n != number).cloned().collect();
                fields.extend(values.into_iter().map(|v| (number, v)));
                out.push(Case {
                    label: format!("{name}: {label}"),
                    class,
                    body: encode(&fields),
                    over_any_limit: over,
                });
            };
            let entry = self.map_entry(field);
            let values = scalar_values(field);
            if repeated && entry.is_none() {
                // Many copies of the smallest value: the count is the attack, not the size.
                if let Some((label, _, value)) = values.iter().min_by_key(|(_, _, v)| wire_len(v)) {
                    emit(
                        format!("{MANY} x {label}"),
                        Class::Repeated,
                        vec![value.clone(); MANY],
                        top_level_list,
                    );
                }
            }
            for (label, class, value) in values {
                emit(label, class, vec![value], false);
            }
            if repeated {
                if let Some(first) = existing.first() {
                    emit("its first element twice".into(), Class::Duplicated, vec![first.clone(); 2], false);
                    emit(
                        format!("its first element {MANY} times"),
                        Class::Duplicated,
                        vec![first.clone(); MANY],
                        top_level_list,
                    );
                }
                if field.r#type() == Type::String {
                    let distinct = (0..MANY).map(|i| Value::Bytes(format!("x{i}").into_bytes())).collect();
                    emit(format!("{MANY} distinct strings"), Class::Repeated, distinct, top_level_list);
                }
                if let Some(entry) = entry {
                    let entries = (0..MANY).map(|i| Value::Bytes(map_entry(entry, i))).collect();
                    emit(format!("{MANY} map entries"), Class::Repeated, entries, top_level_list);
                } else if field.r#type() == Type::Message {
                    emit(
                        format!("{MANY} empty messages"),
                        Class::Repeated,
                        vec![Value::Bytes(Vec::new()); MANY],
                        top_level_list,
                    );
                }
            }
            // Into messages: each of their fields mutated inside the base's value.
            if field.r#type() == Type::Message && depth < 3 && !path.contains(&field.type_name().to_owned()) {
                let Some(inner) = self.message(field.type_name()) else { continue };
                let inner_base = match existing.first() {
                    Some(Value::Bytes(b)) => decode(b).unwrap_or_default(),
                    _ => Fields::new(),
                };
                let mut nested = Vec::new();
                path.push(field.type_name().to_owned());
                self.field_cases(inner, &inner_base, &format!("{name}."), depth + 1, path, &mut nested);
                path.pop();
                for case in nested {
                    let mut fields: Fields = base.iter().filter(|(n, _)| *n != number).cloned().collect();
                    fields.push((number, Value::Bytes(case.body)));
                    out.push(Case { body: encode(&fields), ..case });
                }
            }
        }
    }

    fn map_entry(&self, field: &FieldDescriptorProto) -> Option<&DescriptorProto> {
        if field.r#type() != Type::Message {
            return None;
        }
        self.message(field.type_name()).filter(|m| m.options.as_ref().is_some_and(|o| o.map_entry()))
    }
}

fn wire_len(v: &Value) -> usize {
    match v {
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}

/// A map entry with a distinct key (`k<i>` or `i`) and a default value.
fn map_entry(entry: &DescriptorProto, i: usize) -> Vec<u8> {
    let key = entry.field.iter().find(|f| f.number() == 1);
    let value = match key.map(FieldDescriptorProto::r#type) {
        Some(Type::String) => Value::Bytes(format!("k{i}").into_bytes()),
        _ => Value::Varint(i as u64),
    };
    encode(&vec![(1, value)])
}

/// The hostile values of a field, whatever its label.
fn scalar_values(field: &FieldDescriptorProto) -> Vec<(String, Class, Value)> {
    use Class::{OutOfRange, Oversized};
    let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
    let int = |v: i64| Value::Varint(v as u64);
    match field.r#type() {
        Type::String => {
            let mut v: Vec<(String, Class, Value)> = [65usize, 257, 1025, 4097, 65_537]
                .iter()
                .map(|n| (format!("{n} characters"), Oversized, text(&"x".repeat(*n))))
                .collect();
            v.push(("1 MB".into(), Oversized, text(&"a".repeat(1_000_000))));
            v.push(("32,768 two-byte characters".into(), Oversized, text(&"é".repeat(32_768))));
            for s in [
                "",
                " ",
                "9999-12-31",
                "0001-01-01",
                "0000-00-00",
                "-1",
                "99999999999999999999",
                "\u{0}",
                "' OR '1'='1",
                "../../etc/passwd",
                "Ünïcödé 🙂",
                "FFFFFFFF-FFFF-7FFF-BFFF-FFFFFFFFFFFF",
                "00000000-0000-0000-0000-000000000000",
                "Mars/Olympus_Mons",
            ] {
                v.push((format!("{s:?}"), OutOfRange, text(s)));
            }
            v
        }
        Type::Bytes => vec![
            ("empty".into(), Oversized, Value::Bytes(Vec::new())),
            ("1 MB".into(), Oversized, Value::Bytes(vec![0; 1_000_000])),
        ],
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Sint32 | Type::Sint64 => [
            0,
            1,
            -1,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            253_402_300_800, // 10000-01-01 in unix seconds
            -62_135_596_801, // the second before 0001-01-01
            i64::MAX,
            i64::MIN,
        ]
        .into_iter()
        .map(|n| (n.to_string(), OutOfRange, int(n)))
        .collect(),
        Type::Fixed64 | Type::Sfixed64 => vec![("max".into(), OutOfRange, Value::Fixed64(u64::MAX))],
        Type::Fixed32 | Type::Sfixed32 => vec![("max".into(), OutOfRange, Value::Fixed32(u32::MAX))],
        Type::Double => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e308, 1e308, -0.0, -1.0]
            .into_iter()
            .map(|d| (d.to_string(), OutOfRange, Value::Fixed64(d.to_bits())))
            .collect(),
        Type::Float => [f32::NAN, f32::INFINITY, -1.0]
            .into_iter()
            .map(|d| (d.to_string(), OutOfRange, Value::Fixed32(d.to_bits())))
            .collect(),
        Type::Bool => vec![("2 (non-canonical true)".into(), OutOfRange, Value::Varint(2))],
        Type::Enum => [-1, 9999, i64::from(i32::MAX)]
            .into_iter()
            .map(|n| (format!("unknown enum value {n}"), OutOfRange, int(n)))
            .collect(),
        Type::Message => vec![("empty message".into(), OutOfRange, Value::Bytes(Vec::new()))],
        Type::Group => Vec::new(),
    }
}

/// Requests that are not valid protobuf (INVALID_ARGUMENT) or over the size limit
/// (RESOURCE_EXHAUSTED), built on `base` where a field of the right kind is needed.
fn wire_cases(message: Option<&DescriptorProto>, base: &Fields, out: &mut Vec<Case>) {
    let mut push = |label: &str, class: Class, body: Vec<u8>| {
        out.push(Case { label: format!("wire: {label}"), class, body, over_any_limit: false });
    };
    let base_bytes = encode(base);
    let with = |tail: &[u8]| [base_bytes.as_slice(), tail].concat();
    let string_field = message.and_then(|m| m.field.iter().find(|f| f.r#type() == Type::String));
    if let Some(f) = string_field {
        let mut fields: Fields = base.iter().filter(|(n, _)| *n != f.number() as u32).cloned().collect();
        fields.push((f.number() as u32, Value::Bytes(vec![b'o', b'k', 0xff, 0xfe, 0xc0])));
        push(&format!("invalid UTF-8 in {}", f.name()), Class::Malformed, encode(&fields));
    }
    if let Some(f) = message.and_then(|m| m.field.first()) {
        // Length-delimited fields sent as 32-bit, and everything else as length-delimited.
        let number = u64::from(f.number() as u32);
        let mut tail = Vec::new();
        if matches!(f.r#type(), Type::String | Type::Bytes | Type::Message) || f.label() == Label::Repeated {
            varint(&mut tail, number << 3 | 5);
            tail.extend_from_slice(&[1, 2, 3, 4]);
        } else {
            varint(&mut tail, number << 3 | 2);
            tail.extend_from_slice(&[3, 1, 2, 3]);
        }
        push(&format!("wrong wire type for {}", f.name()), Class::Malformed, with(&tail));
    }
    push("field number 0", Class::Malformed, with(&[0x00, 0x01]));
    push("truncated varint", Class::Malformed, with(&[0x08, 0x80]));
    push("truncated length-delimited field", Class::Malformed, with(&[0x0a, 0x64, 0x61]));
    push("wire type 7", Class::Malformed, with(&[0x0f, 0x00]));
    let mut deep = Vec::new();
    for _ in 0..DEEP {
        varint(&mut deep, 1000 << 3 | 3); // start group, never ended
    }
    push(&format!("{DEEP} nested groups"), Class::Malformed, with(&deep));
    let mut huge = Vec::new();
    varint(&mut huge, 1000 << 3 | 2);
    varint(&mut huge, (LIMIT + 1) as u64);
    huge.resize(huge.len() + LIMIT + 1, b'z');
    push("over the 4 MiB message limit", Class::TooLarge, with(&huge));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_fields_round_trip() {
        let fields: Fields = vec![
            (1, Value::Varint(300)),
            (2, Value::Bytes(b"abc".to_vec())),
            (3, Value::Fixed64(7)),
            (4, Value::Fixed32(9)),
            (1, Value::Varint(u64::MAX)),
        ];
        assert_eq!(decode(&encode(&fields)), Some(fields));
        assert_eq!(decode(&[0x08, 0x80]), None);
    }

    #[test]
    fn cases_cover_every_field_and_the_wire() {
        let schema = Schema::new(&[tt_proto::profiles::v1::FILE_DESCRIPTOR_SET]).expect("descriptors");
        let cases = schema.cases("timetravelers.profiles.v1.CreateGoalRequest", &[]);
        let labels: Vec<&str> = cases.iter().map(|c| c.label.as_str()).collect();
        for wanted in [
            "goal.skill_ids: 10000 distinct strings",
            "goal.title: 1 MB",
            "request_id: \"\\0\"",
            "wire: truncated varint",
        ] {
            assert!(labels.contains(&wanted), "{wanted} missing from {} cases", labels.len());
        }
        let over = cases.iter().find(|c| c.label == "goal.skill_ids: 10000 distinct strings").expect("case");
        assert!(!over.over_any_limit, "a nested resource's list is not the request's own");
        assert!(cases.iter().any(|c| c.class == Class::TooLarge && c.body.len() > LIMIT));
    }
}
