//! Process-wide on/off switches for A/B measurements of a faster path against its reference.

use std::sync::atomic::{AtomicU8, Ordering};

/// On by default; the environment variable `var` set to `0` turns it off at start-up, and
/// [`Switch::set`] at any time.
pub(crate) struct Switch {
    /// 0: not read yet, 1: on, 2: off.
    state: AtomicU8,
    var: &'static str,
}

impl Switch {
    pub(crate) const fn new(var: &'static str) -> Self {
        Self {
            state: AtomicU8::new(0),
            var,
        }
    }

    pub(crate) fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var(self.var).map_or(true, |v| v != "0");
                self.set(on);
                on
            }
        }
    }

    pub(crate) fn set(&self, on: bool) {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }
}
