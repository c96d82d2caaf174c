//! `cargo xtask suite --launcher slurm`: the suite's unfinished runs as one Slurm job array.
//!
//! ```sh
//! cargo xtask suite --suite quick --methods all --seeds 3 --order a,b --launcher slurm \
//!     --account proj --partition cpu --time 06:00:00 --cpus-per-task 4 --mem 8G \
//!     --max-parallel 16 --submit                  # or --slurm-config cluster.toml
//! ```
//!
//! Writes `<out>/slurm/<suite>/`: `tasks.tsv` (one line per array task: method file, seed,
//! order), `array.sbatch` (the job array, `%P` capped), `report.sbatch` (`cargo xtask report`)
//! and `submit.sh`, which submits the array and the report with `--dependency=afterany` on it;
//! `--submit` runs `submit.sh`. Runs already complete get no array task. Every task runs this
//! very binary, `suite ... --resume`, on the same results directory: the binary, the working
//! directory, the results and the model must be on a file system the nodes share.
//!
//! Preemption: the array is submitted with `--requeue` and `--signal=B:USR1@120` (`--signal`).
//! The batch script forwards that signal and `SIGTERM` to the run, which checkpoints at its next
//! step boundary and exits with [`continual::interrupt::REQUEUE_EXIT`] (75); after a `USR1` (the
//! time limit is near) the script then requeues its own task (`scontrol requeue`), after a
//! `SIGTERM` (preemption, `scontrol requeue`, `scancel`) Slurm does what it was doing. The
//! requeued task resumes from the checkpoint (docs/scale-out.md).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The `[slurm]` table of `--slurm-config`, every key also a flag (flags win).
#[derive(Debug, Default, Clone, serde::Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// Slurm account (`sbatch --account`).
    #[arg(long)]
    pub account: Option<String>,
    /// Slurm partition (`sbatch --partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of one run (`sbatch --time`, e.g. `06:00:00`).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs of one run (`--cpus-per-task`); the run uses as many threads.
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory of one run (`--mem`, e.g. `8G`).
    #[arg(long)]
    pub mem: Option<String>,
    /// GPUs of one run (`--gpus`, e.g. `1` or `a100:1`).
    #[arg(long)]
    pub gpus: Option<String>,
    /// Array tasks running at once (the `%P` of `--array=0-N%P`).
    #[arg(long)]
    pub max_parallel: Option<u32>,
    /// Time limit of the report job (default 00:30:00).
    #[arg(long)]
    pub report_time: Option<String>,
    /// More `#SBATCH` options for both jobs, e.g. `--qos=low` (repeatable).
    #[arg(long = "sbatch-extra", value_name = "OPTION")]
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmSettings {
    /// The `[slurm]` table of `path`; unknown keys are errors naming the file and the key.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            slurm: SlurmSettings,
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--slurm-config {}", path.display()))?;
        let f: File = toml::from_str(&text).with_context(|| {
            format!(
                "--slurm-config {}: expected a [slurm] table",
                path.display()
            )
        })?;
        Ok(f.slurm)
    }

    /// `self` with every key it lacks taken from `file`.
    pub fn or(mut self, file: SlurmSettings) -> Self {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            account,
            partition,
            time,
            cpus_per_task,
            mem,
            gpus,
            max_parallel,
            report_time
        );
        if self.extra.is_empty() {
            self.extra = file.extra;
        }
        self
    }
}

/// One array task: a run not complete yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The method file, as given to `--methods`.
    pub method: PathBuf,
    /// The seed.
    pub seed: u64,
    /// `--order`, `None` for the suite's default.
    pub order: Option<String>,
}

/// Everything the scripts need besides the tasks.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The suite's name (the folder under `<out>/slurm/`).
    pub name: &'a str,
    /// Absolute working directory of every job (where `experiments/` resolves).
    pub workdir: PathBuf,
    /// Absolute path of the binary every task runs.
    pub exe: PathBuf,
    /// Absolute results root.
    pub out: PathBuf,
    /// The arguments every task passes to `suite`, besides method, seed, order and `--out`.
    pub common: Vec<String>,
    /// Slurm's `--signal` for the array, as given (`B:` is added where missing).
    pub signal: String,
    /// Resources and limits.
    pub slurm: SlurmSettings,
}

/// The files written under `<out>/slurm/<name>/`.
#[derive(Debug)]
pub struct Written {
    /// Their folder.
    pub dir: PathBuf,
    /// `submit.sh`.
    pub submit: PathBuf,
}

/// Writes `tasks.tsv`, `array.sbatch`, `report.sbatch` and `submit.sh` (each atomically).
pub fn write(plan: &Plan<'_>, tasks: &[Task]) -> anyhow::Result<Written> {
    let dir = plan.out.join("slurm").join(plan.name);
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.join("logs").display()))?;
    let tsv: String = tasks
        .iter()
        .map(|t| {
            format!(
                "{}\t{}\t{}\n",
                t.method.display(),
                t.seed,
                t.order.as_deref().unwrap_or("-")
            )
        })
        .collect();
    let files = [
        ("tasks.tsv", tsv),
        ("array.sbatch", array_script(plan, &dir, tasks.len())),
        ("report.sbatch", report_script(plan, &dir)),
        ("submit.sh", submit_script(&dir, tasks.len())),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        continual::results::write_atomic(&path, text.as_bytes())?;
    }
    Ok(Written {
        submit: dir.join("submit.sh"),
        dir,
    })
}

/// The `#SBATCH` lines both jobs share: account, partition and the extra options.
fn shared_options(s: &SlurmSettings, out: &mut String) {
    for (flag, v) in [("account", &s.account), ("partition", &s.partition)] {
        if let Some(v) = v {
            let _ = writeln!(out, "#SBATCH --{flag}={v}");
        }
    }
    for e in &s.extra {
        let _ = writeln!(out, "#SBATCH {e}");
    }
}

/// The job array: task `i` runs line `i + 1` of `tasks.tsv`.
fn array_script(plan: &Plan<'_>, dir: &Path, n: usize) -> String {
    let s = &plan.slurm;
    let sig = if plan.signal.starts_with("B:") || plan.signal.starts_with("RB:") {
        plan.signal.clone()
    } else {
        // The run is the batch script's child, not a job step: only `B:` reaches it.
        format!("B:{}", plan.signal.trim_start_matches("R:"))
    };
    let sig_name = sig
        .split_once(':')
        .map_or(sig.as_str(), |(_, r)| r)
        .split('@')
        .next()
        .unwrap_or("USR1")
        .trim_start_matches("SIG")
        .to_string();
    let mut o = String::from("#!/bin/bash\n");
    let _ = writeln!(
        o,
        "# Written by `cargo xtask suite --launcher slurm`: one task per unfinished run of tasks.tsv.\n\
         # Submit with submit.sh (it also queues the report after the array)."
    );
    let _ = writeln!(o, "#SBATCH --job-name=cl-{}", plan.name);
    let cap = s.max_parallel.map(|p| format!("%{p}")).unwrap_or_default();
    let _ = writeln!(o, "#SBATCH --array=0-{}{cap}", n.saturating_sub(1));
    let _ = writeln!(o, "#SBATCH --output={}/logs/%A_%a.out", dir.display());
    let _ = writeln!(o, "#SBATCH --open-mode=append");
    let _ = writeln!(o, "#SBATCH --requeue");
    let _ = writeln!(o, "#SBATCH --signal={sig}");
    if let Some(c) = s.cpus_per_task {
        let _ = writeln!(o, "#SBATCH --cpus-per-task={c}");
    }
    for (flag, v) in [("time", &s.time), ("mem", &s.mem), ("gpus", &s.gpus)] {
        if let Some(v) = v {
            let _ = writeln!(o, "#SBATCH --{flag}={v}");
        }
    }
    shared_options(s, &mut o);
    let mut args = vec!["suite".to_string()];
    args.extend(plan.common.iter().cloned());
    args.extend(["--out".into(), plan.out.display().to_string()]);
    args.extend(["--resume".into(), "--signal".into(), sig_name.clone()]);
    let _ = write!(
        o,
        r#"set -u
cd {workdir}
IFS=$'\t' read -r method seed order < <(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {tasks})
args=({args} --methods "$method" --seeds 1 --first-seed "$seed")
[ "$order" = - ] || args+=(--order "$order")
export RAYON_NUM_THREADS="${{RAYON_NUM_THREADS:-${{SLURM_CPUS_PER_TASK:-1}}}}"
echo "$(date -u +%FT%TZ) array task $SLURM_ARRAY_TASK_ID (job $SLURM_JOB_ID, restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname): $method seed $seed order $order"
# Slurm signals this script (B:); the run checkpoints at its next step and exits {requeue}.
got=
trap 'got={sig_name}; kill -{sig_name} "$child" 2>/dev/null' {sig_name}
trap 'got=TERM; kill -TERM "$child" 2>/dev/null' TERM
{exe} "${{args[@]}}" &
child=$!
while :; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break
done
echo "$(date -u +%FT%TZ) the run exited with status $status"
if [ "$status" -eq {requeue} ] && [ "$got" != TERM ]; then
    # Checkpointed before the time limit: back into the queue, to resume there.
    echo "requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"#,
        workdir = quote(&plan.workdir.display().to_string()),
        tasks = quote(&dir.join("tasks.tsv").display().to_string()),
        args = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        exe = quote(&plan.exe.display().to_string()),
        requeue = continual::interrupt::REQUEUE_EXIT,
    );
    o
}

/// The report job, queued with `afterany` on the array.
fn report_script(plan: &Plan<'_>, dir: &Path) -> String {
    let s = &plan.slurm;
    let mut o = String::from("#!/bin/bash\n");
    let _ = writeln!(o, "#SBATCH --job-name=cl-{}-report", plan.name);
    let _ = writeln!(o, "#SBATCH --output={}/logs/report-%j.out", dir.display());
    let _ = writeln!(
        o,
        "#SBATCH --time={}",
        s.report_time.as_deref().unwrap_or("00:30:00")
    );
    let _ = writeln!(o, "#SBATCH --cpus-per-task=1");
    shared_options(s, &mut o);
    let _ = write!(
        o,
        "set -eu\ncd {}\nexec {} report --results {}\n",
        quote(&plan.workdir.display().to_string()),
        quote(&plan.exe.display().to_string()),
        quote(&plan.out.display().to_string())
    );
    o
}

fn submit_script(dir: &Path, n: usize) -> String {
    let d = quote(&dir.display().to_string());
    format!(
        r#"#!/bin/sh
# Submits the job array ({n} runs) and the report, which waits for the whole array (afterany).
set -eu
array=$(sbatch --parsable {d}/array.sbatch)
array=${{array%%;*}}
report=$(sbatch --parsable --dependency=afterany:"$array" {d}/report.sbatch)
report=${{report%%;*}}
echo "array job $array ({n} runs), report job $report (afterany:$array); logs: {d}/logs"
"#
    )
}

/// `s` single-quoted for bash when it holds anything but plain characters.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(slurm: SlurmSettings) -> Plan<'static> {
        Plan {
            name: "smoke",
            workdir: "/repo".into(),
            exe: "/repo/target/debug/xtask".into(),
            out: "/shared/results".into(),
            common: vec![
                "--suite".into(),
                "smoke".into(),
                "--set".into(),
                "lr = 'a b'".into(),
            ],
            signal: "USR1@120".into(),
            slurm,
        }
    }

    fn tasks() -> Vec<Task> {
        vec![
            Task {
                method: "experiments/methods/mssr.toml".into(),
                seed: 0,
                order: None,
            },
            Task {
                method: "experiments/methods/sequential.toml".into(),
                seed: 2,
                order: Some("rev".into()),
            },
        ]
    }

    #[test]
    fn the_array_has_one_task_per_line_of_tasks_tsv_and_the_resources_asked() {
        let s = SlurmSettings {
            account: Some("proj".into()),
            partition: Some("cpu".into()),
            time: Some("06:00:00".into()),
            cpus_per_task: Some(4),
            mem: Some("8G".into()),
            gpus: Some("1".into()),
            max_parallel: Some(3),
            report_time: None,
            extra: vec!["--qos=low".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let mut p = plan(s);
        p.out = dir.path().to_path_buf();
        let w = write(&p, &tasks()).unwrap();
        let tsv = std::fs::read_to_string(w.dir.join("tasks.tsv")).unwrap();
        assert_eq!(
            tsv,
            "experiments/methods/mssr.toml\t0\t-\nexperiments/methods/sequential.toml\t2\trev\n"
        );
        let a = std::fs::read_to_string(w.dir.join("array.sbatch")).unwrap();
        for line in [
            "#SBATCH --array=0-1%3",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --time=06:00:00",
            "#SBATCH --mem=8G",
            "#SBATCH --gpus=1",
            "#SBATCH --account=proj",
            "#SBATCH --partition=cpu",
            "#SBATCH --qos=low",
            "cd /repo",
        ] {
            assert!(a.lines().any(|l| l == line), "{line:?} missing from\n{a}");
        }
        let out = dir.path().display().to_string();
        assert!(
            a.contains(&format!(
                "args=(suite --suite smoke --set 'lr = '\\''a b'\\''' --out {out} --resume --signal USR1 --methods"
            )),
            "{a}"
        );
        let r = std::fs::read_to_string(w.dir.join("report.sbatch")).unwrap();
        assert!(
            r.contains(
                "#SBATCH --time=00:30:00\n#SBATCH --cpus-per-task=1\n#SBATCH --account=proj\n"
            ),
            "{r}"
        );
        assert!(r.ends_with(&format!(
            "exec /repo/target/debug/xtask report --results {out}\n"
        )));
        let s = std::fs::read_to_string(&w.submit).unwrap();
        assert!(s.contains("--dependency=afterany:\"$array\""), "{s}");
    }

    /// The array script run by bash with a fake `sbatch` environment: task 1 reads line 2, the
    /// run gets the arguments of its line, and a run that exits 75 after the script's signal
    /// is requeued (a fake `scontrol` records it), one that exits 75 after SIGTERM is not.
    #[test]
    fn the_batch_script_runs_its_line_forwards_the_signal_and_requeues_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // A fake run: records its arguments, waits for a signal, exits 75 as a checkpointed run does.
        let fake = bin.join("xtask");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/bash\necho \"$@\" > {0}/args\ntrap 'echo \"$RAYON_NUM_THREADS\" > {0}/threads; exit 75' USR1 TERM\ntouch {0}/started\nwhile :; do sleep 0.05; done\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(
            bin.join("scontrol"),
            format!(
                "#!/bin/sh\necho \"$@\" >> {}/scontrol\n",
                dir.path().display()
            ),
        )
        .unwrap();
        for f in ["xtask", "scontrol"] {
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(bin.join(f))
                .status()
                .unwrap();
        }
        let mut p = plan(SlurmSettings::default());
        p.out = dir.path().join("results");
        p.exe = fake;
        p.workdir = dir.path().to_path_buf();
        let w = write(&p, &tasks()).unwrap();
        for (signal, requeued) in [("USR1", true), ("TERM", false)] {
            let _ = std::fs::remove_file(dir.path().join("started"));
            let _ = std::fs::remove_file(dir.path().join("scontrol"));
            let mut child = std::process::Command::new("bash")
                .arg(w.dir.join("array.sbatch"))
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                )
                .env("SLURM_ARRAY_TASK_ID", "1")
                .env("SLURM_JOB_ID", "77")
                .env("SLURM_CPUS_PER_TASK", "3")
                .env_remove("RAYON_NUM_THREADS")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            while !dir.path().join("started").exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::process::Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(75), "{signal}");
            let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
            assert_eq!(
                args.trim(),
                format!(
                    "suite --suite smoke --set lr = 'a b' --out {} --resume --signal USR1 --methods experiments/methods/sequential.toml --seeds 1 --first-seed 2 --order rev",
                    p.out.display()
                )
            );
            assert_eq!(
                std::fs::read_to_string(dir.path().join("threads"))
                    .unwrap()
                    .trim(),
                "3"
            );
            let scontrol = std::fs::read_to_string(dir.path().join("scontrol")).ok();
            assert_eq!(
                scontrol.as_deref(),
                requeued.then_some("requeue 77\n"),
                "{signal}"
            );
        }
    }

    #[test]
    fn the_slurm_table_fills_what_flags_leave_out_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[slurm]\naccount = 'a'\ntime = '01:00:00'\nextra = ['--qos=x']\n",
        )
        .unwrap();
        let flags = SlurmSettings {
            time: Some("02:00:00".into()),
            ..Default::default()
        };
        let s = flags.or(SlurmSettings::from_file(&f).unwrap());
        assert_eq!(s.account.as_deref(), Some("a"));
        assert_eq!(s.time.as_deref(), Some("02:00:00"));
        assert_eq!(s.extra, ["--qos=x"]);
        std::fs::write(&f, "[slurm]\naccont = 'a'\n").unwrap();
        let e = format!("{:#}", SlurmSettings::from_file(&f).unwrap_err());
        assert!(e.contains("--slurm-config") && e.contains("accont"), "{e}");
    }
}
