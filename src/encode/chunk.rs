//! A chunk's files on their way to disk: `<chunk>.csv` and, for tables that load in binary,
//! `<chunk>.pgcopy` (or, during `migrate`, the binary form streamed to its writer instead:
//! [`super::stream`]), written under temporary names by the encoder threads, fsynced, and
//! renamed into place with their `.meta.json` sidecar when the chunk's last batch is in.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3;

use super::pool::Batch;
use super::{binary, row_checksum, stream, Spill, TableCodec, LARGE_VALUE};
use crate::canon::digest::{CanonRow, Digest};
use crate::error::{Error, Result};
use crate::source::row::OwnedRow;
use crate::workdir::{self, ManifestEntry};

/// A chunk on its way to disk. Batches of a chunk may be encoded on several threads at
/// once; `pending` counts the batches in flight plus one for the reader, and whoever
/// brings it to zero finishes the file.
pub struct ChunkWriter {
    pub codec: Arc<TableCodec>,
    pub chunk_id: u32,
    tmp_path: PathBuf,
    final_path: PathBuf,
    /// The binary COPY file's temporary and final paths, when the table loads in binary.
    binary_paths: Option<(PathBuf, PathBuf)>,
    state: Mutex<ChunkState>,
    pending: AtomicUsize,
    /// Set when the reader lost its connection mid-chunk and reads the chunk again into a
    /// new writer: batches still in flight are dropped and the partial file removed.
    abandoned: AtomicBool,
    /// When the reader began the chunk: its export span in the report.
    started: std::time::Instant,
}

#[derive(Default)]
struct ChunkState {
    file: Option<File>,
    binary_file: Option<File>,
    rows: u64,
    bytes: u64,
    checksum: u64,
    /// The binary file as written so far: its length and hash, for the sidecar.
    binary_bytes: u64,
    binary_hash: Xxh3,
    /// The rows in `verify`'s canonical form, per bucket.
    digest: Option<Digest>,
    /// The binary form on its way to the writer, instead of the binary file.
    stream: Option<stream::Sender>,
}

/// A chunk's open files as a [`Spill`]: what a large batch writes as it goes.
struct ChunkFiles<'a> {
    writer: &'a ChunkWriter,
    state: &'a mut ChunkState,
}

impl Spill for ChunkFiles<'_> {
    fn csv(&mut self, bytes: &[u8]) -> Result<()> {
        let path = &self.writer.tmp_path;
        let file = self.state.file.as_mut().expect("opened before the batch");
        file.write_all(bytes).map_err(Error::io(path))?;
        self.state.bytes += bytes.len() as u64;
        Ok(())
    }

    fn binary(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(stream) = &mut self.state.stream {
            stream.send(bytes);
            return Ok(());
        }
        let Some((tmp, _)) = &self.writer.binary_paths else {
            return Ok(());
        };
        let file = self
            .state
            .binary_file
            .as_mut()
            .expect("opened before the batch");
        file.write_all(bytes).map_err(Error::io(tmp))?;
        self.state.add_binary(bytes);
        Ok(())
    }
}

impl ChunkFiles<'_> {
    /// A whole batch's binary rows: to the stream without a copy where it can.
    fn binary_batch(&mut self, binary: &mut Vec<u8>) -> Result<()> {
        match &mut self.state.stream {
            Some(stream) => {
                stream.send_batch(binary);
                Ok(())
            }
            None => self.binary(binary),
        }
    }
}

/// A chunk file complete on disk.
#[derive(Debug, Clone)]
pub struct FinishedChunk {
    pub table: String,
    pub chunk_id: u32,
    pub rows: u64,
    pub bytes: u64,
    pub checksum: u64,
    pub path: PathBuf,
    /// The same rows in binary COPY format, loaded instead of the CSV file while it exists.
    pub binary_path: Option<PathBuf>,
}

impl FinishedChunk {
    /// The chunk as `manifest.json` lists it (file name relative to its table directory's
    /// parent's parent, i.e. the workdir).
    pub fn manifest_entry(&self) -> workdir::ManifestEntry {
        let relative = |path: &std::path::Path| {
            path.iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<PathBuf>()
                .to_string_lossy()
                .into_owned()
        };
        workdir::ManifestEntry {
            table: self.table.clone(),
            chunk: self.chunk_id,
            rows: self.rows,
            bytes: self.bytes,
            checksum: format!("{:016x}", self.checksum),
            file: relative(&self.path),
            binary_file: self.binary_path.as_deref().map(relative),
            binary_bytes: None,
            binary_checksum: None,
        }
    }

    /// A complete chunk file described by its manifest entry.
    pub fn from_entry(workdir: &std::path::Path, entry: &workdir::ManifestEntry) -> Self {
        FinishedChunk {
            table: entry.table.clone(),
            chunk_id: entry.chunk,
            rows: entry.rows,
            bytes: entry.bytes,
            checksum: u64::from_str_radix(&entry.checksum, 16).unwrap_or(0),
            path: workdir.join(&entry.file),
            binary_path: entry.binary_file.as_ref().map(|f| workdir.join(f)),
        }
    }
}

impl ChunkWriter {
    /// `attempt` numbers the reader's tries at this chunk: each writes its own temporary file.
    /// With `stream`, the binary form goes there instead of to a file.
    pub fn new(
        codec: Arc<TableCodec>,
        chunk_id: u32,
        final_path: PathBuf,
        attempt: u32,
        stream: Option<stream::Sender>,
    ) -> Arc<Self> {
        let tmp = |extension: &str| match attempt {
            0 => final_path.with_extension(format!("{extension}.tmp")),
            n => final_path.with_extension(format!("{extension}.tmp{n}")),
        };
        let binary_paths = (codec.wires.is_some() && stream.is_none()).then(|| {
            (
                tmp(BINARY_EXTENSION),
                final_path.with_extension(BINARY_EXTENSION),
            )
        });
        Arc::new(ChunkWriter {
            codec,
            chunk_id,
            tmp_path: tmp("csv"),
            binary_paths,
            final_path,
            state: Mutex::new(ChunkState {
                stream,
                ..ChunkState::default()
            }),
            pending: AtomicUsize::new(1),
            abandoned: AtomicBool::new(false),
            started: std::time::Instant::now(),
        })
    }

    /// The reader gives this try at the chunk up (its connection broke): releases the
    /// reader's share, so the last batch in flight removes the partial file.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        let _ = self.release();
    }

    /// Called by the reader before it hands a batch to the encoders.
    pub fn batch_sent(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Encodes one batch and appends it to the file (and the binary file).
    pub fn write_batch(&self, batch: &Batch, buffers: &mut Buffers) -> Result<()> {
        if self.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let rows = batch.packets.read(&batch.layout)?;
        let maybe_large = batch.largest >= LARGE_VALUE;
        let (buffer, binary) = (&mut buffers.csv, &mut buffers.binary);
        buffer.clear();
        binary.clear();
        // A batch with a large value is encoded while the chunk is held, straight into its
        // files, so the value is never copied whole (see [`super::LARGE_VALUE`]); any other
        // is encoded first, beside the other batches of the chunk.
        let large = maybe_large && self.codec.has_large_value(&rows);
        let mut checksum = 0;
        if !large {
            checksum = self.codec.encode_rows(&rows, buffer, binary, None)?;
        }
        buffers.hashes.clear();
        self.codec
            .digest_rows(&rows, large, &mut buffers.canon_row, &mut buffers.hashes);
        let mut state = self.state.lock().expect("chunk state lock");
        self.add_digests(&mut state, &buffers.hashes);
        self.open_files(&mut state)?;
        let mut files = ChunkFiles {
            writer: self,
            state: &mut state,
        };
        if large {
            checksum = self
                .codec
                .encode_rows(&rows, buffer, binary, Some(&mut files))?;
        }
        files.binary_batch(binary)?;
        files.csv(buffer)?;
        state.rows += rows.len() as u64;
        state.checksum = state.checksum.wrapping_add(checksum);
        Ok(())
    }

    /// Encodes one row whose sliced values come from `pieces`, straight into the files
    /// (see [`super::sliced`]). Slices that stop short mean the reader gave this try at the
    /// chunk up: the chunk is abandoned, its partial files removed.
    pub fn write_sliced(
        &self,
        row: &OwnedRow,
        pieces: &mut super::Pieces,
        buffers: &mut Buffers,
    ) -> Result<()> {
        if self.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut state = self.state.lock().expect("chunk state lock");
        self.open_files(&mut state)?;
        let mut files = ChunkFiles {
            writer: self,
            state: &mut state,
        };
        let values = row.values()?;
        let encoded = self.codec.encode_sliced_row(
            &values,
            pieces,
            &mut buffers.csv,
            &mut buffers.binary,
            &mut files,
            &mut buffers.canon_row,
        )?;
        let Some((checksum, hashes)) = encoded else {
            self.abandoned.store(true, Ordering::Release);
            return Ok(());
        };
        self.add_digests(&mut state, &[hashes]);
        state.rows += 1;
        state.checksum = state.checksum.wrapping_add(checksum);
        Ok(())
    }

    fn add_digests(&self, state: &mut ChunkState, hashes: &[(u64, u64)]) {
        let buckets = self.codec.canon.buckets;
        let digest = state.digest.get_or_insert_with(|| Digest::new(buckets));
        for &(key, row) in hashes {
            digest.add(key, row);
        }
    }

    /// The chunk's files, opened with the first batch (the binary one with its header).
    fn open_files(&self, state: &mut ChunkState) -> Result<()> {
        if state.file.is_none() {
            state.file = Some(workdir::create_private_file(&self.tmp_path)?);
            if let Some(stream) = &mut state.stream {
                stream.send(binary::HEADER);
            }
        }
        if let Some((tmp, _)) = &self.binary_paths {
            if state.binary_file.is_none() {
                let mut file = workdir::create_private_file(tmp)?;
                file.write_all(binary::HEADER).map_err(Error::io(tmp))?;
                state.binary_file = Some(file);
                state.add_binary(binary::HEADER);
            }
        }
        Ok(())
    }

    /// Marks a batch (or the reader) done; the last one finishes the file.
    pub fn release(&self) -> Result<Option<FinishedChunk>> {
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            return Ok(None);
        }
        let mut state = self.state.lock().expect("chunk state lock");
        if self.abandoned.load(Ordering::Acquire) {
            state.file = None;
            state.binary_file = None;
            state.stream = None; // its writer rolls back what it loaded
            let _ = std::fs::remove_file(&self.tmp_path);
            if let Some((tmp, _)) = &self.binary_paths {
                let _ = std::fs::remove_file(tmp);
            }
            return Ok(None);
        }
        let opened = state.file.is_some();
        let file = match state.file.take() {
            Some(f) => f,
            None => workdir::create_private_file(&self.tmp_path)?, // an empty chunk
        };
        file.sync_all().map_err(Error::io(&self.tmp_path))?;
        if state.stream.is_some() {
            drop_from_page_cache(&file);
        }
        drop(file);
        // The binary file before the CSV file: a CSV file under its final name means both
        // are complete. An empty chunk needs none.
        let mut binary_path = None;
        if let (Some((tmp, path)), Some(mut file)) = (&self.binary_paths, state.binary_file.take())
        {
            file.write_all(binary::TRAILER).map_err(Error::io(tmp))?;
            state.add_binary(binary::TRAILER);
            file.sync_all().map_err(Error::io(tmp))?;
            drop(file);
            std::fs::rename(tmp, path).map_err(Error::io(path))?;
            binary_path = Some(path.clone());
        }
        // The Parquet sidecar from the binary file: the very values Postgres receives.
        if let Some(columns) = &self.codec.parquet {
            columns.write(binary_path.as_deref(), &parquet_path(&self.final_path))?;
            if !self.codec.loads_binary {
                if let Some(path) = binary_path.take() {
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                }
            }
        }
        crate::report::exported(&self.codec.table, state.rows, state.bytes, self.started);
        let finished = FinishedChunk {
            table: self.codec.table.clone(),
            chunk_id: self.chunk_id,
            rows: state.rows,
            bytes: state.bytes,
            checksum: state.checksum,
            path: self.final_path.clone(),
            binary_path,
        };
        // The digest before the sidecar: a complete chunk has its digest (an empty one too).
        let canon = &self.codec.canon;
        let digest = state
            .digest
            .take()
            .unwrap_or_else(|| Digest::new(canon.buckets));
        workdir::write_bytes(
            &digest_path(&self.final_path),
            &digest.to_bytes(canon.fingerprint()),
        )?;
        let mut entry = finished.manifest_entry();
        if finished.binary_path.is_some() {
            entry.binary_bytes = Some(state.binary_bytes);
            entry.binary_checksum = Some(format!("{:016x}", state.binary_hash.digest()));
        }
        // The sidecar first: a CSV file under its final name is complete and described.
        workdir::write_json(&workdir::chunk_meta_path(&self.final_path), &entry)?;
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(Error::io(&self.final_path))?;
        // The stream's end after the CSV file's rename: what its writer commits is on disk.
        if let Some(mut stream) = state.stream.take() {
            if opened {
                stream.send(binary::TRAILER);
            }
            return Ok(stream.finish(finished));
        }
        Ok(Some(finished))
    }
}

/// Gives a fsynced chunk file's pages back to the kernel, when its rows were streamed to
/// Postgres beside it (`migrate`): nothing reads the file again in a run that goes well, and
/// gigabytes of them crowd the page cache that MariaDB's reads and Postgres' writes want,
/// the kernel reclaiming pages as the tool writes, on the tool's CPU (docs/design.md, "Chunk
/// files out of the page cache"). `export` keeps them: `import` reads them next. Advice
/// only: an error changes nothing.
fn drop_from_page_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call reads no memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

impl ChunkState {
    fn add_binary(&mut self, bytes: &[u8]) {
        self.binary_bytes += bytes.len() as u64;
        self.binary_hash.update(bytes);
    }
}

/// Whether a complete chunk's files still hold what its sidecar records: the CSV file's
/// size and row checksum, and the binary file's size and hash where it still exists (a
/// sidecar of an older version records no hash: its binary file is not trusted). A file
/// damaged after it was written, or half-written by another process, is exported again.
pub fn intact(workdir: &Path, entry: &ManifestEntry) -> bool {
    let csv = workdir.join(&entry.file);
    let csv_ok = csv_checksum(&csv)
        .is_ok_and(|(bytes, sum)| bytes == entry.bytes && format!("{sum:016x}") == entry.checksum);
    let binary_ok = match &entry.binary_file {
        None => true,
        Some(file) => {
            let path = workdir.join(file);
            !path.exists()
                || match (entry.binary_bytes, &entry.binary_checksum) {
                    (Some(bytes), Some(checksum)) => file_hash(&path)
                        .is_ok_and(|(n, hash)| n == bytes && format!("{hash:016x}") == *checksum),
                    _ => false,
                }
        }
    };
    csv_ok && binary_ok
}

/// The size of a CSV chunk file and the wrapping sum of its rows' checksums, as the encoder
/// computed them: a row ends at a line feed outside double quotes.
fn csv_checksum(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut file = std::io::BufReader::with_capacity(1 << 20, File::open(path)?);
    let (mut bytes, mut sum, mut quoted) = (0u64, 0u64, false);
    let mut row = Vec::with_capacity(4096);
    loop {
        let buffer = file.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        let mut start = 0;
        for (i, &b) in buffer.iter().enumerate() {
            if b == b'"' {
                quoted = !quoted;
            } else if b == b'\n' && !quoted {
                row.extend_from_slice(&buffer[start..=i]);
                sum = sum.wrapping_add(row_checksum(&row));
                row.clear();
                start = i + 1;
            }
        }
        row.extend_from_slice(&buffer[start..]);
        let n = buffer.len();
        bytes += n as u64;
        file.consume(n);
    }
    if !row.is_empty() {
        // A last row without its line feed: the file was cut short.
        sum = sum.wrapping_add(row_checksum(&row));
    }
    Ok((bytes, sum))
}

/// The size of a file and the xxh3 hash of its bytes.
fn file_hash(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    let (mut hash, mut bytes) = (Xxh3::new(), 0u64);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((bytes, hash.digest()));
        }
        hash.update(&buffer[..n]);
        bytes += n as u64;
    }
}

/// Where a chunk's digest in `verify`'s canonical form is kept, beside its `.csv`.
pub fn digest_path(csv: &Path) -> PathBuf {
    csv.with_extension("digest")
}

/// The extension of a chunk's binary COPY file, beside its `.csv`.
pub const BINARY_EXTENSION: &str = "pgcopy";

/// The Parquet sidecar of the chunk file at `path`.
pub fn parquet_path(path: &Path) -> PathBuf {
    path.with_extension(super::parquet::EXTENSION)
}

/// An encoder's reusable buffers for one batch.
pub struct Buffers {
    csv: Vec<u8>,
    binary: Vec<u8>,
    canon_row: CanonRow,
    hashes: Vec<(u64, u64)>,
}

impl Buffers {
    /// Lets go of the memory a very large batch left behind.
    pub fn shrink(&mut self) {
        if self.csv.capacity() > 8 << 20 || self.binary.capacity() > 8 << 20 {
            *self = Buffers::default();
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            csv: Vec::with_capacity(1 << 20),
            binary: Vec::with_capacity(1 << 20),
            canon_row: CanonRow::default(),
            hashes: Vec::with_capacity(1024),
        }
    }
}
