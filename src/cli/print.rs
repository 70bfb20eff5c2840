//! What the commands print on standard output for the operator. Never a panic when the
//! reader is gone (`pgclipper check | head -1`): what cannot be written is dropped.

/// `println!` that ignores a closed standard output.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Above the progress bars, when they are drawn.
        crate::cli::progress::suspend(|| {
            let _ = writeln!(std::io::stdout().lock(), $($arg)*);
        });
    }};
}

/// A question on standard output, without a line end.
pub fn prompt(question: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{question}");
    let _ = out.flush();
}

use std::path::Path;

use crate::commands::check::CheckReport;
use crate::commands::reset::Preview;
use crate::commands::Summary;

/// What `reset` will do, before it asks.
pub fn reset_preview(preview: &Preview, workdir: &Path) {
    say!(
        "pgclipper reset of plan {} ({}):",
        preview.plan.plan_id,
        workdir.display()
    );
    say!(
        "  empty {} target tables: {}",
        preview.tables.len(),
        preview.tables.join(", ")
    );
    let saved = &preview.saved;
    say!(
        "  restore as they were: {} foreign keys, {} primary keys and unique or exclusion constraints, {} indexes, {} sequences",
        saved.foreign_keys, saved.constraints, saved.indexes, saved.sequences
    );
    say!("  forget the plan in the ledger and remove its files from the workdir");
    say!("  the source is not touched");
}

pub fn check(report: &CheckReport) {
    say!(
        "pgclipper check: {} tables, {} columns paired",
        report.tables,
        report.columns
    );
    for w in &report.warnings {
        say!("  warning: {w}");
    }
    for p in &report.problems {
        say!("  problem: {p}");
    }
    if let Some(resumes) = &report.resumes {
        say!("{resumes}");
    }
    if report.problems.is_empty() {
        say!("no problems: `pgclipper migrate` can run");
    } else {
        say!(
            "{} problem(s): `pgclipper migrate` would refuse to run",
            report.problems.len()
        );
    }
}

/// What a run did: the plan's tables, what this run did of them and what earlier runs
/// had, and where the personal data now lies.
pub fn summary(verb: &str, summary: &Summary, loads: bool) {
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let total = summary.total();
    let workdir = summary.workdir.display();
    if let Some(at) = &summary.completed_before {
        say!(
            "nothing to do: this plan completed at {at} ({} rows, {:.1} MiB, {} tables)",
            total.rows,
            mib(total.bytes),
            summary.tables.len()
        );
        return;
    }
    let width = summary
        .tables
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(5)
        .max(5);
    say!(
        "{:<width$}  {:>7}  {:>12}  {:>12}",
        "table",
        "chunks",
        "rows",
        "bytes"
    );
    for (name, t) in &summary.tables {
        say!(
            "{name:<width$}  {:>7}  {:>12}  {:>12}",
            t.chunks,
            t.rows,
            t.bytes
        );
    }
    let done = summary.this_run;
    let secs = summary.elapsed.as_secs_f64().max(1e-3);
    let mut line = format!(
        "pgclipper {verb} {} rows ({:.1} MiB) in {} chunks of {} tables in {:.1} s ({:.0} rows/s, {:.1} MiB/s)",
        done.rows,
        mib(done.bytes),
        done.chunks,
        summary.tables.len(),
        secs,
        done.rows as f64 / secs,
        mib(done.bytes) / secs,
    );
    if done.chunks < total.chunks {
        line.push_str(&format!(
            "; {} chunks ({} rows) were done by an earlier run",
            total.chunks - done.chunks,
            total.rows.saturating_sub(done.rows)
        ));
    }
    if let Some(n) = summary.sequences {
        line.push_str(&format!("; {n} sequences advanced"));
    }
    say!("{line}");
    say!(
        "the chunk files in {workdir} ({:.1} MiB) hold personal data: once they are no longer needed, remove them (`rm -r {workdir}`)",
        mib(total.bytes)
    );
    if loads {
        say!(
            "the ledger schema `pgclipper` stays in the target for `reset` and resumes: once the cut-over is accepted, drop it with `DROP SCHEMA pgclipper CASCADE`"
        );
    }
}

/// What `verify` found: a line per table, the rows and columns that differ, the catalog's
/// checks, the critical assertions, and the verdict.
pub fn verify(report: &crate::commands::verify::VerifyReport) {
    say!(
        "pgclipper verify of plan {} ({})",
        report.plan_id,
        report.plan
    );
    for t in &report.tables {
        let d = &t.differences;
        if t.identical() {
            say!("  {}: {} rows identical", t.table, t.source_rows);
            continue;
        }
        say!(
            "  {}: DIFFERS: {} missing in the target, {} extra, {} changed ({} rows in the source, {} in the target)",
            t.table, d.missing, d.extra, d.changed, t.source_rows, t.target_rows
        );
        for row in &d.rows {
            if row.columns.is_empty() {
                say!("    {} {}", row.what, row.key);
            } else {
                say!("    {} {}: {}", row.what, row.key, row.columns.join(", "));
            }
        }
        let listed = d.rows.len() as u64;
        if listed < d.missing + d.extra + d.changed {
            say!(
                "    … and {} more",
                d.missing + d.extra + d.changed - listed
            );
        }
    }
    for f in &report.catalog {
        let mark = if f.ok { "ok" } else { "FAILED" };
        say!("  {mark}: {}: {}", f.check, f.detail);
    }
    for c in report.counts.iter().filter(|c| !c.planned) {
        say!("  not planned: {} holds {} rows", c.table, c.rows);
    }
    for c in &report.critical {
        let mark = if c.equal { "ok" } else { "FAILED" };
        say!(
            "  {mark}: critical: {}: source {:?}, target {:?}",
            c.name,
            c.source,
            c.target
        );
    }
    if report.identical() {
        say!(
            "identical: {} tables, {} rows, checked in {:.1} s",
            report.tables.len(),
            report.tables.iter().map(|t| t.source_rows).sum::<u64>(),
            report.seconds
        );
    } else {
        say!("DIFFERENT: see above (verify.json in the workdir holds every finding)");
    }
}

/// Where `report` put the pages.
pub fn rendered(rendered: &crate::commands::report::Rendered) {
    say!(
        "pgclipper report: {} runs rendered\n  {}\n  {}",
        rendered.attempts,
        rendered.markdown.display(),
        rendered.html.display()
    );
}

pub fn status(s: &crate::commands::status::Status) {
    use crate::report::render::duration;
    say!(
        "pgclipper status of plan {} ({} tables)",
        s.plan_id,
        s.tables
    );
    match (&s.completed_at, &s.workdir_holder) {
        (Some(at), _) => say!("  completed at {at}"),
        (None, Some(holder)) => say!("  a run holds the workdir: {holder}"),
        (None, None) => {}
    }
    say!(
        "  chunks: {} loaded, {} in flight, {} left of {}",
        s.loaded_chunks,
        s.in_flight.len(),
        s.left_chunks(),
        s.chunks
    );
    say!(
        "  rows: {} loaded of about {} planned ({:.1} MiB)",
        s.loaded_rows,
        s.planned_rows,
        s.loaded_bytes as f64 / 1048576.0
    );
    match (s.rate, s.eta()) {
        (Some(rate), Some(eta)) => say!(
            "  rate: {rate:.0} rows/s over the last minute; about {} left at that rate",
            duration(eta)
        ),
        _ if s.completed_at.is_none() && s.left_chunks() > 0 => {
            say!("  rate: no chunk loaded in the last minute")
        }
        _ => {}
    }
    for f in &s.in_flight {
        let run = s.runs.iter().find(|r| r.run_id == f.run_id);
        let who = run.map_or(String::new(), |r| format!(", pid {} on {}", r.pid, r.host));
        say!(
            "  in flight: {} for {:.0} s (run {}{who}, from {})",
            f.table,
            f.seconds,
            f.run_id,
            f.client
        );
    }
    for r in &s.runs {
        say!(
            "  run {}: {} pid {} on {} since {}, {} chunks loaded, {}",
            r.run_id,
            r.command,
            r.pid,
            r.host,
            r.started_at,
            r.chunks,
            r.process
        );
    }
    if let Some((run, error)) = &s.last_error {
        say!("  last error (run {run}): {error}");
    }
}
