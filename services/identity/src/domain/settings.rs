//! The system settings: a fixed registry of typed, bounded keys. Values are stored as JSON.

use serde_json::Value;
use tt_common::error::Invalid;

/// A setting's type and bounds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int { min: i64, max: i64 },
}

/// One registered setting.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub key: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub default: Default,
}

/// A default value.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    Bool(bool),
    Int(i64),
}

/// A typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Bool(bool),
    Int(i64),
}

impl SettingValue {
    pub fn to_json(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
        }
    }

    pub fn from_json(kind: Kind, text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        match kind {
            Kind::Bool => v.as_bool().map(Self::Bool),
            Kind::Int { .. } => v.as_i64().map(Self::Int),
        }
    }
}

pub const SIGNUP_OPEN: &str = "signup_open";
pub const DEFAULT_DAILY_AI_TOKEN_QUOTA: &str = "default_daily_ai_token_quota";

/// Every setting the platform knows. Later services add theirs here.
pub const REGISTRY: &[Definition] = &[
    Definition {
        key: SIGNUP_OPEN,
        description: "Whether new accounts may register.",
        kind: Kind::Bool,
        default: Default::Bool(true),
    },
    Definition {
        key: DEFAULT_DAILY_AI_TOKEN_QUOTA,
        description: "AI tokens a learner may use per day unless overridden.",
        kind: Kind::Int { min: 0, max: 10_000_000 },
        default: Default::Int(100_000),
    },
    Definition {
        key: "max_active_goals",
        description: "Active career goals a learner may hold at once.",
        kind: Kind::Int { min: 1, max: 100 },
        default: Default::Int(10),
    },
    Definition {
        key: "session_history_days",
        description: "Days mentor-session messages are kept.",
        kind: Kind::Int { min: 1, max: 3650 },
        default: Default::Int(365),
    },
];

pub fn find(key: &str) -> Option<&'static Definition> {
    REGISTRY.iter().find(|d| d.key == key)
}

impl Definition {
    pub fn default_value(&self) -> SettingValue {
        match self.default {
            Default::Bool(b) => SettingValue::Bool(b),
            Default::Int(i) => SettingValue::Int(i),
        }
    }

    /// The value in force: the stored override (JSON) when it decodes, else the default.
    pub fn current(&self, stored: Option<&str>) -> SettingValue {
        stored
            .and_then(|json| SettingValue::from_json(self.kind, json))
            .unwrap_or_else(|| self.default_value())
    }

    /// Checks a value against the setting's type and bounds.
    pub fn check(&self, value: &SettingValue) -> Result<(), Invalid> {
        match (self.kind, value) {
            (Kind::Bool, SettingValue::Bool(_)) => Ok(()),
            (Kind::Int { min, max }, SettingValue::Int(i)) if (min..=max).contains(i) => Ok(()),
            (Kind::Int { min, max }, SettingValue::Int(_)) => {
                Err(format!("must be between {min} and {max}").into())
            }
            (Kind::Bool, _) => Err("must be a bool_value".into()),
            (Kind::Int { .. }, _) => Err("must be an int_value".into()),
        }
    }
}
