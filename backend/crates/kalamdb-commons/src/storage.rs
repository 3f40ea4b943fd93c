//! Storages: where tables' cold segments live. A storage is a base location
//! (a directory, or a bucket and prefix on S3, GCS or Azure) plus the path
//! templates that place each table's (and, for USER tables, each user's)
//! segments under it. The built-in `local` storage is the `storage`
//! directory under the server's data directory; CREATE STORAGE adds more.
//!
//! Credentials are kept apart from the rest of the configuration so that
//! nothing that shows a storage back (SHOW STORAGES, `system.storages`,
//! logs, `Debug`) can show them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default layout of a SHARED table's segments.
pub const DEFAULT_SHARED_TEMPLATE: &str = "{namespace}/{tableName}";
/// The default layout of a USER table's segments (one directory per user).
pub const DEFAULT_USER_TEMPLATE: &str = "{namespace}/{tableName}/{userId}";

const NAMESPACE_VAR: &str = "{namespace}";
const TABLE_VAR: &str = "{tableName}";
const USER_VAR: &str = "{userId}";

/// How many characters a storage option (path, template, name…) may have.
pub const MAX_STORAGE_TEXT: usize = 1024;
/// How many keys CONFIG or CREDENTIALS may hold.
pub const MAX_STORAGE_OPTIONS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    Filesystem,
    S3,
    Gcs,
    Azure,
}

impl StorageType {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "filesystem" | "local" => Ok(Self::Filesystem),
            "s3" => Ok(Self::S3),
            "gcs" | "gs" => Ok(Self::Gcs),
            "azure" | "azblob" => Ok(Self::Azure),
            other => Err(format!(
                "Unknown storage type '{other}': expected filesystem, s3, gcs or azure"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filesystem => "filesystem",
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azure => "azure",
        }
    }

    /// The URL schemes a PATH of this type may use (none: a directory).
    fn schemes(self) -> &'static [&'static str] {
        match self {
            Self::Filesystem => &[],
            Self::S3 => &["s3", "s3a"],
            Self::Gcs => &["gs"],
            Self::Azure => &["az", "azure", "abfs", "abfss"],
        }
    }
}

/// Secret options (access keys, tokens). Serialised for the metadata store
/// only; `Debug` names the keys, never the values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(pub BTreeMap<String, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}=<redacted>")))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageDefinition {
    pub storage_id: String,
    pub name: String,
    pub description: Option<String>,
    pub storage_type: StorageType,
    /// A directory for `filesystem` (relative: under the data directory);
    /// `scheme://bucket[/prefix]` for the clouds.
    pub base_directory: String,
    pub shared_tables_template: String,
    pub user_tables_template: String,
    /// object_store's client options (endpoint, region, allow_http…).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Credentials,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl StorageDefinition {
    /// The built-in `local` storage at `directory`.
    pub fn local(directory: &str) -> Self {
        Self {
            storage_id: crate::LOCAL_STORAGE_ID.to_string(),
            name: "Local storage".into(),
            description: Some("The filesystem under the server's data directory".into()),
            storage_type: StorageType::Filesystem,
            base_directory: directory.to_string(),
            shared_tables_template: DEFAULT_SHARED_TEMPLATE.into(),
            user_tables_template: DEFAULT_USER_TEMPLATE.into(),
            config: BTreeMap::new(),
            credentials: Credentials::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Checks everything but reachability (the id, the PATH against the
    /// type, the templates, the option sizes).
    pub fn validate(&self) -> Result<(), String> {
        crate::ids::validate_identifier("storage", &self.storage_id)?;
        for (what, text) in [
            ("NAME", self.name.as_str()),
            ("DESCRIPTION", self.description.as_deref().unwrap_or("")),
            ("PATH", self.base_directory.as_str()),
        ] {
            if text.chars().count() > MAX_STORAGE_TEXT {
                return Err(format!(
                    "Storage {what} is longer than {MAX_STORAGE_TEXT} characters"
                ));
            }
        }
        let path = self.base_directory.trim();
        if path.is_empty() {
            return Err("A storage needs a PATH".into());
        }
        let schemes = self.storage_type.schemes();
        let scheme = path.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match (schemes.is_empty(), scheme) {
            (true, Some(s)) if s != "file" => {
                return Err(format!(
                    "A filesystem storage's PATH is a directory, not a '{s}://' URL"
                ));
            }
            (false, scheme) => {
                let ok = scheme.as_deref().is_some_and(|s| schemes.contains(&s));
                let rest = path.split_once("://").map_or("", |(_, r)| r);
                if !ok || rest.trim_matches('/').is_empty() {
                    return Err(format!(
                        "A {} storage's PATH is {}://bucket[/prefix], not '{path}'",
                        self.storage_type.as_str(),
                        schemes[0]
                    ));
                }
            }
            _ => {}
        }
        validate_template(
            "SHARED_TABLES_TEMPLATE",
            &self.shared_tables_template,
            false,
        )?;
        validate_template("USER_TABLES_TEMPLATE", &self.user_tables_template, true)?;
        for (what, options) in [
            ("CONFIG", &self.config),
            ("CREDENTIALS", &self.credentials.0),
        ] {
            if options.len() > MAX_STORAGE_OPTIONS {
                return Err(format!(
                    "Storage {what} holds more than {MAX_STORAGE_OPTIONS} options"
                ));
            }
        }
        if let Some(secret) = self.config.keys().find(|k| looks_secret(k)) {
            return Err(format!(
                "Storage option '{secret}' is a secret: give it in CREDENTIALS, which is never shown back"
            ));
        }
        Ok(())
    }

    /// The directory (relative to the storage's base) of the segments of
    /// table `namespace.table`, and of `user`'s partition for a USER table.
    pub fn segment_dir(&self, namespace: &str, table: &str, user: Option<&str>) -> String {
        let template = match user {
            Some(_) => &self.user_tables_template,
            None => &self.shared_tables_template,
        };
        template
            .replace(NAMESPACE_VAR, &path_part(namespace))
            .replace(TABLE_VAR, &path_part(table))
            .replace(USER_VAR, &path_part(user.unwrap_or("")))
    }

    /// The fixed directories under which every segment of table `table` of
    /// `namespace` (every table of the namespace, when `None`) lies: what a
    /// sweep after DROP lists. Empty: the whole storage.
    pub fn sweep_prefixes(&self, namespace: &str, table: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for template in [&self.shared_tables_template, &self.user_tables_template] {
            let mut fixed = template.replace(NAMESPACE_VAR, &path_part(namespace));
            if let Some(table) = table {
                fixed = fixed.replace(TABLE_VAR, &path_part(table));
            }
            let cut = fixed.find('{').unwrap_or(fixed.len());
            let prefix = fixed[..cut].rsplit_once('/').map_or("", |(dir, _)| dir);
            let prefix = if cut == fixed.len() { &fixed } else { prefix };
            let prefix = prefix.trim_end_matches('/').to_string();
            if !out.iter().any(|p| prefix.starts_with(p.as_str())) {
                out.retain(|p| !p.starts_with(prefix.as_str()));
                out.push(prefix);
            }
        }
        out
    }
}

/// Whether a storage option key names a secret.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "access_key",
        "account_key",
        "sas",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// A value as one path segment: bytes outside `[A-Za-z0-9_-]` become
/// `%XX`, so a user id can neither leave its directory nor clash with
/// another's.
fn path_part(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() { "%00".into() } else { out }
}

fn validate_template(what: &str, template: &str, user: bool) -> Result<(), String> {
    if template.is_empty() || template.chars().count() > MAX_STORAGE_TEXT {
        return Err(format!(
            "{what} must hold 1 to {MAX_STORAGE_TEXT} characters"
        ));
    }
    let mut rest = template;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{what} has an unclosed '{{'"))?;
        let var = &rest[open..open + close + 1];
        match var {
            NAMESPACE_VAR | TABLE_VAR => {}
            USER_VAR if user => {}
            USER_VAR => {
                return Err(format!(
                    "{what} cannot use {{userId}}: SHARED tables have no user"
                ));
            }
            other => {
                return Err(format!(
                    "{what} uses unknown placeholder {other}: expected {{namespace}}, {{tableName}}{}",
                    if user { " or {userId}" } else { "" }
                ));
            }
        }
        literal.push('x');
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    if literal.contains('}') {
        return Err(format!("{what} has an unmatched '}}'"));
    }
    let valid = literal.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '='))
    });
    if !valid {
        return Err(format!(
            "{what} '{template}' is not a relative path of letters, digits, '_', '-', '.', '=' and placeholders"
        ));
    }
    Ok(())
}

/// CONFIG / CREDENTIALS: a JSON object of strings, numbers or booleans;
/// keys lower-cased.
pub fn parse_storage_options(what: &str, json: &str) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("Storage {what} is not valid JSON: {e}"))?;
    let serde_json::Value::Object(object) = value else {
        return Err(format!("Storage {what} must be a JSON object"));
    };
    let mut out = BTreeMap::new();
    for (key, value) in object {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(format!(
                    "Storage {what} option '{key}' must be a string, number or boolean"
                ));
            }
        };
        if key.len() > 128 || text.chars().count() > MAX_STORAGE_TEXT * 8 {
            return Err(format!("Storage {what} option '{key}' is too long"));
        }
        out.insert(key.to_ascii_lowercase(), text);
    }
    if out.len() > MAX_STORAGE_OPTIONS {
        return Err(format!(
            "Storage {what} holds more than {MAX_STORAGE_OPTIONS} options"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StorageDefinition {
        StorageDefinition {
            storage_id: "archive".into(),
            storage_type: StorageType::S3,
            base_directory: "s3://bucket/kalam".into(),
            ..StorageDefinition::local("unused")
        }
    }

    #[test]
    fn paths_must_fit_the_type() {
        assert!(s3().validate().is_ok());
        for bad in ["/data", "gs://b", "s3://", "s3:///"] {
            let def = StorageDefinition {
                base_directory: bad.into(),
                ..s3()
            };
            assert!(def.validate().is_err(), "{bad}");
        }
        let fs = StorageDefinition {
            storage_id: "cold".into(),
            base_directory: "s3://bucket".into(),
            ..StorageDefinition::local("x")
        };
        assert!(fs.validate().unwrap_err().contains("directory"));
    }

    #[test]
    fn templates_take_only_known_placeholders_and_relative_paths() {
        let with = |shared: &str, user: &str| StorageDefinition {
            shared_tables_template: shared.into(),
            user_tables_template: user.into(),
            ..s3()
        };
        assert!(
            with(
                "t/{namespace}/{tableName}",
                "{userId}/{namespace}-{tableName}"
            )
            .validate()
            .is_ok()
        );
        for (shared, user) in [
            ("{namespace}/{userId}", DEFAULT_USER_TEMPLATE),
            ("{namespace}/{table}", DEFAULT_USER_TEMPLATE),
            ("/abs/{namespace}", DEFAULT_USER_TEMPLATE),
            ("{namespace}/../x", DEFAULT_USER_TEMPLATE),
            ("{namespace}//x", DEFAULT_USER_TEMPLATE),
            (DEFAULT_SHARED_TEMPLATE, "{namespace}/{userId"),
            (DEFAULT_SHARED_TEMPLATE, "a b/{userId}"),
        ] {
            assert!(with(shared, user).validate().is_err(), "{shared} {user}");
        }
    }

    #[test]
    fn user_ids_cannot_leave_their_directory() {
        let def = s3();
        assert_eq!(def.segment_dir("app", "t", None), "app/t");
        assert_eq!(def.segment_dir("app", "t", Some("u_1")), "app/t/u_1");
        assert_eq!(
            def.segment_dir("app", "t", Some("../x")),
            "app/t/%2E%2E%2Fx"
        );
        assert_eq!(def.segment_dir("app", "t", Some("")), "app/t/%00");
    }

    #[test]
    fn sweep_prefixes_cover_every_segment_of_the_table() {
        let def = s3();
        assert_eq!(def.sweep_prefixes("app", Some("t")), vec!["app/t"]);
        assert_eq!(def.sweep_prefixes("app", None), vec!["app"]);
        let odd = StorageDefinition {
            shared_tables_template: "shared/{namespace}/{tableName}".into(),
            user_tables_template: "{userId}/{namespace}/{tableName}".into(),
            ..s3()
        };
        assert_eq!(odd.sweep_prefixes("app", Some("t")), vec![String::new()]);
    }

    #[test]
    fn secrets_stay_out_of_config_and_debug() {
        let def = StorageDefinition {
            config: BTreeMap::from([("secret_access_key".into(), "s".into())]),
            ..s3()
        };
        assert!(def.validate().unwrap_err().contains("CREDENTIALS"));
        let def = StorageDefinition {
            credentials: Credentials(BTreeMap::from([(
                "secret_access_key".into(),
                "very-secret".into(),
            )])),
            ..s3()
        };
        assert!(!format!("{def:?}").contains("very-secret"));
        let parsed =
            parse_storage_options("CONFIG", r#"{"Region": "x", "allow_http": true, "n": 3}"#)
                .unwrap();
        assert_eq!(parsed["region"], "x");
        assert_eq!(parsed["allow_http"], "true");
        assert!(parse_storage_options("CONFIG", "[1]").is_err());
        assert!(parse_storage_options("CONFIG", r#"{"a": {"b": 1}}"#).is_err());
    }
}
