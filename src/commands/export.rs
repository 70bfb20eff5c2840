//! `pgclipper export`: MySQL → chunk files and `manifest.json`, for `import` to load later
//! (on this machine or another). The target is only read: its catalog decides the
//! conversions. On a workdir that holds a plan, exports only the chunks without a complete
//! file. Also home of the export step that `migrate` shares.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{prepare_or_refuse, resume, Summary, TargetRows};
use crate::config::{ExportOptions, ExportSettings};
use crate::encode::pool::{self, OnFinished};
use crate::encode::stream::Streams;
use crate::error::{within, Result};
use crate::plan::{self, ChunkSize};
use crate::report::{self, Phase};
use crate::source::reader::{self, ChunkTask, Origin};
use crate::source::snapshot;
use crate::url::DbUrl;
use crate::work::{Failure, Tally};
use crate::workdir;

pub async fn run(settings: &ExportSettings) -> Result<Summary> {
    let started = Instant::now();
    let workdir = &settings.workdir;
    let options = &settings.export;
    // STEP 1: the workdir, for this run alone; --restart forgets what an earlier export
    // wrote there.
    let _lock = workdir::open_for_plan(workdir)?;
    report::begin("export", workdir);
    if settings.restart && resume::has_plan(workdir) {
        let plan: crate::plan::Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
        workdir::clear(workdir, plan.tables.iter().map(|t| t.name.as_str()))?;
    }
    // STEP 2: read both catalogs and pair them; any problem stops here.
    let planning = report::phase(Phase::Plan);
    let mut prepared = prepare_or_refuse(
        &settings.source,
        &settings.target,
        &settings.selection,
        options.io_timeout,
        TargetRows::MayExist,
    )
    .await?;
    // STEP 3: go on with the workdir's plan if the catalogs still fit it, or plan anew.
    let plan = if resume::has_plan(workdir) {
        resume::existing_plan(workdir, &prepared, &settings.target.schema)?
    } else {
        let size = ChunkSize {
            bytes: options.chunk_bytes,
            rows: options.chunk_rows,
        };
        let tables = &prepared.mapping.tables;
        let schema = &settings.target.schema;
        let database = prepared.database.clone();
        let source = plan::PlanSource {
            conn: &mut prepared.mysql,
            url: &settings.source,
            database: &database,
            sessions: options.readers,
        };
        plan::make(source, tables, schema, size, options.io_timeout, workdir).await?
    };
    report::plan_made(&plan);
    drop(planning);
    // STEP 4: the chunks without a complete file.
    let left = resume::work_left(
        &prepared.mapping.tables,
        &plan,
        workdir,
        &HashSet::new(),
        options.files(),
        &settings.selection.mapping,
    );
    // STEP 5: read them on one snapshot and write their files.
    let failure = Failure::new();
    let exported = Arc::new(Tally::default());
    let progress = exported.log_every_10s("Exporting.");
    let exporting = report::phase(Phase::Export);
    let keep_files: OnFinished = {
        let exported = exported.clone();
        Arc::new(move |chunk| {
            exported.add(chunk.rows, chunk.bytes);
            true
        })
    };
    let source = (&settings.source, prepared.database.as_str());
    if let Err(e) = export_chunks(
        source,
        workdir,
        options,
        left.to_export,
        &failure,
        keep_files,
        None,
    )
    .await
    {
        failure.fail(e);
    }
    progress.abort();
    drop(exporting);
    failure.result()?;
    // STEP 6: the manifest of every chunk file, for `import`.
    let manifest = workdir::write_manifest(workdir, &plan.plan_id, plan.chunk_ids())?;
    Ok(Summary::new(
        &manifest,
        exported.counts(),
        started.elapsed(),
        workdir,
    ))
}

/// The export step: readers on one consistent snapshot of the source → encoders → chunk
/// files, each handed to `finished` when complete. Errors of the readers and encoders are
/// recorded in `failure`.
pub(super) async fn export_chunks(
    (url, database): (&DbUrl, &str),
    workdir: &Path,
    options: &ExportOptions,
    tasks: Vec<ChunkTask>,
    failure: &Arc<Failure>,
    finished: OnFinished,
    streams: Option<Streams>,
) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let timeout = options.io_timeout;
    let mut snapshot = within(
        timeout,
        "opening the consistent snapshot",
        snapshot::open(url, options.readers),
    )
    .await?;
    if let Some(pos) = &snapshot.binlog {
        tracing::info!(binlog_file = %pos.file, binlog_position = pos.position, "Snapshot opened.");
    }
    within(
        timeout,
        "comparing the source with the first export",
        snapshot::check_same_source(workdir, database, &mut snapshot),
    )
    .await?;
    let (encoders, input) = pool::start(options.encoders, failure, finished)?;
    let origin = Origin {
        url: url.clone(),
        database: database.to_string(),
        binlog: snapshot.binlog.clone(),
    };
    let output = reader::Output { input, streams };
    let readers = reader::spawn(snapshot, origin, tasks, output, timeout, failure);
    readers.join().await?;
    encoders.wait().await
}
