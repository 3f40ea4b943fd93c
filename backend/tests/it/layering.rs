//! The crate layering of docs/architecture/README.md, enforced: a crate may
//! depend only on crates of lower layers.

use std::path::Path;

/// (crate, layer, manifest path relative to the workspace root)
const LAYERS: &[(&str, u8, &str)] = &[
    ("kalamdb-commons", 0, "backend/crates/kalamdb-commons"),
    ("kalamdb-store", 1, "backend/crates/kalamdb-store"),
    ("kalamdb-filestore", 1, "backend/crates/kalamdb-filestore"),
    ("kalamdb-sql", 2, "backend/crates/kalamdb-sql"),
    ("kalamdb-core", 3, "backend/crates/kalamdb-core"),
    ("kalamdb-auth", 4, "backend/crates/kalamdb-auth"),
    ("kalamdb-live", 4, "backend/crates/kalamdb-live"),
    ("kalamdb-api", 5, "backend/crates/kalamdb-api"),
    ("kalamdb-server", 6, "backend"),
];

/// Client-side crates: they must not depend on any server crate.
const CLIENTS: &[&str] = &["link", "cli"];

fn internal_dependencies(manifest_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest_dir.join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = text.parse().expect("valid Cargo.toml");
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(|s| s.as_table()))
        .flat_map(|deps| deps.keys().cloned())
        .filter(|name| name.starts_with("kalamdb-") || name.starts_with("kalam-"))
        .collect()
}

#[test]
fn no_crate_depends_upward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let layer_of = |name: &str| {
        LAYERS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, l, _)| *l)
    };
    let mut violations = Vec::new();
    for (name, layer, dir) in LAYERS {
        for dep in internal_dependencies(&root.join(dir)) {
            match layer_of(&dep) {
                Some(dep_layer) if dep_layer < *layer => {}
                Some(dep_layer) => violations.push(format!(
                    "{name} (layer {layer}) depends on {dep} (layer {dep_layer})"
                )),
                None => violations.push(format!("{name} depends on client crate {dep}")),
            }
        }
    }
    for client in CLIENTS {
        for dep in internal_dependencies(&root.join(client)) {
            if layer_of(&dep).is_some() {
                violations.push(format!(
                    "client crate {client} depends on server crate {dep}"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}
