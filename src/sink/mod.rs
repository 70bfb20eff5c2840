//! Postgres writers: sessions pinned to UTC and UTF-8, the `pgclipper` ledger
//! ([`ledger`]), COPY of chunk files, and the writer loops ([`writer`]). A chunk's COPY and
//! its ledger mark commit in one transaction, so a chunk is either loaded and recorded or
//! absent.

pub mod ledger;
pub mod tls;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

pub use ledger::{DeferredObject, ObjectKind};

use crate::catalog::pg_ident;
use crate::encode::stream::{Piece, StreamedChunk};
use crate::encode::FinishedChunk;
use crate::error::{within, Error, Problem, Result};
use crate::plan::Plan;
use crate::url::DbUrl;
use crate::work::Retry;

/// How chunks travel to Postgres. The CSV files are written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFormat {
    /// Postgres' binary COPY format, written beside each CSV file from the same values, for
    /// every table whose columns all have a binary form (else CSV): Postgres reads it with
    /// far less work than CSV text.
    #[default]
    Binary,
    /// The CSV files themselves.
    Csv,
}

impl std::str::FromStr for CopyFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "binary" => Ok(CopyFormat::Binary),
            "csv" => Ok(CopyFormat::Csv),
            _ => Err(format!("{text:?}: expected binary or csv")),
        }
    }
}

/// How chunks are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// COPY connections; also the sessions that rebuild indexes and run ANALYZE.
    pub writers: usize,
    pub copy_format: CopyFormat,
    /// How long one network step may take.
    pub io_timeout: Duration,
}

const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; \
     SET synchronous_commit = off; SET DateStyle = 'ISO, YMD'";

/// Bytes handed to Postgres per COPY message.
const COPY_BUFFER: usize = 1 << 20;

pub async fn connect(url: &DbUrl) -> Result<Client> {
    let mut text = url.expose().to_string();
    let tls = tls::TargetTls::take(&mut text, &|name| std::env::var(name).ok())?;
    let mut config: Config = text
        .parse()
        .map_err(|e| Error::Usage(format!("invalid --target URL {url}: {e}")))?;
    if config.get_dbname().is_none() {
        return Err(Error::Usage(format!(
            "--target URL {url} names no database (postgres://user:pass@host:port/DATABASE)"
        )));
    }
    config
        .connect_timeout(Duration::from_secs(30))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name(format!("pgclipper {}", crate::report::run_id()))
        .ssl_mode(tls.driver_mode());
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    if tls.mode == tls::SslMode::Disable {
        crate::tls::warn_unencrypted(crate::tls::Side::Target, &host, TARGET_ENCRYPTION_ADVICE);
    }
    let connector = tls.connector()?;
    let (client, connection) = config
        .connect(connector)
        .await
        .map_err(|e| Error::Connect {
            side: "target",
            url: url.redacted(),
            reason: tls::explain(&e, &tls, &host),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Target connection closed.");
        }
    });
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(Error::postgres("setting up the session"))?;
    if tls.mode == tls::SslMode::Prefer && !crate::tls::is_loopback(&host) {
        warn_if_plain(&client, &host).await;
    }
    Ok(client)
}

/// Runs `step` on a new connection mid-run, when the target answered a moment ago: a
/// restart meanwhile (57P03 while it shuts down or starts up, refused while it is down,
/// 57P01 for a session it ends) costs a new connection and another try of the whole step,
/// by the one retry rule, not the run. `step` must be safe to run again. Not for the first
/// connection of a run, where a wrong password must be said at once.
pub async fn on_new_connection<T, F, Fut>(url: &DbUrl, step: F) -> Result<T>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let step = &step;
    let what = "Transient target error; trying again.";
    Retry::writer()
        .run(what, move || async move { step(connect(url).await?).await })
        .await
}

const TARGET_ENCRYPTION_ADVICE: &str =
    "Use sslmode=verify-full with sslrootcert=FILE (the server's CA).";

/// With `sslmode=prefer` the server may have declined TLS: ask it, once per process.
async fn warn_if_plain(client: &Client, host: &str) {
    static ASKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if ASKED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let encrypted = client
        .query_opt(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await;
    if let Ok(Some(row)) = encrypted {
        if !row.get::<_, bool>(0) {
            crate::tls::warn_unencrypted(crate::tls::Side::Target, host, TARGET_ENCRYPTION_ADVICE);
        }
    }
}

/// `PostgreSQL 17.5 …` as the server says, for the report.
pub async fn server_version(client: &Client) -> Option<String> {
    let row = client.query_one("SELECT version()", &[]).await.ok()?;
    row.get::<_, Option<String>>(0)
}

/// Whether Postgres knows the time zone `zone` by that name.
pub async fn knows_time_zone(client: &Client, zone: &str) -> Result<bool> {
    let known = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)",
            &[&zone],
        )
        .await
        .map_err(Error::postgres("looking up the source time zone"))?;
    Ok(known.get(0))
}

/// A problem for every target table that already holds rows.
pub async fn non_empty_tables(
    client: &Client,
    tables: &[(String, String)],
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (name, qualified) in tables {
        let row = client
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {qualified})"), &[])
            .await
            .map_err(Error::postgres(format!(
                "checking that {qualified} is empty"
            )))?;
        if row.get::<_, bool>(0) {
            problems.push(Problem {
                table: name.clone(),
                column: None,
                message: format!(
                    "target table {qualified} is not empty: pgclipper loads only into empty tables (leave it out with --exclude {name})"
                ),
            });
        }
    }
    Ok(problems)
}

/// Where a chunk goes: the target table and its columns in CSV order, and how it travels.
#[derive(Debug, Clone)]
pub struct CopyTarget {
    pub qualified: String,
    pub columns: Vec<String>,
    pub format: CopyFormat,
    /// The key columns and their positions among `columns`, to name a refused row.
    pub key: Vec<(String, usize)>,
}

impl CopyTarget {
    /// The file to send for `chunk`, and whether it is in binary format: its binary COPY
    /// file when binary is wanted and the file is there, else its CSV file.
    pub fn source_file<'c>(&self, chunk: &'c FinishedChunk) -> (&'c Path, bool) {
        match &chunk.binary_path {
            Some(path) if self.format == CopyFormat::Binary && path.exists() => (path, true),
            _ => (&chunk.path, false),
        }
    }

    pub fn copy_sql(&self, binary: bool) -> String {
        let cols = self
            .columns
            .iter()
            .map(|c| pg_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "COPY {} ({cols}) FROM STDIN WITH (FORMAT {})",
            self.qualified,
            if binary { "binary" } else { "csv" }
        )
    }
}

/// Where each of the plan's tables goes, by source table name.
pub fn copy_targets(plan: &Plan, format: CopyFormat) -> HashMap<String, CopyTarget> {
    plan.tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                CopyTarget {
                    qualified: t.target.clone(),
                    columns: t.target_columns.clone(),
                    format,
                    key: t
                        .key
                        .iter()
                        .filter_map(|k| {
                            Some((k.clone(), t.target_columns.iter().position(|c| c == k)?))
                        })
                        .collect(),
                },
            )
        })
        .collect()
}

/// What became of a chunk handed to a writer.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    /// Loaded already, or being loaded by another process right now.
    Skipped,
}

/// Loads one chunk file and marks it loaded in the ledger, in one transaction, after
/// claiming it: a chunk another process holds or has loaded is left alone.
pub async fn load_chunk(
    client: &mut Client,
    plan_id: &str,
    target: &CopyTarget,
    chunk: &FinishedChunk,
    timeout: Duration,
) -> Result<Outcome> {
    let context = format!(
        "loading chunk {} of `{}` into {}",
        chunk.chunk_id, chunk.table, target.qualified
    );
    let claimed = (plan_id, chunk.table.as_str(), chunk.chunk_id);
    let Some(tx) = claim_in_transaction(client, claimed, &context, timeout).await? else {
        return Ok(Outcome::Skipped);
    };
    copy_and_mark(&tx, plan_id, target, chunk, &context, timeout).await?;
    commit(tx, &context, timeout).await?;
    Ok(Outcome::Loaded)
}

/// A transaction holding the claim of chunk `chunk_id` of `table`; `None` if another
/// process holds the chunk or has loaded it.
async fn claim_in_transaction<'c>(
    client: &'c mut Client,
    (plan_id, table, chunk_id): (&str, &str, u32),
    context: &str,
    timeout: Duration,
) -> Result<Option<tokio_postgres::Transaction<'c>>> {
    let tx = within(timeout, context, async {
        client.transaction().await.map_err(Error::postgres(context))
    })
    .await?;
    let claim = ledger::claim(&tx, plan_id, table, chunk_id);
    Ok(match within(timeout, context, claim).await? {
        ledger::Claim::Taken => None,
        _ => Some(tx),
    })
}

/// Commits a chunk's load.
pub async fn commit(
    tx: tokio_postgres::Transaction<'_>,
    context: &str,
    timeout: Duration,
) -> Result<()> {
    within(timeout, context, async {
        tx.commit().await.map_err(Error::postgres(context))
    })
    .await
}

/// Ends a chunk's COPY and checks that Postgres took as many rows as the chunk holds.
async fn finish_copy(
    mut sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<bytes::Bytes>>,
    chunk: &FinishedChunk,
    context: &str,
    timeout: Duration,
) -> Result<()> {
    // Postgres checks every row at the end: allow for the chunk's size.
    let copied = within(timeout * 4, context, async {
        sink.as_mut()
            .finish()
            .await
            .map_err(Error::postgres(context))
    })
    .await?;
    if copied != chunk.rows {
        return Err(Error::Data(format!(
            "{context}: Postgres loaded {copied} rows, the chunk file holds {}",
            chunk.rows
        )));
    }
    Ok(())
}

/// What became of a chunk streamed to a writer.
pub enum Streamed {
    /// Loaded, or skipped (loaded by another process), and the chunk file beside it.
    Done(Outcome, FinishedChunk),
    /// Its reader gave it up, and reads it again into a new stream.
    GivenUp,
    /// A transient error broke the load: the transaction is rolled back, the chunk file is
    /// complete, and is to be loaded from it.
    Broken(Error, FinishedChunk),
}

/// Loads a chunk as its binary form arrives, in one transaction with its claim and its
/// ledger mark, committed after the chunk's CSV file is on disk ([`Piece::Done`]). A row
/// Postgres refuses is named from that file, as for a file's load.
pub async fn load_stream(
    client: &mut Client,
    plan_id: &str,
    target: &CopyTarget,
    stream: &mut StreamedChunk,
    timeout: Duration,
) -> Result<Streamed> {
    let context = format!(
        "loading chunk {} of `{}` into {}",
        stream.chunk_id, stream.table, target.qualified
    );
    // Nothing begins before the first piece: an empty chunk sends none.
    let first = match stream.pieces.recv().await {
        None => return Ok(Streamed::GivenUp),
        Some(Piece::Done(chunk)) => {
            return match load_chunk(client, plan_id, target, &chunk, timeout).await {
                Ok(outcome) => Ok(Streamed::Done(outcome, chunk)),
                Err(e) if e.is_transient() => Ok(Streamed::Broken(e, chunk)),
                Err(e) => Err(e),
            };
        }
        Some(Piece::Data(data)) => data,
    };
    // The chunk's end, once it has arrived: kept outside the load, since an error after it
    // (at COPY's end, the mark, the commit) must still hand the complete file on; the
    // stream has nothing more to give then.
    let mut done: Option<FinishedChunk> = None;
    let loaded: Result<Outcome> = async {
        let claimed = (plan_id, stream.table.as_str(), stream.chunk_id);
        let Some(tx) = claim_in_transaction(client, claimed, &context, timeout).await? else {
            done = stream.drain().await;
            return Ok(Outcome::Skipped);
        };
        let sink = within(timeout, &context, async {
            tx.copy_in::<_, bytes::Bytes>(&target.copy_sql(true))
                .await
                .map_err(Error::postgres(&context))
        })
        .await?;
        futures_util::pin_mut!(sink);
        let mut next = Some(Piece::Data(first));
        let chunk = loop {
            match next {
                Some(Piece::Data(data)) => {
                    let send = sink.send(data);
                    within(timeout, &context, async {
                        send.await.map_err(Error::postgres(&context))
                    })
                    .await?;
                }
                Some(Piece::Done(chunk)) => break &*done.insert(chunk),
                None => return Ok(Outcome::Skipped), // given up: `done` stays empty
            }
            next = stream.pieces.recv().await;
        };
        finish_copy(sink.as_mut(), chunk, &context, timeout).await?;
        within(timeout, &context, ledger::mark_loaded(&tx, plan_id, chunk)).await?;
        commit(tx, &context, timeout).await?;
        Ok(Outcome::Loaded)
    }
    .await;
    let chunk = match (&loaded, done) {
        (_, Some(chunk)) => Some(chunk),
        // An error before the chunk's end: the rest of the stream brings it.
        (Err(_), None) => stream.drain().await,
        (Ok(_), None) => None,
    };
    match (loaded, chunk) {
        (Ok(outcome), Some(chunk)) => Ok(Streamed::Done(outcome, chunk)),
        (Ok(_), None) => Ok(Streamed::GivenUp),
        (Err(e), None) if e.is_transient() => Ok(Streamed::GivenUp),
        (Err(e), None) => Err(e),
        (Err(e), Some(chunk)) if e.is_transient() => Ok(Streamed::Broken(e, chunk)),
        // Refused: the row is named from the chunk's complete CSV file.
        (Err(e), Some(chunk)) => Err(name_refused_row(e, target, &chunk)),
    }
}

/// COPY of a claimed chunk and its ledger mark, inside the caller's transaction.
pub async fn copy_and_mark(
    tx: &tokio_postgres::Transaction<'_>,
    plan_id: &str,
    target: &CopyTarget,
    chunk: &FinishedChunk,
    context: &str,
    timeout: Duration,
) -> Result<()> {
    if chunk.rows > 0 {
        let (path, binary) = target.source_file(chunk);
        let copied = async {
            let sink = within(timeout, context, async {
                tx.copy_in::<_, bytes::Bytes>(&target.copy_sql(binary))
                    .await
                    .map_err(Error::postgres(context))
            })
            .await?;
            futures_util::pin_mut!(sink);
            stream_file(path, sink.as_mut(), context, timeout).await?;
            finish_copy(sink.as_mut(), chunk, context, timeout).await
        }
        .await;
        copied.map_err(|e| name_refused_row(e, target, chunk))?;
    }
    let mark = ledger::mark_loaded(tx, plan_id, chunk);
    within(timeout, context, mark).await
}

/// A row Postgres refused (a domain's CHECK, a NULL a trigger left, a value its type's input
/// refuses) is named by its key: COPY says which row of the chunk it was, the chunk's CSV
/// file says which key that row holds. Postgres' own detail may quote the whole row, so
/// only its SQLSTATE and message are shown.
fn name_refused_row(error: Error, target: &CopyTarget, chunk: &FinishedChunk) -> Error {
    let Error::Postgres { cause, .. } = &error else {
        return error;
    };
    let Some(db) = cause.as_db_error() else {
        return error;
    };
    if !matches!(&db.code().code()[..2], "22" | "23") {
        return error;
    }
    let row = db
        .where_()
        .and_then(|w| w.split(", line ").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    let Some(row) = row else { return error };
    let key = match crate::encode::csv::row_of_file(&chunk.path, row) {
        Some(fields) if !target.key.is_empty() => target
            .key
            .iter()
            .map(|(name, i)| {
                let value = fields.get(*i).cloned().flatten();
                format!("{name}={}", value.as_deref().unwrap_or("NULL"))
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => format!("row {row} of chunk {}", chunk.chunk_id),
    };
    Error::Refused {
        table: chunk.table.clone(),
        key,
        column: db.column().map(str::to_string),
        reason: format!("{}: {}", db.code().code(), db.message()),
    }
}

async fn stream_file(
    path: &Path,
    mut sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<bytes::Bytes>>,
    context: &str,
    timeout: Duration,
) -> Result<()> {
    let mut file = tokio::fs::File::open(path).await.map_err(Error::io(path))?;
    loop {
        let mut buffer = BytesMut::with_capacity(COPY_BUFFER);
        while buffer.len() < COPY_BUFFER {
            if file.read_buf(&mut buffer).await.map_err(Error::io(path))? == 0 {
                break;
            }
        }
        if buffer.is_empty() {
            return Ok(());
        }
        within(timeout, context, async {
            sink.send(buffer.freeze())
                .await
                .map_err(Error::postgres(context))
        })
        .await?;
    }
}
