//! The commands, each a short list of named steps that reads like the operator's runbook:
//! every step is a call into the stage that does the work. Shared here: reading and pairing
//! both catalogs ([`prepare`]) and the summary a command prints ([`Summary`]).

pub mod check;
pub mod export;
pub mod import;
pub mod migrate;
pub mod reset;
pub mod resume;

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::Conn;

use crate::catalog;
use crate::config::{Selection, Target};
use crate::error::{within, Error, Problem, Result};
use crate::mapping::{self, Mapping};
use crate::sink;
use crate::source;
use crate::url::DbUrl;
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
    for w in &prepared.mapping.warnings {
        tracing::warn!(table = %w.table, column = w.column.as_deref().unwrap_or(""), "{}", w.message);
    }
    if !problems.is_empty() {
        return Err(Error::Check(problems));
    }
    Ok(prepared)
}

/// Per-table totals of a run.
#[derive(Debug, Default, Clone)]
pub struct TableSummary {
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// What a command reports when it is done.
#[derive(Debug, Default)]
pub struct Summary {
    pub tables: BTreeMap<String, TableSummary>,
    pub sequences: usize,
    pub elapsed: Duration,
}

impl Summary {
    /// The whole plan's totals, from its manifest.
    pub fn from_manifest(manifest: &Manifest, elapsed: Duration, sequences: usize) -> Self {
        let mut summary = Summary {
            elapsed,
            sequences,
            ..Summary::default()
        };
        for c in &manifest.chunks {
            let t = summary.tables.entry(c.table.clone()).or_default();
            t.chunks += 1;
            t.rows += c.rows;
            t.bytes += c.bytes;
        }
        summary
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }
}
