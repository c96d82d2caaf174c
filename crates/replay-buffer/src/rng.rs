//! The RNG every component stores: ChaCha8, serialised portably.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A seeded [`ChaCha8Rng`] that serialises as its seed, stream and position.
///
/// rand_chacha's own serde support writes the position as a `u128`, which serde cannot
/// buffer (internally tagged enums, `#[serde(flatten)]`) and many formats reject; here it is
/// two `u64` words, so a checkpoint works in any serde format and inside any container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRng(ChaCha8Rng);

impl ReplayRng {
    /// A generator seeded with `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

#[derive(Serialize, Deserialize)]
struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos_hi: u64,
    word_pos_lo: u64,
}

impl Serialize for ReplayRng {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pos = self.0.get_word_pos();
        RngState {
            seed: self.0.get_seed(),
            stream: self.0.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayRng {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let st = RngState::deserialize(d)?;
        let mut rng = ChaCha8Rng::from_seed(st.seed);
        rng.set_stream(st.stream);
        rng.set_word_pos(((st.word_pos_hi as u128) << 64) | st.word_pos_lo as u128);
        Ok(Self(rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_rng_continues_the_same_stream() {
        let mut a = ReplayRng::seed_from_u64(42);
        for _ in 0..37 {
            a.next_u32(); // an odd number of words: mid-block position
        }
        let mut b: ReplayRng = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
