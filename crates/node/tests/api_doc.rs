//! Every route the control server registers is documented in docs/api.md, so
//! the reference cannot drift from the code.

use std::path::Path;

/// The control server's source files that register routes.
const ROUTE_FILES: &[&str] = &["src/control/server.rs", "src/control/dtn.rs"];
/// The HTTP methods axum's routing functions are named after.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// `(METHOD, path)` for every `.route("path", method(..).method(..))` in `source`.
fn routes(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let call = balanced(&source[at + ".route".len()..]);
        let path = call
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a route without a literal path: {call}"));
        let handlers = &call[call.find(',').expect("a handler after the path")..];
        let methods: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| {
                handlers
                    .match_indices(&format!("{m}("))
                    .any(|(i, _)| i == 0 || !is_ident(handlers.as_bytes()[i - 1]))
            })
            .collect();
        assert!(!methods.is_empty(), "no method in {call}");
        for method in methods {
            found.push((method.to_ascii_uppercase(), path.to_owned()));
        }
    }
    found
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The parenthesised text `text` starts with, parentheses included.
fn balanced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced route call: {text}")
}

#[test]
fn every_route_is_in_the_api_reference() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(crate_dir.join("../../docs/api.md")).unwrap();
    let mut all = Vec::new();
    for file in ROUTE_FILES {
        all.extend(routes(
            &std::fs::read_to_string(crate_dir.join(file)).unwrap(),
        ));
    }
    assert!(all.len() >= 20, "the route scan found too few: {all:?}");
    let missing: Vec<String> = all
        .iter()
        .map(|(method, path)| format!("`{method} {path}"))
        .filter(|entry| {
            // Each route has an entry of its own: a line that starts with it.
            !doc.lines().any(|line| {
                line.strip_prefix(entry.as_str())
                    .is_some_and(|rest| rest.starts_with('`') || rest.starts_with('?'))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/api.md: {missing:?}"
    );
}

#[test]
fn the_route_scan_reads_chained_and_qualified_methods() {
    let source = r#"
        .route("/v1/a", get(a).post(b))
        .route("/v1/b/{id}", axum::routing::delete(c))
        .route_layer(x)
    "#;
    assert_eq!(
        routes(source),
        [
            ("GET".to_owned(), "/v1/a".to_owned()),
            ("POST".to_owned(), "/v1/a".to_owned()),
            ("DELETE".to_owned(), "/v1/b/{id}".to_owned()),
        ]
    );
}
