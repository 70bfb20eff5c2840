//! `pgclipper check`: both catalogs read, every table and column paired, every problem
//! reported at once; nothing moved. With a workdir that holds a plan, it judges what
//! `migrate` on that workdir would do: resume the plan, or refuse and why.

use super::{prepare, resume, TargetRows};
use crate::config::CheckSettings;
use crate::error::{Problem, Result};
use crate::sink::ledger;

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub tables: usize,
    pub columns: usize,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The workdir's plan that `migrate` would resume, and how far it got.
    pub resumes: Option<String>,
}

pub async fn run(settings: &CheckSettings) -> Result<CheckReport> {
    let workdir = settings.workdir.as_deref().filter(|w| resume::has_plan(w));
    // STEP 1: read both catalogs, pair tables and columns, choose every conversion; target
    // tables must be empty unless a plan in the workdir has loaded them.
    let rows = match workdir {
        Some(_) => TargetRows::MayExist,
        None => TargetRows::MustBeEmpty,
    };
    let (prepared, mut problems) = prepare(
        &settings.source,
        &settings.target,
        &settings.selection,
        settings.io_timeout,
        rows,
    )
    .await?;
    // STEP 2: with a plan in the workdir, the resume rule `migrate` applies.
    let mut resumes = None;
    if let Some(workdir) = workdir {
        let judged = async {
            let plan = resume::existing_plan(workdir, &prepared, &settings.target.schema)?;
            resume::check_ledger(&plan, &prepared.postgres, workdir).await?;
            let loaded = match ledger::plan_fingerprint(&prepared.postgres, &plan.plan_id).await? {
                Some(_) => ledger::loaded_chunks(&prepared.postgres, &plan.plan_id)
                    .await?
                    .len(),
                None => 0,
            };
            let chunks = plan.chunk_ids().count();
            Ok::<_, crate::Error>(format!(
                "`pgclipper migrate` on {} resumes plan {}: {loaded} of {chunks} chunks loaded",
                workdir.display(),
                plan.plan_id
            ))
        }
        .await;
        match judged {
            Ok(text) => resumes = Some(text),
            Err(e) => problems.push(Problem {
                table: workdir.display().to_string(),
                column: None,
                message: e.to_string(),
            }),
        }
    }
    // STEP 3: report.
    let tables = &prepared.mapping.tables;
    Ok(CheckReport {
        tables: tables.len(),
        columns: tables.iter().map(|t| t.columns.len()).sum(),
        problems,
        warnings: prepared.mapping.warnings,
        resumes,
    })
}
