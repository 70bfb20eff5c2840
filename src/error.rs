//! pgclipper's error type: every failure says where (table, key, column), what and why,
//! and maps onto the exit codes of the design (1 data, 2 usage, 3 environment).

use std::path::PathBuf;

/// Process exit codes, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Data = 1,
    Usage = 2,
    Environment = 3,
    /// Stopped by SIGINT (Ctrl-C): 128 + 2, as shells report it.
    Interrupted = 130,
    /// Stopped by SIGTERM: 128 + 15.
    Terminated = 143,
}

/// A value that does not fit its target column. Built on the cold path only: the hot
/// loop reports a [`crate::encode::Refusal`] and the encoder adds the location.
#[derive(Debug, Clone, thiserror::Error)]
#[error("table `{table}`, key {key}, column `{column}`: {reason} (value: {excerpt}){}", hint_suffix(.hint))]
pub struct ValueError {
    pub table: String,
    /// The row's primary key rendered as `col=value`, or `row N of chunk C` for keyless tables.
    pub key: String,
    pub column: String,
    /// At most 64 characters of the value, never a whole row.
    pub excerpt: String,
    pub reason: String,
    /// The option that changes the behaviour, where one exists.
    pub hint: Option<&'static str>,
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!("; {h}")).unwrap_or_default()
}

/// One problem found by `check`: many are collected and reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub table: String,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "`{}`.`{}`: {}", self.table, c, self.message),
            None => write!(f, "`{}`: {}", self.table, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("cannot connect to the {side} database at {url}: {reason}")]
    Connect {
        side: &'static str,
        /// Always redacted.
        url: String,
        reason: String,
    },

    #[error("source (MySQL) failed while {context}: {}", mysql_message(.cause))]
    Mysql {
        context: String,
        #[source]
        cause: mysql_async::Error,
    },

    #[error("target (Postgres) failed while {context}: {}", pg_message(.cause))]
    Postgres {
        context: String,
        #[source]
        cause: tokio_postgres::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Value(Box<ValueError>),

    /// A row the target refused on load, named by its key.
    #[error("table `{table}`, key {key}{}: Postgres refused the row: {reason}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Refused {
        table: String,
        key: String,
        /// When Postgres names it.
        column: Option<String>,
        reason: String,
    },

    #[error("the migration cannot run: {} problem(s)\n{}", .0.len(), render_problems(.0))]
    Check(Vec<Problem>),

    #[error("{0}")]
    Data(String),

    #[error("{0}")]
    Environment(String),

    #[error("cancelled because another part of the run failed")]
    Cancelled,

    #[error("stopped by {signal}: {state}")]
    Interrupted {
        signal: &'static str,
        /// What the stopped command leaves behind and what to do next.
        state: &'static str,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// tokio-postgres' Display says only "db error" (or "error connecting to server"); the
/// server's message and SQLSTATE, or the cause below (the OS error), is what an operator
/// needs.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.code().code(), db.message());
            // "Failing row contains (...)" repeats a whole row of personal data: never shown.
            if let Some(d) = db
                .detail()
                .filter(|d| !d.starts_with("Failing row contains"))
            {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!(" [{w}]"));
            }
            s
        }
        None => with_causes(e),
    }
}

/// mysql_async repeats itself ("Input/output error: Input/output error: …"): the server's
/// error as it is, an I/O error by its innermost cause.
pub fn mysql_message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(io) => {
            let mut cause: &dyn std::error::Error = io;
            while let Some(next) = cause.source() {
                cause = next;
            }
            format!("I/O error: {cause}")
        }
        other => other.to_string(),
    }
}

/// An error's message followed by each cause's, skipping causes the message already says.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

impl From<ValueError> for Error {
    fn from(e: ValueError) -> Self {
        Error::Value(Box::new(e))
    }
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Interrupted { signal, .. } if *signal == "SIGTERM" => Exit::Terminated,
            Error::Interrupted { .. } => Exit::Interrupted,
            Error::Value(_) | Error::Refused { .. } | Error::Check(_) | Error::Data(_) => {
                Exit::Data
            }
            // A COPY that Postgres refuses for its data (class 22 data exception,
            // 23 integrity violation) is a data error, not an environment one.
            Error::Postgres { cause, .. } => match cause.code().map(|c| &c.code()[..2]) {
                Some("22") | Some("23") => Exit::Data,
                _ => Exit::Environment,
            },
            Error::Connect { .. }
            | Error::Mysql { .. }
            | Error::Io { .. }
            | Error::Environment(_)
            | Error::Cancelled => Exit::Environment,
        }
    }

    /// Worth another try on a fresh connection: the connection broke or was killed, the
    /// server is restarting or shutting down, or Postgres chose this transaction as a
    /// serialization or deadlock victim. Timeouts are not: a stuck server must stop the run
    /// within its limit. [`crate::work::Retry`] is the one place that acts on it.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Mysql { cause, .. } => is_mysql_connection_loss(cause),
            Error::Postgres { cause, .. } => match cause.code() {
                None => true, // I/O: connection reset or closed
                Some(code) => matches!(
                    code.code(),
                    "40001"
                        | "40P01"
                        | "57P01"
                        | "57P02"
                        | "57P03"
                        | "08000"
                        | "08003"
                        | "08006"
                        | "08001"
                        | "08004"
                ),
            },
            _ => false,
        }
    }

    pub fn mysql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> Error {
        let context = context.into();
        move |cause| Error::Mysql { context, cause }
    }

    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |cause| Error::Postgres { context, cause }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// A broken MySQL connection (reset, closed, killed, server shutting down): worth reading
/// the chunk again on a new connection, if the source has not changed meanwhile.
fn is_mysql_connection_loss(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error as E};
    match e {
        E::Io(_) | E::Driver(DriverError::ConnectionClosed) => true,
        // ER_CONNECTION_KILLED, ER_SERVER_SHUTDOWN, CR_SERVER_GONE_ERROR, CR_SERVER_LOST
        E::Server(s) => matches!(s.code, 1927 | 1053 | 2006 | 2013),
        _ => false,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs one network step with a time limit: a server that stops answering must not hang
/// the run (TCP keepalives alone do not notice a server that is alive but stuck).
pub async fn within<T>(
    limit: std::time::Duration,
    what: &str,
    step: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, step).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Environment(format!(
            "no answer within {} s while {what} (--io-timeout)",
            limit.as_secs()
        ))),
    }
}
