//! What a run did, as it happens: the process-wide recorder that the stages tell of each
//! phase, each chunk exported and loaded, each object rebuilt and each retry. It costs one
//! short lock per chunk, never per row. [`super::finish`] writes it into `report.json`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The phases of a run, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Plan,
    /// `migrate`: readers, encoders and COPY writers at once.
    ExportAndLoad,
    Export,
    Load,
    KeysAndIndexes,
    ForeignKeys,
    Sequences,
    Analyze,
    Verify,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::ExportAndLoad => "export+load",
            Phase::Export => "export",
            Phase::Load => "load",
            Phase::KeysAndIndexes => "keys and indexes",
            Phase::ForeignKeys => "foreign keys",
            Phase::Sequences => "sequences",
            Phase::Analyze => "analyze",
            Phase::Verify => "verify",
        }
    }
}

/// A stretch of time, in seconds since the run began.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start_s: f64,
    pub end_s: f64,
}

impl Span {
    pub fn seconds(&self) -> f64 {
        (self.end_s - self.start_s).max(0.0)
    }

    fn widen(this: &mut Option<Span>, span: Span) {
        *this = Some(match *this {
            None => span,
            Some(s) => Span {
                start_s: s.start_s.min(span.start_s),
                end_s: s.end_s.max(span.end_s),
            },
        });
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    #[serde(flatten)]
    pub span: Span,
}

/// One table's part of a run. Spans run from its first chunk's start to its last's end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableRecord {
    /// Loaded (COPY committed).
    pub rows: u64,
    pub bytes: u64,
    pub chunks: u64,
    /// Written into chunk files (by `export`, or the export half of `migrate`).
    #[serde(default)]
    pub exported_rows: u64,
    #[serde(default)]
    pub exported_bytes: u64,
    pub export: Option<Span>,
    pub load: Option<Span>,
    /// Its keys, constraints and indexes built again.
    pub rebuild: Option<Span>,
    /// Its foreign keys added back and validated.
    pub foreign_keys: Option<Span>,
    /// Its statistics taken (ANALYZE).
    #[serde(default)]
    pub analyze: Option<Span>,
    pub retries: u64,
    /// Rows the planner expected (the source's statistics), for projections.
    pub planned_rows: Option<u64>,
}

/// Rows and bytes loaded by a moment of the run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Target table (`schema.table`, unquoted) → the plan's table name: the rebuild knows
    /// only the target's.
    names: BTreeMap<String, String>,
    phases: Vec<PhaseRecord>,
    tables: BTreeMap<String, TableRecord>,
    samples: Vec<Sample>,
    loaded_rows: u64,
    loaded_bytes: u64,
    exported_rows: u64,
    exported_bytes: u64,
    retries: u64,
}

impl Inner {
    /// The record of the plan's table whose target is `table` (the rebuild knows only the
    /// target's name).
    fn of_target(&mut self, table: &str) -> &mut TableRecord {
        let name = self.names.get(&unquoted(table)).cloned();
        let name = name.unwrap_or_else(|| table.to_string());
        self.tables.entry(name).or_default()
    }
}

/// One table's progress, for the bars.
pub struct TableProgress {
    pub name: String,
    /// Moved: loaded, or exported when nothing loads in this run.
    pub rows: u64,
    pub bytes: u64,
    pub planned: Option<u64>,
    /// Seconds since a chunk of it last finished (infinite if none did).
    pub idle_s: f64,
}

pub struct Recorder {
    pub run_id: String,
    pub started: Instant,
    pub started_at: SystemTime,
    inner: Mutex<Inner>,
}

pub fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let started_at = SystemTime::now();
        Recorder {
            run_id: new_run_id(started_at),
            started: Instant::now(),
            started_at,
            inner: Mutex::new(Inner::default()),
        }
    })
}

/// `20261201T105032Z-3fa9`: when, and enough of a hash of the process to tell two runs of
/// one second apart.
fn new_run_id(at: SystemTime) -> String {
    let stamp = super::utc(at).replace(['-', ':'], "");
    let stamp = stamp.split('.').next().unwrap_or_default().to_string() + "Z";
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let seed = format!("{nanos}/{}/{host}", std::process::id());
    format!(
        "{stamp}-{:04x}",
        xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) & 0xffff
    )
}

impl Recorder {
    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn since(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// From `started` until now.
    fn span_since(&self, started: Instant) -> Span {
        Span {
            start_s: self.since(started),
            end_s: self.now_s(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    pub(super) fn phases(&self) -> Vec<PhaseRecord> {
        self.with(|i| i.phases.clone())
    }

    pub(super) fn tables(&self) -> BTreeMap<String, TableRecord> {
        self.with(|i| i.tables.clone())
    }

    pub(super) fn samples(&self) -> Vec<Sample> {
        self.with(|i| i.samples.clone())
    }

    pub(super) fn retries(&self) -> u64 {
        self.with(|i| i.retries)
    }

    /// Rows and bytes moved so far: loaded, or exported when nothing loads (for progress).
    pub fn moved(&self) -> (u64, u64) {
        self.with(|i| match i.loaded_rows {
            0 => (i.exported_rows, i.exported_bytes),
            _ => (i.loaded_rows, i.loaded_bytes),
        })
    }

    /// The phase under way (the last one begun and not ended).
    pub fn current_phase(&self) -> Option<Phase> {
        self.with(|i| {
            i.phases
                .iter()
                .rev()
                .find(|p| p.span.end_s.is_nan())
                .map(|p| p.phase)
        })
    }

    /// Every table's progress (for the bars).
    pub fn table_progress(&self) -> Vec<TableProgress> {
        let now = self.now_s();
        self.with(|i| {
            let loading = i.loaded_rows > 0;
            i.tables
                .iter()
                .map(|(name, t)| {
                    let (rows, bytes, last) = match loading {
                        true => (t.rows, t.bytes, t.load),
                        false => (t.exported_rows, t.exported_bytes, t.export),
                    };
                    TableProgress {
                        name: name.clone(),
                        rows,
                        bytes,
                        planned: t.planned_rows,
                        idle_s: last.map_or(f64::INFINITY, |s| now - s.end_s),
                    }
                })
                .collect()
        })
    }
}

/// Marks the phase begun; it ends when the returned guard is dropped (an early return or a
/// failure ends it too).
#[must_use = "the phase ends when this is dropped"]
pub struct PhaseGuard {
    index: usize,
    logged: bool,
}

pub fn phase(phase: Phase) -> PhaseGuard {
    tracing::info!(phase = phase.label(), "Phase begun.");
    PhaseGuard {
        index: open(phase),
        logged: true,
    }
}

/// The rebuild, as the progress bars show it while it runs; [`rebuild_phases`] records
/// and logs what it was.
pub fn rebuild_under_way() -> PhaseGuard {
    PhaseGuard {
        index: open(Phase::KeysAndIndexes),
        logged: false,
    }
}

fn open(phase: Phase) -> usize {
    let r = recorder();
    let start_s = r.now_s();
    r.with(|i| {
        i.phases.push(PhaseRecord {
            phase,
            span: Span {
                start_s,
                end_s: f64::NAN,
            },
        });
        i.phases.len() - 1
    })
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        let r = recorder();
        let end_s = r.now_s();
        let (phase, seconds) = r.with(|i| {
            let record = &mut i.phases[self.index];
            record.span.end_s = end_s;
            (record.phase, record.span.seconds())
        });
        if !self.logged {
            return;
        }
        tracing::info!(
            phase = phase.label(),
            seconds = (seconds * 1000.0).round() / 1000.0,
            "Phase ended."
        );
    }
}

/// The plan's tables: name, target table (`"schema"."table"`) and the rows expected.
pub fn planned(tables: impl IntoIterator<Item = (String, String, u64)>) {
    recorder().with(|i| {
        for (name, target, rows) in tables {
            i.names.insert(unquoted(&target), name.clone());
            i.tables.entry(name).or_default().planned_rows = Some(rows);
        }
    })
}

/// `"schema"."table"` or `schema.table` as `schema.table`. (An identifier holding `"` or
/// `.` itself could be misread; it only names a bar in the report.)
fn unquoted(qualified: &str) -> String {
    qualified.replace('"', "")
}

/// A chunk file of `table` finished: read since `started`, converted and written.
pub fn exported(table: &str, rows: u64, bytes: u64, started: Instant) {
    let r = recorder();
    let span = r.span_since(started);
    r.with(|i| {
        let t = i.tables.entry(table.to_string()).or_default();
        t.exported_rows += rows;
        t.exported_bytes += bytes;
        Span::widen(&mut t.export, span);
        i.exported_rows += rows;
        i.exported_bytes += bytes;
    })
}

/// A chunk of `table` loaded (COPY and ledger mark committed), begun at `started`.
pub fn loaded(table: &str, chunk: u32, rows: u64, bytes: u64, started: Instant) {
    let r = recorder();
    let span = r.span_since(started);
    tracing::info!(
        table,
        chunk,
        rows,
        bytes,
        ms = (span.seconds() * 1000.0) as u64,
        "Chunk loaded."
    );
    r.with(|i| {
        let t = i.tables.entry(table.to_string()).or_default();
        t.rows += rows;
        t.bytes += bytes;
        t.chunks += 1;
        Span::widen(&mut t.load, span);
        i.loaded_rows += rows;
        i.loaded_bytes += bytes;
        let (rows, bytes) = (i.loaded_rows, i.loaded_bytes);
        i.samples.push(Sample {
            t_s: span.end_s,
            rows,
            bytes,
        });
    })
}

/// An object of `table` put back, begun at `started`; `foreign` for a foreign key.
pub fn rebuilt(table: &str, foreign: bool, started: Instant) {
    let r = recorder();
    let span = r.span_since(started);
    r.with(|i| {
        let t = i.of_target(table);
        Span::widen(
            if foreign {
                &mut t.foreign_keys
            } else {
                &mut t.rebuild
            },
            span,
        );
    })
}

/// `table` (as the target names it) analyzed, begun at `started`.
pub fn analyzed(table: &str, started: Instant) {
    let r = recorder();
    let span = r.span_since(started);
    r.with(|i| {
        Span::widen(&mut i.of_target(table).analyze, span);
    })
}

/// A try that failed and is made again, for `table` when it is known.
pub fn retried(table: Option<&str>) {
    recorder().with(|i| {
        i.retries += 1;
        if let Some(table) = table {
            i.tables.entry(table.to_string()).or_default().retries += 1;
        }
    })
}

/// The rebuild's phases, from what its tasks' spans say (one pool builds keys, adds foreign
/// keys as soon as both their tables are keyed, and analyzes tables once keyed): keys and
/// indexes from `began` to the last of them, foreign keys and ANALYZE from their first to
/// their last.
pub fn rebuild_phases(began: Instant, under_way: PhaseGuard) {
    let r = recorder();
    let start_s = r.since(began);
    let index = under_way.index;
    drop(under_way);
    r.with(|i| {
        let (mut keys, mut foreign, mut analyze) = (None, None, None);
        for t in i.tables.values() {
            if let Some(s) = t.analyze.filter(|s| s.end_s >= start_s) {
                Span::widen(&mut analyze, s);
            }
            if let Some(s) = t.rebuild.filter(|s| s.end_s >= start_s) {
                Span::widen(&mut keys, s);
            }
            if let Some(s) = t.foreign_keys.filter(|s| s.end_s >= start_s) {
                Span::widen(&mut foreign, s);
            }
        }
        // The record the bars showed becomes the keys' phase (in place: other guards hold
        // their records' places), and the foreign keys' follows.
        let whole = i.phases[index].span;
        let keys = keys.map_or(whole, |s| Span { start_s, ..s });
        i.phases[index].span = keys;
        let mut ended = vec![(Phase::KeysAndIndexes, keys)];
        if let Some(span) = foreign {
            i.phases.push(PhaseRecord {
                phase: Phase::ForeignKeys,
                span,
            });
            ended.push((Phase::ForeignKeys, span));
        }
        if let Some(span) = analyze {
            i.phases.push(PhaseRecord {
                phase: Phase::Analyze,
                span,
            });
            ended.push((Phase::Analyze, span));
        }
        for (phase, span) in ended {
            tracing::info!(
                phase = phase.label(),
                seconds = (span.seconds() * 1000.0).round() / 1000.0,
                "Phase ended."
            );
        }
    })
}
