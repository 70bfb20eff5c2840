//! The encoder pool: rayon threads that take batches of rows from the readers (through a
//! bounded channel and a byte budget, so memory depends on those bounds, never on a
//! table's size), encode them into their chunk's files and hand every finished chunk on.

use std::sync::Arc;

use super::budget::ByteBudget;
use super::chunk::{Buffers, ChunkWriter, FinishedChunk};
use super::Pieces;
use crate::error::{Error, Result};
use crate::source::row::{OwnedRow, Packets, RowLayout};
use crate::work::{self, Failure};

/// Bytes of rows in flight between readers and encoders (at least one batch always passes).
const IN_FLIGHT_BYTES: usize = 32 << 20;

/// A batch's buffer grown past this (by rows of several MB) is freed after its batch
/// instead of kept for another.
const SPARE_MAX_BYTES: usize = 4 << 20;

/// Where finished chunks go; returns `false` when nobody downstream listens any more.
pub type OnFinished = Arc<dyn Fn(FinishedChunk) -> bool + Send + Sync>;

/// A batch of one chunk's rows as the server sent them.
pub struct Batch {
    pub packets: Packets,
    pub layout: Arc<RowLayout>,
    /// The size of the largest row's packet, which no value of it exceeds: a batch without
    /// a row of [`super::LARGE_VALUE`] bytes is not searched for a large value.
    pub largest: usize,
}

/// Work for the encoders: a batch of rows of one chunk, or the reader's end of a chunk.
enum EncodeJob {
    Rows(Arc<ChunkWriter>, Batch),
    /// A row whose large values follow in slices ([`super::sliced`]).
    Sliced(Arc<ChunkWriter>, OwnedRow, Pieces),
    End(Arc<ChunkWriter>),
}

/// The running pool; [`Encoders::wait`] returns once the readers' [`Input`]s are all gone
/// and every job is done.
pub struct Encoders {
    threads: tokio::task::JoinHandle<()>,
}

/// The readers' end of the pool: cloned once per reader.
#[derive(Clone)]
pub struct Input {
    jobs: crossbeam_channel::Sender<EncodeJob>,
    budget: Arc<ByteBudget>,
    /// Batches the encoders are done with, emptied, for the readers to fill again.
    spare: crossbeam_channel::Receiver<Packets>,
    failure: Arc<Failure>,
}

/// Starts `threads` encoder threads. A failure (a refused value, a full disk) is recorded
/// in `failure`, which stops the readers too.
pub fn start(
    threads: usize,
    failure: &Arc<Failure>,
    finished: OnFinished,
) -> Result<(Encoders, Input)> {
    let (job_tx, job_rx) = crossbeam_channel::bounded::<EncodeJob>(threads * 4);
    // As many spare batches as can be waiting in the channel or encoding: the spares never
    // outnumber the batches that were in flight at once, so they hold no more memory than
    // the budget let through, and the readers' buffers are reused instead of allocated,
    // faulted in and freed on another thread (which mimalloc returns to the system only
    // after a delay: peak RSS 98-108 MiB against 64 MiB with the delay 0, Alkemio 2.59M).
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Packets>(threads * 5);
    let budget = Arc::new(ByteBudget::new(IN_FLIGHT_BYTES));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pgclipper-encode-{i}"))
        .build()
        .map_err(|e| Error::Environment(format!("cannot start encoder threads: {e}")))?;
    let handle = {
        let (failure, budget) = (failure.clone(), budget.clone());
        tokio::task::spawn_blocking(move || {
            pool.scope(|scope| {
                for _ in 0..threads {
                    let (jobs, failure, finished, budget, spare) = (
                        job_rx.clone(),
                        failure.clone(),
                        finished.clone(),
                        budget.clone(),
                        spare_tx.clone(),
                    );
                    scope.spawn(move |_| encoder_loop(jobs, &budget, &spare, &failure, &*finished));
                }
            })
        })
    };
    let input = Input {
        jobs: job_tx,
        budget,
        spare: spare_rx,
        failure: failure.clone(),
    };
    Ok((Encoders { threads: handle }, input))
}

impl Encoders {
    pub async fn wait(self) -> Result<()> {
        work::join(self.threads, "an encoder").await
    }
}

impl Input {
    /// An empty batch with room for `rows` rows of `bytes`: a spare one when there is.
    pub fn packets(&self, rows: usize, bytes: usize) -> Packets {
        match self.spare.try_recv() {
            Ok(mut packets) => {
                packets.reserve(rows, bytes);
                packets
            }
            Err(_) => Packets::with_capacity(rows, bytes),
        }
    }

    /// Hands a batch of `writer`'s rows to the encoders; blocks while the encoders are behind.
    pub fn rows(&self, writer: &Arc<ChunkWriter>, batch: Batch) -> Result<()> {
        if self.failure.is_cancelled() {
            return Err(Error::Cancelled);
        }
        writer.batch_sent();
        // Readers run on tokio and block here when the encoders are behind:
        // `block_in_place` lets the runtime move other tasks off this worker meanwhile.
        tokio::task::block_in_place(|| {
            let cancelled = || self.failure.is_cancelled();
            let bytes = batch.packets.capacity();
            self.budget.acquire(bytes, &cancelled);
            self.jobs
                .send(EncodeJob::Rows(writer.clone(), batch))
                .map_err(|_| Error::Cancelled)?;
            // A batch beyond the whole budget (rows of tens of MB) is encoded before the
            // reader reads on: memory holds that batch, not also the next one.
            self.budget.wait_released(bytes, &cancelled);
            Ok(())
        })
    }

    /// Hands `writer`'s `row` to the encoders, its sliced values to follow through the
    /// sender of `pieces`; the slices in the channel are the only bytes in flight.
    pub fn sliced(&self, writer: &Arc<ChunkWriter>, row: OwnedRow, pieces: Pieces) -> Result<()> {
        if self.failure.is_cancelled() {
            return Err(Error::Cancelled);
        }
        writer.batch_sent();
        tokio::task::block_in_place(|| {
            self.jobs
                .send(EncodeJob::Sliced(writer.clone(), row, pieces))
                .map_err(|_| Error::Cancelled)
        })
    }

    /// The reader's end of `writer`'s chunk: the last batch done finishes its files.
    pub fn end(&self, writer: Arc<ChunkWriter>) -> Result<()> {
        tokio::task::block_in_place(|| self.jobs.send(EncodeJob::End(writer)))
            .map_err(|_| Error::Cancelled)
    }

    pub fn is_cancelled(&self) -> bool {
        self.failure.is_cancelled()
    }

    pub fn fail(&self, error: Error) {
        self.failure.fail(error)
    }
}

/// One encoder thread: takes jobs until the readers are gone, hands every finished chunk
/// to `finished`.
fn encoder_loop(
    jobs: crossbeam_channel::Receiver<EncodeJob>,
    budget: &ByteBudget,
    spare: &crossbeam_channel::Sender<Packets>,
    failure: &Failure,
    finished: &(dyn Fn(FinishedChunk) -> bool + Send + Sync),
) {
    let mut buffers = Buffers::default();
    for job in jobs {
        if failure.is_cancelled() {
            // Drain, so no reader stays blocked on a full channel or budget.
            if let EncodeJob::Rows(_, batch) = job {
                budget.release(batch.packets.capacity());
            }
            continue;
        }
        let (writer, outcome) = match job {
            EncodeJob::Rows(writer, batch) => {
                let outcome = writer.write_batch(&batch, &mut buffers);
                let mut packets = batch.packets;
                let bytes = packets.capacity();
                if bytes <= SPARE_MAX_BYTES {
                    packets.clear();
                    let _kept_unless_enough = spare.try_send(packets);
                } else {
                    drop(packets);
                }
                budget.release(bytes);
                (writer, outcome)
            }
            EncodeJob::Sliced(writer, row, mut pieces) => {
                let outcome = writer.write_sliced(&row, &mut pieces, &mut buffers);
                (writer, outcome)
            }
            EncodeJob::End(writer) => (writer, Ok(())),
        };
        match outcome.and_then(|()| writer.release()) {
            Ok(Some(chunk)) => {
                if !finished(chunk) {
                    failure.fail(Error::Cancelled);
                }
            }
            Ok(None) => {}
            Err(e) => failure.fail(e),
        }
        buffers.shrink(); // one huge row must not pin its memory
    }
}
