//! Every event a test reads from idemwatch is checked against `docs/alert.schema.json`, the
//! JSON Schema users validate the stream with: a field the schema does not document, or a
//! value of the wrong shape, fails the test that produced it.

use std::sync::OnceLock;

use serde_json::Value;

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alert.schema.json");
        let text = std::fs::read_to_string(path).expect("docs/alert.schema.json");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
    })
}

/// Panics, naming the first violation, when `event` does not follow the schema.
pub fn check(event: &Value) {
    if let Err(e) = validator().validate(event) {
        panic!(
            "event does not follow docs/alert.schema.json: {e} at {}\n{event}",
            e.instance_path()
        );
    }
}
