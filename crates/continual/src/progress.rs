//! Progress a person can watch, drawn with `indicatif`: a suite bar (runs done, running and left,
//! with an ETA) above a run bar (stage and step with the current loss; during an evaluation, the
//! sets scored), redrawn in place on the terminal.
//!
//! ```text
//! suite      [#######>............] 0/3 runs done, 2 running, 1 left  elapsed 00:06  ETA 00:11
//! task 3/4 map-b                     [###>................] step 57/300  loss 0.246  ETA 00:03
//! ```
//!
//! With `--jobs N` the runs are child processes whose stderr goes to their `console.log`; each
//! child feeds its run line through a small file (named by [`FEED_ENV`] in its environment) and
//! the suite shows one bar per running child, prefixed with its method and seed:
//!
//! ```text
//! suite      [#########>..........] 0/3 runs done, 2 running, 1 left  elapsed 00:09  ETA 00:10
//! sequential/0 task 3/4 map-b        [##########>.........] step 153/300  loss 0.090  ETA 00:02
//! mssr/0 eval after task 3/4         [####################] sets scored 4/4  ETA 00:00
//! ```
//!
//! Bars are drawn only on a terminal outside CI (stderr is a terminal and `CI` is unset).
//! Otherwise the bars' draw target is hidden and [`Progress`] prints a plain line every 10% of a
//! stage or an evaluation, so that logs and `console.log` files stay readable.
//!
//! indicatif is pinned to 0.17.1 (workspace `Cargo.toml`): from 0.17.2 on it depends on
//! `portable-atomic` with its default `fallback` feature, which Burn's own dependencies (`spin`,
//! `cubecl-common`) share, so a later version rebuilds all of Burn once for every build directory.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::{HookContext, Plugin, StepRecord};

/// The environment variable naming the file through which a child run (`--jobs`) feeds its run
/// line to the suite's bars.
pub const FEED_ENV: &str = "CONTINUAL_PROGRESS_FEED";

/// Positions per run on the suite bar (the bar moves by thousandths of a run).
const RUN: u64 = 1000;

/// How often a child run rewrites its feed at most.
const FEED_EVERY: Duration = Duration::from_millis(250);

/// Whether bars are drawn: stderr is a terminal and the `CI` variable is unset.
pub fn interactive() -> bool {
    wants_bars(
        std::io::stderr().is_terminal(),
        std::env::var_os("CI").is_some(),
    )
}

fn wants_bars(terminal: bool, ci: bool) -> bool {
    terminal && !ci
}

/// The terminal's bars, one set per process: on stderr where [`interactive`], hidden otherwise.
fn screen() -> &'static MultiProgress {
    static SCREEN: OnceLock<MultiProgress> = OnceLock::new();
    SCREEN.get_or_init(|| {
        MultiProgress::with_draw_target(if interactive() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        })
    })
}

/// A line for the log above the bars: `tracing`'s writer
/// (`tracing_subscriber::fmt().with_writer(continual::progress::LogWriter::default)`), so that
/// log lines neither tear the bars nor get overdrawn. Plain stderr where bars are not drawn.
#[derive(Debug, Default)]
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let multi = screen();
        if multi.is_hidden() {
            let _ = std::io::stderr().lock().write_all(&self.0);
        } else {
            let text = String::from_utf8_lossy(&self.0);
            let _ = multi.println(text.trim_end_matches('\n'));
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .progress_chars("#>.")
}

fn suite_style() -> ProgressStyle {
    style("{prefix:<10} [{bar:20}] {wide_msg}")
}

fn run_style() -> ProgressStyle {
    style("{prefix:<34!} [{bar:20}] {wide_msg}")
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Time left for `left` of the work where `done` of it took `elapsed`, as `mm:ss` (`--:--`
/// before any progress).
fn eta(elapsed: Duration, done: f64, left: f64) -> String {
    if done <= 0.0 {
        return "--:--".into();
    }
    clock(elapsed.as_secs_f64() * left.max(0.0) / done)
}

/// The suite's counts, and the text of its bar.
#[derive(Debug, Clone)]
struct SuiteView {
    total: usize,
    done: usize,
    running: usize,
    started: Instant,
    /// Shares of runs done before this process started them (resumed runs, in runs): the bar
    /// counts them, the ETA's rate does not.
    skipped: Arc<Mutex<f64>>,
}

impl SuiteView {
    /// A run (resumed, or fresh at 0) first seen `base` of the way through.
    fn skip(&self, base: f64) {
        *self.skipped.lock().unwrap_or_else(|e| e.into_inner()) += base;
    }

    /// Share of the suite done, with the running runs `running_share` of one run further.
    fn fraction(&self, running_share: f64) -> f64 {
        ((self.done as f64 + running_share) / self.total.max(1) as f64).clamp(0.0, 1.0)
    }

    fn message(&self, fraction: f64) -> String {
        let left = self.total.saturating_sub(self.done + self.running);
        let elapsed = self.started.elapsed();
        let skipped = *self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        let done_here = fraction - skipped / self.total.max(1) as f64;
        format!(
            "{}/{} runs done, {} running, {left} left  elapsed {}  ETA {}",
            self.done,
            self.total,
            self.running,
            clock(elapsed.as_secs_f64()),
            eta(elapsed, done_here, 1.0 - fraction)
        )
    }

    /// Redraws `bar` at `running_share` of a run past the finished runs.
    fn draw(&self, bar: &ProgressBar, running_share: f64) {
        let f = self.fraction(running_share);
        bar.set_message(self.message(f));
        bar.set_position((f * (self.total as u64 * RUN) as f64) as u64);
    }
}

/// The suite bar: runs done, running and left, with an ETA from the share of the suite's steps
/// done. Drawn only where [`interactive`] (the suite's own `==` lines say what starts and ends).
#[derive(Debug)]
pub struct SuiteProgress {
    multi: MultiProgress,
    bar: ProgressBar,
    view: SuiteView,
    /// Where children's feeds go (`--jobs`), made on the first child.
    feeds: Option<PathBuf>,
    children: u64,
    /// The running children's shares done, in runs, as last polled (`--jobs`).
    share: f64,
}

impl SuiteProgress {
    /// A suite of `total` runs to do.
    pub fn new(total: usize) -> Self {
        Self::on(screen().clone(), total)
    }

    fn on(multi: MultiProgress, total: usize) -> Self {
        let bar = multi.add(
            ProgressBar::new(total as u64 * RUN)
                .with_style(suite_style())
                .with_prefix("suite"),
        );
        let s = Self {
            multi,
            bar,
            view: SuiteView {
                total,
                done: 0,
                running: 0,
                started: Instant::now(),
                skipped: Arc::default(),
            },
            feeds: None,
            children: 0,
            share: 0.0,
        };
        s.view.draw(&s.bar, 0.0);
        s
    }

    /// Whether the bars are drawn (else lines go plainly to stderr).
    pub fn shown(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// A run started.
    pub fn started(&mut self) {
        self.view.running += 1;
        self.view.draw(&self.bar, self.share);
    }

    /// A run ended (finished or failed).
    pub fn finished(&mut self) {
        self.view.running = self.view.running.saturating_sub(1);
        self.view.done += 1;
        self.view.draw(&self.bar, self.share);
    }

    /// Moves the suite bar by the running runs' shares done (their sum, in runs), as polled
    /// from [`ChildProgress::poll`] after the ended children were counted [`finished`].
    ///
    /// [`finished`]: SuiteProgress::finished
    pub fn running_share(&mut self, share: f64) {
        self.share = share;
        self.view.draw(&self.bar, share);
    }

    /// A line above the bars (plainly on stderr where they are not drawn).
    pub fn println(&self, line: &str) {
        if self.shown() {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// The run bar of the next run in this process, moving the suite bar as the run advances.
    pub fn run_progress(&self) -> Progress {
        Progress::on(
            self.multi.clone(),
            Some(SuiteLink {
                bar: self.bar.clone(),
                view: self.view.clone(),
                base: None,
            }),
        )
    }

    /// The bar of a run in a child process (`--jobs`), labelled `label` (method and seed).
    /// Where bars are drawn it has a feed file: set [`FEED_ENV`] to [`ChildProgress::feed`] in
    /// the child's environment and [`ChildProgress::poll`] it.
    pub fn child_progress(&mut self, label: &str) -> ChildProgress {
        let feed = if self.shown() {
            let dir = self.feeds.get_or_insert_with(|| {
                static SUITES: AtomicU64 = AtomicU64::new(0);
                let n = SUITES.fetch_add(1, Ordering::Relaxed);
                let name = format!("continual-progress-{}-{n}", std::process::id());
                std::env::temp_dir().join(name)
            });
            let _ = std::fs::create_dir_all(&*dir);
            self.children += 1;
            Some(dir.join(format!("{}.json", self.children)))
        } else {
            None
        };
        let bar = self.multi.add(
            ProgressBar::new(1)
                .with_style(run_style())
                .with_prefix(label.to_string())
                .with_message("starting"),
        );
        ChildProgress {
            multi: self.multi.clone(),
            bar,
            label: label.to_string(),
            feed,
            view: self.view.clone(),
            share: None,
        }
    }

    /// Removes the bars (at the end of the suite).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        self.multi.remove(&self.bar);
        if let Some(dir) = &self.feeds {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for SuiteProgress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.finish();
        }
    }
}

/// What a run bar shows; also what a child run feeds to the suite (`--jobs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    /// The stage: `task 3/4 map-b`, `eval after task 3/4`.
    pub prefix: String,
    /// Steps (or sets scored) done in the stage.
    pub pos: u64,
    /// Steps (or sets) in the stage.
    pub len: u64,
    /// `step 11/32  loss 1.234  ETA 00:07`, `sets scored 2/6  ETA 00:03`.
    pub message: String,
    /// The run's share done (tasks trained of the suite's tasks).
    pub run: f64,
}

impl RunLine {
    /// The plain line printed where bars are not drawn.
    fn log_line(&self) -> String {
        format!("{}  {}", self.prefix, self.message)
    }

    fn show(&self, bar: &ProgressBar, label: Option<&str>) {
        let prefix: Cow<'_, str> = match label {
            Some(l) => format!("{l} {}", self.prefix).into(),
            None => self.prefix.as_str().into(),
        };
        if bar.prefix() != prefix {
            bar.set_prefix(prefix.into_owned());
        }
        bar.set_length(self.len.max(1));
        bar.set_message(self.message.clone());
        bar.set_position(self.pos);
    }
}

/// What a run's [`Progress`] needs to move the suite bar.
#[derive(Debug)]
struct SuiteLink {
    bar: ProgressBar,
    view: SuiteView,
    /// The run's share done when first shown.
    base: Option<f64>,
}

/// Where a child run writes its [`RunLine`] (from [`FEED_ENV`]), and when it last did.
#[derive(Debug)]
struct Feed {
    path: PathBuf,
    last: Option<Instant>,
}

impl Feed {
    fn write(&mut self, line: &RunLine, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed() < FEED_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        // Written aside and renamed, so the suite never reads half a line.
        let tmp = self.path.with_extension("tmp");
        if let Ok(text) = serde_json::to_vec(line)
            && std::fs::write(&tmp, text).is_ok()
        {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

/// The run bar: a [`Plugin`] showing the stage, the step and the loss, then the evaluation's
/// sets scored. Where bars are not drawn it prints a line every 10% of a stage instead.
#[derive(Debug)]
pub struct Progress {
    multi: MultiProgress,
    bar: ProgressBar,
    suite: Option<SuiteLink>,
    feed: Option<Feed>,
    line: RunLine,
    /// Where the ETA's rate counts from: when and at what share of the stage. Training counts
    /// from its first step shown (a resumed run starts part-way, after loading), an evaluation
    /// from its start.
    stage_start: Option<(Instant, f64)>,
    last_decile: usize,
    /// Lines printed (where bars are not drawn).
    logged: usize,
}

impl Default for Progress {
    fn default() -> Self {
        Self::on(screen().clone(), None)
    }
}

impl Progress {
    fn on(multi: MultiProgress, suite: Option<SuiteLink>) -> Self {
        let bar = multi.add(ProgressBar::new(1).with_style(run_style()));
        Self {
            multi,
            bar,
            suite,
            feed: std::env::var_os(FEED_ENV).map(|p| Feed {
                path: PathBuf::from(p),
                last: None,
            }),
            line: RunLine::default(),
            stage_start: None,
            last_decile: usize::MAX,
            logged: 0,
        }
    }

    /// Whether the bar is drawn (else a line every 10%).
    pub fn shown(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// Shows `self.line`: on the bar and the suite bar (where drawn), in the feed (of a child
    /// run), else (with `log`) as a line every 10% of the stage.
    fn show(&mut self, log: bool) {
        let fraction = self.line.pos as f64 / self.line.len.max(1) as f64;
        let decile = (fraction * 10.0) as usize;
        if log && decile != self.last_decile && !self.shown() {
            eprintln!("{}", self.line.log_line());
            self.logged += 1;
        }
        if log {
            self.last_decile = decile;
        }
        if self.shown() {
            self.line.show(&self.bar, None);
            if let Some(s) = &mut self.suite {
                if s.base.is_none() {
                    s.base = Some(self.line.run);
                    s.view.skip(self.line.run);
                }
                s.view.draw(&s.bar, self.line.run);
            }
        }
        if let Some(feed) = &mut self.feed {
            feed.write(&self.line, fraction >= 1.0);
        }
    }

    fn restart(&mut self) {
        self.stage_start = None;
        self.last_decile = usize::MAX;
    }

    /// The stage's ETA at `fraction` of it done.
    fn stage_eta(&mut self, fraction: f64) -> String {
        let (start, base) = *self.stage_start.get_or_insert((Instant::now(), fraction));
        eta(start.elapsed(), fraction - base, 1.0 - fraction)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        self.multi.remove(&self.bar);
    }
}

impl Plugin for Progress {
    fn before_training_exp(&mut self, _ctx: &HookContext<'_>) {
        self.restart();
    }
    fn after_update(&mut self, ctx: &HookContext<'_>, step: &StepRecord) {
        let (i, n) = (ctx.step_in_task, ctx.steps_in_task);
        let f = i as f64 / n.max(1) as f64;
        let eta = self.stage_eta(f);
        self.line = RunLine {
            prefix: format!("task {}/{} {}", ctx.task + 1, ctx.num_tasks, ctx.task_name),
            pos: i as u64,
            len: n as u64,
            message: format!("step {i}/{n}  loss {:.3}  ETA {eta}", step.loss),
            run: ((ctx.task as f64 + f.min(1.0)) / ctx.num_tasks.max(1) as f64).min(1.0),
        };
        self.show(true);
    }
    fn before_eval(&mut self, ctx: &HookContext<'_>, stage: usize) {
        self.restart();
        // An evaluation always starts from its first set.
        self.stage_start = Some((Instant::now(), 0.0));
        self.line = RunLine {
            prefix: if stage == 0 {
                "eval before training".into()
            } else {
                format!("eval after task {stage}/{}", ctx.num_tasks)
            },
            pos: 0,
            len: 1,
            message: "scoring".into(),
            run: stage as f64 / ctx.num_tasks.max(1) as f64,
        };
        // On the bars at once; in the log from the first set scored.
        self.show(false);
    }
    fn eval_progress(&mut self, done: usize, total: usize) {
        let eta = self.stage_eta(done as f64 / total.max(1) as f64);
        self.line.pos = done as u64;
        self.line.len = total as u64;
        self.line.message = format!("sets scored {done}/{total}  ETA {eta}");
        self.show(true);
    }
    fn after_eval(
        &mut self,
        _ctx: &HookContext<'_>,
        stage: usize,
        scores: &[f64],
        _probes: &[f64],
    ) {
        let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
        let rounded: Vec<f64> = scores
            .iter()
            .map(|s| (s * 1000.0).round() / 1000.0)
            .collect();
        let text = format!("stage {stage}: mean score {mean:.3} {rounded:?}");
        if self.shown() {
            let _ = self.multi.println(text);
        } else {
            tracing::info!("{text}");
        }
    }
}

/// The bar of a run in a child process (`--jobs`), fed by the child's [`Progress`] through a
/// file (see [`SuiteProgress::child_progress`]).
#[derive(Debug)]
pub struct ChildProgress {
    multi: MultiProgress,
    bar: ProgressBar,
    label: String,
    feed: Option<PathBuf>,
    view: SuiteView,
    /// The run's share done (`None` before the child's first line).
    share: Option<f64>,
}

impl ChildProgress {
    /// The file the child writes its run line to (the value of [`FEED_ENV`] in its
    /// environment); `None` where bars are not drawn.
    pub fn feed(&self) -> Option<&Path> {
        self.feed.as_deref()
    }

    /// Reads the child's latest run line onto the bar; returns the run's share done.
    pub fn poll(&mut self) -> f64 {
        let line = self
            .feed
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|t| serde_json::from_slice::<RunLine>(&t).ok());
        if let Some(line) = line {
            line.show(&self.bar, Some(&self.label));
            if self.share.is_none() {
                // Where the run starts (part-way when resumed).
                self.view.skip(line.run);
            }
            self.share = Some(line.run);
        } else {
            self.bar.tick();
        }
        self.share.unwrap_or(0.0)
    }
}

impl Drop for ChildProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        self.multi.remove(&self.bar);
        if let Some(p) = &self.feed {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use indicatif::TermLike;

    use super::*;

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        fn text(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            110
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            let mut t = self.0.lock().unwrap();
            t.push_str(s);
            t.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn terminal() -> (MultiProgress, Screen) {
        let screen = Screen::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        (multi, screen)
    }

    fn hidden() -> MultiProgress {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }

    fn ctx(task: usize, step_in_task: usize) -> HookContext<'static> {
        HookContext {
            task,
            task_name: "map-b",
            num_tasks: 4,
            step: 0,
            step_in_task,
            steps_in_task: 32,
        }
    }

    fn step(loss: f64) -> StepRecord {
        StepRecord {
            task: 0,
            step: 0,
            lr: 1e-4,
            loss,
            sft: loss,
            kl: None,
            ntp: None,
            grad_norm: 1.0,
            replayed: 0,
            tokens: 0,
        }
    }

    #[test]
    fn clocks_show_minutes_and_hours_and_eta_waits_for_progress() {
        assert_eq!(clock(65.0), "01:05");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(eta(Duration::from_secs(10), 0.0, 1.0), "--:--");
        assert_eq!(eta(Duration::from_secs(10), 0.25, 0.75), "00:30");
        // A resumed run: 0.1 done in this process's 10 s, 0.2 left.
        assert_eq!(eta(Duration::from_secs(10), 0.1, 0.2), "00:20");
        assert_eq!(eta(Duration::from_secs(10), 1.0, 0.0), "00:00");
    }

    #[test]
    fn bars_only_on_a_terminal_outside_ci() {
        assert!(wants_bars(true, false));
        assert!(!wants_bars(true, true));
        assert!(!wants_bars(false, false));
    }

    #[test]
    fn on_a_terminal_the_suite_and_run_bars_show_counts_step_and_loss() {
        let (multi, screen) = terminal();
        let mut suite = SuiteProgress::on(multi, 3);
        assert!(suite.shown());
        suite.started();
        let mut run = suite.run_progress();
        assert!(run.shown());
        run.before_eval(&ctx(0, 0), 0);
        assert!(screen.text().contains("eval before training"));
        run.before_training_exp(&ctx(2, 0));
        run.after_update(&ctx(2, 11), &step(1.2345));
        let text = screen.text();
        assert!(text.contains("0/3 runs done, 1 running, 2 left"), "{text}");
        assert!(text.contains("task 3/4 map-b"), "{text}");
        assert!(text.contains("step 11/32  loss 1.234  ETA"), "{text}");
        // The run is 2.34 of 4 tasks in: the suite bar moves by that share of one run.
        assert_eq!(suite.bar.position(), (2.34375 / 4.0 / 3.0 * 3000.0) as u64);
        run.before_eval(&ctx(2, 32), 3);
        run.eval_progress(2, 6);
        let text = screen.text();
        assert!(text.contains("eval after task 3/4"), "{text}");
        assert!(text.contains("sets scored 2/6"), "{text}");
        suite.println("== a line above the bars");
        assert!(screen.text().contains("== a line above the bars\n"));
        drop(run);
        suite.finished();
        assert!(screen.text().contains("1/3 runs done, 0 running, 2 left"));
        suite.finish();
    }

    #[test]
    fn a_resumed_run_fills_the_suite_bar_but_not_the_eta_rate() {
        let (multi, screen) = terminal();
        let mut suite = SuiteProgress::on(multi, 1);
        suite.started();
        let mut run = suite.run_progress();
        // First seen half-way (task 3 of 4, step 0 of 32): the bar is at half, and nothing is
        // done in this process yet, so there is no ETA.
        run.after_update(&ctx(2, 0), &step(0.5));
        assert_eq!(suite.bar.position(), 500);
        let text = screen.text();
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains("runs done"))
            .unwrap();
        assert!(last.contains("ETA --:--"), "{last}");
        assert!(text.contains("step 0/32  loss 0.500  ETA --:--"), "{text}");
        run.after_update(&ctx(2, 16), &step(0.5));
        assert_eq!(suite.bar.position(), 625);
        assert!(!screen.text().contains("step 16/32  loss 0.500  ETA --:--"));
    }

    #[test]
    fn off_a_terminal_bars_are_hidden_and_a_line_is_printed_every_tenth() {
        let mut suite = SuiteProgress::on(hidden(), 2);
        assert!(!suite.shown());
        suite.started();
        let mut run = suite.run_progress();
        assert!(!run.shown());
        run.before_training_exp(&ctx(0, 0));
        for i in 1..=32 {
            run.after_update(&ctx(0, i), &step(0.5));
        }
        // Steps 1-3 are in the first tenth, 32 is the eleventh line (100%).
        assert_eq!(run.logged, 11);
        assert_eq!(
            run.line.log_line(),
            "task 1/4 map-b  step 32/32  loss 0.500  ETA 00:00"
        );
        run.before_eval(&ctx(0, 32), 1);
        for done in 1..=6 {
            run.eval_progress(done, 6);
        }
        assert_eq!(run.logged, 11 + 6);
        assert_eq!(
            run.line.log_line(),
            "eval after task 1/4  sets scored 6/6  ETA 00:00"
        );
        // A child has no feed where bars are hidden.
        assert!(suite.child_progress("mssr/0").feed().is_none());
    }

    #[test]
    fn a_child_run_feeds_its_line_to_the_suite_bars() {
        let (multi, screen) = terminal();
        let mut suite = SuiteProgress::on(multi, 2);
        let mut child = suite.child_progress("mssr/0");
        let path = child.feed().expect("a feed on a terminal").to_path_buf();
        assert_eq!(child.poll(), 0.0);
        let mut feed = Feed {
            path: path.clone(),
            last: None,
        };
        let line = RunLine {
            prefix: "task 2/4 map-b".into(),
            pos: 8,
            len: 32,
            message: "step 8/32  loss 0.750  ETA 00:09".into(),
            run: 0.3125,
        };
        feed.write(&line, false);
        assert_eq!(child.poll(), 0.3125);
        suite.running_share(0.3125);
        let text = screen.text();
        assert!(text.contains("mssr/0 task 2/4 map-b"), "{text}");
        assert!(text.contains("loss 0.750"), "{text}");
        // Within FEED_EVERY a write is skipped unless forced (the stage's end).
        let later = RunLine {
            pos: 9,
            ..line.clone()
        };
        feed.write(&later, false);
        assert_eq!(
            serde_json::from_slice::<RunLine>(&std::fs::read(&path).unwrap()).unwrap(),
            line
        );
        feed.write(&later, true);
        assert_eq!(
            serde_json::from_slice::<RunLine>(&std::fs::read(&path).unwrap()).unwrap(),
            later
        );
        drop(child);
        assert!(!path.exists(), "the feed is removed with its bar");
        suite.finish();
    }
}
