//! `report.md` and `report.html` from `report.json`.

pub const MARKDOWN_FILE: &str = "report.md";
pub const HTML_FILE: &str = "report.html";
