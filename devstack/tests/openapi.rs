//! The committed API reference cannot drift from the code: it is generated from the same
//! annotations that route requests. Regenerate it with
//! `cargo run -p devstack -- openapi > docs/openapi.json`.

#[test]
fn docs_openapi_json_is_the_document_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let generated = devstack::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("writing docs/openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `cargo run -p devstack -- openapi > docs/openapi.json` \
         (or UPDATE_OPENAPI=1 cargo test -p devstack) and commit it"
    );
}
