//! The COPY writer loops. During `migrate` every writer takes chunks from the encoders'
//! channel ([`from_channel`]), as their binary form streams in or as finished files;
//! during `import` every writer claims the next
//! unloaded chunk in the ledger, the work queue that all import processes share
//! ([`from_ledger`]). Both retry a chunk after transient errors on a new connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{
    commit, connect, copy_and_mark, copy_targets, ledger, load_chunk, load_stream, CopyTarget,
    LoadOptions, Outcome, Streamed,
};
use crate::encode::stream::{Load, StreamedChunk};
use crate::encode::{chunk, FinishedChunk};
use crate::error::{within, Error, Result};
use crate::plan::Plan;
use crate::post::rebuild::Completion;
use crate::url::DbUrl;
use crate::work::{Failure, Retry, Tally, Workers};
use crate::workdir::ManifestEntry;

/// `options.writers` writers loading the chunks that arrive on `chunks` until it closes.
/// A chunk's binary COPY file is removed once loaded (the CSV file stays as the record).
pub fn from_channel(
    url: &DbUrl,
    plan: &Plan,
    options: &LoadOptions,
    chunks: mpsc::UnboundedReceiver<Load>,
    loaded: &Arc<Tally>,
    completion: &Arc<Completion>,
    failure: &Arc<Failure>,
) -> Workers {
    let targets = Arc::new(copy_targets(plan, options.copy_format));
    let chunks = Arc::new(tokio::sync::Mutex::new(chunks));
    Workers::spawn(options.writers, failure, "a COPY writer", |_| {
        let (chunks, targets, url, loaded, completion, failure) = (
            chunks.clone(),
            targets.clone(),
            url.clone(),
            loaded.clone(),
            completion.clone(),
            failure.clone(),
        );
        let (plan_id, timeout) = (plan.plan_id.clone(), options.io_timeout);
        async move {
            let mut client = None;
            loop {
                let next = chunks.lock().await.recv().await;
                let Some(load) = next else { return Ok(()) };
                if failure.is_cancelled() {
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let (outcome, chunk) = match load {
                    Load::File(chunk) => {
                        let target = &targets[&chunk.table];
                        let outcome =
                            load_with_retries(&mut client, &url, &plan_id, target, &chunk, timeout)
                                .await?;
                        (outcome, chunk)
                    }
                    Load::Stream(mut stream) => {
                        let target = &targets[&stream.table];
                        let streamed = load_streamed(
                            &mut client,
                            &url,
                            &plan_id,
                            target,
                            &mut stream,
                            timeout,
                        );
                        match streamed.await? {
                            Some(loaded) => loaded,
                            None => continue, // read again into a new stream, by its reader
                        }
                    }
                };
                match outcome {
                    Outcome::Loaded => {
                        if let Some(path) = &chunk.binary_path {
                            let _ = std::fs::remove_file(path);
                        }
                        loaded.add(chunk.rows, chunk.bytes);
                        let (table, id) = (&chunk.table, chunk.chunk_id);
                        crate::report::loaded(table, id, chunk.rows, chunk.bytes, started);
                    }
                    Outcome::Skipped => {
                        tracing::info!(table = %chunk.table, chunk = chunk.chunk_id, "Chunk loaded by another process; skipped.");
                    }
                }
                completion.chunk_loaded(&chunk.table);
            }
        }
    })
}

/// Loads one chunk on the writer's connection (opened when missing), trying again on a
/// fresh connection after transient errors.
async fn load_with_retries(
    client: &mut Option<Client>,
    url: &DbUrl,
    plan_id: &str,
    target: &CopyTarget,
    chunk: &FinishedChunk,
    timeout: Duration,
) -> Result<Outcome> {
    let mut retry = Retry::writer().of_table(&chunk.table);
    loop {
        let tried = async {
            if client.is_none() {
                *client = Some(connect(url).await?);
            }
            let open = client.as_mut().expect("connected above");
            load_chunk(open, plan_id, target, chunk, timeout).await
        }
        .await;
        match tried {
            Err(e) => {
                *client = None;
                if !retry
                    .wait_after(&e, "Transient target error; trying again.")
                    .await
                {
                    return Err(e);
                }
            }
            ok => return ok,
        }
    }
}

/// Loads a chunk as it streams in on the writer's connection (opened when missing); after
/// a transient error, loads it from its complete CSV file instead, trying again as for any
/// file. `None`: the reader gave the chunk up, and reads it again into a new stream.
async fn load_streamed(
    client: &mut Option<Client>,
    url: &DbUrl,
    plan_id: &str,
    target: &CopyTarget,
    stream: &mut StreamedChunk,
    timeout: Duration,
) -> Result<Option<(Outcome, FinishedChunk)>> {
    let streamed = async {
        if client.is_none() {
            *client = Some(connect(url).await?);
        }
        let open = client.as_mut().expect("connected above");
        load_stream(open, plan_id, target, stream, timeout).await
    }
    .await;
    let (e, chunk) = match streamed {
        Ok(Streamed::Done(outcome, chunk)) => return Ok(Some((outcome, chunk))),
        Ok(Streamed::GivenUp) => return Ok(None),
        Ok(Streamed::Broken(e, chunk)) => (e, chunk),
        // No connection: the stream has not begun.
        Err(e) if e.is_transient() => match stream.drain().await {
            Some(chunk) => (e, chunk),
            None => return Ok(None),
        },
        Err(e) => return Err(e),
    };
    *client = None;
    tracing::warn!(table = %chunk.table, chunk = chunk.chunk_id, error = %e, "Transient target error while the chunk streamed in; loading it from its CSV file.");
    let outcome = load_with_retries(client, url, plan_id, target, &chunk, timeout).await?;
    Ok(Some((outcome, chunk)))
}

/// `options.writers` writers that claim and load chunks from the ledger until none of the
/// plan's chunks is left unloaded. `chunks` are the manifest's chunk files in `workdir`.
pub fn from_ledger(
    url: &DbUrl,
    plan: &Plan,
    options: &LoadOptions,
    workdir: &Path,
    chunks: HashMap<(String, u32), ManifestEntry>,
    loaded: &Arc<Tally>,
    failure: &Arc<Failure>,
) -> Workers {
    let targets = Arc::new(copy_targets(plan, options.copy_format));
    let chunks = Arc::new(ChunkFiles {
        workdir: workdir.to_path_buf(),
        entries: chunks,
    });
    Workers::spawn(options.writers, failure, "an import writer", |_| {
        let (chunks, targets, url, loaded, failure) = (
            chunks.clone(),
            targets.clone(),
            url.clone(),
            loaded.clone(),
            failure.clone(),
        );
        let (plan_id, timeout) = (plan.plan_id.clone(), options.io_timeout);
        async move {
            // A transient error loses at most the claimed chunk's transaction: connect again
            // and go on with the queue.
            let writer = LedgerWriter {
                timeout,
                plan_id: &plan_id,
                chunks: &chunks,
                targets: &targets,
                loaded: &loaded,
                failure: &failure,
            };
            let writer = &writer;
            super::on_new_connection(&url, |mut client| async move {
                writer.claim_and_load(&mut client).await
            })
            .await
        }
    })
}

/// The chunk files of an export, as its manifest lists them.
struct ChunkFiles {
    workdir: PathBuf,
    entries: HashMap<(String, u32), ManifestEntry>,
}

/// What one import writer works with.
struct LedgerWriter<'a> {
    timeout: Duration,
    plan_id: &'a str,
    chunks: &'a ChunkFiles,
    targets: &'a HashMap<String, CopyTarget>,
    loaded: &'a Tally,
    failure: &'a Failure,
}

impl LedgerWriter<'_> {
    /// Claims and loads chunks until none is left unloaded. A chunk held by another
    /// process is waited for, since that process may die and release it.
    async fn claim_and_load(&self, client: &mut Client) -> Result<()> {
        let (timeout, plan_id) = (self.timeout, self.plan_id);
        while !self.failure.is_cancelled() {
            let tx = client
                .transaction()
                .await
                .map_err(Error::postgres("claiming a chunk"))?;
            let claimed = within(
                timeout,
                "claiming a chunk",
                ledger::claim_next(&tx, plan_id),
            )
            .await?;
            let Some((table, chunk_id)) = claimed else {
                drop(tx);
                if ledger::unloaded_count(client, plan_id).await? == 0 {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            let chunk = self.chunk_file(&table, chunk_id)?;
            let target = &self.targets[&table];
            let context = format!(
                "loading chunk {chunk_id} of `{table}` into {}",
                target.qualified
            );
            let started = std::time::Instant::now();
            copy_and_mark(&tx, plan_id, target, &chunk, &context, timeout).await?;
            commit(tx, &context, timeout).await?;
            self.loaded.add(chunk.rows, chunk.bytes);
            crate::report::loaded(&table, chunk_id, chunk.rows, chunk.bytes, started);
        }
        Ok(())
    }

    /// The claimed chunk's files, if they still hold what the export recorded.
    fn chunk_file(&self, table: &str, chunk_id: u32) -> Result<FinishedChunk> {
        let entry = self
            .chunks
            .entries
            .get(&(table.to_string(), chunk_id))
            .ok_or_else(|| {
                Error::Data(format!(
                    "chunk {chunk_id} of `{table}` is in the ledger but not in the manifest"
                ))
            })?;
        let workdir = &self.chunks.workdir;
        if !chunk::intact(workdir, entry) {
            return Err(Error::Data(format!(
                "{}: the chunk file does not match its record (size or checksum): run `pgclipper export` on {} again to write it anew, then `import`",
                workdir.join(&entry.file).display(),
                workdir.display()
            )));
        }
        Ok(FinishedChunk::from_entry(workdir, entry))
    }
}
