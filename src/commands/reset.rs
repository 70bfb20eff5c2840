//! `pgclipper reset`, the way back: empties the tables of the workdir's plan, puts the
//! target's keys, constraints, indexes, foreign keys and sequences back as they were,
//! forgets the plan in the ledger and clears the workdir. The source is never written:
//! pointing the application back at MySQL is the rollback.

use std::path::Path;

use crate::config::ResetSettings;
use crate::error::Result;
use crate::plan::Plan;
use crate::post;
use crate::sink::{self, ledger, LoadOptions};
use crate::url::DbUrl;
use crate::workdir;

/// What `reset` will do, for the operator to read before saying yes.
pub struct Preview {
    pub plan: Plan,
    /// The target tables it empties.
    pub tables: Vec<String>,
    /// What the ledger holds to put back.
    pub saved: ledger::Saved,
}

/// Reads what a reset of the workdir's plan would touch; changes nothing.
pub async fn preview(settings: &ResetSettings) -> Result<Preview> {
    workdir::require_plan(&settings.workdir, " (there is nothing to reset)")?;
    let plan: Plan = workdir::read_json(&settings.workdir.join(workdir::PLAN_FILE))?;
    let client = sink::connect(&settings.target).await?;
    let saved = match ledger::plan_fingerprint(&client, &plan.plan_id).await? {
        Some(_) => ledger::saved(&client, &plan.plan_id).await?,
        None => ledger::Saved::default(),
    };
    Ok(Preview {
        tables: plan.tables.iter().map(|t| t.target.clone()).collect(),
        plan,
        saved,
    })
}

pub async fn run(settings: &ResetSettings) -> Result<()> {
    workdir::require_plan(&settings.workdir, " (there is nothing to reset)")?;
    let _lock = workdir::open_for_plan(&settings.workdir)?;
    discard(&settings.target, &settings.workdir, &settings.load).await
}

/// The workdir's plan undone in the target, then forgotten in the workdir.
pub(super) async fn discard(target: &DbUrl, workdir: &Path, options: &LoadOptions) -> Result<()> {
    // STEP 1: the plan.
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    // STEP 2: the target: tables emptied, everything put back, the plan forgotten.
    post::put_back(target, &plan, options).await?;
    // STEP 3: the workdir: plan, manifest and chunk files removed (nothing else).
    workdir::clear(workdir, plan.tables.iter().map(|t| t.name.as_str()))?;
    tracing::info!(plan_id = %plan.plan_id, tables = plan.tables.len(), "Reset: target tables emptied, keys, constraints, indexes, foreign keys and sequences restored.");
    Ok(())
}
