//! The one resume rule, for every command that finds a plan in its workdir. The plan goes
//! on only if both catalogs still give its fingerprint and no table's row estimate moved
//! far ([`check_catalogs`]), and, for the commands that load, if the target's ledger knows
//! the plan or its tables are still empty ([`check_ledger`]). Then [`work_left`] says what
//! remains: chunks the ledger records as loaded are skipped, complete chunk files are
//! loaded without reading MySQL again, the rest is exported.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use tokio_postgres::Client;

use super::Prepared;
use crate::canon::digest::TableCanon;
use crate::encode::{chunk, FinishedChunk, TableCodec};
use crate::error::{Error, Result};
use crate::mapping::{self, MappingOptions, TableMapping};
use crate::plan::{self, Plan};
use crate::sink::{self, ledger, CopyFormat};
use crate::source;
use crate::source::reader::{ChunkTask, TableJob};
use crate::workdir;

pub fn has_plan(workdir: &Path) -> bool {
    workdir.join(workdir::PLAN_FILE).exists()
}

/// The workdir's plan, if the catalogs just read still fit it.
pub fn existing_plan(workdir: &Path, prepared: &Prepared, target_schema: &str) -> Result<Plan> {
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let tables = &prepared.mapping.tables;
    let estimate = |name: &str| {
        tables
            .iter()
            .find(|t| t.name() == name)
            .map_or(0, |t| t.source.estimated_rows)
    };
    check_catalogs(
        &plan,
        &mapping::fingerprint(tables),
        estimate,
        target_schema,
        workdir,
    )?;
    Ok(plan)
}

/// The catalogs' part of the rule: the same tables, keys, columns and types on both sides
/// (the fingerprint), the same target schema, and no table whose row estimate moved far.
pub fn check_catalogs(
    plan: &Plan,
    fingerprint_now: &str,
    estimated_rows_now: impl Fn(&str) -> u64,
    target_schema: &str,
    workdir: &Path,
) -> Result<()> {
    if fingerprint_now != plan.fingerprint || plan.target_schema != target_schema {
        return Err(Error::Data(format!(
            "the source or target schema (or the tables chosen) changed since {} was planned: \
             run again with --restart to start over (`migrate --restart` first empties the plan's target tables)",
            workdir.display()
        )));
    }
    for planned in &plan.tables {
        let now = estimated_rows_now(&planned.name);
        if plan::estimate_moved(planned.estimated_rows, now) {
            return Err(Error::Data(format!(
                "`{}` holds about {now} rows now against {} when {} was planned: the source changed; \
                 stop the application and run again with --restart (`migrate --restart` first empties the plan's target tables)",
                planned.name,
                planned.estimated_rows,
                workdir.display()
            )));
        }
    }
    Ok(())
}

/// The target's part of the rule: its ledger records the plan with the same fingerprint;
/// or it does not know the plan (killed between writing `plan.json` and recording the plan,
/// or an export to be imported) and the plan's tables are empty, so it can be recorded now.
pub async fn check_ledger(plan: &Plan, client: &Client, workdir: &Path) -> Result<()> {
    match ledger::plan_fingerprint(client, &plan.plan_id).await? {
        Some(recorded) if recorded == plan.fingerprint => Ok(()),
        Some(_) => Err(Error::Data(format!(
            "the target's ledger disagrees with plan {}: run again with --restart (`migrate --restart` first empties the plan's target tables)",
            plan.plan_id
        ))),
        None => {
            let tables: Vec<(String, String)> = plan
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.target.clone()))
                .collect();
            let problems = sink::non_empty_tables(client, &tables).await?;
            if problems.is_empty() {
                return Ok(());
            }
            Err(Error::Data(format!(
                "the target does not know plan {} of {} and its tables hold rows (was it reset, or is this another database?): run again with --restart (`migrate --restart` first empties the plan's target tables)\n{}",
                plan.plan_id,
                workdir.display(),
                problems
                    .iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )))
        }
    }
}

/// What remains of a plan.
pub struct WorkLeft {
    /// Chunks to read from MySQL, the largest table's first (see [`largest_first`]).
    pub to_export: Vec<ChunkTask>,
    /// Complete chunk files of an earlier run, to load without reading MySQL again.
    pub ready: Vec<FinishedChunk>,
    /// Chunks the ledger records as loaded.
    pub loaded: usize,
}

/// Sorts the plan's chunks: `loaded` ones are skipped, complete files are ready, the rest
/// is to export.
pub fn work_left(
    tables: &[TableMapping],
    plan: &Plan,
    workdir: &Path,
    loaded: &HashSet<(String, u32)>,
    files: ChunkFiles,
    options: &MappingOptions,
) -> WorkLeft {
    let mut by_table = Vec::new();
    let mut ready = Vec::new();
    for planned in &plan.tables {
        let table = tables
            .iter()
            .find(|t| t.name() == planned.name)
            .expect("the fingerprint guarantees the plan's tables are mapped");
        let canon = TableCanon::new(table, options, planned.estimated_rows);
        let job = Arc::new(table_job(table, files, canon));
        let mut tasks = VecDeque::new();
        for chunk in &planned.chunks {
            if loaded.contains(&(planned.name.clone(), chunk.id)) {
                continue;
            }
            let path = workdir::chunk_path(workdir, table.name(), chunk.id);
            match workdir::complete_chunk(&path) {
                Some(entry) if chunk::intact(workdir, &entry) => {
                    ready.push(FinishedChunk::from_entry(workdir, &entry))
                }
                complete => {
                    if complete.is_some() {
                        tracing::warn!(file = %path.display(), "A chunk file does not match its record (size or checksum): it is exported again.");
                    }
                    tasks.push_back(ChunkTask {
                        job: job.clone(),
                        chunk: chunk.clone(),
                        path,
                    })
                }
            }
        }
        let bytes = planned.estimated_rows * table.source.avg_row_length;
        by_table.push((bytes, tasks));
    }
    WorkLeft {
        to_export: largest_first(by_table),
        ready,
        loaded: loaded.len(),
    }
}

/// The chunks table by table, the largest table (by MySQL's estimate of its bytes) first.
/// Each table's keys and indexes are built as soon as its last chunk is in, beside the
/// load of the rest: the largest table's, which take longest, then start early, and what
/// is left at the end, after the last chunk, is the rebuild of a small table. (Dealing the
/// tables' chunks out in turn, as before, finished the largest table last and left its
/// rebuild alone at the end, one core idle.)
fn largest_first(mut tables: Vec<(u64, VecDeque<ChunkTask>)>) -> Vec<ChunkTask> {
    tables.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    tables.into_iter().flat_map(|(_, tasks)| tasks).collect()
}

/// The files a chunk becomes beside its CSV file.
#[derive(Debug, Clone, Copy)]
pub struct ChunkFiles {
    pub copy_format: CopyFormat,
    /// A Parquet sidecar (`--parquet`).
    pub parquet: bool,
}

/// How to read, convert and place one table's chunks.
fn table_job(table: &TableMapping, files: ChunkFiles, canon: TableCanon) -> TableJob {
    let key = source::key_columns(table);
    let binary = files.copy_format == CopyFormat::Binary;
    let codec = TableCodec::new(table, binary, files.parquet, canon);
    if files.parquet && codec.parquet.is_none() {
        tracing::warn!(table = %table.name(), "This table gets no Parquet sidecar: a column's conversion has no binary form (see docs/mapping.md).");
    }
    if binary && codec.wires.is_none() {
        tracing::info!(table = %table.name(), "This table loads from its CSV files: a column's conversion has no binary COPY form (see docs/mapping.md).");
    }
    TableJob {
        select: source::select_list(&table.select, &codec.sliced),
        codec: Arc::new(codec),
        key,
        large_rows: table.source.avg_row_length >= crate::encode::LARGE_VALUE as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{chunks_from_boundaries, PlannedTable};

    fn plan(estimated_rows: u64) -> Plan {
        Plan {
            plan_id: "p".into(),
            fingerprint: "f1".into(),
            source_database: "db".into(),
            target_schema: "public".into(),
            tables: vec![PlannedTable {
                name: "events".into(),
                target: "public.events".into(),
                target_columns: vec!["id".into()],
                key: vec!["id".into()],
                chunks: chunks_from_boundaries(Vec::new()),
                split: None,
                estimated_rows,
            }],
        }
    }

    #[test]
    fn a_plan_goes_on_only_with_the_same_catalogs_schema_and_row_estimates() {
        let wd = Path::new("/wd");
        let plan = plan(1_000_000);
        let same = |_: &str| 1_100_000;
        assert!(check_catalogs(&plan, "f1", same, "public", wd).is_ok());
        let changed = check_catalogs(&plan, "f2", same, "public", wd).unwrap_err();
        assert!(changed.to_string().contains("--restart"), "{changed}");
        assert!(
            changed
                .to_string()
                .contains("empties the plan's target tables"),
            "{changed}"
        );
        assert!(check_catalogs(&plan, "f1", same, "other", wd).is_err());
        let shrank = check_catalogs(&plan, "f1", |_| 10_000, "public", wd).unwrap_err();
        assert!(
            shrank
                .to_string()
                .contains("`events` holds about 10000 rows"),
            "{shrank}"
        );
    }
}
