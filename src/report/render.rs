//! `report.md` and `report.html` from `report.json`: the runs of the workdir's latest plan,
//! the projected downtime against the window (scaled to the production size when the
//! rehearsal moved fewer rows), a timeline of every phase and every table's export, load
//! and rebuild (a Gantt chart in inline SVG), throughput over time, every table sorted by
//! time and the ten slowest. The HTML page is self-contained: inline CSS and SVG, no
//! script, nothing fetched.

use std::fmt::Write;

use super::{Attempt, Phase, ReportFile, Span, TableRecord};
use crate::error::{Error, Result};

pub const MARKDOWN_FILE: &str = "report.md";
pub const HTML_FILE: &str = "report.html";

/// What the operator asks of the projection.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// The downtime window, in seconds.
    pub window_s: Option<f64>,
    /// The production source's rows, when the rehearsal moved fewer.
    pub scale_to_rows: Option<u64>,
}

/// The runs of one plan, as the report shows them.
struct Rehearsal<'a> {
    plan_id: String,
    /// `migrate`, `export` and `import` attempts: the data's way.
    moves: Vec<&'a Attempt>,
    verify: Option<&'a Attempt>,
    all: Vec<&'a Attempt>,
}

impl<'a> Rehearsal<'a> {
    fn of(report: &'a ReportFile) -> Result<Rehearsal<'a>> {
        let plan_id = report
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.plan_id.clone())
            .ok_or_else(|| Error::Usage("report.json holds no run of a plan yet".into()))?;
        let all: Vec<&Attempt> = report
            .attempts
            .iter()
            .filter(|a| a.plan_id.as_deref() == Some(plan_id.as_str()))
            .collect();
        let moves = all
            .iter()
            .copied()
            .filter(|a| a.command != "verify")
            .collect();
        let verify = all.iter().copied().rev().find(|a| a.command == "verify");
        Ok(Rehearsal {
            plan_id,
            moves,
            verify,
            all,
        })
    }

    fn moved_rows(&self) -> u64 {
        self.moves
            .iter()
            .flat_map(|a| a.tables.values())
            .map(|t| t.rows)
            .sum()
    }

    fn moved_bytes(&self) -> u64 {
        self.moves
            .iter()
            .flat_map(|a| a.tables.values())
            .map(|t| t.bytes)
            .sum()
    }

    /// Every table's record over the moving attempts, merged (a resumed table loaded in two).
    fn tables(&self) -> Vec<(String, TableRecord)> {
        let mut merged: std::collections::BTreeMap<String, (TableRecord, f64)> = Default::default();
        for attempt in &self.moves {
            for (name, t) in &attempt.tables {
                let (m, busy) = merged.entry(name.clone()).or_default();
                m.rows += t.rows;
                m.bytes += t.bytes;
                m.chunks += t.chunks;
                m.retries += t.retries;
                m.planned_rows = m.planned_rows.or(t.planned_rows);
                *busy += table_seconds(t);
                // Spans of different attempts do not share a clock: keep the last's.
                for (into, from) in [
                    (&mut m.export, t.export),
                    (&mut m.load, t.load),
                    (&mut m.rebuild, t.rebuild),
                    (&mut m.foreign_keys, t.foreign_keys),
                    (&mut m.analyze, t.analyze),
                ] {
                    if from.is_some() {
                        *into = from;
                    }
                }
            }
        }
        let mut tables: Vec<(String, TableRecord, f64)> =
            merged.into_iter().map(|(n, (t, s))| (n, t, s)).collect();
        tables.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        tables.into_iter().map(|(n, t, _)| (n, t)).collect()
    }
}

/// From a table's first stage's start to its last stage's end.
fn table_seconds(t: &TableRecord) -> f64 {
    let spans: Vec<Span> = [t.export, t.load, t.rebuild, t.foreign_keys, t.analyze]
        .into_iter()
        .flatten()
        .collect();
    let start = spans
        .iter()
        .map(|s| s.start_s)
        .fold(f64::INFINITY, f64::min);
    let end = spans.iter().map(|s| s.end_s).fold(0.0, f64::max);
    if spans.is_empty() {
        0.0
    } else {
        end - start
    }
}

/// The projected downtime and how it was reached.
struct Projected {
    measured_s: f64,
    factor: f64,
    production_rows: Option<u64>,
    projected_s: f64,
    assumptions: Vec<String>,
}

fn project(r: &Rehearsal, options: &Projection) -> Projected {
    let seconds = |a: &&Attempt| a.seconds;
    let measured_s: f64 =
        r.moves.iter().map(seconds).sum::<f64>() + r.verify.map(|v| v.seconds).unwrap_or(0.0);
    // Phases whose time does not grow with the rows: planning reads catalogs and row
    // estimates, ANALYZE samples a fixed number of rows per table, sequences are one
    // statement each.
    let fixed_s: f64 = r
        .moves
        .iter()
        .flat_map(|a| a.phases.iter())
        .filter(|p| matches!(p.phase, Phase::Plan | Phase::Analyze | Phase::Sequences))
        .map(|p| p.span.seconds())
        .sum();
    let moved = r.moved_rows().max(1);
    // The source's statistics stand for production only when the rehearsal chose some of
    // its tables (--tables): a staging copy's own statistics say nothing of production.
    let statistics = r
        .moves
        .iter()
        .rev()
        .filter(|a| !a.settings["tables"].is_null())
        .find_map(|a| a.source_rows_estimate);
    let mut assumptions = vec![
        "export, load, key and index builds, foreign key checks and verify grow in \
         proportion to the rows (index builds grow slightly faster: n log n)"
            .to_string(),
        "planning, ANALYZE (a fixed sample per table) and sequences take as long as here"
            .to_string(),
        "the production servers and network are as fast as this rehearsal's, and the \
         settings the same"
            .to_string(),
    ];
    let production_rows = match (options.scale_to_rows, statistics) {
        (Some(rows), _) => {
            assumptions.push(format!("production holds {rows} rows (--scale-to-rows)"));
            Some(rows)
        }
        (None, Some(rows)) if rows as f64 > moved as f64 * 1.1 => {
            assumptions.push(format!(
                "production holds about {rows} rows: the source's own table statistics \
                 (InnoDB's estimates) for all its tables but those excluded, of which this \
                 rehearsal (--tables) moved {moved}"
            ));
            Some(rows)
        }
        _ => None,
    };
    let factor = production_rows.map_or(1.0, |rows| rows as f64 / moved as f64);
    let projected_s = fixed_s.min(measured_s) + (measured_s - fixed_s).max(0.0) * factor;
    Projected {
        measured_s,
        factor,
        production_rows,
        projected_s,
        assumptions,
    }
}

/// `report.md` and `report.html`.
pub fn render(report: &ReportFile, options: &Projection) -> Result<(String, String)> {
    let r = Rehearsal::of(report)?;
    let projected = project(&r, options);
    Ok((
        markdown(&r, &projected, options),
        html(&r, &projected, options),
    ))
}

fn verdict(p: &Projected, options: &Projection) -> String {
    match options.window_s {
        Some(window) if p.projected_s <= window => format!(
            "fits the window of {}: {} left",
            duration(window),
            duration(window - p.projected_s)
        ),
        Some(window) => format!(
            "does NOT fit the window of {}: {} over",
            duration(window),
            duration(p.projected_s - window)
        ),
        None => "no window given (--window 30m)".to_string(),
    }
}

fn markdown(r: &Rehearsal, p: &Projected, options: &Projection) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# pgclipper rehearsal report\n");
    let _ = writeln!(md, "Plan `{}`.\n", r.plan_id);
    let _ = writeln!(md, "## Downtime\n");
    let _ = writeln!(
        md,
        "Measured: **{}** for {} rows ({}).  ",
        duration(p.measured_s),
        r.moved_rows(),
        mib(r.moved_bytes())
    );
    match p.production_rows {
        Some(rows) => {
            let _ = writeln!(
                md,
                "Projected for {rows} rows (×{:.2}): **{}**, which {}.\n",
                p.factor,
                duration(p.projected_s),
                verdict(p, options)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "Projected at this size: **{}**, which {}.\n",
                duration(p.projected_s),
                verdict(p, options)
            );
        }
    }
    let _ = writeln!(md, "The projection assumes:\n");
    for a in &p.assumptions {
        let _ = writeln!(md, "- {a}");
    }
    let _ = writeln!(md, "\n## Runs\n");
    let _ = writeln!(
        md,
        "| run | command | outcome | started | seconds | source | target |\n|---|---|---|---|---:|---|---|"
    );
    for a in &r.all {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            a.run_id,
            a.command,
            a.outcome,
            a.started_at,
            a.seconds,
            a.servers.source.as_deref().unwrap_or("-"),
            short_version(a.servers.target.as_deref())
        );
    }
    for a in &r.all {
        if let Some(e) = &a.error {
            let _ = writeln!(md, "\n{} ended: {}", a.run_id, e.replace('\n', " "));
        }
    }
    let _ = writeln!(md, "\n## Phases\n");
    let _ = writeln!(
        md,
        "| run | phase | start s | seconds |\n|---|---|---:|---:|"
    );
    for a in &r.all {
        for ph in &a.phases {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} |",
                a.run_id,
                ph.phase.label(),
                ph.span.start_s,
                ph.span.seconds()
            );
        }
    }
    let tables = r.tables();
    let _ = writeln!(md, "\n## Tables, slowest first\n");
    table_markdown(&mut md, &tables);
    let _ = writeln!(md, "\n## The ten slowest\n");
    for (name, t) in tables.iter().take(10) {
        let _ = writeln!(
            md,
            "1. `{name}`: {:.2} s, {} rows",
            table_seconds(t),
            t.rows
        );
    }
    let _ = writeln!(
        md,
        "\nThe timeline and throughput charts are in `report.html`."
    );
    md
}

fn table_markdown(md: &mut String, tables: &[(String, TableRecord)]) {
    let _ = writeln!(
        md,
        "| table | rows | MiB | chunks | export s | load s | keys s | FK s | total s | rows/s | retries |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, t) in tables {
        let _ = writeln!(md, "| `{name}` | {} |", table_cells(t).join(" | "));
    }
}

fn table_cells(t: &TableRecord) -> Vec<String> {
    let s = |span: Option<Span>| span.map_or("-".to_string(), |s| format!("{:.2}", s.seconds()));
    let total = table_seconds(t);
    vec![
        t.rows.to_string(),
        format!("{:.1}", t.bytes as f64 / 1048576.0),
        t.chunks.to_string(),
        s(t.export),
        s(t.load),
        s(t.rebuild),
        s(t.foreign_keys),
        format!("{total:.2}"),
        if total > 0.0 {
            format!("{:.0}", t.rows as f64 / total)
        } else {
            "-".into()
        },
        t.retries.to_string(),
    ]
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}\
td:first-child,th:first-child{text-align:left}code{font-size:.95em}\
.fit{color:#17692e;font-weight:600}.over{color:#b00020;font-weight:600}\
svg text{font:11px system-ui,sans-serif}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:-2px}";

/// Colours of the stages, as the legend shows them.
const STAGES: [(&str, &str); 6] = [
    ("phase", "#9c755f"),
    ("export", "#4e79a7"),
    ("load", "#59a14f"),
    ("keys", "#f28e2b"),
    ("fk", "#e15759"),
    ("analyze", "#76b7b2"),
];

fn html(r: &Rehearsal, p: &Projected, options: &Projection) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pgclipper rehearsal {}</title><style>{CSS}</style></head><body>\n",
        esc(&r.plan_id)
    );
    let _ = writeln!(
        h,
        "<h1>pgclipper rehearsal report</h1><p>Plan <code>{}</code>.</p>",
        esc(&r.plan_id)
    );
    let class = match options.window_s {
        Some(w) if p.projected_s > w => "over",
        Some(_) => "fit",
        None => "",
    };
    let _ = writeln!(
        h,
        "<h2>Downtime</h2><p>Measured: <b>{}</b> for {} rows ({}).<br>Projected{}: <b>{}</b>, which <span class=\"{class}\">{}</span>.</p>",
        duration(p.measured_s),
        r.moved_rows(),
        mib(r.moved_bytes()),
        p.production_rows
            .map(|rows| format!(" for {rows} rows (×{:.2})", p.factor))
            .unwrap_or_else(|| " at this size".into()),
        duration(p.projected_s),
        esc(&verdict(p, options))
    );
    let _ = writeln!(h, "<p>The projection assumes:</p><ul>");
    for a in &p.assumptions {
        let _ = writeln!(h, "<li>{}</li>", esc(a));
    }
    let _ = writeln!(h, "</ul>");
    let _ = writeln!(h, "<h2>Runs</h2><table><tr><th>run</th><th>command</th><th>outcome</th><th>started</th><th>seconds</th><th>source</th><th>target</th><th>machine</th></tr>");
    for a in &r.all {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}: {} cores, {} MiB</td></tr>",
            esc(&a.run_id),
            esc(&a.command),
            esc(&a.outcome),
            esc(&a.started_at),
            a.seconds,
            esc(a.servers.source.as_deref().unwrap_or("-")),
            esc(&short_version(a.servers.target.as_deref())),
            esc(&a.machine.host),
            a.machine.cores,
            a.machine.memory_mib
        );
    }
    let _ = writeln!(h, "</table>");
    for a in &r.all {
        if let Some(e) = &a.error {
            let _ = writeln!(h, "<p><b>{}</b> ended: {}</p>", esc(&a.run_id), esc(e));
        }
    }
    let _ = writeln!(h, "<h2>Timeline</h2><p class=\"legend\">");
    for (name, colour) in STAGES {
        let label = match name {
            "keys" => "keys and indexes",
            "fk" => "foreign keys",
            other => other,
        };
        let _ = write!(h, "<span style=\"background:{colour}\"></span>{label}");
    }
    let _ = writeln!(h, "</p>");
    for a in &r.all {
        let _ = writeln!(
            h,
            "<h3>{} {} ({:.1} s)</h3>\n{}",
            esc(&a.command),
            esc(&a.run_id),
            a.seconds,
            gantt(a)
        );
    }
    let _ = writeln!(h, "<h2>Throughput</h2>");
    for a in r.moves.iter().filter(|a| !a.throughput.is_empty()) {
        let _ = writeln!(
            h,
            "<h3>{} {}</h3>\n{}",
            esc(&a.command),
            esc(&a.run_id),
            throughput(a)
        );
    }
    let tables = r.tables();
    let _ = writeln!(h, "<h2>Tables, slowest first</h2><table><tr><th>table</th><th>rows</th><th>MiB</th><th>chunks</th><th>export s</th><th>load s</th><th>keys s</th><th>FK s</th><th>total s</th><th>rows/s</th><th>retries</th></tr>");
    for (name, t) in &tables {
        let cells: String = table_cells(t)
            .iter()
            .map(|c| format!("<td>{}</td>", esc(c)))
            .collect();
        let _ = writeln!(h, "<tr><td><code>{}</code></td>{cells}</tr>", esc(name));
    }
    let _ = writeln!(h, "</table><h2>The ten slowest</h2><ol>");
    for (name, t) in tables.iter().take(10) {
        let _ = writeln!(
            h,
            "<li><code>{}</code>: {:.2} s, {} rows</li>",
            esc(name),
            table_seconds(t),
            t.rows
        );
    }
    let _ = writeln!(h, "</ol></body></html>");
    h
}

/// The Gantt chart of one attempt: a row per phase, then a row per table with a bar per
/// stage (export, load, keys and indexes, foreign keys), in the attempt's seconds.
fn gantt(a: &Attempt) -> String {
    const LABEL: f64 = 230.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 18.0;
    const TOP: f64 = 22.0;
    let end = a.seconds.max(0.001);
    let x = |t: f64| LABEL + (t.max(0.0) / end).min(1.0) * WIDTH;
    let mut tables: Vec<(&String, &TableRecord)> = a
        .tables
        .iter()
        .filter(|(_, t)| table_seconds(t) > 0.0 || t.export.is_some() || t.load.is_some())
        .collect();
    let first = |t: &TableRecord| {
        [t.export, t.load, t.rebuild, t.foreign_keys, t.analyze]
            .into_iter()
            .flatten()
            .map(|s| s.start_s)
            .fold(f64::INFINITY, f64::min)
    };
    tables.sort_by(|l, r| first(l.1).total_cmp(&first(r.1)).then(l.0.cmp(r.0)));
    let rows = a.phases.len() + tables.len();
    let height = TOP + rows as f64 * ROW + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"gantt\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-label=\"timeline of {}\">",
        LABEL + WIDTH + 10.0,
        LABEL + WIDTH + 10.0,
        esc(&a.run_id)
    );
    // The time axis.
    let step = nice_step(end);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let px = x(t);
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{height}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"12\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            TOP - 4.0,
            axis_label(t, step)
        );
        t += step;
    }
    let mut y = TOP;
    let bar = |svg: &mut String, y: f64, span: Span, stage: &str, table: &str, title: &str| {
        let colour = STAGES.iter().find(|s| s.0 == stage).map_or("#999", |s| s.1);
        let (x0, x1) = (x(span.start_s), x(span.end_s));
        // At least a pixel: a span too short to see is still drawn.
        let w = (x1 - x0).max(1.0);
        let _ = write!(
            svg,
            "<rect class=\"bar {stage}\" data-table=\"{}\" data-stage=\"{stage}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} {:.2}–{:.2} s</title></rect>",
            esc(table),
            y + 2.0,
            ROW - 4.0,
            esc(title),
            span.start_s,
            span.end_s
        );
    };
    for ph in &a.phases {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">phase: {}</text>",
            LABEL - 6.0,
            y + ROW - 5.0,
            esc(ph.phase.label())
        );
        bar(&mut svg, y, ph.span, "phase", "", ph.phase.label());
        y += ROW;
    }
    for (name, t) in &tables {
        let _ = write!(
            svg,
            "<text class=\"table\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LABEL - 6.0,
            y + ROW - 5.0,
            esc(&ellipsis(name, 34))
        );
        for (span, stage, what) in [
            (t.export, "export", "export"),
            (t.load, "load", "load"),
            (t.rebuild, "keys", "keys and indexes"),
            (t.foreign_keys, "fk", "foreign keys"),
            (t.analyze, "analyze", "analyze"),
        ] {
            if let Some(span) = span {
                bar(&mut svg, y, span, stage, name, &format!("{name}: {what}"));
            }
        }
        y += ROW;
    }
    svg.push_str("</svg>");
    svg
}

/// Loaded MiB/s over the attempt, in up to 60 intervals.
fn throughput(a: &Attempt) -> String {
    const WIDTH: f64 = 900.0;
    const HEIGHT: f64 = 140.0;
    let end = a.seconds.max(0.001);
    let bins = 60usize;
    let width_s = end / bins as f64;
    let mut per_bin = vec![0u64; bins];
    let mut before = 0u64;
    for s in &a.throughput {
        let bin = ((s.t_s / width_s) as usize).min(bins - 1);
        per_bin[bin] += s.bytes.saturating_sub(before);
        before = s.bytes;
    }
    let rates: Vec<f64> = per_bin
        .iter()
        .map(|b| *b as f64 / 1048576.0 / width_s)
        .collect();
    let top = rates.iter().cloned().fold(0.0, f64::max).max(0.001);
    let mut svg = format!(
        "<svg class=\"throughput\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"throughput\">",
        WIDTH + 80.0,
        HEIGHT + 24.0
    );
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"12\" fill=\"#666\">{top:.1} MiB/s</text><text x=\"0\" y=\"{HEIGHT}\" fill=\"#666\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\">{}</text>",
        WIDTH + 70.0,
        HEIGHT + 18.0,
        axis_label(end, end / 10.0)
    );
    for (i, rate) in rates.iter().enumerate() {
        let h = rate / top * (HEIGHT - 16.0);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#59a14f\"><title>{:.1}–{:.1} s: {rate:.1} MiB/s</title></rect>",
            70.0 + i as f64 * WIDTH / bins as f64,
            HEIGHT - h,
            WIDTH / bins as f64 - 1.0,
            i as f64 * width_s,
            (i + 1) as f64 * width_s
        );
    }
    svg.push_str("</svg>");
    svg
}

fn nice_step(end: f64) -> f64 {
    let raw = end / 8.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let scaled = raw / magnitude;
    let nice = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick's label, with as many decimals as the ticks' `step` needs.
fn axis_label(t: f64, step: f64) -> String {
    if step >= 60.0 {
        return format!("{:.0} min", t / 60.0);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{t:.decimals$} s")
}

/// `1 h 02 min`, `3 min 05 s`, `4.2 s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s >= 3600.0 {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            (s % 3600.0 / 60.0) as u64
        )
    } else if s >= 60.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1} s")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn short_version(v: Option<&str>) -> String {
    v.map_or("-".into(), |v| {
        v.split(" on ").next().unwrap_or(v).to_string()
    })
}

fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `30m`, `1h`, `90s`, `1h30m` or plain seconds, for `--window`.
pub fn parse_window(text: &str) -> std::result::Result<f64, String> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.trim().chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = number
                    .parse()
                    .map_err(|_| format!("{text:?}: expected e.g. 30m, 1h, 90s"))?;
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                number.clear();
            }
            _ => return Err(format!("{text:?}: expected e.g. 30m, 1h, 90s")),
        }
    }
    if !number.is_empty() {
        total += number
            .parse::<f64>()
            .map_err(|_| format!("{text:?}: expected e.g. 30m"))?;
    }
    if total <= 0.0 {
        return Err(format!("{text:?}: a window must be longer than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rehearsal(seconds: f64, rows: u64, tables: Option<&str>, estimate: u64) -> ReportFile {
        let attempt = serde_json::json!({
            "run_id": "r1", "command": "migrate", "plan_id": "p1",
            "started_at": "2026-12-01T00:00:00.000Z", "finished_at": "2026-12-01T00:01:00.000Z",
            "seconds": seconds, "outcome": "completed", "exit_code": 0, "error": null,
            "settings": {"tables": tables}, "servers": {"source": null, "target": null},
            "source_rows_estimate": estimate,
            "machine": {"host": "h", "cores": 2, "memory_mib": 1024, "pid": 1},
            "phases": [
                {"phase": "plan", "start_s": 0.0, "end_s": 10.0},
                {"phase": "export_and_load", "start_s": 10.0, "end_s": seconds}
            ],
            "tables": {"users": {"rows": rows, "bytes": 1000, "chunks": 1,
                "export": {"start_s": 10.0, "end_s": 50.0}, "load": {"start_s": 11.0, "end_s": seconds},
                "rebuild": null, "foreign_keys": null, "retries": 0, "planned_rows": rows}},
            "throughput": [{"t_s": seconds, "rows": rows, "bytes": 1000}],
            "retries": 0, "verify": null
        });
        ReportFile {
            format: "pgclipper-report/1".into(),
            attempts: vec![serde_json::from_value(attempt).unwrap()],
        }
    }

    #[test]
    fn the_projection_scales_what_grows_with_the_rows_and_holds_it_against_the_window() {
        let options = Projection {
            window_s: Some(1800.0),
            scale_to_rows: Some(10_000),
        };
        // 10 s of planning stay, 90 s of moving 1,000 rows become 900 s for 10,000.
        let (md, html) = render(&rehearsal(100.0, 1_000, None, 1_000), &options).unwrap();
        assert!(
            md.contains("Projected for 10000 rows (×10.00): **15 min 10 s**"),
            "{md}"
        );
        assert!(
            md.contains("fits the window of 30 min 00 s: 14 min 50 s left"),
            "{md}"
        );
        assert!(html.contains("class=\"fit\""));
        let options = Projection {
            window_s: Some(300.0),
            scale_to_rows: None,
        };
        // The source's statistics count only when the rehearsal chose its tables.
        let (md, _) = render(&rehearsal(100.0, 1_000, None, 5_000), &options).unwrap();
        assert!(
            md.contains("Projected at this size: **1 min 40 s**"),
            "{md}"
        );
        let (md, html) = render(&rehearsal(100.0, 1_000, Some("users"), 5_000), &options).unwrap();
        assert!(
            md.contains("×5.00): **7 min 40 s**, which does NOT fit"),
            "{md}"
        );
        assert!(html.contains("data-table=\"users\" data-stage=\"load\""));
    }

    #[test]
    fn windows_are_read_as_operators_write_them() {
        assert_eq!(parse_window("30m"), Ok(1800.0));
        assert_eq!(parse_window("1h30m"), Ok(5400.0));
        assert_eq!(parse_window("90"), Ok(90.0));
        assert!(parse_window("soon").is_err());
        assert!(parse_window("0m").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(4.23), "4.2 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(0.9), 0.2);
        assert_eq!(nice_step(75.0), 10.0);
        assert_eq!(nice_step(1700.0), 500.0);
    }
}
