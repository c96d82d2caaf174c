//! The how-to pages show the compiled examples verbatim.

mod common;

#[test]
fn the_method_plugin_page_shows_the_compiled_example_verbatim() {
    let root = common::root();
    let page = std::fs::read_to_string(root.join("docs/method-plugins.md")).unwrap();
    let example =
        std::fs::read_to_string(root.join("crates/continual/examples/l2_init_plugin.rs")).unwrap();
    assert!(
        page.contains(&format!("```rust\n{example}```")),
        "docs/method-plugins.md does not show crates/continual/examples/l2_init_plugin.rs as it is"
    );
}

/// Issue 20's rule for the engine: every function reads on one screen (at most 80 lines,
/// signature and closing brace included).
#[test]
fn engine_functions_fit_on_one_screen() {
    let dir = common::root().join("crates/continual/src/engine");
    let mut long = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .any(|p| trimmed.starts_with(p));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let indent = &line[..line.len() - trimmed.len()];
            let close = format!("{indent}}}");
            let end = lines[i..]
                .iter()
                .position(|l| *l == close)
                .expect("closing brace at the function's indentation");
            if end + 1 > 80 {
                long.push(format!("{}:{} ({} lines)", path.display(), i + 1, end + 1));
            }
        }
    }
    assert!(long.is_empty(), "functions over 80 lines: {long:?}");
}
