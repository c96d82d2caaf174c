//! What the buffer stores: references to samples, never the samples themselves.

use serde::{Deserialize, Serialize};

/// Position of an entry in the [`ReplayBuffer`](crate::ReplayBuffer)'s arrays.
///
/// Slots are dense (`0..len`) and stable until the buffer is next mutated (an insertion may
/// overwrite a slot, a removal moves the last entry into the removed slot).
pub type Slot = u32;

/// A reference to one training sample: the task it belongs to and its index in that task's
/// training data. The engine resolves it to tokens; the buffer never copies datasets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SampleRef {
    /// Task id (the stage in which the sample was trained).
    pub task: u32,
    /// Index of the sample in the task's training data.
    pub index: u32,
}

impl SampleRef {
    /// A reference to sample `index` of task `task`.
    pub fn new(task: u32, index: u32) -> Self {
        Self { task, index }
    }
}

/// A teacher's top-`k` next-token log-probabilities for every answer position of one sample,
/// stored for distillation-style replay (for example DER/logit replay).
///
/// Row-major: position `p`'s entries are `token_ids[p*k..(p+1)*k]` and
/// `log_probs[p*k..(p+1)*k]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TeacherTopK {
    /// Entries per position.
    pub k: u32,
    /// Token ids, `positions × k`.
    pub token_ids: Vec<u32>,
    /// Log-probabilities of those tokens, `positions × k`.
    pub log_probs: Vec<f32>,
}

impl TeacherTopK {
    /// Number of answer positions stored.
    pub fn positions(&self) -> usize {
        if self.k == 0 {
            0
        } else {
            self.token_ids.len() / self.k as usize
        }
    }

    /// Token ids and log-probabilities at position `p`.
    pub fn at(&self, p: usize) -> (&[u32], &[f32]) {
        let k = self.k as usize;
        (
            &self.token_ids[p * k..(p + 1) * k],
            &self.log_probs[p * k..(p + 1) * k],
        )
    }
}

/// The per-sample loss of a buffered sample, as measured by the engine (replay batch or probe).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlotLoss {
    /// The buffer slot.
    pub slot: Slot,
    /// Mean token cross-entropy of the sample's answer.
    pub loss: f32,
}

/// A task's score on its own metric (accuracy, exact match, ...), higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Task id.
    pub task: u32,
    /// Score, usually in `[0, 1]`.
    pub score: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_top_k_rows_are_per_position() {
        let t = TeacherTopK {
            k: 2,
            token_ids: vec![1, 2, 3, 4, 5, 6],
            log_probs: vec![-0.1, -2.0, -0.2, -1.9, -0.3, -1.8],
        };
        assert_eq!(t.positions(), 3);
        assert_eq!(t.at(1), (&[3u32, 4][..], &[-0.2f32, -1.9][..]));
    }
}
