//! `pgclipper status`: where a running or interrupted run on the workdir stands, from the
//! target's ledger and the workdir: chunks loaded, in flight (which run, which process on
//! which host) and left; rows and bytes; the rate of the last minute and the time left at
//! that rate; the last error a run recorded. Changes nothing, takes no lock.

use std::path::Path;

use tokio_postgres::Client;

use crate::config::StatusSettings;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::report::{self, REPORT_FILE};
use crate::sink::{self, ledger};
use crate::workdir;

pub struct Status {
    pub plan_id: String,
    pub tables: usize,
    pub chunks: u64,
    pub loaded_chunks: u64,
    pub loaded_rows: u64,
    pub loaded_bytes: u64,
    /// The source's row estimates when planned.
    pub planned_rows: u64,
    /// Rows per second over the last minute, while chunks still arrive.
    pub rate: Option<f64>,
    pub completed_at: Option<String>,
    pub in_flight: Vec<InFlight>,
    pub runs: Vec<Run>,
    /// Who holds the workdir now (a `migrate`, `export`, `verify` or `reset`), if anyone.
    pub workdir_holder: Option<String>,
    /// The last run that ended in an error, and the error.
    pub last_error: Option<(String, String)>,
}

impl Status {
    pub fn left_chunks(&self) -> u64 {
        self.chunks - self.loaded_chunks
    }

    /// Seconds left at the last minute's rate.
    pub fn eta(&self) -> Option<f64> {
        let left = self.planned_rows.saturating_sub(self.loaded_rows) as f64;
        self.rate.filter(|r| *r > 0.0).map(|r| left / r)
    }
}

/// A COPY under way in the target.
pub struct InFlight {
    pub table: String,
    pub run_id: String,
    pub client: String,
    pub seconds: f64,
}

/// A run that loaded into the plan, from the ledger.
pub struct Run {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub pid: i32,
    pub started_at: String,
    pub chunks: i64,
    /// `running`, `gone` (this host, no such process) or `on another host`.
    pub process: &'static str,
}

pub async fn run(settings: &StatusSettings) -> Result<Status> {
    let workdir = &settings.workdir;
    // STEP 1: the workdir's plan, and who holds the workdir.
    workdir::require_plan(workdir, "")?;
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let workdir_holder = workdir::holder(workdir);
    // STEP 2: what the ledger says of it.
    let client = sink::connect(&settings.target).await?;
    let known = ledger_has(&client, &plan.plan_id).await?;
    let (counts, runs, in_flight, completed_at) = if known {
        // A ledger made by an older pgclipper lacks the run columns: status writes nothing,
        // so it reads what there is.
        let with_runs = has_runs(&client).await?;
        let runs = match with_runs {
            true => runs(&client, &plan.plan_id).await?,
            false => Vec::new(),
        };
        let in_flight = in_flight(&client, &runs).await?;
        (
            chunk_counts(&client, &plan.plan_id, with_runs).await?,
            runs,
            in_flight,
            ledger::completed_at(&client, &plan.plan_id).await?,
        )
    } else {
        (ChunkCounts::default(), Vec::new(), Vec::new(), None)
    };
    // STEP 3: the last error a run left in the workdir's report.
    let last_error = last_error(workdir);
    Ok(Status {
        plan_id: plan.plan_id.clone(),
        tables: plan.tables.len(),
        chunks: plan.tables.iter().map(|t| t.chunks.len() as u64).sum(),
        loaded_chunks: counts.chunks,
        loaded_rows: counts.rows,
        loaded_bytes: counts.bytes,
        planned_rows: plan.tables.iter().map(|t| t.estimated_rows).sum(),
        rate: (counts.last_minute_rows > 0).then(|| counts.last_minute_rows as f64 / 60.0),
        completed_at,
        in_flight,
        runs,
        workdir_holder,
        last_error,
    })
}

async fn ledger_has(client: &Client, plan_id: &str) -> Result<bool> {
    let row = client
        .query_one("SELECT to_regclass('pgclipper.plans') IS NOT NULL", &[])
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    Ok(ledger::plan_fingerprint(client, plan_id).await?.is_some())
}

async fn has_runs(client: &Client) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass('pgclipper.runs') IS NOT NULL AND EXISTS (
                 SELECT 1 FROM information_schema.columns
                 WHERE table_schema = 'pgclipper' AND table_name = 'chunks'
                   AND column_name = 'bytes')",
            &[],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(row.get(0))
}

#[derive(Default)]
struct ChunkCounts {
    chunks: u64,
    rows: u64,
    bytes: u64,
    last_minute_rows: u64,
}

async fn chunk_counts(client: &Client, plan_id: &str, with_bytes: bool) -> Result<ChunkCounts> {
    let bytes = if with_bytes { "bytes" } else { "0" };
    let row = client
        .query_one(
            &format!("SELECT count(loaded_at),
                    coalesce(sum(rows) FILTER (WHERE loaded_at IS NOT NULL), 0)::bigint,
                    coalesce(sum({bytes}) FILTER (WHERE loaded_at IS NOT NULL), 0)::bigint,
                    coalesce(sum(rows) FILTER (WHERE loaded_at > now() - interval '60 s'), 0)::bigint
             FROM pgclipper.chunks WHERE plan_id = $1"),
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger's chunks"))?;
    let n = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    Ok(ChunkCounts {
        chunks: n(0),
        rows: n(1),
        bytes: n(2),
        last_minute_rows: n(3),
    })
}

async fn runs(client: &Client, plan_id: &str) -> Result<Vec<Run>> {
    let rows = client
        .query(
            "SELECT r.run_id, r.command, r.host, r.pid,
                    to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                    (SELECT count(*) FROM pgclipper.chunks c
                     WHERE c.plan_id = r.plan_id AND c.loaded_by = r.run_id)
             FROM pgclipper.runs r WHERE r.plan_id = $1 ORDER BY r.started_at",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger's runs"))?;
    let here = report::host_name();
    Ok(rows
        .iter()
        .map(|r| {
            let (host, pid): (String, i32) = (r.get(2), r.get(3));
            let process = if host != here {
                "on another host"
            } else if is_pgclipper(pid) {
                "running"
            } else {
                "gone"
            };
            Run {
                run_id: r.get(0),
                command: r.get(1),
                host,
                pid,
                started_at: r.get(4),
                chunks: r.get(5),
                process,
            }
        })
        .collect())
}

/// Whether `pid` is a pgclipper process on this host.
fn is_pgclipper(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim() == "pgclipper")
}

/// COPY statements under way in this database by runs of this plan (every session names
/// its run in `application_name`; `pg_stat_activity` shows the whole cluster).
async fn in_flight(client: &Client, runs: &[Run]) -> Result<Vec<InFlight>> {
    let names: Vec<String> = runs
        .iter()
        .map(|r| format!("pgclipper {}", r.run_id))
        .collect();
    let rows = client
        .query(
            "SELECT application_name, coalesce(host(client_addr), 'local socket'), query,
                    extract(epoch FROM now() - query_start)::float8
             FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = ANY($1)
               AND state = 'active' AND query ILIKE 'COPY %' AND pid <> pg_backend_pid()
             ORDER BY query_start",
            &[&names],
        )
        .await
        .map_err(Error::postgres("reading pg_stat_activity"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let query: String = r.get(2);
            InFlight {
                table: copied_table(&query),
                run_id: name.trim_start_matches("pgclipper ").to_string(),
                client: r.get(1),
                seconds: r.get(3),
            }
        })
        .collect())
}

/// `"public"."users"` of `COPY "public"."users" ("id", …) FROM STDIN …`.
fn copied_table(query: &str) -> String {
    let rest = query.get(5..).unwrap_or("").trim_start();
    rest.split(" (")
        .next()
        .unwrap_or(rest)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

fn last_error(workdir: &Path) -> Option<(String, String)> {
    let record = report::read(&workdir.join(REPORT_FILE)).ok()?;
    record
        .attempts
        .iter()
        .rev()
        .find_map(|a| Some((a.run_id.clone(), a.error.clone()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_a_copy_statement() {
        assert_eq!(
            copied_table("COPY \"public\".\"users\" (\"id\", \"name\") FROM STDIN (FORMAT binary)"),
            "\"public\".\"users\""
        );
        assert_eq!(copied_table("COPY t FROM STDIN"), "t");
    }
}
