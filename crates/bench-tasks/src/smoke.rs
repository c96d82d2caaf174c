//! Generated tasks for the smoke suite: tiny, deterministic by seed, and built to interfere.
//!
//! Every smoke task of one generator asks the same question about the same kind of input, but
//! maps it to a *different* answer per task (`variant`): training task 2 after task 1 overwrites
//! exactly what task 1 taught, so sequential fine-tuning forgets measurably within seconds, and
//! replay visibly helps. Each prompt starts with the task's tag, so a model *can* hold all tasks
//! at once (joint training is the upper bound).
//!
//! The text uses a few lower-case ASCII words and digits: a byte-level tokenizer
//! ([`crate::ByteTokenizer`]) or a word-level vocabulary of about 30 entries covers it.
//!
//! - `label_map`: `"{tag} star fish cup"` → a colour. The first word decides: word `i` of
//!   [`SHAPES`] gets colour `(i + variant) mod 4` of [`COLOURS`]; the other two words are
//!   distractors. Variants 0..3 give every input a different colour in every task.
//! - `offset_add`: `"{tag} 3 + 4 ="` → `3 + 4 + variant` (a [`TaskKind::MathNumber`] task).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::task::{Record, TaskKind};

/// Input words of `label_map`.
pub const SHAPES: [&str; 8] = [
    "circle", "square", "star", "moon", "tree", "fish", "bird", "cup",
];

/// Answer words of `label_map`.
pub const COLOURS: [&str; 4] = ["red", "blue", "green", "gold"];

/// Which generator a smoke task uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeGenerator {
    /// Shape words to a colour, the mapping shifted by the variant (classification).
    LabelMap,
    /// Sum of two digits plus the variant (maths, final number).
    OffsetAdd,
}

impl SmokeGenerator {
    /// The kind of the generated task.
    pub fn kind(self) -> TaskKind {
        match self {
            SmokeGenerator::LabelMap => TaskKind::Classification {
                labels: COLOURS.iter().map(|s| s.to_string()).collect(),
            },
            SmokeGenerator::OffsetAdd => TaskKind::MathNumber,
        }
    }
}

/// The colour `label_map` assigns to shape `shape` under `variant`.
pub fn label_map_answer(shape: usize, variant: u64) -> &'static str {
    COLOURS[(shape + variant as usize) % COLOURS.len()]
}

/// Generates `n` records, deterministic in (`generator`, `tag`, `variant`, `seed`).
pub fn generate(
    generator: SmokeGenerator,
    tag: &str,
    variant: u64,
    n: usize,
    seed: u64,
) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ variant.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..n)
        .map(|_| match generator {
            SmokeGenerator::LabelMap => {
                let w: [usize; 3] = std::array::from_fn(|_| rng.random_range(0..SHAPES.len()));
                Record::new(
                    format!("{tag} {} {} {}", SHAPES[w[0]], SHAPES[w[1]], SHAPES[w[2]]),
                    label_map_answer(w[0], variant),
                )
            }
            SmokeGenerator::OffsetAdd => {
                let a = rng.random_range(0..10u64);
                let b = rng.random_range(0..10u64);
                Record::new(format!("{tag} {a} + {b} ="), (a + b + variant).to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_by_seed() {
        let a = generate(SmokeGenerator::LabelMap, "t1", 0, 20, 7);
        let b = generate(SmokeGenerator::LabelMap, "t1", 0, 20, 7);
        let c = generate(SmokeGenerator::LabelMap, "t1", 0, 20, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn label_map_variants_disagree_on_every_input() {
        for shape in 0..SHAPES.len() {
            let answers: Vec<_> = (0..4).map(|v| label_map_answer(shape, v)).collect();
            for i in 0..4 {
                for j in i + 1..4 {
                    assert_ne!(answers[i], answers[j], "shape {shape}");
                }
            }
        }
    }

    #[test]
    fn label_map_answer_follows_first_word() {
        for r in generate(SmokeGenerator::LabelMap, "t2", 2, 50, 1) {
            let first = r.prompt.split(' ').nth(1).unwrap();
            let i = SHAPES.iter().position(|s| *s == first).unwrap();
            assert_eq!(r.answer, label_map_answer(i, 2));
            assert!(r.prompt.starts_with("t2 "));
        }
    }

    #[test]
    fn offset_add_adds_the_variant() {
        for r in generate(SmokeGenerator::OffsetAdd, "add3", 3, 30, 5) {
            let nums: Vec<u64> = r.prompt.split(' ').filter_map(|w| w.parse().ok()).collect();
            assert_eq!(r.answer, (nums[0] + nums[1] + 3).to_string());
        }
    }

    #[test]
    fn text_is_lowercase_ascii() {
        for g in [SmokeGenerator::LabelMap, SmokeGenerator::OffsetAdd] {
            for r in generate(g, "t", 1, 40, 3) {
                assert!(
                    r.prompt
                        .bytes()
                        .chain(r.answer.bytes())
                        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
                );
            }
        }
    }
}
