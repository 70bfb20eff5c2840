//! The commands, each a short list of named steps that reads like the operator's runbook:
//! every step is a call into the stage that does the work. Shared here: reading and pairing
//! both catalogs ([`prepare`]) and the summary a command prints ([`Summary`]).

pub mod check;
pub mod export;
pub mod import;
pub mod migrate;
pub mod report;
pub mod reset;
pub mod resume;
pub mod status;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::Conn;

use crate::catalog;
use crate::config::{Selection, Target};
use crate::error::{within, Error, Problem, Result};
use crate::mapping::{self, Mapping};
use crate::sink;
use crate::source;
use crate::url::DbUrl;
use crate::work::Counts;
use crate::workdir::Manifest;

/// Both catalogs read and paired.
pub struct Prepared {
    /// The source database's name.
    pub database: String,
    pub mysql: Conn,
    pub postgres: tokio_postgres::Client,
    pub mapping: Mapping,
}

/// Whether target tables holding rows are a problem: a new plan loads only into empty
/// tables; a resumed plan has loaded some already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRows {
    MustBeEmpty,
    MayExist,
}

/// Reads both catalogs, pairs every table and column, and finds every problem at once.
pub async fn prepare(
    source: &DbUrl,
    target: &Target,
    selection: &Selection,
    io_timeout: Duration,
    rows: TargetRows,
) -> Result<(Prepared, Vec<Problem>)> {
    let database = source::database(source)?;
    let (mut mysql, postgres) =
        tokio::try_join!(source::connect(source), sink::connect(&target.url))?;
    let source_version = source::server_version(&mut mysql).await;
    let excluded = &selection.tables.exclude;
    let source_rows = source::estimated_rows(&mut mysql, &database, excluded).await;
    crate::report::source_rows_estimate(source_rows);
    crate::report::servers(source_version, sink::server_version(&postgres).await);
    let source_tables = within(
        io_timeout,
        "reading the source catalog",
        catalog::mysql::read(&mut mysql, &database),
    )
    .await?;
    let target_tables = within(
        io_timeout,
        "reading the target catalog",
        catalog::postgres::read(&postgres, &target.schema),
    )
    .await?;
    if source_tables.is_empty() {
        return Err(Error::Usage(format!(
            "the source database `{database}` has no tables"
        )));
    }
    let options = &selection.mapping;
    let mapping = mapping::build(&source_tables, &target_tables, &selection.tables, options);
    let mut problems = mapping.problems.clone();
    for (table, column) in &options.drop_columns {
        if !source_tables
            .iter()
            .any(|t| &t.name == table && t.column(column).is_some())
        {
            problems.push(Problem {
                table: table.clone(),
                column: Some(column.clone()),
                message: "--drop-column names a column the source does not have".into(),
            });
        }
    }
    if let Some(zone) = &options.source_timezone {
        if !sink::knows_time_zone(&postgres, zone).await? {
            return Err(Error::Usage(format!(
                "--source-timezone {zone:?} is not a time zone Postgres knows (see pg_timezone_names)"
            )));
        }
    }
    if rows == TargetRows::MustBeEmpty {
        let tables: Vec<(String, String)> = mapping
            .tables
            .iter()
            .map(|t| (t.name().to_string(), t.target.qualified()))
            .collect();
        problems.extend(sink::non_empty_tables(&postgres, &tables).await?);
    }
    let prepared = Prepared {
        database,
        mysql,
        postgres,
        mapping,
    };
    Ok((prepared, problems))
}

/// [`prepare`], refusing to go on if anything was found; warnings go to the log.
pub async fn prepare_or_refuse(
    source: &DbUrl,
    target: &Target,
    selection: &Selection,
    io_timeout: Duration,
    rows: TargetRows,
) -> Result<Prepared> {
    let (prepared, problems) = prepare(source, target, selection, io_timeout, rows).await?;
    // `check` shows them to the operator; the run records each, and says once how many.
    let warnings = &prepared.mapping.warnings;
    for w in warnings {
        tracing::info!(table = %w.table, column = w.column.as_deref().unwrap_or(""), "Catalog warning: {}", w.message);
    }
    if !warnings.is_empty() {
        tracing::warn!(
            warnings = warnings.len(),
            "The catalogs gave warnings (each in this log at level info; `pgclipper check` lists them)."
        );
    }
    if !problems.is_empty() {
        return Err(Error::Check(problems));
    }
    Ok(prepared)
}

/// Per-table totals of a plan.
#[derive(Debug, Default, Clone)]
pub struct TableSummary {
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// What a command reports when it is done: the whole plan, and what this run did of it.
#[derive(Debug)]
pub struct Summary {
    /// The plan's tables, from its manifest.
    pub tables: BTreeMap<String, TableSummary>,
    /// Exported or loaded by this run; the rest of the plan was done by earlier runs.
    pub this_run: Counts,
    /// Sequences advanced (commands that load only).
    pub sequences: Option<usize>,
    /// When the plan had been completed already, if it had: this run had nothing to do.
    pub completed_before: Option<String>,
    pub elapsed: Duration,
    /// Where the chunk files are.
    pub workdir: PathBuf,
}

impl Summary {
    pub fn new(manifest: &Manifest, this_run: Counts, elapsed: Duration, workdir: &Path) -> Self {
        let mut tables: BTreeMap<String, TableSummary> = BTreeMap::new();
        for c in &manifest.chunks {
            let t = tables.entry(c.table.clone()).or_default();
            t.chunks += 1;
            t.rows += c.rows;
            t.bytes += c.bytes;
        }
        Summary {
            tables,
            this_run,
            sequences: None,
            completed_before: None,
            elapsed,
            workdir: workdir.to_path_buf(),
        }
    }

    /// What the load's last steps did.
    pub fn finished(mut self, finished: &crate::post::Finished) -> Self {
        self.sequences = Some(finished.sequences);
        self.completed_before = finished.completed_before.clone();
        self
    }

    pub fn total(&self) -> Counts {
        Counts {
            chunks: self.tables.values().map(|t| t.chunks as u64).sum(),
            rows: self.tables.values().map(|t| t.rows).sum(),
            bytes: self.tables.values().map(|t| t.bytes).sum(),
        }
    }
}
