//! Prints how a sample's memory strength decays and how rehearsal restores it.
//!
//! Run with `cargo run -p memory-strength --example forgetting_curve`.

use memory_strength::{MemoryConfig, RetentionModel};

fn main() {
    for retention in [RetentionModel::Exponential, RetentionModel::power_law()] {
        let mut memory = MemoryConfig {
            retention,
            ..MemoryConfig::default()
        }
        .init();
        let i = memory.insert(0.3, 0);
        println!("{retention:?}");
        let mut t = 0;
        // Rehearse at expanding gaps; each rehearsal is recalled with loss 0.3.
        for gap in [50u64, 100, 200, 400] {
            let before = memory.strength(i, t + gap);
            t += gap;
            memory.update_after_replay(&[i], &[0.3], t);
            println!(
                "  step {t:>4}: strength before review {before:.3}, stability now {:.1}",
                memory.stability[i]
            );
        }
    }
}
