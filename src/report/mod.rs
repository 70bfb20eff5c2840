//! The rehearsal's record. Every `migrate`, `export`, `import` and `verify` appends one
//! attempt to `report.json` in its workdir, whether it completed, failed or was
//! interrupted: its run id (also on every JSON log line and on the ledger's rows), phases,
//! per-table rows, bytes, chunks, spans and retries, rows loaded over time, its settings,
//! both servers' versions, the machine, and what `verify` found. [`render`] turns the
//! attempts into `report.md` and `report.html` (`pgclipper report`).

pub mod record;
pub mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use record::{
    exported, loaded, phase, planned, rebuilt, recorder, retried, Phase, PhaseRecord, Sample, Span,
    TableRecord,
};

use crate::error::{Error, Result};
use crate::workdir;

pub const REPORT_FILE: &str = "report.json";
const FORMAT: &str = "pgclipper-report/1";

/// `report.json`: the attempts of every run on the workdir, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportFile {
    pub format: String,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub run_id: String,
    pub command: String,
    pub plan_id: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    /// `completed`, `differences` (verify found some), `failed` or `interrupted`.
    pub outcome: String,
    pub exit_code: u8,
    pub error: Option<String>,
    pub settings: serde_json::Value,
    pub servers: Servers,
    /// The whole source database's rows by its own statistics (InnoDB's estimates), for
    /// projecting a rehearsal on a subset to the production size.
    #[serde(default)]
    pub source_rows_estimate: Option<u64>,
    pub machine: Machine,
    pub phases: Vec<PhaseRecord>,
    pub tables: BTreeMap<String, TableRecord>,
    /// Rows and bytes loaded by each moment (at most 2,000 points).
    pub throughput: Vec<Sample>,
    pub retries: u64,
    pub verify: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Servers {
    pub source: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub host: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub pid: u32,
}

impl Machine {
    fn this() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        Machine {
            host: host_name(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib: memory_kib / 1024,
            pid: std::process::id(),
        }
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What a command tells the report beyond the recorder's events.
#[derive(Debug, Default)]
struct Context {
    command: Option<String>,
    workdir: Option<PathBuf>,
    settings: serde_json::Value,
    plan_id: Option<String>,
    servers: Servers,
    source_rows_estimate: Option<u64>,
    verify: Option<serde_json::Value>,
}

static CONTEXT: Mutex<Context> = Mutex::new(Context {
    command: None,
    workdir: None,
    settings: serde_json::Value::Null,
    plan_id: None,
    servers: Servers {
        source: None,
        target: None,
    },
    source_rows_estimate: None,
    verify: None,
});

fn context<T>(f: impl FnOnce(&mut Context) -> T) -> T {
    f(&mut CONTEXT.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The run id: on every JSON log line, on the ledger's rows, in `report.json`.
pub fn run_id() -> &'static str {
    &recorder().run_id
}

/// The command's workdir is accepted (and locked, where the command locks it): this run's
/// attempt goes into its `report.json` when the run ends.
pub fn begin(command: &str, workdir: &Path) {
    context(|c| {
        c.command = Some(command.to_string());
        c.workdir = Some(workdir.to_path_buf());
    });
}

/// The settings the run was given, as [`crate::config::Options::describe`] puts them.
pub fn settings(settings: serde_json::Value) {
    context(|c| c.settings = settings);
}

/// The plan the run works on, and the rows it expects of each table.
pub fn plan_made(plan: &crate::plan::Plan) {
    context(|c| c.plan_id = Some(plan.plan_id.clone()));
    planned(
        plan.tables
            .iter()
            .map(|t| (t.name.clone(), t.target.clone(), t.estimated_rows)),
    );
}

pub fn servers(source: Option<String>, target: Option<String>) {
    context(|c| {
        c.servers.source = source.or(c.servers.source.take());
        c.servers.target = target.or(c.servers.target.take());
    });
}

pub fn source_rows_estimate(rows: Option<u64>) {
    context(|c| c.source_rows_estimate = rows);
}

pub fn verify_outcome(found: serde_json::Value) {
    context(|c| c.verify = Some(found));
}

/// How a run ended, for its attempt.
pub struct Ending<'a> {
    pub exit_code: u8,
    pub error: Option<&'a Error>,
}

/// Appends this run's attempt to the workdir's `report.json`, if the command began one;
/// returns the file. Called once, as the process ends, whatever the outcome.
pub fn finish(ending: Ending) -> Option<PathBuf> {
    let (command, workdir, settings, plan_id, servers, source_rows_estimate, verify) =
        context(|c| {
            Some((
                c.command.clone()?,
                c.workdir.clone()?,
                c.settings.clone(),
                c.plan_id.clone(),
                c.servers.clone(),
                c.source_rows_estimate,
                c.verify.take(),
            ))
        })?;
    let r = recorder();
    let seconds = r.started.elapsed().as_secs_f64();
    let mut phases = r.phases();
    for p in &mut phases {
        if p.span.end_s.is_nan() {
            p.span.end_s = seconds;
        }
    }
    let outcome = match ending.error {
        None if ending.exit_code == 0 => "completed",
        None => "differences",
        Some(Error::Interrupted { .. }) => "interrupted",
        Some(_) => "failed",
    };
    let attempt = Attempt {
        run_id: r.run_id.clone(),
        command,
        plan_id,
        started_at: utc(r.started_at),
        finished_at: utc(SystemTime::now()),
        seconds,
        outcome: outcome.to_string(),
        exit_code: ending.exit_code,
        error: ending.error.map(|e| e.to_string()),
        settings,
        servers,
        source_rows_estimate,
        machine: Machine::this(),
        phases,
        tables: r.tables(),
        throughput: thin(r.samples(), 2000),
        retries: r.retries(),
        verify,
    };
    let path = workdir.join(REPORT_FILE);
    match append(&path, attempt) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(error = %e, "Could not write the run's report.");
            None
        }
    }
}

fn append(path: &Path, attempt: Attempt) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // Several `import` processes may share a workdir: the read and rewrite happen under an
    // flock on the file; a file replaced while this one waited is opened and locked again.
    let mut locked = loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(Error::io(path))?;
        file.lock().map_err(Error::io(path))?;
        let now = std::fs::metadata(path).map_err(Error::io(path))?;
        if file.metadata().map_err(Error::io(path))?.ino() == now.ino() {
            break file;
        }
    };
    let mut text = String::new();
    locked.read_to_string(&mut text).map_err(Error::io(path))?;
    let mut report = if text.trim().is_empty() {
        ReportFile {
            format: FORMAT.to_string(),
            attempts: Vec::new(),
        }
    } else {
        parse(path, &text)?
    };
    report.attempts.push(attempt);
    workdir::write_json(path, &report)
}

fn parse(path: &Path, text: &str) -> Result<ReportFile> {
    let file: ReportFile = serde_json::from_str(text)
        .map_err(|e| Error::Data(format!("{}: not a pgclipper report: {e}", path.display())))?;
    if file.format != FORMAT {
        return Err(Error::Usage(format!(
            "{}: format {:?}, this pgclipper reads {FORMAT:?}",
            path.display(),
            file.format
        )));
    }
    Ok(file)
}

pub fn read(path: &Path) -> Result<ReportFile> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    parse(path, &text)
}

/// At most `max` samples, evenly spread, the last kept.
fn thin(samples: Vec<Sample>, max: usize) -> Vec<Sample> {
    if samples.len() <= max {
        return samples;
    }
    let step = samples.len() as f64 / max as f64;
    let mut out: Vec<Sample> = (0..max)
        .map(|i| samples[(i as f64 * step) as usize])
        .collect();
    if let (Some(last), Some(kept)) = (samples.last(), out.last_mut()) {
        *kept = *last;
    }
    out
}

/// `2026-12-01T10:50:32.123Z`.
pub fn utc(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_timestamps_are_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_122_232_123);
        assert_eq!(utc(at), "2026-12-01T10:50:32.123Z");
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn samples_are_thinned_evenly_keeping_the_last() {
        let samples: Vec<Sample> = (0..10_000)
            .map(|i| Sample {
                t_s: i as f64,
                rows: i,
                bytes: i,
            })
            .collect();
        let thinned = thin(samples, 2000);
        assert_eq!(thinned.len(), 2000);
        assert_eq!(thinned[0].rows, 0);
        assert_eq!(thinned[1].rows, 5);
        assert_eq!(thinned.last().unwrap().rows, 9_999);
    }
}
