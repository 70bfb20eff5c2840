//! `pgclipper import`: the chunk files of an earlier `export` → Postgres. The ledger is the
//! work queue: several import processes (on one machine or several sharing the workdir)
//! claim chunks with `FOR UPDATE SKIP LOCKED` and never load one twice; the chunks of a
//! process that dies are claimed again by the others.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{resume, Summary};
use crate::config::ImportSettings;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::post;
use crate::report::{self, Phase};
use crate::sink::{self, ledger, writer};
use crate::work::{Failure, Tally};
use crate::workdir::{self, Manifest, ManifestEntry};

pub async fn run(settings: &ImportSettings) -> Result<Summary> {
    let started = Instant::now();
    let workdir = &settings.workdir;
    // STEP 1: the plan and the manifest of the export.
    workdir::require_plan(workdir, "")?;
    let (plan, manifest) = read_export(workdir)?;
    report::begin("import", workdir);
    report::plan_made(&plan);
    // STEP 2: a target that knows the plan, or whose tables are empty; the plan recorded
    // and the tables' keys, constraints, indexes and foreign keys taken off (once, whichever
    // import process comes first).
    let mut client = sink::connect(&settings.target).await?;
    report::servers(None, sink::server_version(&client).await);
    ledger::ensure(&client).await?;
    resume::check_ledger(&plan, &client, workdir).await?;
    post::before_load(&mut client, &plan, settings.load.io_timeout).await?;
    ledger::record_run(&client, &plan.plan_id, "import").await?;
    // STEP 3: load: writers claim chunks from the ledger until none is left unloaded.
    let chunks: HashMap<(String, u32), ManifestEntry> = manifest
        .chunks
        .iter()
        .map(|e| ((e.table.clone(), e.chunk), e.clone()))
        .collect();
    let (failure, loaded) = (Failure::new(), Arc::new(Tally::default()));
    let progress = loaded.log_every_10s("Loading.");
    let loading = report::phase(Phase::Load);
    let options = &settings.load;
    writer::from_ledger(
        &settings.target,
        &plan,
        options,
        workdir,
        chunks,
        &loaded,
        &failure,
    )
    .wait()
    .await
    .inspect_err(|_| post::leave_deferred(&plan))?;
    progress.abort();
    drop(loading);
    // STEP 4: keys, constraints, indexes and foreign keys back; statistics; sequences.
    let finished = post::after_load(&settings.target, &plan, &settings.load, None).await?;
    let summary = Summary::new(&manifest, loaded.counts(), started.elapsed(), workdir);
    Ok(summary.finished(&finished))
}

/// The plan and the manifest of a finished export, which must belong together.
fn read_export(workdir: &Path) -> Result<(Plan, Manifest)> {
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let manifest: Manifest = workdir::read_json(&workdir.join(workdir::MANIFEST_FILE))?;
    if manifest.plan_id != plan.plan_id {
        return Err(Error::Data(format!(
            "{}: manifest belongs to plan {}, not to plan {}",
            workdir.display(),
            manifest.plan_id,
            plan.plan_id
        )));
    }
    Ok((plan, manifest))
}
