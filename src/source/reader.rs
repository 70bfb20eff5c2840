//! The reader loop: every reader connection of the snapshot takes the next chunk from the
//! queue and streams its rows to the encoders in batches; after a lost connection it reads
//! the chunk again on a new snapshot, if the source has not been written since.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::row::{OwnedRow, RowLayout};
use super::slices;
use super::snapshot::{self, BinlogPosition, Snapshot};
use super::{chunk_query, KeyColumn};
use crate::encode::pool::{Batch, Input};
use crate::encode::stream::Streams;
use crate::encode::{ChunkWriter, TableCodec, LARGE_VALUE};
use crate::error::{within, Error, Result};
use crate::plan::Chunk;
use crate::url::DbUrl;
use crate::work::{Failure, Queue, Retry, Workers};

/// Rows per batch handed from a reader to the encoders, and the byte budget of one batch.
const BATCH_ROWS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;

/// One table's share of the export: how to read, convert and place its chunks.
pub struct TableJob {
    pub codec: Arc<TableCodec>,
    pub key: Vec<KeyColumn>,
    /// The chunk query's select list ([`super::select_list`]).
    pub select: String,
    /// MySQL's statistics say the table's rows average [`LARGE_VALUE`] or more.
    pub large_rows: bool,
}

/// The one reader at a time that reads rows of [`LARGE_VALUE`] or more.
static LARGE_ROW_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// One chunk to read, and the file it becomes.
pub struct ChunkTask {
    pub job: Arc<TableJob>,
    pub chunk: Chunk,
    pub path: PathBuf,
}

/// Where the readers come from: to reopen one after a lost connection.
#[derive(Clone)]
pub struct Origin {
    pub url: DbUrl,
    pub database: String,
    pub binlog: Option<BinlogPosition>,
}

/// Where the readers hand their rows: the encoders, and with `streams` (`migrate`) the
/// writers that load a chunk's binary form as it is encoded.
#[derive(Clone)]
pub struct Output {
    pub input: Input,
    pub streams: Option<Streams>,
}

/// One reader per connection of `snapshot`, reading `tasks` in order into `output`.
pub fn spawn(
    snapshot: Snapshot,
    origin: Origin,
    tasks: Vec<ChunkTask>,
    output: Output,
    io_timeout: Duration,
    failure: &Arc<Failure>,
) -> Workers {
    let queue = Queue::new(tasks, failure);
    let mut connections = snapshot.readers.into_iter();
    Workers::spawn(connections.len(), failure, "a reader", |_| {
        let conn = connections.next().expect("one connection per reader");
        reader_loop(
            conn,
            origin.clone(),
            queue.clone(),
            output.clone(),
            io_timeout,
        )
    })
}

async fn reader_loop(
    mut conn: Conn,
    origin: Origin,
    queue: Arc<Queue<ChunkTask>>,
    output: Output,
    io_timeout: Duration,
) -> Result<()> {
    let outcome = async {
        while let Some(task) = queue.next() {
            let mut retry = Retry::reader().of_table(&task.job.codec.table);
            loop {
                let attempt = retry.attempt();
                let Err(e) = read_chunk(&mut conn, &origin.database, &task, &output, io_timeout, attempt).await
                else {
                    break;
                };
                let what = "Source connection lost; reading the chunk again on a new snapshot.";
                if !retry.wait_after(&e, what).await {
                    return Err(e);
                }
                tracing::info!(table = %task.job.codec.table, chunk = task.chunk.id, "Reopening a reader.");
                conn = within(
                    io_timeout,
                    "reopening a reader",
                    snapshot::reopen_reader(&origin.url, &origin.database, &origin.binlog),
                )
                .await?;
            }
        }
        Ok(())
    }
    .await;
    // The encoders must see the readers gone even if the server no longer answers.
    drop(output);
    // Ends the snapshot transaction; the connection goes with it. After a failure the
    // server may be stuck: the other stages must hear of the failure at once, not after
    // the disconnect's time limit.
    let disconnect = async move {
        let _ = tokio::time::timeout(io_timeout, conn.disconnect()).await;
    };
    match outcome {
        Ok(()) => disconnect.await,
        Err(_) => drop(tokio::spawn(disconnect)),
    }
    outcome
}

/// One try at a chunk: a fresh writer (its own temporary files, its own stream to a COPY
/// writer), abandoned on failure.
async fn read_chunk(
    conn: &mut Conn,
    database: &str,
    task: &ChunkTask,
    output: &Output,
    timeout: Duration,
    attempt: u32,
) -> Result<()> {
    let job = &task.job;
    let stream = match &output.streams {
        Some(streams) if job.codec.can_stream() => {
            Some(streams.open(&job.codec.table, task.chunk.id).await?)
        }
        _ => None,
    };
    let writer = ChunkWriter::new(
        job.codec.clone(),
        task.chunk.id,
        task.path.clone(),
        attempt,
        stream,
    );
    let outcome = stream_rows(conn, database, task, &output.input, timeout, &writer).await;
    if outcome.is_err() {
        writer.abandon();
    }
    outcome
}

/// Streams the chunk's rows to the encoders in batches, then its end mark.
async fn stream_rows(
    conn: &mut Conn,
    database: &str,
    task: &ChunkTask,
    input: &Input,
    timeout: Duration,
    writer: &Arc<ChunkWriter>,
) -> Result<()> {
    let job = &task.job;
    let context = format!("reading chunk {} of `{}`", task.chunk.id, job.codec.table);
    let (sql, params) = chunk_query(
        database,
        &job.codec.table,
        &job.select,
        &job.key,
        &task.chunk,
    );
    // Rows of a megabyte or more are read by one reader at a time, so that memory holds a
    // few of them, whatever the number of readers: from the start when the table's
    // statistics say its rows are that large (before its query, so no result waits on the
    // server), else from the first such row.
    let mut large_rows = None;
    if job.large_rows {
        large_rows = Some(LARGE_ROW_READS.acquire().await.expect("never closed"));
    }
    let mut result = within(timeout, &context, async {
        conn.exec_iter(sql, params)
            .await
            .map_err(Error::mysql(&context))
    })
    .await?;
    let layout = RowLayout::of(result.columns_ref())?;
    // The timeout bounds the fetch of a whole batch (a clock read per row cost 1% of the CPU);
    // handing the batch on is outside it, since full encoders rightly make a reader wait.
    // Rows with values to read in slices wait for the chunk's query to end: the connection
    // is busy until then. They hold only their short values.
    let mut sliced: Vec<OwnedRow> = Vec::new();
    let may_slice = !job.codec.sliced.is_empty();
    let mut end = false;
    // Each batch has room for as many bytes as the one before, so that most fill it
    // without growing; its buffer is a spare one of an earlier batch where there is.
    let mut capacity = 64 << 10;
    while !end {
        let mut packets = input.packets(BATCH_ROWS, capacity);
        let mut largest = 0;
        end = within(timeout, &context, async {
            // Rows already whole in the connection's read buffer are taken from it
            // without a future each; the driver reads on only when it holds none.
            while result
                .buffered_row_packet(packets.buffer())
                .map_err(Error::mysql(&context))?
                || result
                    .next_row_packet(packets.buffer())
                    .await
                    .map_err(Error::mysql(&context))?
            {
                let packet = packets.push_row();
                if may_slice && job.codec.is_sliced(&layout, packet)? {
                    let packet = packets.pop_row().expect("the row just pushed");
                    sliced.push(OwnedRow::new(packet, layout.clone()));
                    continue;
                }
                largest = largest.max(packet.len());
                if packets.len() >= BATCH_ROWS || packets.bytes() >= BATCH_BYTES {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        let batch_bytes = packets.bytes();
        capacity = batch_bytes.clamp(4 << 10, BATCH_BYTES + (64 << 10));
        if !packets.is_empty() {
            let batch = Batch {
                packets,
                layout: layout.clone(),
                largest,
            };
            input.rows(writer, batch)?;
        }
        if batch_bytes >= LARGE_VALUE && large_rows.is_none() && !end {
            large_rows = Some(LARGE_ROW_READS.acquire().await.expect("never closed"));
        }
    }
    drop(large_rows);
    drop(result);
    for row in sliced {
        slices::read_row(
            conn, database, &job.codec, &job.key, row, input, writer, timeout,
        )
        .await?;
    }
    input.end(writer.clone())
}
