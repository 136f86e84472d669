//! Docs checked against the code: every configuration key appears in docs/operations.md, and the
//! document's example configuration passes `campanile config check`.

use std::path::PathBuf;

use campanile_runtime::config::Config;

fn operations() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_config_key_is_documented() {
    let doc = operations();
    let missing: Vec<String> = Config::keys()
        .into_iter()
        .filter(|key| !doc.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not document {missing:?}"
    );
}

#[test]
fn the_documented_example_config_is_valid() {
    let doc = operations();
    let start = doc
        .find("```toml\n# campanile.toml")
        .expect("an example config block")
        + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let config: Config = toml::from_str(&doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
    config.validate().unwrap();
}
