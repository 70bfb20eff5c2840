//! `pgclipper report`: `report.md` and `report.html` in the workdir, from the record every
//! run left in its `report.json` ([`crate::report`]). Reads nothing else, connects to
//! nothing: it runs anywhere the workdir is, during a run too.

use std::path::PathBuf;

use crate::config::ReportSettings;
use crate::error::{Error, Result};
use crate::report::{self, render};
use crate::workdir;

pub struct Rendered {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub attempts: usize,
}

pub fn run(settings: &ReportSettings) -> Result<Rendered> {
    // STEP 1: the record of the workdir's runs.
    let path = settings.workdir.join(report::REPORT_FILE);
    if !path.exists() {
        return Err(Error::Usage(format!(
            "no {} in {}: `migrate`, `export`, `import` and `verify` write it there",
            report::REPORT_FILE,
            settings.workdir.display()
        )));
    }
    let record = report::read(&path)?;
    // STEP 2: both pages, beside it.
    let (markdown, html) = render::render(&record, &settings.projection)?;
    let rendered = Rendered {
        markdown: settings.workdir.join(render::MARKDOWN_FILE),
        html: settings.workdir.join(render::HTML_FILE),
        attempts: record.attempts.len(),
    };
    workdir::write_bytes(&rendered.markdown, markdown.as_bytes())?;
    workdir::write_bytes(&rendered.html, html.as_bytes())?;
    Ok(rendered)
}
