//! `cargo xtask`: the workspace's command-line tools.
//!
//! ```text
//! cargo xtask model fetch                       # SmolLM2-135M-Instruct GGUF into the cache
//! cargo xtask model export --model PATH --to DIR
//! cargo xtask score --model PATH --text "..."   # per-token log-probs as JSON
//! cargo xtask generate --model PATH --prompt "..."
//! cargo xtask data fetch --to DIR               # public task data from the Hugging Face Hub
//! cargo xtask bench                             # throughput against PyTorch+PEFT
//! ```
//! Each subcommand lives in its own module; `main` only dispatches.

use clap::{Parser, Subcommand};

mod data;
mod model;
mod score;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Continual fine-tuning workspace tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Task data: download the public originals.
    Data(data::DataArgs),
    /// The default model: fetch it, or export a model as a HF directory.
    Model(model::ModelArgs),
    /// Per-token log-probs of a text as JSON.
    Score(score::ScoreArgs),
    /// Generate an answer to a prompt.
    Generate(score::GenerateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Data(args) => data::run(args),
        Command::Model(args) => model::run(args),
        Command::Score(args) => score::score(args),
        Command::Generate(args) => score::generate(args),
    }
}
