//! Progress bars on a terminal: an overall bar (the phase, rows of the planned total, MiB,
//! rate, time left) and a line per table being moved. Drawn by a thread of their own from
//! the recorder's counters four times a second, so the pipeline never waits for them.
//! Log lines and the commands' output are written above the bars, which are cleared at the
//! end. None under `--quiet` or when stderr is not a terminal.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::report;

/// The bars of this process, once drawn.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Runs `write` with the bars lifted, so that its lines go above them.
pub fn suspend<T>(write: impl FnOnce() -> T) -> T {
    match BARS.get() {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

/// The drawing thread; the bars are cleared when it is dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start() -> Progress {
        let bars =
            BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, bars) = (stop.clone(), bars.clone());
            std::thread::Builder::new()
                .name("pgclipper-progress".into())
                .spawn(move || draw(&bars, &stop))
                .ok()
        };
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Tables drawn at most, besides the overall bar.
const TABLE_LINES: usize = 8;

fn draw(bars: &MultiProgress, stop: &AtomicBool) {
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ")
    };
    let bar_style = style("{prefix:>16} [{bar:32}] {percent:>3}% {msg}");
    let mut overall: Option<ProgressBar> = None;
    let mut lines: HashMap<String, (ProgressBar, Rate)> = HashMap::new();
    let mut rate = Rate::default();
    while !stop.load(Ordering::Relaxed) {
        let r = report::recorder();
        // Nothing is drawn before the first phase: a question may be waiting for an answer.
        let Some(phase) = r.current_phase().map(|p| p.label()) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let overall = overall.get_or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(1));
            bar.set_style(bar_style.clone());
            bar
        });
        let tables = r.table_progress();
        let planned: u64 = tables.iter().filter_map(|t| t.planned).sum();
        let (rows, bytes) = r.moved();
        let per_second = rate.update(rows);
        overall.set_length(planned.max(rows).max(1));
        overall.set_position(rows);
        overall.set_prefix(phase.to_string());
        overall.set_message(progress_text(rows, planned, bytes, per_second));
        // A line per table that moved rows in the last three seconds.
        let active: Vec<_> = tables
            .iter()
            .filter(|t| t.idle_s < 3.0)
            .take(TABLE_LINES)
            .collect();
        lines.retain(|name, (bar, _)| {
            let keep = active.iter().any(|t| &t.name == name);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        for t in active {
            let (bar, rate) = lines.entry(t.name.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(1));
                bar.set_style(bar_style.clone());
                bar.set_prefix(ellipsis(&t.name, 16));
                (bar, Rate::default())
            });
            let planned = t.planned.unwrap_or(0);
            bar.set_length(planned.max(t.rows).max(1));
            bar.set_position(t.rows);
            bar.set_message(progress_text(t.rows, planned, t.bytes, rate.update(t.rows)));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for bar in lines.values().map(|(bar, _)| bar).chain(overall.as_ref()) {
        bar.finish_and_clear();
    }
    let _ = bars.clear();
}

/// `5129 of ~212089 rows, 1 MiB, 73198 rows/s, 2.8 s left`.
fn progress_text(rows: u64, planned: u64, bytes: u64, per_second: Option<f64>) -> String {
    let left = planned.saturating_sub(rows) as f64;
    let eta = match per_second {
        Some(r) if r > 0.0 && left > 0.0 => {
            format!(", {} left", report::render::duration(left / r))
        }
        _ => String::new(),
    };
    format!(
        "{rows} of ~{planned} rows, {:.0} MiB, {:.0} rows/s{eta}",
        bytes as f64 / 1048576.0,
        per_second.unwrap_or(0.0)
    )
}

/// Rows per second over the last five seconds.
#[derive(Default)]
struct Rate {
    seen: std::collections::VecDeque<(Instant, u64)>,
}

impl Rate {
    fn update(&mut self, rows: u64) -> Option<f64> {
        let now = Instant::now();
        self.seen.push_back((now, rows));
        while self
            .seen
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > Duration::from_secs(5))
        {
            self.seen.pop_front();
        }
        let (first, before) = *self.seen.front()?;
        let seconds = now.duration_since(first).as_secs_f64();
        (seconds >= 1.0).then(|| (rows - before) as f64 / seconds)
    }
}

fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// Log lines for tracing, written above the bars.
#[derive(Clone, Copy)]
pub struct AboveBars;

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One log line, written when tracing is done with it.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        suspend(|| {
            let _ = std::io::stderr().write_all(&line);
        });
    }
}
