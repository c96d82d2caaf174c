//! The docs page shows the custom-strategy example verbatim, so the page's code compiles.

#[test]
fn docs_page_shows_the_compiled_custom_strategy_example() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{dir}/examples/custom_strategy.rs")).unwrap();
    let page = std::fs::read_to_string(format!("{dir}/../../docs/replay-strategies.md")).unwrap();
    assert!(
        page.contains(&format!("```rust\n{example}```")),
        "docs/replay-strategies.md must include examples/custom_strategy.rs verbatim"
    );
}
