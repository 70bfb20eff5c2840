//! `pgclipper verify`: the proof that the target holds the source's data. Right after
//! `migrate` on its workdir it reuses the migration's plan (its chunks read the source);
//! on a new workdir it plans anew. Either way both sides are read again, the source in one
//! consistent snapshot, and compared row by row in canonical forms computed independently
//! of the conversion code; then the keys, constraints, indexes, foreign keys and
//! sequences, the row counts of every table, and the operator's critical assertions.

use std::path::Path;
use std::time::Instant;

use super::{prepare_or_refuse, resume, TargetRows};
use crate::canon::digest::{Digest, TableCanon};
use crate::config::VerifySettings;
use crate::encode::chunk::digest_path;
use crate::error::{within, Result};
use crate::plan::{self, ChunkSize, PlannedTable};
use crate::report::{self, Phase};
use crate::sink::ledger;
use crate::source::snapshot;
use crate::verify::catalog::{Finding, TableCount};
use crate::verify::critical::{self, CriticalResult};
use crate::verify::{self, RowOptions, TableJob, TableVerdict};
use crate::workdir;

/// Everything `verify` found; also written to `verify.json` in the workdir.
#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    pub plan_id: String,
    /// Whether the migration's plan was reused or a new one made.
    pub plan: &'static str,
    pub tables: Vec<TableVerdict>,
    pub catalog: Vec<Finding>,
    pub counts: Vec<TableCount>,
    pub critical: Vec<CriticalResult>,
    pub seconds: f64,
}

impl VerifyReport {
    /// What the run's report keeps of it (the whole is in `verify.json`).
    pub fn summary(&self) -> serde_json::Value {
        let differing: Vec<_> = self
            .tables
            .iter()
            .filter(|t| !t.identical())
            .map(|t| &t.table)
            .collect();
        serde_json::json!({
            "identical": self.identical(),
            "plan": self.plan,
            "tables": self.tables.len(),
            "rows": self.tables.iter().map(|t| t.source_rows).sum::<u64>(),
            "tables_differing": differing,
            "catalog_findings_failed": self.catalog.iter().filter(|f| !f.ok).count(),
            "critical_failed": self.critical.iter().filter(|c| !c.equal).count(),
            "seconds": self.seconds,
        })
    }

    pub fn identical(&self) -> bool {
        self.tables.iter().all(TableVerdict::identical)
            && self.catalog.iter().all(|f| f.ok)
            && self.critical.iter().all(|c| c.equal)
    }
}

pub async fn run(settings: &VerifySettings) -> Result<VerifyReport> {
    let started = Instant::now();
    let (workdir, timeout) = (&settings.workdir, settings.io_timeout);
    // STEP 1: the workdir, for this run alone.
    let _lock = workdir::open_for_plan(workdir)?;
    report::begin("verify", workdir);
    // STEP 2: both catalogs, paired as `migrate` pairs them (the target's tables hold rows).
    let mut prepared = prepare_or_refuse(
        &settings.source,
        &settings.target,
        &settings.selection,
        timeout,
        TargetRows::MayExist,
    )
    .await?;
    // STEP 3: the migration's plan if the workdir holds it, else a new one.
    let schema = &settings.target.schema;
    let reused = resume::has_plan(workdir);
    let (plan, which) = if reused {
        let plan = resume::existing_plan(workdir, &prepared, schema)?;
        (plan, "the migration's plan, reused")
    } else {
        let size = ChunkSize {
            bytes: settings.chunk_bytes,
            rows: settings.chunk_rows,
        };
        let (tables, database) = (&prepared.mapping.tables, prepared.database.clone());
        let source = plan::PlanSource {
            conn: &mut prepared.mysql,
            url: &settings.source,
            database: &database,
            sessions: settings.readers,
        };
        let plan = plan::make(source, tables, schema, size, timeout, workdir).await?;
        (plan, "a new plan")
    };
    report::plan_made(&plan);
    let _verifying = report::phase(Phase::Verify);
    // STEP 4: one consistent snapshot of the source for every read that follows. The
    // export's digests stand for the source if its binary log shows no write since.
    let mut snapshot = within(
        timeout,
        "opening the consistent snapshot",
        snapshot::open(&settings.source, settings.readers),
    )
    .await?;
    let database = prepared.database.clone();
    let unchanged = reused
        && within(
            timeout,
            "comparing the source with the export",
            snapshot::check_same_source(workdir, &database, &mut snapshot),
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "The export's digests are not used: the source is read again."))
        .is_ok();
    // STEP 5: every row of every planned table, compared.
    let jobs: Vec<TableJob> = plan
        .tables
        .iter()
        .map(|planned| {
            let mapping = prepared
                .mapping
                .tables
                .iter()
                .find(|t| t.name() == planned.name)
                .expect("the fingerprint guarantees the plan's tables are mapped")
                .clone();
            let canon = TableCanon::new(
                &mapping,
                &settings.selection.mapping,
                planned.estimated_rows,
            );
            let exported = unchanged
                .then(|| exported_digest(workdir, planned, &canon))
                .flatten();
            TableJob {
                canon,
                mapping,
                chunks: planned.chunks.clone(),
                exported,
            }
        })
        .collect();
    let options = RowOptions {
        target: settings.target.url.clone(),
        sessions: settings.sessions,
        io_timeout: timeout,
        show_values: settings.show_values,
    };
    let (tables, mut readers) =
        verify::compare_rows(snapshot.readers, &database, jobs, &options).await?;
    // STEP 6: keys, constraints, indexes, foreign keys, sequences; every table's rows.
    let known = ledger::plan_fingerprint(&prepared.postgres, &plan.plan_id).await?;
    let loaded: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
    let plan_id = known.map(|_| plan.plan_id.as_str());
    let (catalog, counts) =
        verify::catalog::check(&prepared.postgres, plan_id, &loaded, schema).await?;
    // STEP 7: the operator's critical assertions, the source in the same snapshot.
    let critical = critical::run(&settings.critical, &mut readers[0], &prepared.postgres).await?;
    for conn in readers {
        let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
    }
    // STEP 8: the record, for the report.
    let report = VerifyReport {
        plan_id: plan.plan_id.clone(),
        plan: which,
        tables,
        catalog,
        counts,
        critical,
        seconds: started.elapsed().as_secs_f64(),
    };
    workdir::write_json(&workdir.join(workdir::VERIFY_FILE), &report)?;
    report::verify_outcome(report.summary());
    Ok(report)
}

/// The source digest of a table as its chunks' digest files hold it, if every chunk has
/// one computed under the same comparison.
fn exported_digest(workdir: &Path, planned: &PlannedTable, canon: &TableCanon) -> Option<Digest> {
    let fingerprint = canon.fingerprint();
    let mut digest = Digest::new(canon.buckets);
    for chunk in &planned.chunks {
        let path = digest_path(&workdir::chunk_path(workdir, &planned.name, chunk.id));
        let bytes = std::fs::read(path).ok()?;
        digest.merge(&Digest::from_bytes(&bytes, fingerprint)?);
    }
    Some(digest)
}
