//! A small map keyed by task id that serialises as a list of pairs.

use serde::{Deserialize, Serialize};

/// A map from `u32` ids to values, as a vector sorted by id.
///
/// Unlike `BTreeMap<u32, V>`, it serialises as a sequence of `[id, value]` pairs, so it
/// survives serde's buffering inside internally tagged enums (where integer map keys come back
/// as strings and fail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct IdMap<V>(Vec<(u32, V)>);

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> IdMap<V> {
    fn find(&self, id: u32) -> Result<usize, usize> {
        self.0.binary_search_by_key(&id, |e| e.0)
    }

    pub(crate) fn get(&self, id: u32) -> Option<&V> {
        self.find(id).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut V> {
        self.find(id).ok().map(move |i| &mut self.0[i].1)
    }

    /// The value of `id`, inserting `make()` first if absent.
    pub(crate) fn get_or_insert_with(&mut self, id: u32, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(id) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (id, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|e| e.0)
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &V)> + '_ {
        self.0.iter().map(|e| (e.0, &e.1))
    }
}
