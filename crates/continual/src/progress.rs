//! Progress a person can watch: a suite line (runs done, running and left, with an ETA) above
//! a run line (stage and step with the current loss; during an evaluation, the sets scored),
//! both redrawn in place on the terminal.
//!
//! ```text
//! suite      [########............]  2/4 runs done, 1 running, 1 left  elapsed 01:10  ETA 01:05
//! task 3/4 map-b          [######..............]  step 11/32  loss 1.234  ETA 00:07
//! ```
//!
//! Lines are drawn only on a terminal outside CI (stderr is a terminal and `CI` is unset).
//! Otherwise [`Progress`] prints a plain line every 10% of a stage or an evaluation, so that
//! logs and `console.log` files stay readable.
//!
//! Not `indicatif`: it turns on `portable-atomic`'s `fallback` feature, which Burn's own
//! dependencies (`spin`, `cubecl-common`) share, so adding it rebuilds all of Burn once for every
//! build directory. The two lines here need a cursor-up and a line clear, no more.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use crate::{HookContext, Plugin, StepRecord};

/// Whether lines are redrawn: stderr is a terminal and the `CI` variable is unset.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// The terminal's bottom lines: the suite line and the run line, and how many are drawn.
struct Screen {
    suite: Option<String>,
    run: Option<String>,
    drawn: usize,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    suite: None,
    run: None,
    drawn: 0,
});

impl Screen {
    /// Clears the drawn lines, prints `above` (if any) and draws the lines again.
    fn redraw(&mut self, above: Option<&str>) {
        let mut out = String::new();
        if self.drawn > 0 {
            // Up to the first drawn line, clearing each.
            out.push_str("\r\x1b[2K");
            for _ in 1..self.drawn {
                out.push_str("\x1b[1A\x1b[2K");
            }
        }
        if let Some(line) = above {
            out.push_str(line);
            out.push('\n');
        }
        let lines: Vec<&String> = [&self.suite, &self.run].into_iter().flatten().collect();
        let width = terminal_width();
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            // Never wrap: a wrapped line would break the cursor arithmetic.
            out.extend(l.chars().take(width.saturating_sub(1)));
        }
        self.drawn = lines.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

fn screen() -> std::sync::MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(|e| e.into_inner())
}

fn bar(fraction: f64) -> String {
    let n = (fraction.clamp(0.0, 1.0) * 20.0).round() as usize;
    format!("[{}{}]", "#".repeat(n), ".".repeat(20 - n))
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Time left at `fraction` done after `start`, as `mm:ss` (`--:--` before any progress).
fn eta(start: Instant, fraction: f64) -> String {
    if fraction <= 0.0 {
        return "--:--".into();
    }
    clock(start.elapsed().as_secs_f64() * (1.0 - fraction) / fraction)
}

/// The suite line: runs done, running and left, with an ETA from the share of the suite's
/// steps done. Drawn only where [`interactive`] (the suite's own `==` lines say what starts and
/// ends).
#[derive(Debug)]
pub struct SuiteProgress {
    shown: bool,
    total: usize,
    done: usize,
    running: usize,
    started: Instant,
}

impl SuiteProgress {
    /// A suite of `total` runs to do.
    pub fn new(total: usize) -> Self {
        let s = Self {
            shown: interactive(),
            total,
            done: 0,
            running: 0,
            started: Instant::now(),
        };
        s.draw(0.0);
        s
    }

    /// The suite line with the running runs `running_fraction` of one run further.
    fn draw(&self, running_fraction: f64) {
        if !self.shown {
            return;
        }
        let f = (self.done as f64 + running_fraction) / self.total.max(1) as f64;
        let left = self.total - self.done - self.running;
        let line = format!(
            "suite      {}  {}/{} runs done, {} running, {left} left  elapsed {}  ETA {}",
            bar(f),
            self.done,
            self.total,
            self.running,
            clock(self.started.elapsed().as_secs_f64()),
            eta(self.started, f)
        );
        let mut s = screen();
        s.suite = Some(line);
        s.redraw(None);
    }

    /// A run started.
    pub fn started(&mut self) {
        self.running += 1;
        self.draw(0.0);
    }

    /// A run ended (finished or failed).
    pub fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.done += 1;
        screen().run = None;
        self.draw(0.0);
    }

    /// A line above the progress lines (plainly on stderr where they are not drawn).
    pub fn println(&self, line: &str) {
        if self.shown {
            screen().redraw(Some(line));
        } else {
            eprintln!("{line}");
        }
    }

    /// The run line of the next run, moving the suite line as the run advances.
    pub fn run_progress(&self) -> Progress {
        Progress::with_suite(Some(SuiteView {
            total: self.total,
            done: self.done,
            running: self.running,
            started: self.started,
        }))
    }

    /// Removes the progress lines (at the end of the suite).
    pub fn finish(&self) {
        if self.shown {
            let mut s = screen();
            s.suite = None;
            s.run = None;
            s.redraw(None);
        }
    }
}

/// What a run's [`Progress`] needs to redraw the suite line.
#[derive(Debug, Clone, Copy)]
struct SuiteView {
    total: usize,
    done: usize,
    running: usize,
    started: Instant,
}

/// The run line: a [`Plugin`] showing the stage, the step and the loss, then the evaluation's
/// sets scored. Where [`interactive`] is false it prints a line every 10% instead.
#[derive(Debug)]
pub struct Progress {
    shown: bool,
    suite: Option<SuiteView>,
    stage_start: Instant,
    last_decile: usize,
}

impl Default for Progress {
    fn default() -> Self {
        Self::with_suite(None)
    }
}

impl Progress {
    fn with_suite(suite: Option<SuiteView>) -> Self {
        Self {
            shown: interactive(),
            suite,
            stage_start: Instant::now(),
            last_decile: usize::MAX,
        }
    }

    /// Redraws the run line (where shown), or prints `text` every 10% (where not).
    fn show(&mut self, fraction: f64, text: String) {
        let decile = (fraction * 10.0) as usize;
        if self.shown {
            let mut s = screen();
            s.run = Some(text);
            s.redraw(None);
        } else if decile != self.last_decile {
            eprintln!("{text}");
        }
        self.last_decile = decile;
    }

    fn restart(&mut self) {
        self.stage_start = Instant::now();
        self.last_decile = usize::MAX;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.shown && self.suite.is_none() {
            let mut s = screen();
            s.run = None;
            s.redraw(None);
        }
    }
}

impl Plugin for Progress {
    fn before_training_exp(&mut self, _ctx: &HookContext<'_>) {
        self.restart();
    }
    fn after_update(&mut self, ctx: &HookContext<'_>, step: &StepRecord) {
        let f = ctx.step_in_task as f64 / ctx.steps_in_task.max(1) as f64;
        if let Some(v) = self.suite
            && self.shown
        {
            // The run's share of its steps moves the suite line.
            let run_f = (ctx.task as f64 + f) / ctx.num_tasks.max(1) as f64;
            let suite = SuiteProgress {
                shown: true,
                total: v.total,
                done: v.done,
                running: v.running,
                started: v.started,
            };
            suite.draw(run_f);
        }
        let text = format!(
            "task {}/{} {:<14} {}  step {}/{}  loss {:.3}  ETA {}",
            ctx.task + 1,
            ctx.num_tasks,
            ctx.task_name,
            bar(f),
            ctx.step_in_task,
            ctx.steps_in_task,
            step.loss,
            eta(self.stage_start, f)
        );
        self.show(f, text);
    }
    fn before_eval(&mut self, _ctx: &HookContext<'_>, _stage: usize) {
        self.restart();
    }
    fn eval_progress(&mut self, done: usize, total: usize) {
        let f = done as f64 / total.max(1) as f64;
        let text = format!(
            "evaluation {}  sets scored {done}/{total}  ETA {}",
            bar(f),
            eta(self.stage_start, f)
        );
        self.show(f, text);
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
        if self.shown {
            screen().redraw(Some(&format!(
                "stage {stage}: mean score {mean:.3} {rounded:?}"
            )));
        } else {
            tracing::info!("stage {stage}: mean score {mean:.3} {rounded:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_by_twentieths_and_clocks_show_minutes_and_hours() {
        assert_eq!(bar(0.0), format!("[{}]", ".".repeat(20)));
        assert_eq!(bar(0.5), format!("[{}{}]", "#".repeat(10), ".".repeat(10)));
        assert_eq!(bar(1.5), format!("[{}]", "#".repeat(20)));
        assert_eq!(clock(65.0), "01:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
