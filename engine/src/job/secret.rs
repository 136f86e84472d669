//! [`SecretValue`]: a job field that may hold a secret (a command's `env` value, an HTTP header), given
//! literally or as a reference that the node running the fire resolves then.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// Largest secret file read, in bytes.
pub const MAX_SECRET_FILE: u64 = 64 << 10;

/// A value that may be secret. In JSON: a string (the value itself, stored in the coordinator and shown to
/// admins), `{"from_env": "NAME"}` (the node's environment variable `NAME` when the fire runs) or
/// `{"from_file": "/path"}` (the file's contents, without a final line break, when the fire runs). Only the
/// reference is stored and shown; the value never leaves the node that runs the fire.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// The value itself.
    Literal(String),
    /// The node's environment variable of this name.
    FromEnv(String),
    /// The contents of this file on the node (an absolute path).
    FromFile(PathBuf),
}

impl SecretValue {
    /// The literal value, if it is one.
    pub fn literal(&self) -> Option<&str> {
        match self {
            SecretValue::Literal(value) => Some(value),
            _ => None,
        }
    }

    /// Checks the form; `field` names it in the error (`env.TOKEN`, `headers.Authorization`).
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        match self {
            SecretValue::Literal(value) => {
                if value.contains('\0') {
                    return Err(ValidationError::new(
                        field,
                        value.escape_debug(),
                        "contains a NUL byte",
                    ));
                }
            }
            SecretValue::FromEnv(name) => {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(ValidationError::new(
                        format!("{field}.from_env"),
                        name.escape_debug(),
                        "is not a valid variable name",
                    ));
                }
                if name.starts_with("CAMPANILE_") {
                    return Err(ValidationError::new(
                        format!("{field}.from_env"),
                        name,
                        "names one of the node's own settings, which jobs never receive",
                    ));
                }
            }
            SecretValue::FromFile(path) => {
                if !path.is_absolute() || path.as_os_str().as_encoded_bytes().contains(&0) {
                    return Err(ValidationError::new(
                        format!("{field}.from_file"),
                        path.display().to_string().escape_debug(),
                        "must be an absolute path without NUL bytes",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The value, reading the reference now (on the node that runs the fire). The error is the run's failure
    /// reason: it names the reference, never a value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretValue::Literal(value) => Ok(value.clone()),
            SecretValue::FromEnv(name) => std::env::var(name)
                .map_err(|_| format!("from_env {name:?}: not set (or not UTF-8) on this node")),
            SecretValue::FromFile(path) => {
                use std::io::Read;
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("from_file {}: {e}", path.display()))?;
                let mut text = String::new();
                file.take(MAX_SECRET_FILE + 1)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("from_file {}: {e}", path.display()))?;
                if text.len() as u64 > MAX_SECRET_FILE {
                    return Err(format!(
                        "from_file {}: larger than {MAX_SECRET_FILE} bytes",
                        path.display()
                    ));
                }
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
            }
        }
    }
}

impl fmt::Debug for SecretValue {
    /// Never prints a literal value: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::Literal(_) => f.write_str("Literal(..)"),
            SecretValue::FromEnv(name) => write!(f, "FromEnv({name:?})"),
            SecretValue::FromFile(path) => write!(f, "FromFile({path:?})"),
        }
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        SecretValue::Literal(value.to_owned())
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        SecretValue::Literal(value)
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretValue::Literal(value) => serializer.serialize_str(value),
            SecretValue::FromEnv(name) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("from_env", name)?;
                map.end()
            }
            SecretValue::FromFile(path) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("from_file", path)?;
                map.end()
            }
        }
    }
}

const EXPECTED: &str = r#"a string, {"from_env": "NAME"} or {"from_file": "/path"}"#;

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal(value.to_owned()))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal(value))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!("expected {EXPECTED}, not {{}}")));
                };
                let value = match key.as_str() {
                    "from_env" => SecretValue::FromEnv(map.next_value()?),
                    "from_file" => SecretValue::FromFile(map.next_value()?),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown key {other:?}: expected {EXPECTED}"
                        )));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "unexpected key {extra:?}: expected {EXPECTED}"
                    )));
                }
                Ok(value)
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}
