//! The log stream: human lines on a terminal, JSON lines otherwise (`--log-format`
//! chooses), every JSON line carrying the run id so that logs, ledger rows and the report
//! join. `PGCLIPPER_LOG` sets the filter (default `info`; `--quiet` makes it `warn`).

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Starts the log stream on stderr, through `writer` (the progress bars' when they are
/// drawn); returns whether the lines are JSON.
pub fn init<W>(format: Option<LogFormat>, quiet: bool, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGCLIPPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Human
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => {
            builder.with_ansi(std::io::stderr().is_terminal()).init();
            false
        }
        LogFormat::Json => {
            builder.event_format(JsonLine).init();
            true
        }
    }
}

/// `{"timestamp", "level", "run_id", "fields": {"message", …}, "target"}`: the shape of
/// tracing-subscriber's JSON lines, with the run id.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            crate::report::utc(std::time::SystemTime::now()).into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("run_id".into(), crate::report::run_id().into());
        line.insert("fields".into(), Value::Object(fields.0));
        line.insert("target".into(), meta.target().into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
