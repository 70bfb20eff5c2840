//! Postgres writers: sessions pinned to UTC and UTF-8, the `pgferry` ledger, and COPY of
//! chunk files. A chunk's COPY and its ledger row commit in one transaction, so a chunk is
//! either loaded and recorded or absent.

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_postgres::{Client, Config, NoTls};

use crate::catalog::pg_ident;
use crate::config::DbUrl;
use crate::encode::FinishedChunk;
use crate::error::{Error, Problem, Result};

const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; \
     SET synchronous_commit = off; SET DateStyle = 'ISO, YMD'";

/// Bytes handed to Postgres per COPY message.
const COPY_BUFFER: usize = 1 << 20;

pub async fn connect(url: &DbUrl) -> Result<Client> {
    let mut config: Config = url
        .expose()
        .parse()
        .map_err(|e| Error::Usage(format!("invalid --target URL {url}: {e}")))?;
    config
        .connect_timeout(Duration::from_secs(30))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("pgferry");
    let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Connect {
        side: "target",
        url: url.redacted(),
        reason: e.to_string(),
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Target connection closed.");
        }
    });
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(Error::target("setting up the session"))?;
    Ok(client)
}

/// The ledger: one row per loaded chunk, keyed so that no chunk of a plan loads twice,
/// and the definition of every constraint taken off for the load.
pub async fn ensure_ledger(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS pgferry;
             CREATE TABLE IF NOT EXISTS pgferry.chunks (
                 plan_id    text        NOT NULL,
                 table_name text        NOT NULL,
                 chunk_id   integer     NOT NULL,
                 rows       bigint      NOT NULL,
                 checksum   text        NOT NULL,
                 loaded_at  timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (plan_id, table_name, chunk_id)
             );
             CREATE TABLE IF NOT EXISTS pgferry.deferred_constraints (
                 plan_id         text NOT NULL,
                 table_name      text NOT NULL,
                 constraint_name text NOT NULL,
                 definition      text NOT NULL,
                 PRIMARY KEY (plan_id, table_name, constraint_name)
             );",
        )
        .await
        .map_err(Error::target("creating the pgferry ledger"))
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
            .map_err(Error::target(format!("checking that {qualified} is empty")))?;
        if row.get::<_, bool>(0) {
            problems.push(Problem {
                table: name.clone(),
                column: None,
                message: format!(
                    "target table {qualified} is not empty: pgferry loads only into empty tables (leave it out with --exclude {name})"
                ),
            });
        }
    }
    Ok(problems)
}

/// Where a chunk goes: the target table and its columns in CSV order.
#[derive(Debug, Clone)]
pub struct CopyTarget {
    pub qualified: String,
    pub columns: Vec<String>,
}

impl CopyTarget {
    pub fn copy_sql(&self) -> String {
        let cols = self
            .columns
            .iter()
            .map(|c| pg_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "COPY {} ({cols}) FROM STDIN WITH (FORMAT csv)",
            self.qualified
        )
    }
}

/// Loads one chunk file and records it in the ledger, in one transaction.
pub async fn load_chunk(
    client: &mut Client,
    plan_id: &str,
    target: &CopyTarget,
    chunk: &FinishedChunk,
) -> Result<()> {
    let context = format!(
        "loading chunk {} of `{}` into {}",
        chunk.chunk_id, chunk.table, target.qualified
    );
    let tx = client
        .transaction()
        .await
        .map_err(Error::target(&context))?;
    if chunk.rows > 0 {
        let sink = tx
            .copy_in::<_, bytes::Bytes>(&target.copy_sql())
            .await
            .map_err(Error::target(&context))?;
        futures_util::pin_mut!(sink);
        stream_file(&chunk.path, sink.as_mut(), &context).await?;
        let loaded = sink
            .as_mut()
            .finish()
            .await
            .map_err(Error::target(&context))?;
        if loaded != chunk.rows {
            return Err(Error::Data(format!(
                "{context}: Postgres loaded {loaded} rows, the chunk file holds {}",
                chunk.rows
            )));
        }
    }
    tx.execute(
        "INSERT INTO pgferry.chunks (plan_id, table_name, chunk_id, rows, checksum) VALUES ($1, $2, $3, $4, $5)",
        &[
            &plan_id,
            &chunk.table,
            &(chunk.chunk_id as i32),
            &(chunk.rows as i64),
            &format!("{:016x}", chunk.checksum),
        ],
    )
    .await
    .map_err(Error::target(&context))?;
    tx.commit().await.map_err(Error::target(&context))
}

async fn stream_file(
    path: &Path,
    mut sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<bytes::Bytes>>,
    context: &str,
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
        sink.send(buffer.freeze())
            .await
            .map_err(Error::target(context))?;
    }
}
