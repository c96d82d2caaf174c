//! Loads a suite, formats the first training record of each task and scores its reference
//! answer against itself (a perfect "model"), to show the pieces together.
//!
//! ```text
//! cargo run -p bench-tasks --example suite_summary                       # smoke suite, no data needed
//! cargo run -p bench-tasks --example suite_summary -- experiments/suites/quick.toml [DATA_DIR]
//! ```

use std::path::PathBuf;

use bench_tasks::score::score_generation;
use bench_tasks::{ByteTokenizer, FormatConfig, Formatter, Suite, resolve_data_dir};
use chat_template::{ChatConfig, ChatTemplate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let suite_path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "experiments/suites/smoke.toml".into()),
    );
    let explicit = args.next().map(PathBuf::from);
    // The smoke suite needs no data; the others need the data directory.
    let data_dir = resolve_data_dir(explicit.as_deref()).unwrap_or_else(|_| PathBuf::from("."));
    let suite = Suite::load(&suite_path, &data_dir)?;

    let config = FormatConfig {
        chat: ChatConfig::new(ChatTemplate::ChatMl),
        max_len: 256,
    };
    let formatter = Formatter::new(config, ByteTokenizer);
    println!(
        "suite {} ({} tasks, {} probes)",
        suite.name,
        suite.tasks.len(),
        suite.probes.len()
    );
    for task in suite.tasks.iter().chain(&suite.probes) {
        let Some(record) = task.train.first().or(task.test.first()) else {
            continue;
        };
        let shape = match formatter.encode(task.system.as_deref(), record) {
            Ok(e) => format!("{} bytes ({} cut)", e.input_ids.len(), e.truncated),
            Err(e) => format!("not formatted: {e}"),
        };
        let self_score = score_generation(task.metric, &task.kind, record, &record.answer);
        println!(
            "  {:<20} {:>4} train {:>4} test  {:?}: first record {shape}, reference scores {self_score}",
            task.name,
            task.train.len(),
            task.test.len(),
            task.metric,
        );
    }
    Ok(())
}
