//! JSON Schema of a policy file, for editor completion and checking (`menwei schema`).

/// The schema as pretty JSON.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(crate::raw::PolicyFile);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|_| "{}".to_string())
}
