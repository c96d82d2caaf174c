//! A preemption request (the flag a SIGTERM or Slurm's `--signal` sets, `continual::interrupt`)
//! stops a run at the step it arrives in, with a checkpoint of that step; `--resume` continues
//! it to the matrix, memory counters and log of an uninterrupted run, bit for bit on the CPU.
//!
//! Its own test binary: the flag is process-wide, so no other run may share the process.

mod common;

use common::config;
use continual::{EngineError, HookContext, Plugin, StepRecord};

/// Asks for a stop after each of the global steps `at` (as the signal handler would).
struct RequestAt(Vec<u64>);

impl Plugin for RequestAt {
    fn after_update(&mut self, ctx: &HookContext<'_>, _step: &StepRecord) {
        if self.0.contains(&ctx.step) {
            continual::interrupt::request();
        }
    }
}

#[test]
fn an_interrupted_run_checkpoints_the_step_and_resumes_to_the_uninterrupted_matrix() {
    let dir = tempfile::tempdir().unwrap();
    // MSSR: the buffer, memory state and scheduler RNG cross every stop. 4 tasks of 16 steps;
    // the stops fall mid-task between periodic checkpoints (7), on a task's last step (16, the
    // end-of-task passes not yet run), and right after a task boundary (17).
    let set = "epochs = 2\ncheckpoint_every = 5\n";
    let whole = continual::run(&config("mssr", &dir.path().join("whole"), set), &mut []).unwrap();
    let out = dir.path().join("stopped");
    let mut request = RequestAt(vec![7, 16, 17, 40]);
    let mut cfg = config("mssr", &out, set);
    let mut stops = vec![];
    let resumed = loop {
        match continual::run(&cfg, &mut [&mut request]) {
            Ok(done) => break done,
            Err(EngineError::Interrupted { step }) => {
                assert!(continual::interrupt::requested());
                continual::interrupt::clear();
                let latest = std::fs::read_to_string(out.join("ckpt/LATEST")).unwrap();
                assert!(
                    latest.starts_with(&format!("step-{step:06}-")),
                    "stopped at step {step}, LATEST is {latest}"
                );
                let run_json: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap())
                        .unwrap();
                assert_eq!(run_json["status"], "running");
                stops.push(step);
                cfg.resume = true;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(stops, [7, 16, 17, 40]);
    assert_eq!(whole.rows, resumed.rows);
    assert_eq!(
        whole.metrics["cost"]["replayed_samples"],
        resumed.metrics["cost"]["replayed_samples"]
    );
    let log = |d: &str| -> Vec<serde_json::Value> {
        common::log_events(&dir.path().join(d), "step")
            .into_iter()
            .chain(common::log_events(&dir.path().join(d), "replay"))
            .map(|mut v| {
                // Wall-clock fields differ between any two runs.
                v.as_object_mut()
                    .unwrap()
                    .retain(|k, _| !k.contains("seconds"));
                v
            })
            .collect()
    };
    assert_eq!(
        log("whole"),
        log("stopped"),
        "every step logged once, the same"
    );
}
