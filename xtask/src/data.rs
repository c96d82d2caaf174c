//! `cargo xtask data ...` (owned by the bench-tasks work).

/// Arguments of `cargo xtask data`.
#[derive(clap::Args)]
pub struct DataArgs {}

/// Runs `cargo xtask data`.
pub fn run(_args: DataArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
