//! Around the load, in the target. Before it: the plan recorded in the ledger, the keys,
//! constraints, indexes and foreign keys of its tables taken off and autovacuum held off
//! them ([`before_load`]). After it: all of them back, sequences past the loaded values,
//! fresh statistics, each table's own autovacuum setting ([`after_load`]). And the way back: the tables emptied and everything as it was
//! ([`put_back`]).

pub mod autovacuum;
pub mod deferred;
pub mod rebuild;
pub mod sequences;

pub use rebuild::{Complete, Rebuild};

use tokio_postgres::Client;

use crate::error::{within, Error, Result};
use crate::plan::Plan;
use crate::sink::{self, ledger, LoadOptions};
use crate::url::DbUrl;
use crate::work::Failure;

/// Records a new plan in the ledger and takes the keys, constraints, indexes and foreign
/// keys of its tables off until [`after_load`]. Several processes may start at once: an
/// advisory lock lets one do it, and the others find it done.
pub async fn before_load(
    client: &mut Client,
    plan: &Plan,
    timeout: std::time::Duration,
) -> Result<()> {
    ledger::ensure(client).await?;
    ledger::lock(client).await?;
    // The plan and the deferral in one transaction: a kill between them must not leave a
    // recorded plan whose constraints are still in place.
    let outcome = async {
        if ledger::plan_fingerprint(client, &plan.plan_id)
            .await?
            .is_some()
        {
            return Ok(()); // another process (or an earlier run) did it
        }
        let context = "recording the plan and deferring constraints";
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(context))?;
        ledger::register_plan(&tx, plan, &plan.fingerprint).await?;
        let tables: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
        let deferred = deferred::defer_objects(&tx, &plan.plan_id, &tables).await?;
        autovacuum::hold_off(&tx, &plan.plan_id, &tables).await?;
        tx.commit().await.map_err(Error::postgres(context))?;
        tracing::info!(
            foreign_keys = deferred.foreign_keys,
            constraints = deferred.constraints,
            indexes = deferred.indexes,
            "Keys, constraints, indexes and foreign keys deferred until the data is in."
        );
        Ok(())
    }
    .await;
    release(client, outcome, timeout).await
}

/// After a failed load, what was taken off stays off (building indexes and validating
/// foreign keys over partial data would only slow the resume); the operator hears where it is.
pub fn leave_deferred(plan: &Plan) {
    tracing::warn!(
        plan_id = %plan.plan_id,
        "Keys, constraints, indexes and foreign keys not rebuilt yet stay deferred, recorded in pgclipper.deferred_constraints, and autovacuum stays off on the loaded tables (their own settings in pgclipper.autovacuum): `pgclipper migrate` on the same workdir resumes and restores them, `pgclipper reset` restores them on empty tables."
    );
}

/// What [`after_load`] did.
#[derive(Debug, Default, Clone)]
pub struct Finished {
    /// Keys, constraints, indexes and foreign keys put back.
    pub restored: usize,
    pub sequences: usize,
    /// When another process (or an earlier run) had finished the plan, if one had.
    pub completed_before: Option<String>,
}

/// Once every chunk is loaded: the rebuild finished (keys, constraints, indexes and foreign
/// keys back, foreign keys validated, statistics), then sequences, and the plan marked
/// complete, once (advisory lock, then a completed check). `migrate` hands over the rebuild
/// it ran beside the load, finished before the lock is taken, so that a target restarting
/// meanwhile costs only a retry; several `import` processes hand over none, and the one
/// that takes the lock first rebuilds.
pub async fn after_load(
    url: &DbUrl,
    plan: &Plan,
    options: &LoadOptions,
    rebuild: Option<Rebuild>,
) -> Result<Finished> {
    let rebuilt = match rebuild {
        Some(rebuild) => Some(rebuild.finish().await?),
        None => None,
    };
    // A target restarting now costs a new session and another try: every step below is
    // done at most once, as the ledger records.
    sink::on_new_connection(url, |client| finish(client, url, plan, options, rebuilt)).await
}

/// The rest of [`after_load`] under the ledger's lock, on `client`.
async fn finish(
    mut client: tokio_postgres::Client,
    url: &DbUrl,
    plan: &Plan,
    options: &LoadOptions,
    rebuilt: Option<usize>,
) -> Result<Finished> {
    ledger::lock(&client).await?;
    let outcome = async {
        if let Some(at) = ledger::completed_at(&client, &plan.plan_id).await? {
            return Ok(Finished {
                completed_before: Some(at),
                ..Finished::default()
            });
        }
        let restored = match rebuilt {
            Some(restored) => restored,
            None => {
                let failure = Failure::new();
                Rebuild::start(url, plan, options, Complete::All, true, &failure)
                    .await?
                    .finish()
                    .await?
            }
        };
        tracing::info!(
            objects = restored,
            "Keys, constraints and indexes rebuilt, foreign keys validated, statistics taken."
        );
        autovacuum::put_back(&mut client, &plan.plan_id).await?;
        let tables: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
        let moved = {
            let _phase = crate::report::phase(crate::report::Phase::Sequences);
            sequences::advance(&client, &plan.plan_id, &tables).await?
        };
        ledger::mark_completed(&client, &plan.plan_id).await?;
        Ok(Finished {
            restored,
            sequences: moved,
            completed_before: None,
        })
    }
    .await;
    release(&client, outcome, options.io_timeout).await
}

/// Releases the ledger's lock after `outcome`. After a failure the server may be gone: the
/// failure is the news, and the lock goes with the session anyway.
async fn release<T>(
    client: &Client,
    outcome: Result<T>,
    timeout: std::time::Duration,
) -> Result<T> {
    let unlocked = within(
        timeout,
        "releasing the pgclipper lock",
        ledger::unlock(client),
    )
    .await;
    match outcome {
        Ok(done) => unlocked.map(|()| done),
        Err(e) => Err(e),
    }
}

/// The target part of `reset`: empties the plan's tables, puts back what [`before_load`]
/// took off and the sequences [`after_load`] moved, and forgets the plan.
pub async fn put_back(url: &DbUrl, plan: &Plan, options: &LoadOptions) -> Result<()> {
    let mut client = sink::connect(url).await?;
    let recorded = ledger::plan_fingerprint(&client, &plan.plan_id)
        .await?
        .is_some();
    if !plan.tables.is_empty() {
        let context = "emptying the target tables";
        let tables: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(context))?;
        // A foreign key from a table outside the plan stops TRUNCATE even when no row of
        // that table refers to the rows emptied: the ones the rebuild put back are taken
        // off again, in the same transaction, and put back below, validated against the
        // emptied tables (a row that does refer is then named by its key).
        if recorded {
            for object in ledger::restored_foreign_keys_from(&tx, &plan.plan_id, &tables).await? {
                if let Some(drop) = rebuild::dropping(&object) {
                    tx.batch_execute(&drop)
                        .await
                        .map_err(Error::postgres(context))?;
                }
                ledger::unrestored(&tx, &plan.plan_id, &object).await?;
            }
        }
        tx.batch_execute(&format!("TRUNCATE {}", tables.join(", ")))
            .await
            .map_err(Error::postgres(context))?;
        tx.commit().await.map_err(Error::postgres(context))?;
    }
    if recorded {
        Rebuild::start(url, plan, options, Complete::All, false, &Failure::new())
            .await?
            .finish()
            .await?;
        sequences::restore(&client, &plan.plan_id).await?;
        autovacuum::put_back(&mut client, &plan.plan_id).await?;
        ledger::forget_plan(&client, &plan.plan_id).await?;
    }
    Ok(())
}
