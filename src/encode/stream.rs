//! A chunk's binary COPY data sent to the writer that loads it while it is encoded, instead
//! of through a file (`migrate` only): the CSV file is still written, fsynced and described
//! as before, and is what a resume or a retry loads; the binary form is never on disk.
//!
//! Writing the binary file, fsyncing it, reading it back and deleting it cost about 8% of
//! the tool's CPU on the two-table bench, besides the disk's own work (design.md, "The
//! binary form streams to its writer").
//!
//! Deadlock-free by construction: a reader takes one of `writers` permits before it opens a
//! stream, and a writer that takes a stream serves it to its end, so every open stream has
//! (or will have, once a writer is done with a file) a writer draining it: an encoder
//! blocked on a full stream waits for Postgres, never for another encoder. Chunk files
//! reach the writers through the same channel, unbounded, so an encoder never blocks on it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::FinishedChunk;
use crate::error::{Error, Result};

/// What a writer loads: a complete chunk file, or a chunk as it is encoded.
pub enum Load {
    File(FinishedChunk),
    Stream(StreamedChunk),
}

/// One chunk's binary COPY data as it comes, then the chunk file it was written beside.
pub enum Piece {
    Data(Bytes),
    /// The chunk is complete: its CSV file is fsynced and under its final name. A stream
    /// that ends without it was given up by its reader (the chunk is read again).
    Done(FinishedChunk),
}

/// A writer's end of one chunk's stream.
pub struct StreamedChunk {
    pub table: String,
    pub chunk_id: u32,
    pub pieces: mpsc::Receiver<Piece>,
    /// Given back when the writer is done with the stream.
    _permit: OwnedSemaphorePermit,
}

impl StreamedChunk {
    /// Waits for the rest of the stream, discarding its data: the chunk file once the
    /// chunk is complete, `None` if its reader gave it up.
    pub async fn drain(&mut self) -> Option<FinishedChunk> {
        while let Some(piece) = self.pieces.recv().await {
            if let Piece::Done(chunk) = piece {
                return Some(chunk);
            }
        }
        None
    }
}

/// Pieces in a stream's channel. A stream holds at most this many pieces, the one being
/// gathered and the one its writer sends: 1 MiB of gathered pieces, or a few batches (a
/// batch's piece is an encoder's whole buffer, up to about 1 MiB on wide rows). With
/// gathered pieces of 1 MiB, the Alkemio case's peak RSS once rose by 16 MiB, to 125 MiB;
/// with batches sent as they are it is 84-85 MiB, where it was 57 (docs/design.md, "A
/// batch's binary rows sent as they are").
const PIECES_IN_FLIGHT: usize = 2;

/// The size of a gathered piece; a batch of half of it or more is a piece of its own.
pub const PIECE: usize = 256 << 10;

/// The readers' way to open streams to the writers.
#[derive(Clone)]
pub struct Streams {
    permits: Arc<Semaphore>,
    to_writers: mpsc::UnboundedSender<Load>,
}

impl Streams {
    /// At most `writers` streams open at once, handed to the writers through `to_writers`.
    pub fn new(writers: usize, to_writers: mpsc::UnboundedSender<Load>) -> Self {
        Streams {
            permits: Arc::new(Semaphore::new(writers.max(1))),
            to_writers,
        }
    }

    /// Opens the stream of chunk `chunk_id` of `table`, once a writer can take it.
    pub async fn open(&self, table: &str, chunk_id: u32) -> Result<Sender> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?;
        let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
        let stream = StreamedChunk {
            table: table.to_string(),
            chunk_id,
            pieces: rx,
            _permit: permit,
        };
        self.to_writers
            .send(Load::Stream(stream))
            .map_err(|_| Error::Cancelled)?;
        Ok(Sender {
            tx: Some(tx),
            gathered: BytesMut::new(),
        })
    }
}

/// The encoders' end of a stream, kept in its chunk's state (so under its lock: pieces
/// arrive in the order the CSV file gets its rows, and COPY's row numbers match the file's).
pub struct Sender {
    /// `None` once the writer is gone: the chunk goes on as a file.
    tx: Option<mpsc::Sender<Piece>>,
    gathered: BytesMut,
}

impl Sender {
    /// Adds `bytes` to the stream, sending each piece as it fills. Blocks while the writer
    /// is behind (encoder threads only, never a tokio worker).
    pub fn send(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = PIECE - self.gathered.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            if self.gathered.capacity() == 0 {
                self.gathered.reserve(PIECE);
            }
            self.gathered.extend_from_slice(now);
            if self.gathered.len() == PIECE {
                self.flush();
            }
            bytes = later;
        }
    }

    /// Adds a whole batch's `bytes` to the stream. A batch of half a piece or more goes as a
    /// piece of its own, the encoder's buffer itself, without the copy into the gathered
    /// piece (2.7% of the tool's CPU), after what was gathered; `bytes` is left empty with
    /// as much room, for the encoder's next batch.
    pub fn send_batch(&mut self, bytes: &mut Vec<u8>) {
        if bytes.len() < PIECE / 2 {
            return self.send(bytes);
        }
        self.flush();
        let room = bytes.capacity();
        let data = Bytes::from(std::mem::replace(bytes, Vec::with_capacity(room)));
        self.send_piece(data);
    }

    fn flush(&mut self) {
        if self.gathered.is_empty() {
            return;
        }
        let data = self.gathered.split().freeze();
        self.send_piece(data);
    }

    fn send_piece(&mut self, data: Bytes) {
        if let Some(tx) = &self.tx {
            if tx.blocking_send(Piece::Data(data)).is_err() {
                self.tx = None;
            }
        }
    }

    /// Sends what is gathered and the chunk's end; gives the chunk back if the writer is
    /// gone, for it to be loaded from its file.
    pub fn finish(mut self, chunk: FinishedChunk) -> Option<FinishedChunk> {
        self.flush();
        match self.tx.take() {
            Some(tx) => match tx.blocking_send(Piece::Done(chunk)) {
                Ok(()) => None,
                Err(mpsc::error::SendError(piece)) => match piece {
                    Piece::Done(chunk) => Some(chunk),
                    Piece::Data(_) => None,
                },
            },
            None => Some(chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(chunk_id: u32) -> FinishedChunk {
        FinishedChunk {
            table: "t".into(),
            chunk_id,
            rows: 1,
            bytes: 1,
            checksum: 0,
            path: "x.csv".into(),
            binary_path: None,
        }
    }

    #[test]
    fn a_stream_sends_gathered_pieces_and_large_batches_as_they_are_in_order_then_the_chunk() {
        let (to_writers, mut loads) = mpsc::unbounded_channel();
        let streams = Streams::new(1, to_writers);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut sender = runtime.block_on(streams.open("t", 7)).unwrap();
        let Some(Load::Stream(mut stream)) = loads.try_recv().ok() else {
            panic!("the stream goes to the writers");
        };
        assert_eq!((stream.table.as_str(), stream.chunk_id), ("t", 7));
        let writer = std::thread::spawn(move || {
            let mut got = (Vec::new(), Vec::new());
            while let Some(piece) = stream.pieces.blocking_recv() {
                match piece {
                    Piece::Data(data) => {
                        got.0.push(data.len());
                        got.1.extend_from_slice(&data);
                    }
                    Piece::Done(chunk) => {
                        assert_eq!(chunk.chunk_id, 7);
                        return got;
                    }
                }
            }
            panic!("the stream ended without its chunk");
        });
        let bytes: Vec<u8> = (0..PIECE * 4 + 1000).map(|i| (i % 251) as u8).collect();
        sender.send(&bytes[..10]);
        sender.send(&bytes[10..PIECE * 2 + 500]);
        sender.send(&bytes[PIECE * 2 + 500..PIECE * 2 + 1000]);
        // A batch of half a piece or more goes as it is, after what was gathered; a
        // smaller one is gathered.
        let mut batch = bytes[PIECE * 2 + 1000..PIECE * 3 + 1000].to_vec();
        sender.send_batch(&mut batch);
        assert!(batch.is_empty() && batch.capacity() >= PIECE);
        let mut batch = bytes[PIECE * 3 + 1000..PIECE * 4].to_vec();
        sender.send_batch(&mut batch);
        let mut batch = bytes[PIECE * 4..].to_vec();
        sender.send_batch(&mut batch);
        assert!(sender.finish(chunk(7)).is_none(), "taken by the writer");
        let (sizes, data) = writer.join().unwrap();
        assert_eq!(sizes, [PIECE, PIECE, 1000, PIECE, PIECE - 1000, 1000]);
        assert_eq!(data, bytes);
    }

    #[test]
    fn a_stream_whose_writer_is_gone_gives_its_chunk_back() {
        let (to_writers, loads) = mpsc::unbounded_channel();
        let streams = Streams::new(1, to_writers);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut sender = runtime.block_on(streams.open("t", 1)).unwrap();
        drop(loads);
        sender.send(&vec![1; PIECE + 1]);
        let back = sender
            .finish(chunk(1))
            .expect("given back, to load from its file");
        assert_eq!(back.chunk_id, 1);
    }
}
