//! What the commands print on standard output for the operator.

use std::path::Path;

use crate::commands::check::CheckReport;
use crate::commands::reset::Preview;
use crate::commands::Summary;

/// What `reset` will do, before it asks.
pub fn reset_preview(preview: &Preview, workdir: &Path) {
    println!(
        "pgclipper reset of plan {} ({}):",
        preview.plan.plan_id,
        workdir.display()
    );
    println!(
        "  empty {} target tables: {}",
        preview.tables.len(),
        preview.tables.join(", ")
    );
    println!(
        "  restore {} keys, constraints, indexes and foreign keys and {} sequences as they were",
        preview.saved.deferred, preview.saved.sequences
    );
    println!("  forget the plan in the ledger and remove its files from the workdir");
    println!("  the source is not touched");
}

pub fn check(report: &CheckReport) {
    println!(
        "pgclipper check: {} tables, {} columns paired",
        report.tables, report.columns
    );
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    for p in &report.problems {
        println!("  problem: {p}");
    }
    if report.problems.is_empty() {
        println!("no problems: `pgclipper migrate` can run");
    } else {
        println!(
            "{} problem(s): `pgclipper migrate` would refuse to run",
            report.problems.len()
        );
    }
}

pub fn summary(verb: &str, summary: &Summary) {
    let width = summary
        .tables
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:>7}  {:>12}  {:>12}",
        "table", "chunks", "rows", "bytes"
    );
    for (name, t) in &summary.tables {
        println!(
            "{name:<width$}  {:>7}  {:>12}  {:>12}",
            t.chunks, t.rows, t.bytes
        );
    }
    let secs = summary.elapsed.as_secs_f64().max(1e-3);
    println!(
        "pgclipper {verb} {} rows ({:.1} MiB) of {} tables in {:.1} s ({:.0} rows/s, {:.1} MiB/s); {} sequences advanced",
        summary.total_rows(),
        summary.total_bytes() as f64 / 1048576.0,
        summary.tables.len(),
        secs,
        summary.total_rows() as f64 / secs,
        summary.total_bytes() as f64 / 1048576.0 / secs,
        summary.sequences,
    );
}
