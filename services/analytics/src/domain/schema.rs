//! The event registry: every event type (and version) analytics accepts, with its attributes,
//! and the checks an incoming event must pass. An event that fails them is not dropped: the
//! reason goes with it to the dead-letter store, and a replay after a fix (a new type in this
//! registry, a corrected emitter) checks it again.

use std::collections::BTreeMap;

use tt_common::{
    clock::Millis,
    error::{Invalid, quote},
};
use tt_proto::common::v1::{AttributeValue, Event, attribute_value::Kind};

pub use tt_common::outbox::schema::{Attr, AttrKind, EventType, is_type_name};

/// The event types analytics accepts: those the platform's modules declare they emit.
#[derive(Debug, Clone, Default)]
pub struct Registry(Vec<&'static EventType>);

impl Registry {
    pub fn new(types: impl IntoIterator<Item = &'static EventType>) -> Self {
        Self(types.into_iter().collect())
    }

    pub fn lookup(&self, name: &str, version: u32) -> Option<&'static EventType> {
        self.0.iter().copied().find(|t| t.name == name && t.version == version)
    }

    pub fn types(&self) -> &[&'static EventType] {
        &self.0
    }

    /// Checks `event` at `now`: the stored form, or why it was refused (`MALFORMED: ...` or
    /// `UNKNOWN_TYPE: ...`, every problem listed).
    pub fn check(&self, event: &Event, now: Millis) -> Result<Accepted, Invalid> {
        check_with(self, event, now)
    }
}

/// The type a user registers with (new users, cohorts).
pub const REGISTERED: &str = "identity.user.registered";
/// The attribute that tells a learner's time zone (their heatmap's default).
pub const TIME_ZONE_ATTRIBUTE: &str = "time_zone";

/// Events before this are refused (2020-01-01T00:00:00Z).
const EARLIEST_MS: Millis = 1_577_836_800_000;
/// How far ahead of analytics' clock an event's time may be.
const MAX_SKEW_MS: Millis = 5 * 60 * 1000;
const MAX_ATTRIBUTES: usize = 50;
const MAX_STRING: usize = 1024;

/// An event that passed every check, in its stored form.
pub type Accepted = super::export::ExportRow;

/// An event is its subject's activity when they did it themselves.
pub fn is_activity(actor: &str, subject: &str) -> bool {
    actor == subject
}

fn check_with(registry: &Registry, event: &Event, now: Millis) -> Result<Accepted, Invalid> {
    let mut problems = Vec::new();
    if !is_uuid(&event.id) {
        problems.push("id must be a UUID".to_owned());
    }
    let prefix = event.r#type.split('.').next().unwrap_or("");
    if !is_type_name(&event.r#type) {
        problems.push("type must be a dotted lowercase name such as \"profiles.goal.created\"".to_owned());
    } else if event.source != prefix {
        problems.push(format!("source must be \"{prefix}\", the type's prefix"));
    }
    if event.version == 0 {
        problems.push("version must be at least 1".to_owned());
    }
    let time = event.time.as_ref().map(tt_common::clock::from_timestamp);
    match time {
        None => problems.push("time is required".to_owned()),
        Some(t) if t < EARLIEST_MS => problems.push("time is before 2020".to_owned()),
        Some(t) if t > now + MAX_SKEW_MS => {
            problems.push("time is more than 5 minutes in the future".to_owned())
        }
        Some(_) => {}
    }
    if !is_user_id(&event.subject) {
        problems.push("subject must be the id of the user the event is about".to_owned());
    }
    if event.actor.len() > 64 || event.actor.chars().any(|c| !c.is_ascii_graphic()) {
        problems.push("actor must be an id of at most 64 printable characters".to_owned());
    }
    problems.extend(attribute_problems(&event.attributes));
    if !problems.is_empty() {
        return Err(format!("MALFORMED: {}", problems.join("; ")).into());
    }
    let Some(schema) = registry.lookup(&event.r#type, event.version) else {
        return Err(format!("UNKNOWN_TYPE: no schema for {} v{}", event.r#type, event.version).into());
    };
    let problems = schema_problems(schema, &event.attributes);
    if !problems.is_empty() {
        return Err(format!("MALFORMED: {}", problems.join("; ")).into());
    }
    Ok(Accepted {
        id: event.id.clone(),
        kind: event.r#type.clone(),
        version: i64::from(event.version),
        time: time.unwrap_or_default(),
        actor: event.actor.clone(),
        subject: event.subject.clone(),
        source: event.source.clone(),
        attributes: attributes_json(&event.attributes),
    })
}

fn attribute_problems(attributes: &std::collections::HashMap<String, AttributeValue>) -> Vec<String> {
    let mut problems = Vec::new();
    if attributes.len() > MAX_ATTRIBUTES {
        // Reported once: the attributes of an oversized map are not looked at one by one.
        problems.push(format!("at most {MAX_ATTRIBUTES} attributes (got {})", attributes.len()));
        return problems;
    }
    let mut names: Vec<_> = attributes.keys().collect();
    names.sort();
    for name in names {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            problems.push(format!("attribute name {} must be 1 to 64 letters, digits or '_'", quote(name)));
        }
        match attributes[name].kind.as_ref() {
            None => problems.push(format!("attribute {} has no value", quote(name))),
            Some(Kind::StringValue(s)) if s.chars().count() > MAX_STRING => {
                problems.push(format!("attribute {} is longer than {MAX_STRING} characters", quote(name)))
            }
            Some(Kind::DoubleValue(d)) if !d.is_finite() => {
                problems.push(format!("attribute {} must be a finite number", quote(name)))
            }
            Some(_) => {}
        }
    }
    problems
}

fn schema_problems(
    schema: &EventType,
    attributes: &std::collections::HashMap<String, AttributeValue>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for attr in schema.attributes {
        match attributes.get(attr.name).and_then(|v| v.kind.as_ref()) {
            None if attr.required => problems.push(format!("attribute {:?} is required", attr.name)),
            None => {}
            Some(kind) if kind_of(kind) != attr.kind => {
                problems.push(format!("attribute {:?} must be {:?}", attr.name, attr.kind))
            }
            Some(_) => {}
        }
    }
    problems
}

fn kind_of(kind: &Kind) -> AttrKind {
    match kind {
        Kind::StringValue(_) => AttrKind::String,
        Kind::IntValue(_) => AttrKind::Int,
        Kind::DoubleValue(_) => AttrKind::Double,
        Kind::BoolValue(_) => AttrKind::Bool,
    }
}

/// A UUID in its 36-character text form (the platform's ids are UUIDv7).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The ids users have: printable, at most 64 characters.
pub fn is_user_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic())
}

/// The time zone stored attributes (JSON) tell, if any.
pub fn time_zone_of(attributes_json: &str) -> Option<String> {
    if !attributes_json.contains(TIME_ZONE_ATTRIBUTE) {
        return None;
    }
    match attributes_from_json(attributes_json).remove(TIME_ZONE_ATTRIBUTE)?.kind? {
        Kind::StringValue(tz) if !tz.is_empty() => Some(tz),
        _ => None,
    }
}

/// Typed attributes as one JSON object, keys sorted. Floats always carry a fraction or an
/// exponent, so [`attributes_from_json`] gives back the same types.
pub fn attributes_json(attributes: &std::collections::HashMap<String, AttributeValue>) -> String {
    let map: BTreeMap<&str, serde_json::Value> = attributes
        .iter()
        .filter_map(|(k, v)| {
            let value = match v.kind.as_ref()? {
                Kind::StringValue(s) => serde_json::Value::from(s.as_str()),
                Kind::IntValue(i) => serde_json::Value::from(*i),
                Kind::DoubleValue(d) => serde_json::Value::from(*d),
                Kind::BoolValue(b) => serde_json::Value::from(*b),
            };
            Some((k.as_str(), value))
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

/// The typed attributes back from their JSON form.
pub fn attributes_from_json(json: &str) -> std::collections::HashMap<String, AttributeValue> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Default::default();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let kind = match v {
                serde_json::Value::String(s) => Kind::StringValue(s),
                serde_json::Value::Bool(b) => Kind::BoolValue(b),
                serde_json::Value::Number(n) if n.is_i64() => Kind::IntValue(n.as_i64()?),
                serde_json::Value::Number(n) => Kind::DoubleValue(n.as_f64()?),
                _ => return None,
            };
            Some((k, AttributeValue { kind: Some(kind) }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tt_common::outbox::EventBuilder;

    use super::*;

    const NOW: Millis = 1_790_000_000_000;

    use AttrKind::String as Str;

    /// The types these tests send, declared as their modules declare them.
    const TYPES: &[EventType] = &[
        EventType::v1("identity.user.registered", &[]),
        EventType::v1("identity.user.logged_in", &[Attr::optional("client", Str)]),
        EventType::v1("identity.user.suspended", &[]),
        EventType::v1("identity.user.deleted", &[]),
        EventType::v1(
            "profiles.goal.created",
            &[Attr::required("goal_id", Str), Attr::optional("kind", Str)],
        ),
    ];

    fn check(event: &Event, now: Millis) -> Result<Accepted, Invalid> {
        Registry::new(TYPES).check(event, now)
    }

    fn event(kind: &str) -> Event {
        EventBuilder::new(kind.split('.').next().unwrap_or(""), kind, "u1", "u1", NOW).build()
    }

    #[test]
    fn a_known_event_is_accepted_and_counts_as_activity_when_the_user_did_it() {
        let e = EventBuilder::new("identity", "identity.user.logged_in", "u1", "u1", NOW)
            .string("client", "cli")
            .build();
        let a = check(&e, NOW).expect("accepted");
        assert!(is_activity(&a.actor, &a.subject));
        assert_eq!(a.attributes, r#"{"client":"cli"}"#);
        let mut by_admin = event("identity.user.suspended");
        by_admin.actor = "admin".into();
        let a = check(&by_admin, NOW).expect("accepted");
        assert!(!is_activity(&a.actor, &a.subject), "an admin's act is not the user's activity");
    }

    #[test]
    fn every_structural_problem_is_reported_together() {
        let mut e = event("profiles.goal.created");
        e.id = "nope".into();
        e.source = "identity".into();
        e.time = None;
        e.subject.clear();
        let reason = check(&e, NOW).expect_err("malformed");
        assert!(reason.starts_with("MALFORMED: "), "{reason}");
        for part in ["id must", "source must be \"profiles\"", "time is required", "subject must"] {
            assert!(reason.contains(part), "{reason} lacks {part}");
        }
    }

    #[test]
    fn unknown_types_and_versions_and_bad_attributes_are_refused() {
        let reason = check(&event("profiles.badge.won"), NOW).expect_err("unknown");
        assert_eq!(reason, "UNKNOWN_TYPE: no schema for profiles.badge.won v1");
        let mut v2 = event("identity.user.registered");
        v2.version = 2;
        assert!(check(&v2, NOW).expect_err("v2").starts_with("UNKNOWN_TYPE"));
        let no_goal = event("profiles.goal.created");
        assert_eq!(check(&no_goal, NOW).expect_err("attr"), "MALFORMED: attribute \"goal_id\" is required");
        let wrong =
            EventBuilder::new("profiles", "profiles.goal.created", "u1", "u1", NOW).int("goal_id", 3).build();
        assert!(check(&wrong, NOW).expect_err("kind").contains("must be String"));
        let future =
            EventBuilder::new("identity", "identity.user.deleted", "u1", "a", NOW + 6 * 60_000).build();
        assert!(check(&future, NOW).expect_err("future").contains("future"));
    }

    #[test]
    fn attributes_keep_their_types_through_json() {
        let e = EventBuilder::new("profiles", "profiles.skill.verified", "u", "s", NOW)
            .string("skill_id", "rust")
            .int("proficiency", 4)
            .bool("fresh", true)
            .build();
        let mut attributes = e.attributes.clone();
        attributes.insert("score".into(), AttributeValue { kind: Some(Kind::DoubleValue(2.0)) });
        let json = attributes_json(&attributes);
        assert_eq!(attributes_from_json(&json), attributes);
        assert_eq!(time_zone_of(&json), None);
        assert_eq!(
            time_zone_of(r#"{"fields":"timezone","time_zone":"Asia/Tokyo"}"#).as_deref(),
            Some("Asia/Tokyo")
        );
    }
}
