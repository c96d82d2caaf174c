//! Preemption: a signal asks the run to stop at the next step boundary with a checkpoint.
//!
//! On a cluster a job is stopped by a signal: Slurm sends `SIGTERM` when it preempts, requeues
//! or cancels a job (and `SIGKILL` `KillWait` seconds later), and, with
//! `sbatch --signal=[B:]USR1@120`, `SIGUSR1` 120 s before the time limit. [`install`] turns
//! these into a flag: the engine checks [`requested`] after every counted training step, writes
//! a checkpoint there and returns [`crate::EngineError::Interrupted`]; `cargo xtask suite` then
//! exits with [`REQUEUE_EXIT`], which its Slurm script turns into `scontrol requeue`. The
//! requeued task runs with `--resume` and ends with the matrix of an uninterrupted run, bit for
//! bit on the CPU (`xtask/tests/preempt.rs`, `scripts/slurm-test.sh`).
//!
//! A signal that arrives during an evaluation is acted on at the first step after it (the
//! evaluation's own task-boundary checkpoint comes first), so the grace period a cluster gives
//! (`KillWait`, the `@seconds` of `--signal`) should exceed one evaluation. `SIGINT` (Ctrl-C)
//! also asks for a checkpoint; a second `SIGINT` exits at once. Repeated `SIGTERM`s do not:
//! Slurm may deliver one to the batch script (which forwards it) and one to the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

/// The exit status of a run stopped by a preemption signal after its checkpoint: `EX_TEMPFAIL`
/// of `sysexits.h` ("temporary failure, the user is invited to retry"). The Slurm script of
/// `cargo xtask suite --launcher slurm` requeues its task when the run exits with it; a cluster
/// may also list it in `slurm.conf`'s `RequeueExit`.
pub const REQUEUE_EXIT: i32 = 75;

/// The flag the signal handlers set (signal-hook's handlers store into an `Arc<AtomicBool>`).
static REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Whether a stop was asked for (a handled signal arrived, or [`request`] was called).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Asks the running engine to checkpoint and stop at its next step boundary, as a signal
/// does (for tests and for programs that embed the engine).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Forgets a request, so that a later run in the same process trains on.
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}

/// A signal number from its name as Slurm's `--signal` writes it: `[B:|R:]NAME[@SECONDS]`,
/// `NAME` with or without `SIG` (`USR1`, `SIGUSR2`, `TERM`) or a number (`10`).
pub fn parse_signal(spec: &str) -> Result<i32, String> {
    use signal_hook::consts::signal as s;
    let body = spec
        .split_once(':')
        .filter(|(flags, _)| flags.chars().all(|c| matches!(c, 'B' | 'R')))
        .map_or(spec, |(_, rest)| rest);
    let name = body.split_once('@').map_or(body, |(n, _)| n).trim();
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let named = [
        ("HUP", s::SIGHUP),
        ("INT", s::SIGINT),
        ("QUIT", s::SIGQUIT),
        ("USR1", s::SIGUSR1),
        ("USR2", s::SIGUSR2),
        ("TERM", s::SIGTERM),
        ("KILL", s::SIGKILL),
        ("STOP", s::SIGSTOP),
        ("CONT", s::SIGCONT),
        ("XCPU", s::SIGXCPU),
        ("ALRM", s::SIGALRM),
    ];
    let number = named
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, v)| *v)
        .or_else(|| bare.parse::<i32>().ok());
    match number {
        Some(n) if signal_hook::consts::FORBIDDEN.contains(&n) => Err(format!(
            "--signal {spec:?}: signal {n} cannot be handled (SIGKILL, SIGSTOP and SIGILL/SIGFPE/SIGSEGV cannot be caught)"
        )),
        Some(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "--signal {spec:?}: expected [B:]NAME[@SECONDS] with NAME one of USR1, USR2, TERM, INT, HUP, QUIT, XCPU, ALRM, CONT or a signal number"
        )),
    }
}

/// Installs the handlers: `SIGTERM`, `SIGINT` and the signal of `extra` (Slurm's `--signal`
/// syntax, see [`parse_signal`]) set the flag [`requested`] reads; a second `SIGINT` exits at
/// once with status 130. Call it once per process.
pub fn install(extra: Option<&str>) -> Result<(), String> {
    use signal_hook::consts::signal::{SIGINT, SIGTERM};
    let extra = extra.map(parse_signal).transpose()?;
    let failed =
        |sig: i32| move |e: std::io::Error| format!("installing the handler of signal {sig}: {e}");
    // A second Ctrl-C exits: handlers run in the order registered, so the conditional one sees
    // the first SIGINT's mark only from the second on. (signal-hook's handlers only store to
    // an atomic, and `register_conditional_shutdown` calls `_exit`: async-signal-safe.)
    static INTERRUPTED_ONCE: LazyLock<Arc<AtomicBool>> =
        LazyLock::new(|| Arc::new(AtomicBool::new(false)));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, INTERRUPTED_ONCE.clone())
        .map_err(failed(SIGINT))?;
    signal_hook::flag::register(SIGINT, INTERRUPTED_ONCE.clone()).map_err(failed(SIGINT))?;
    for sig in [SIGTERM, SIGINT].into_iter().chain(extra) {
        signal_hook::flag::register(sig, REQUESTED.clone()).map_err(failed(sig))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_hook::consts::signal::*;

    #[test]
    fn slurm_signal_specs_name_the_signal_the_run_gets() {
        assert_eq!(parse_signal("B:USR1@120"), Ok(SIGUSR1));
        assert_eq!(parse_signal("USR2@90"), Ok(SIGUSR2));
        assert_eq!(parse_signal("R:SIGTERM"), Ok(SIGTERM));
        assert_eq!(parse_signal("usr1"), Ok(SIGUSR1));
        assert_eq!(parse_signal("10"), Ok(10));
    }

    #[test]
    fn unknown_or_uncatchable_signals_are_errors_naming_the_flag() {
        let e = parse_signal("B:FOO@1").unwrap_err();
        assert!(e.starts_with("--signal \"B:FOO@1\": expected"), "{e}");
        let e = parse_signal("KILL").unwrap_err();
        assert!(e.contains("cannot be handled"), "{e}");
        assert!(parse_signal("9").is_err());
        assert!(parse_signal("0").is_err());
    }
}
