//! `pgclipper migrate`: plan, export and load at once, then keys, constraints, indexes,
//! foreign keys, sequences and statistics. On a workdir that holds a plan it resumes
//! ([`super::resume`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::export::export_chunks;
use super::resume::{self, WorkLeft};
use super::{prepare_or_refuse, reset, Prepared, Summary, TargetRows};
use crate::config::MigrateSettings;
use crate::encode::pool::OnFinished;
use crate::encode::stream::{Load, Streams};
use crate::error::Result;
use crate::plan::{self, ChunkSize, Plan};
use crate::post::{self, rebuild::Completion, Complete, Rebuild};
use crate::report::{self, Phase};
use crate::sink::{ledger, writer};
use crate::work::{Failure, Tally};
use crate::workdir;

pub async fn run(settings: &MigrateSettings) -> Result<Summary> {
    let started = Instant::now();
    let (workdir, target) = (&settings.workdir, &settings.target);
    // STEP 1: the workdir, for this run alone; --restart puts the target back as it was
    // before the workdir's plan (the operator said yes to that).
    let _lock = workdir::open_for_plan(workdir)?;
    report::begin("migrate", workdir);
    if settings.restart && resume::has_plan(workdir) {
        reset::discard(&target.url, workdir, &settings.load).await?;
    }
    // STEP 2: read both catalogs and pair them; any problem stops here. Then go on with the
    // workdir's plan, if both catalogs and the ledger still fit it, or plan every table.
    let planning = report::phase(Phase::Plan);
    let (mut prepared, plan) = if resume::has_plan(workdir) {
        let prepared = prepare(settings, TargetRows::MayExist).await?;
        let plan = resume::existing_plan(workdir, &prepared, &target.schema)?;
        resume::check_ledger(&plan, &prepared.postgres, workdir).await?;
        tracing::info!(plan_id = %plan.plan_id, "Resuming the plan in the workdir.");
        (prepared, plan)
    } else {
        let mut prepared = prepare(settings, TargetRows::MustBeEmpty).await?;
        let plan = make_plan(settings, &mut prepared).await?;
        (prepared, plan)
    };
    report::plan_made(&plan);
    drop(planning);
    // STEP 3: record the plan in the ledger; take the tables' keys, constraints, indexes and
    // foreign keys off until the data is in.
    post::before_load(&mut prepared.postgres, &plan, settings.load.io_timeout).await?;
    ledger::record_run(&prepared.postgres, &plan.plan_id, "migrate").await?;
    // STEP 4: what is left: loaded chunks skipped, complete files loaded as they are.
    let loaded_chunks: HashSet<(String, u32)> =
        ledger::loaded_chunks(&prepared.postgres, &plan.plan_id)
            .await?
            .into_iter()
            .collect();
    let left = resume::work_left(
        &prepared.mapping.tables,
        &plan,
        workdir,
        &loaded_chunks,
        settings.export.files(),
        &settings.selection.mapping,
    );
    tracing::info!(
        loaded = left.loaded,
        files_ready = left.ready.len(),
        to_export = left.to_export.len(),
        "Chunks of the plan."
    );
    // STEP 5: export and load at once: readers → encoders → chunk files → COPY writers; a
    // table's keys, constraints and indexes are rebuilt, and the table analyzed, as soon as
    // its last chunk is in, while the other tables load.
    let failure = Failure::new();
    let complete = Completion::complete_tables(&plan, &loaded_chunks);
    let (url, load) = (&target.url, &settings.load);
    let rebuild =
        Rebuild::start(url, &plan, load, Complete::Some(&complete), true, &failure).await?;
    let completion = Arc::new(rebuild.completion(&plan, &loaded_chunks));
    let loaded = Arc::new(Tally::default());
    let moving = report::phase(Phase::ExportAndLoad);
    let moved = export_and_load(
        settings,
        &prepared,
        &plan,
        left,
        &loaded,
        &completion,
        &failure,
    )
    .await;
    drop(moving);
    if let Err(e) = moved {
        rebuild.abandon();
        post::leave_deferred(&plan);
        return Err(e);
    }
    // STEP 6: the manifest of every chunk file.
    let manifest = workdir::write_manifest(workdir, &plan.plan_id, plan.chunk_ids())?;
    // STEP 7: the rest of the rebuild (foreign keys validated); sequences.
    let finished = post::after_load(&target.url, &plan, &settings.load, Some(rebuild)).await?;
    let summary = Summary::new(&manifest, loaded.counts(), started.elapsed(), workdir);
    Ok(summary.finished(&finished))
}

async fn prepare(settings: &MigrateSettings, rows: TargetRows) -> Result<Prepared> {
    let (source, target) = (&settings.source, &settings.target);
    let timeout = settings.export.io_timeout;
    prepare_or_refuse(source, target, &settings.selection, timeout, rows).await
}

async fn make_plan(settings: &MigrateSettings, prepared: &mut Prepared) -> Result<Plan> {
    let options = &settings.export;
    let size = ChunkSize {
        bytes: options.chunk_bytes,
        rows: options.chunk_rows,
    };
    let (tables, schema) = (&prepared.mapping.tables, &settings.target.schema);
    let source = plan::PlanSource {
        conn: &mut prepared.mysql,
        url: &settings.source,
        database: prepared.database.as_str(),
        sessions: options.readers,
    };
    let timeout = options.io_timeout;
    plan::make(source, tables, schema, size, timeout, &settings.workdir).await
}

/// The writers take each chunk's binary form as it is encoded, and chunk files as the
/// encoders finish them (the ready files of an earlier run first, and those of tables that
/// load from CSV); the first error anywhere stops every stage and is the result.
async fn export_and_load(
    settings: &MigrateSettings,
    prepared: &Prepared,
    plan: &Plan,
    left: WorkLeft,
    loaded: &Arc<Tally>,
    completion: &Arc<Completion>,
    failure: &Arc<Failure>,
) -> Result<()> {
    // Unbounded: an encoder must never wait on it while the writers serve streams that wait
    // on the encoders (encode/stream.rs). It holds file names; the files are on disk anyway.
    let (chunk_tx, chunk_rx) = mpsc::unbounded_channel::<Load>();
    let progress = loaded.log_every_10s("Loading.");
    let url = &settings.target.url;
    let writers = writer::from_channel(
        url,
        plan,
        &settings.load,
        chunk_rx,
        loaded,
        completion,
        failure,
    );
    for chunk in left.ready {
        if chunk_tx.send(Load::File(chunk)).is_err() {
            break; // every writer stopped: the failure says why
        }
    }
    let streams = Streams::new(settings.load.writers, chunk_tx.clone());
    let to_writers: OnFinished = Arc::new(move |chunk| chunk_tx.send(Load::File(chunk)).is_ok());
    let source = (&settings.source, prepared.database.as_str());
    let exported = export_chunks(
        source,
        &settings.workdir,
        &settings.export,
        left.to_export,
        failure,
        to_writers,
        Some(streams),
    )
    .await;
    if let Err(e) = exported {
        failure.fail(e);
    }
    writers.join().await?;
    progress.abort();
    failure.result()?;
    // Every chunk of the plan is loaded now; a chunk left behind would be rows lost without
    // a word, so the ledger is asked rather than trusted to the bookkeeping above. The
    // target may be restarting right now (the writers and the rebuild ride that out too).
    let plan_id = plan.plan_id.as_str();
    let unloaded = crate::sink::on_new_connection(url, |client| async move {
        ledger::unloaded_count(&client, plan_id).await
    })
    .await?;
    if unloaded > 0 {
        return Err(crate::error::Error::Data(format!(
            "{unloaded} chunks of the plan are not loaded though every stage ended: run `pgclipper migrate` again with the same workdir to load them"
        )));
    }
    Ok(())
}
