//! cargo fuzz target: `fuzz_entry::fuzz_config_json` must not panic on any input (errors are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_entry::fuzz_config_json(data));
