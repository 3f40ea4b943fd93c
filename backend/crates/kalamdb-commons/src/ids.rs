//! Identifiers. Namespace and table names are validated once, at the edge,
//! so every later layer can rely on them being lower-case ASCII identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest namespace or table name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Checks that `name` is a valid namespace/table/column identifier:
/// `[a-z_][a-z0-9_]*`, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_identifier(kind: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_first = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_first || !valid_rest {
        return Err(format!(
            "Invalid {kind} name '{name}': use lower-case letters, digits and '_' (not first), at most {MAX_NAME_LEN} characters"
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A namespace (DataFusion schema) name.
    NamespaceId
);
string_id!(
    /// A user's stable id; USER-table rows are stored under it.
    UserId
);

/// Numeric id of a table: the key prefix of all its rows. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TableId(pub u64);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A fully qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub namespace: NamespaceId,
    pub table: String,
}

impl TableRef {
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            namespace: NamespaceId::new(namespace),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated() {
        assert!(validate_identifier("table", "chat_messages2").is_ok());
        assert!(validate_identifier("table", "_private").is_ok());
        for bad in ["", "2chat", "Chat", "a-b", "a.b", "a b", &"x".repeat(65)] {
            assert!(validate_identifier("table", bad).is_err(), "{bad} accepted");
        }
    }
}
