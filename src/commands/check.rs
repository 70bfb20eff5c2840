//! `pgclipper check`: both catalogs read, every table and column paired, every problem
//! reported at once; nothing moved.

use super::{prepare, TargetRows};
use crate::config::CheckSettings;
use crate::error::{Problem, Result};

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub tables: usize,
    pub columns: usize,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

pub async fn run(settings: &CheckSettings) -> Result<CheckReport> {
    // STEP 1: read both catalogs, pair tables and columns, choose every conversion, and
    // look for target tables that already hold rows.
    let (prepared, problems) = prepare(
        &settings.source,
        &settings.target,
        &settings.selection,
        settings.io_timeout,
        TargetRows::MustBeEmpty,
    )
    .await?;
    // STEP 2: report.
    let tables = &prepared.mapping.tables;
    Ok(CheckReport {
        tables: tables.len(),
        columns: tables.iter().map(|t| t.columns.len()).sum(),
        problems,
        warnings: prepared.mapping.warnings,
    })
}
