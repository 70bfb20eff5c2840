//! The commands' engine: prepare (catalogs, mapping, checks), plan, then the pipeline
//!
//! ```text
//! readers (tokio, one snapshot) ──bounded crossbeam── encoders (rayon) ──bounded mpsc── COPY writers (tokio)
//! ```
//!
//! Every channel is bounded, so memory depends on channel and batch sizes, never on the
//! size of a table. The first error cancels every stage and is the run's error.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::catalog;
use crate::config::{CopyFormat, Settings};
use crate::encode::budget::ByteBudget;
use crate::encode::{encoder_loop, ChunkWriter, EncodeJob, FinishedChunk, TableCodec};
use crate::error::{within, Error, Problem, Result};
use crate::mapping::{self, Mapping, TableMapping};
use crate::plan::{self, Chunk, Plan, PlannedTable};
use crate::post;
use crate::sink::{self, CopyTarget};
use crate::source::{self, KeyColumn};
use crate::workdir::{self, Manifest};

/// Rows per batch handed from a reader to the encoders, and the byte budget of one batch.
const BATCH_ROWS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// How often a writer tries a chunk again after a transient error, how often a reader
/// reads a chunk again after losing its connection, and the first pause (then doubling).
const WRITER_RETRIES: u32 = 6;
const READER_RETRIES: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The pause before try `attempt + 1` (0-based): 0.5 s, 1 s, 2 s …
fn backoff(attempt: u32) -> Duration {
    RETRY_PAUSE * 2u32.pow(attempt)
}

/// Bytes of rows in flight between readers and encoders (at least one batch always passes).
const IN_FLIGHT_BYTES: usize = 32 << 20;

/// The first error of a run, and the flag that tells every stage to stop.
#[derive(Default)]
pub struct Failure {
    cancelled: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    pub fn fail(&self, error: Error) {
        let mut first = self.first.lock().expect("failure lock");
        // A cancellation is the echo of the real error in another stage.
        if first.is_none() || matches!(*first, Some(Error::Cancelled)) {
            *first = Some(error);
        }
        self.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn into_result(self: Arc<Self>) -> Result<()> {
        match self.first.lock().expect("failure lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub tables: usize,
    pub columns: usize,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Per-table totals of a run.
#[derive(Debug, Default, Clone)]
pub struct TableSummary {
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub tables: BTreeMap<String, TableSummary>,
    pub sequences: usize,
    pub elapsed: Duration,
}

impl Summary {
    fn add(&mut self, table: &str, rows: u64, bytes: u64) {
        let t = self.tables.entry(table.to_string()).or_default();
        t.chunks += 1;
        t.rows += rows;
        t.bytes += bytes;
    }

    /// The whole plan's totals, from its manifest.
    pub fn from_manifest(manifest: &Manifest, elapsed: Duration) -> Self {
        let mut summary = Summary {
            elapsed,
            ..Summary::default()
        };
        for c in &manifest.chunks {
            summary.add(&c.table, c.rows, c.bytes);
        }
        summary
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }
}

/// Catalogs read, tables paired, every problem found.
struct Prepared {
    database: String,
    source: Conn,
    target: tokio_postgres::Client,
    mapping: Mapping,
}

async fn prepare(
    settings: &Settings,
    require_empty_target: bool,
) -> Result<(Prepared, Vec<Problem>)> {
    let source_url = settings.require_source()?;
    let target_url = settings.require_target()?;
    let database = source::database(source_url)?;
    let (source, target) =
        tokio::try_join!(source::connect(source_url), sink::connect(target_url))?;
    let mut source = source;
    let timeout = settings.io_timeout;
    let source_tables = within(
        timeout,
        "reading the source catalog",
        catalog::mysql::read(&mut source, &database),
    )
    .await?;
    let target_tables = within(
        timeout,
        "reading the target catalog",
        catalog::postgres::read(&target, &settings.target_schema),
    )
    .await?;
    if source_tables.is_empty() {
        return Err(Error::Usage(format!(
            "the source database `{database}` has no tables"
        )));
    }
    let mapping = mapping::build(
        &source_tables,
        &target_tables,
        &settings.tables,
        &settings.mapping,
    );
    let mut problems = mapping.problems.clone();
    for (table, column) in &settings.mapping.drop_columns {
        if !source_tables
            .iter()
            .any(|t| &t.name == table && t.column(column).is_some())
        {
            problems.push(Problem {
                table: table.clone(),
                column: Some(column.clone()),
                message: "--drop-column names a column the source does not have".into(),
            });
        }
    }
    if let Some(zone) = &settings.mapping.source_timezone {
        let known = target
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)",
                &[&zone.as_ref()],
            )
            .await
            .map_err(Error::target("looking up the source time zone"))?;
        if !known.get::<_, bool>(0) {
            return Err(Error::Usage(format!(
                "--source-timezone {zone:?} is not a time zone Postgres knows (see pg_timezone_names)"
            )));
        }
    }
    if require_empty_target {
        let tables: Vec<(String, String)> = mapping
            .tables
            .iter()
            .map(|t| (t.name().to_string(), t.target.qualified()))
            .collect();
        problems.extend(sink::non_empty_tables(&target, &tables).await?);
    }
    Ok((
        Prepared {
            database,
            source,
            target,
            mapping,
        },
        problems,
    ))
}

/// `pgclipper check`: every problem at once, nothing moved.
pub async fn check(settings: &Settings) -> Result<CheckReport> {
    let (prepared, problems) = prepare(settings, true).await?;
    Ok(CheckReport {
        tables: prepared.mapping.tables.len(),
        columns: prepared
            .mapping
            .tables
            .iter()
            .map(|t| t.columns.len())
            .sum(),
        problems,
        warnings: prepared.mapping.warnings,
    })
}

async fn prepare_or_refuse(settings: &Settings) -> Result<Prepared> {
    let (prepared, problems) = prepare(settings, true).await?;
    for w in &prepared.mapping.warnings {
        tracing::warn!(table = %w.table, column = w.column.as_deref().unwrap_or(""), "{}", w.message);
    }
    if !problems.is_empty() {
        return Err(Error::Check(problems));
    }
    Ok(prepared)
}

fn new_plan_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos, std::process::id())
}

/// Plans every table and writes `plan.json` into the workdir.
async fn make_plan(settings: &Settings, prepared: &mut Prepared, workdir: &Path) -> Result<Plan> {
    workdir::create_private_dir(workdir)?;
    let mut tables = Vec::new();
    for table in &prepared.mapping.tables {
        let rows = plan::rows_per_chunk(
            table.source.avg_row_length,
            settings.chunk_bytes,
            settings.chunk_rows,
        );
        let chunks = plan::plan_table(
            &mut prepared.source,
            &prepared.database,
            table,
            rows,
            settings.io_timeout,
        )
        .await?;
        tracing::info!(table = %table.name(), chunks = chunks.len(), rows_per_chunk = rows, "Table planned.");
        workdir::create_private_dir(&workdir::table_dir(workdir, table.name()))?;
        tables.push(PlannedTable {
            name: table.name().to_string(),
            target: table.target.qualified(),
            target_columns: table.columns.iter().map(|c| c.target.clone()).collect(),
            key: table.key_columns().to_vec(),
            chunks,
            estimated_rows: table.source.estimated_rows,
        });
    }
    let plan = Plan {
        plan_id: new_plan_id(),
        fingerprint: mapping::fingerprint(&prepared.mapping.tables),
        source_database: prepared.database.clone(),
        target_schema: settings.target_schema.clone(),
        tables,
    };
    workdir::write_json(&workdir.join(workdir::PLAN_FILE), &plan)?;
    Ok(plan)
}

/// One table's share of the export: how to read, convert and place its chunks.
struct TableJob {
    codec: Arc<TableCodec>,
    key: Vec<KeyColumn>,
    select: Vec<String>,
}

struct ChunkTask {
    job: Arc<TableJob>,
    chunk: Chunk,
    path: PathBuf,
}

/// The chunks still to export, and the complete chunk files of an earlier run still to load.
fn chunk_tasks(
    mapping: &[TableMapping],
    plan: &Plan,
    workdir: &Path,
    loaded: &HashSet<(String, u32)>,
    copy_format: CopyFormat,
) -> (Vec<ChunkTask>, Vec<FinishedChunk>) {
    let mut tasks = Vec::new();
    let mut ready = Vec::new();
    for planned in &plan.tables {
        let table = mapping
            .iter()
            .find(|t| t.name() == planned.name)
            .expect("the fingerprint guarantees the plan's tables are mapped");
        let key = table
            .key_columns()
            .iter()
            .map(|k| {
                let column = table.source.column(k);
                KeyColumn {
                    name: k.clone(),
                    string: column.and_then(|c| match (&c.charset, &c.collation) {
                        (Some(cs), Some(co)) if c.ty.is_string() => Some((cs.clone(), co.clone())),
                        _ => None,
                    }),
                }
            })
            .collect();
        let codec = TableCodec::new(table, copy_format == CopyFormat::Binary);
        if copy_format == CopyFormat::Binary && codec.wires.is_none() {
            tracing::info!(table = %table.name(), "This table loads from its CSV files: a column's conversion has no binary COPY form (see docs/mapping.md).");
        }
        let job = Arc::new(TableJob {
            codec: Arc::new(codec),
            key,
            select: table.select.clone(),
        });
        for chunk in &planned.chunks {
            if loaded.contains(&(planned.name.clone(), chunk.id)) {
                continue;
            }
            let path = workdir::chunk_path(workdir, table.name(), chunk.id);
            match workdir::complete_chunk(&path) {
                Some(entry) => ready.push(FinishedChunk::from_entry(workdir, &entry)),
                None => tasks.push(ChunkTask {
                    job: job.clone(),
                    chunk: chunk.clone(),
                    path,
                }),
            }
        }
    }
    (interleave_tables(tasks), ready)
}

/// Deals the chunks out table by table in turn (first chunk of every table, then the second
/// ...), so a table with a single slow chunk (jsonb parsing, say) starts at once instead of
/// after all the chunks of the tables before it.
fn interleave_tables(tasks: Vec<ChunkTask>) -> Vec<ChunkTask> {
    let mut by_table: Vec<VecDeque<ChunkTask>> = Vec::new();
    for task in tasks {
        match by_table
            .iter_mut()
            .find(|q| Arc::ptr_eq(&q[0].job, &task.job))
        {
            Some(queue) => queue.push_back(task),
            None => by_table.push(VecDeque::from([task])),
        }
    }
    let mut dealt = Vec::new();
    while by_table.iter().any(|q| !q.is_empty()) {
        for queue in by_table.iter_mut() {
            dealt.extend(queue.pop_front());
        }
    }
    dealt
}

/// Reads and encodes every chunk; `finished` receives each complete chunk file.
async fn export(
    settings: &Settings,
    database: &str,
    workdir: &Path,
    tasks: Vec<ChunkTask>,
    failure: Arc<Failure>,
    finished: Arc<dyn Fn(FinishedChunk) -> bool + Send + Sync>,
) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut snapshot = within(
        settings.io_timeout,
        "opening the consistent snapshot",
        source::open_snapshot(settings.require_source()?, settings.readers),
    )
    .await?;
    if let Some(pos) = &snapshot.binlog {
        tracing::info!(binlog_file = %pos.file, binlog_position = pos.position, "Snapshot opened.");
    }
    within(
        settings.io_timeout,
        "comparing the source with the first export",
        check_same_source(workdir, database, &mut snapshot),
    )
    .await?;
    let (job_tx, job_rx) = crossbeam_channel::bounded::<EncodeJob>(settings.encoders * 4);
    let budget = Arc::new(ByteBudget::new(IN_FLIGHT_BYTES));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(settings.encoders)
        .thread_name(|i| format!("pgclipper-encode-{i}"))
        .build()
        .map_err(|e| Error::Environment(format!("cannot start encoder threads: {e}")))?;
    let encoders = {
        let failure = failure.clone();
        let budget = budget.clone();
        let n = settings.encoders;
        tokio::task::spawn_blocking(move || {
            pool.scope(|scope| {
                for _ in 0..n {
                    let jobs = job_rx.clone();
                    let failure = failure.clone();
                    let finished = finished.clone();
                    let budget = budget.clone();
                    scope.spawn(move |_| {
                        encoder_loop(
                            jobs,
                            &budget,
                            &|| failure.is_cancelled(),
                            &|e| failure.fail(e),
                            &*finished,
                        )
                    });
                }
            })
        })
    };

    let queue = Arc::new(Mutex::new(VecDeque::from(tasks)));
    let to_encoders = ToEncoders {
        io_timeout: settings.io_timeout,
        jobs: job_tx,
        budget,
        failure,
    };
    let origin = SourceOrigin {
        url: settings.require_source()?.clone(),
        database: database.to_string(),
        binlog: snapshot.binlog.clone(),
    };
    let mut readers = Vec::new();
    for conn in snapshot.readers {
        readers.push(tokio::spawn(reader_loop(
            conn,
            origin.clone(),
            queue.clone(),
            to_encoders.clone(),
        )));
    }
    drop(to_encoders);
    for reader in readers {
        reader
            .await
            .map_err(|e| Error::Environment(format!("a reader panicked: {e}")))?;
    }
    encoders
        .await
        .map_err(|e| Error::Environment(format!("an encoder panicked: {e}")))?;
    Ok(())
}

/// The readers' end of the channel to the encoders.
#[derive(Clone)]
struct ToEncoders {
    io_timeout: Duration,
    jobs: crossbeam_channel::Sender<EncodeJob>,
    budget: Arc<ByteBudget>,
    failure: Arc<Failure>,
}

impl ToEncoders {
    fn rows(&self, writer: &Arc<ChunkWriter>, rows: Vec<Row>, bytes: usize) -> Result<()> {
        if self.failure.is_cancelled() {
            return Err(Error::Cancelled);
        }
        writer.batch_sent();
        // Readers run on tokio and block here when the encoders are behind:
        // `block_in_place` lets the runtime move other tasks off this worker meanwhile.
        tokio::task::block_in_place(|| {
            self.budget.acquire(bytes, &|| self.failure.is_cancelled());
            self.jobs.send(EncodeJob::Rows(writer.clone(), rows, bytes))
        })
        .map_err(|_| Error::Cancelled)
    }

    fn end(&self, writer: Arc<ChunkWriter>) -> Result<()> {
        tokio::task::block_in_place(|| self.jobs.send(EncodeJob::End(writer)))
            .map_err(|_| Error::Cancelled)
    }
}

/// Where the readers come from: to reopen one after a lost connection.
#[derive(Clone)]
struct SourceOrigin {
    url: crate::config::DbUrl,
    database: String,
    binlog: Option<source::BinlogPosition>,
}

async fn reader_loop(
    mut conn: Conn,
    origin: SourceOrigin,
    queue: Arc<Mutex<VecDeque<ChunkTask>>>,
    to_encoders: ToEncoders,
) {
    'chunks: while !to_encoders.failure.is_cancelled() {
        let Some(task) = queue.lock().expect("queue lock").pop_front() else {
            break;
        };
        let mut attempt = 0;
        loop {
            let Err(e) =
                read_chunk(&mut conn, &origin.database, &task, &to_encoders, attempt).await
            else {
                break;
            };
            let lost =
                matches!(&e, Error::Source { source, .. } if source::is_connection_loss(source));
            if !lost || attempt >= READER_RETRIES {
                to_encoders.failure.fail(e);
                break 'chunks;
            }
            let pause = backoff(attempt);
            attempt += 1;
            tracing::warn!(table = %task.job.codec.table, chunk = task.chunk.id, attempt, error = %e, "Source connection lost; reading the chunk again on a new snapshot.");
            tokio::time::sleep(pause).await;
            let reopened = within(
                to_encoders.io_timeout,
                "reopening a reader",
                source::reopen_reader(&origin.url, &origin.database, &origin.binlog),
            )
            .await;
            match reopened {
                Ok(c) => conn = c,
                Err(e) => {
                    to_encoders.failure.fail(e);
                    break 'chunks;
                }
            }
        }
    }
    // The encoders must see the readers gone even if the server no longer answers.
    let timeout = to_encoders.io_timeout;
    drop(to_encoders);
    // Ends the snapshot transaction; the connection goes with it.
    let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
}

async fn read_chunk(
    conn: &mut Conn,
    database: &str,
    task: &ChunkTask,
    to_encoders: &ToEncoders,
    attempt: u32,
) -> Result<()> {
    let job = &task.job;
    let writer = ChunkWriter::new(job.codec.clone(), task.chunk.id, task.path.clone(), attempt);
    let outcome = read_into(conn, database, task, to_encoders, &writer).await;
    if outcome.is_err() {
        writer.abandon();
    }
    outcome
}

/// Streams the chunk's rows to the encoders in batches, then its end mark.
async fn read_into(
    conn: &mut Conn,
    database: &str,
    task: &ChunkTask,
    to_encoders: &ToEncoders,
    writer: &Arc<ChunkWriter>,
) -> Result<()> {
    let job = &task.job;
    let context = format!("reading chunk {} of `{}`", task.chunk.id, job.codec.table);
    let (sql, params) = source::chunk_query(
        database,
        &job.codec.table,
        &job.select,
        &job.key,
        &task.chunk,
    );
    let timeout = to_encoders.io_timeout;
    let mut result = within(timeout, &context, async {
        conn.exec_iter(sql, params)
            .await
            .map_err(Error::source(&context))
    })
    .await?;
    // The timeout bounds the fetch of a whole batch (a clock read per row cost 1% of the CPU);
    // handing the batch on is outside it, since full encoders rightly make a reader wait.
    let mut end = false;
    while !end {
        let mut batch: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
        let mut batch_bytes = 0;
        end = within(timeout, &context, async {
            while let Some(row) = result.next().await.map_err(Error::source(&context))? {
                batch_bytes += row_size(&row);
                batch.push(row);
                if batch.len() >= BATCH_ROWS || batch_bytes >= BATCH_BYTES {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        if !batch.is_empty() {
            to_encoders.rows(writer, batch, batch_bytes)?;
        }
    }
    to_encoders.end(writer.clone())
}

fn row_size(row: &Row) -> usize {
    (0..row.len())
        .map(|i| match row.as_ref(i) {
            Some(Value::Bytes(b)) => b.len() + 1,
            _ => 9,
        })
        .sum()
}

/// The COPY writers of a run: each takes finished chunks from one channel and loads them.
struct Loading {
    writers: Vec<tokio::task::JoinHandle<()>>,
    /// Reports the writers' running totals (`Summary`) every 10 seconds.
    progress: tokio::task::JoinHandle<()>,
    failure: Arc<Failure>,
}

impl Loading {
    fn start(
        settings: &Settings,
        plan: &Plan,
        chunks: tokio::sync::mpsc::Receiver<FinishedChunk>,
        failure: Arc<Failure>,
    ) -> Result<Loading> {
        let loaded = Arc::new(Mutex::new(Summary::default()));
        let writers = spawn_writers(settings, plan, chunks, failure.clone(), loaded.clone())?;
        Ok(Loading {
            writers,
            progress: spawn_progress(loaded),
            failure,
        })
    }

    /// Waits until every writer is done (the chunk channel closed, or a failure); after a
    /// failure, tells where the deferred objects are.
    async fn wait(self, plan: &Plan) -> Result<()> {
        for writer in self.writers {
            writer
                .await
                .map_err(|e| Error::Environment(format!("a writer panicked: {e}")))?;
        }
        self.progress.abort();
        self.failure
            .into_result()
            .inspect_err(|_| leave_deferred(plan))
    }
}

fn spawn_writers(
    settings: &Settings,
    plan: &Plan,
    chunks: tokio::sync::mpsc::Receiver<FinishedChunk>,
    failure: Arc<Failure>,
    loaded: Arc<Mutex<Summary>>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let targets = Arc::new(copy_targets(plan, settings.copy_format));
    let chunks = Arc::new(tokio::sync::Mutex::new(chunks));
    let url = settings.require_target()?.clone();
    let mut handles = Vec::new();
    for _ in 0..settings.writers {
        let (chunks, failure, loaded, targets, url) = (
            chunks.clone(),
            failure.clone(),
            loaded.clone(),
            targets.clone(),
            url.clone(),
        );
        let plan_id = plan.plan_id.clone();
        let timeout = settings.io_timeout;
        handles.push(tokio::spawn(async move {
            let mut client = None;
            loop {
                let next = chunks.lock().await.recv().await;
                let Some(chunk) = next else { break };
                if failure.is_cancelled() {
                    break;
                }
                let target = &targets[&chunk.table];
                let outcome =
                    load_with_retries(&mut client, &url, &plan_id, target, &chunk, timeout).await;
                match outcome {
                    Ok(sink::Outcome::Loaded) => {
                        tracing::debug!(table = %chunk.table, chunk = chunk.chunk_id, rows = chunk.rows, "Chunk loaded.");
                        // Only the load needed it; the CSV file stays as the record.
                        if let Some(path) = &chunk.binary_path {
                            let _ = std::fs::remove_file(path);
                        }
                        loaded.lock().expect("summary lock").add(&chunk.table, chunk.rows, chunk.bytes);
                    }
                    Ok(sink::Outcome::Skipped) => {
                        tracing::info!(table = %chunk.table, chunk = chunk.chunk_id, "Chunk loaded by another process; skipped.");
                    }
                    Err(e) => {
                        failure.fail(e);
                        break;
                    }
                }
            }
        }));
    }
    Ok(handles)
}

/// The pause before trying again after `error`, or `None` when the error is permanent or
/// the tries are used up. Safe for chunk loads: a chunk's claim, COPY and ledger mark are
/// one transaction, so a failed try left nothing behind.
fn retry_pause(error: &Error, attempt: u32) -> Option<Duration> {
    if !error.is_transient() || attempt >= WRITER_RETRIES {
        return None;
    }
    let pause = backoff(attempt);
    tracing::warn!(attempt = attempt + 1, pause_ms = pause.as_millis() as u64, error = %error, "Transient target error; trying again.");
    Some(pause)
}

/// Loads one chunk on the writer's connection (opened when missing), trying again on a
/// fresh connection after transient errors.
async fn load_with_retries(
    client: &mut Option<tokio_postgres::Client>,
    url: &crate::config::DbUrl,
    plan_id: &str,
    target: &CopyTarget,
    chunk: &FinishedChunk,
    timeout: Duration,
) -> Result<sink::Outcome> {
    let mut attempt = 0;
    loop {
        let outcome = match client {
            Some(c) => sink::load_chunk(c, plan_id, target, chunk, timeout).await,
            None => match sink::connect(url).await {
                Ok(c) => {
                    *client = Some(c);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Err(e) => match retry_pause(&e, attempt) {
                Some(pause) => {
                    attempt += 1;
                    *client = None;
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}

/// Chunks exported in an earlier run came from an earlier snapshot: they only fit with the
/// ones exported now if the source database has not been written since. The first export
/// records the binlog position; a later one reads the binlog events in between and refuses
/// if any touches the source database (or if they cannot be read).
async fn check_same_source(
    workdir: &Path,
    database: &str,
    snapshot: &mut source::Snapshot,
) -> Result<()> {
    let record = workdir.join(workdir::SNAPSHOT_FILE);
    let now = snapshot.binlog.clone();
    if !record.exists() {
        return workdir::write_json(&record, &now);
    }
    let first: Option<source::BinlogPosition> = workdir::read_json(&record)?;
    let refuse = |why: String| {
        Err(Error::Data(format!(
            "{why}: chunks already exported would not match the rest; stop the application and run again with --restart"
        )))
    };
    match (&first, &now) {
        (Some(first), Some(now)) if first != now => {
            let changed =
                source::binlog_touches(&mut snapshot.readers[0], database, first, now).await;
            match changed {
                Some(false) => {
                    tracing::info!("The binary log moved, but not for the source database: resuming.");
                    workdir::write_json(&record, &Some(now.clone()))
                }
                Some(true) => refuse(format!(
                    "the source was written since this plan's first export (binlog {}:{} then, {}:{} now)",
                    first.file, first.position, now.file, now.position
                )),
                None => refuse(format!(
                    "the binary log moved since this plan's first export ({}:{} then, {}:{} now) and its events cannot be read to tell whether `{database}` changed",
                    first.file, first.position, now.file, now.position
                )),
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            refuse("the source's binary log changed state since this plan's first export".into())
        }
        _ => Ok(()),
    }
}

/// Records a new plan in the ledger and takes the foreign keys of its tables off until
/// [`finish_target`]. Several processes may start at once: an advisory lock lets one do it.
async fn prepare_target(client: &mut tokio_postgres::Client, plan: &Plan) -> Result<()> {
    sink::ledger::ensure(client).await?;
    sink::ledger::lock(client).await?;
    // The plan and the deferral in one transaction: a kill between them must not leave a
    // recorded plan whose foreign keys are still in place.
    let outcome = async {
        if sink::ledger::plan_fingerprint(client, &plan.plan_id)
            .await?
            .is_some()
        {
            return Ok(()); // another process (or an earlier run) did it
        }
        let context = "recording the plan and deferring constraints";
        let tx = client.transaction().await.map_err(Error::target(context))?;
        sink::ledger::register_plan(&tx, plan, &plan.fingerprint).await?;
        let tables: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
        let deferred = post::defer_objects(&tx, &plan.plan_id, &tables).await?;
        tx.commit().await.map_err(Error::target(context))?;
        tracing::info!(
            foreign_keys = deferred.foreign_keys,
            constraints = deferred.constraints,
            indexes = deferred.indexes,
            "Foreign keys, unique constraints and secondary indexes deferred until the data is in."
        );
        Ok(())
    }
    .await;
    sink::ledger::unlock(client).await?;
    outcome
}

/// After a failed load, what was taken off stays off (building indexes and validating
/// foreign keys over partial data would only slow the resume); the operator hears where it is.
fn leave_deferred(plan: &Plan) {
    tracing::warn!(
        plan_id = %plan.plan_id,
        "Foreign keys, unique constraints and secondary indexes of the loaded tables stay deferred, recorded in pgclipper.deferred_constraints: `pgclipper migrate` on the same workdir resumes and restores them, `pgclipper reset` restores them on empty tables."
    );
}

/// Once every chunk is loaded: foreign keys back (validated), sequences, statistics, the
/// plan marked complete. Only one process does it (advisory lock, then a completed check).
async fn finish_target(settings: &Settings, plan: &Plan) -> Result<usize> {
    let client = sink::connect(settings.require_target()?).await?;
    let context = "finishing the target";
    sink::ledger::lock(&client).await?;
    let outcome = async {
        let done = client
            .query_one(
                "SELECT completed_at IS NOT NULL FROM pgclipper.plans WHERE plan_id = $1",
                &[&plan.plan_id],
            )
            .await
            .map_err(Error::target(context))?;
        if done.get::<_, bool>(0) {
            return Ok(0);
        }
        let restored =
            post::restore_deferred(settings.require_target()?, &plan.plan_id, settings.writers)
                .await?;
        tracing::info!(
            objects = restored,
            "Indexes and constraints rebuilt, foreign keys validated."
        );
        let mut moved = 0;
        for table in &plan.tables {
            moved += post::advance_sequences(&client, &plan.plan_id, &table.target).await?;
        }
        analyze(settings, plan).await?;
        sink::ledger::mark_completed(&client, &plan.plan_id).await?;
        Ok(moved)
    }
    .await;
    sink::ledger::unlock(&client).await?;
    outcome
}

/// Fresh statistics for every loaded table, on up to `writers` sessions at once.
async fn analyze(settings: &Settings, plan: &Plan) -> Result<()> {
    let queue = Arc::new(Mutex::new(
        plan.tables
            .iter()
            .map(|t| t.target.clone())
            .collect::<VecDeque<_>>(),
    ));
    let mut sessions = Vec::new();
    for _ in 0..settings.writers.min(plan.tables.len()).max(1) {
        let (queue, url) = (queue.clone(), settings.require_target()?.clone());
        sessions.push(tokio::spawn(async move {
            let client = sink::connect(&url).await?;
            loop {
                let Some(table) = queue.lock().expect("queue lock").pop_front() else {
                    return Ok::<(), Error>(());
                };
                client
                    .batch_execute(&format!("ANALYZE {table}"))
                    .await
                    .map_err(Error::target(format!("analyzing {table}")))?;
            }
        }));
    }
    for session in sessions {
        session
            .await
            .map_err(|e| Error::Environment(format!("an ANALYZE session panicked: {e}")))??;
    }
    Ok(())
}

/// What an existing workdir's plan needs before it can go on: the same catalogs, and a
/// target that still knows the plan.
async fn resume_plan(settings: &Settings, workdir: &Path, prepared: &Prepared) -> Result<Plan> {
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let now = mapping::fingerprint(&prepared.mapping.tables);
    if now != plan.fingerprint || plan.target_schema != settings.target_schema {
        return Err(Error::Data(format!(
            "the source or target schema (or the tables chosen) changed since {} was planned: \
             run again with --restart to start over",
            workdir.display()
        )));
    }
    for planned in &plan.tables {
        let now = prepared
            .mapping
            .tables
            .iter()
            .find(|t| t.name() == planned.name)
            .map_or(0, |t| t.source.estimated_rows);
        if plan::estimate_moved(planned.estimated_rows, now) {
            return Err(Error::Data(format!(
                "`{}` holds about {now} rows now against {} when {} was planned: the source changed; \
                 stop the application and run again with --restart",
                planned.name,
                planned.estimated_rows,
                workdir.display()
            )));
        }
    }
    match sink::ledger::plan_fingerprint(&prepared.target, &plan.plan_id).await? {
        Some(recorded) if recorded == plan.fingerprint => Ok(plan),
        Some(_) => Err(Error::Data(format!(
            "the target's ledger disagrees with plan {}: run again with --restart",
            plan.plan_id
        ))),
        None => {
            // Killed between writing plan.json and recording the plan in the target: nothing
            // can have been loaded yet, so the plan is recorded now, if the tables are empty.
            let tables: Vec<(String, String)> = plan
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.target.clone()))
                .collect();
            if sink::non_empty_tables(&prepared.target, &tables)
                .await?
                .is_empty()
            {
                return Ok(plan);
            }
            Err(Error::Data(format!(
                "the target does not know plan {} of {} and its tables hold rows (was it reset, or is this another database?): run again with --restart",
                plan.plan_id,
                workdir.display()
            )))
        }
    }
}

/// `pgclipper migrate`: plans, exports and loads at once, then foreign keys and sequences.
/// On a workdir that holds a plan it resumes: loaded chunks are skipped, complete chunk
/// files are loaded without exporting them again, the rest is exported.
pub async fn migrate(settings: &Settings) -> Result<Summary> {
    let started = Instant::now();
    let workdir = settings.require_workdir()?.clone();
    let has_plan = workdir.join(workdir::PLAN_FILE).exists();
    if has_plan && settings.restart {
        reset_plan(settings, &workdir).await?;
    }
    let (mut prepared, plan) = if has_plan && !settings.restart {
        let (prepared, problems) = prepare(settings, false).await?;
        if !problems.is_empty() {
            return Err(Error::Check(problems));
        }
        let plan = resume_plan(settings, &workdir, &prepared).await?;
        tracing::info!(plan_id = %plan.plan_id, "Resuming the plan in the workdir.");
        (prepared, plan)
    } else {
        let mut prepared = prepare_or_refuse(settings).await?;
        let plan = make_plan(settings, &mut prepared, &workdir).await?;
        (prepared, plan)
    };
    prepare_target(&mut prepared.target, &plan).await?;
    let loaded: HashSet<(String, u32)> =
        sink::ledger::loaded_chunks(&prepared.target, &plan.plan_id)
            .await?
            .into_iter()
            .collect();
    let (tasks, ready) = chunk_tasks(
        &prepared.mapping.tables,
        &plan,
        &workdir,
        &loaded,
        settings.copy_format,
    );
    tracing::info!(
        loaded = loaded.len(),
        files_ready = ready.len(),
        to_export = tasks.len(),
        "Chunks of the plan."
    );

    let failure = Arc::new(Failure::default());
    let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel::<FinishedChunk>(settings.writers * 2);
    let loading = Loading::start(settings, &plan, chunk_rx, failure.clone())?;
    let feeder = {
        let chunk_tx = chunk_tx.clone();
        tokio::spawn(async move {
            for chunk in ready {
                if chunk_tx.send(chunk).await.is_err() {
                    break; // every writer stopped: the failure says why
                }
            }
        })
    };
    let finished: Arc<dyn Fn(FinishedChunk) -> bool + Send + Sync> =
        // Encoder threads are not tokio workers: blocking here is the back-pressure.
        Arc::new(move |chunk: FinishedChunk| chunk_tx.blocking_send(chunk).is_ok());
    let exported = export(
        settings,
        &prepared.database,
        &workdir,
        tasks,
        failure.clone(),
        finished,
    )
    .await;
    if let Err(e) = exported {
        failure.fail(e);
    }
    let _ = feeder.await;
    loading.wait(&plan).await?;
    let manifest = write_manifest(&workdir, &plan)?;
    complete(settings, &plan, &manifest, started).await
}

/// `pgclipper export`: MySQL → chunk files and `manifest.json`. On a workdir that holds a
/// plan, exports only the chunks without a complete file.
pub async fn export_only(settings: &Settings) -> Result<Summary> {
    let started = Instant::now();
    let workdir = settings.require_workdir()?.clone();
    if settings.restart {
        workdir::clear(&workdir)?;
    }
    let (mut prepared, problems) = prepare(settings, false).await?;
    if !problems.is_empty() {
        return Err(Error::Check(problems));
    }
    let plan = if workdir.join(workdir::PLAN_FILE).exists() {
        let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
        if plan.fingerprint != mapping::fingerprint(&prepared.mapping.tables) {
            return Err(Error::Data(format!(
                "the source or target schema changed since {} was planned: run again with --restart",
                workdir.display()
            )));
        }
        plan
    } else {
        make_plan(settings, &mut prepared, &workdir).await?
    };
    let (tasks, _ready) = chunk_tasks(
        &prepared.mapping.tables,
        &plan,
        &workdir,
        &HashSet::new(),
        settings.copy_format,
    );
    let failure = Arc::new(Failure::default());
    let finished: Arc<dyn Fn(FinishedChunk) -> bool + Send + Sync> = Arc::new(|_| true);
    if let Err(e) = export(
        settings,
        &prepared.database,
        &workdir,
        tasks,
        failure.clone(),
        finished,
    )
    .await
    {
        failure.fail(e);
    }
    failure.into_result()?;
    let manifest = write_manifest(&workdir, &plan)?;
    Ok(Summary::from_manifest(&manifest, started.elapsed()))
}

/// `manifest.json` from the chunk files' sidecars: every chunk of the plan must be complete.
fn write_manifest(workdir: &Path, plan: &Plan) -> Result<Manifest> {
    let mut chunks = Vec::new();
    for table in &plan.tables {
        for chunk in &table.chunks {
            let path = workdir::chunk_path(workdir, &table.name, chunk.id);
            let entry = workdir::complete_chunk(&path).ok_or_else(|| {
                Error::Data(format!(
                    "{}: chunk file missing or incomplete",
                    path.display()
                ))
            })?;
            chunks.push(entry);
        }
    }
    let manifest = Manifest {
        plan_id: plan.plan_id.clone(),
        chunks,
    };
    workdir::write_json(&workdir.join(workdir::MANIFEST_FILE), &manifest)?;
    Ok(manifest)
}

/// `pgclipper import`: the chunk files of an earlier `export` → Postgres. The ledger is the
/// work queue: several import processes (on one machine or several sharing the workdir)
/// claim chunks with `FOR UPDATE SKIP LOCKED` and never load one twice; the chunks of a
/// process that dies are claimed again by the others.
pub async fn import(settings: &Settings) -> Result<Summary> {
    let started = Instant::now();
    let workdir = settings.require_workdir()?.clone();
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let manifest: Manifest = workdir::read_json(&workdir.join(workdir::MANIFEST_FILE))?;
    if manifest.plan_id != plan.plan_id {
        return Err(Error::Data(format!(
            "{}: manifest belongs to plan {}, not to plan {}",
            workdir.display(),
            manifest.plan_id,
            plan.plan_id
        )));
    }
    let mut target = sink::connect(settings.require_target()?).await?;
    sink::ledger::ensure(&target).await?;
    if sink::ledger::plan_fingerprint(&target, &plan.plan_id)
        .await?
        .is_none()
    {
        let tables: Vec<(String, String)> = plan
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.target.clone()))
            .collect();
        let problems = sink::non_empty_tables(&target, &tables).await?;
        if !problems.is_empty() {
            return Err(Error::Check(problems));
        }
    }
    prepare_target(&mut target, &plan).await?;

    let entries: Arc<HashMap<(String, u32), FinishedChunk>> = Arc::new(
        manifest
            .chunks
            .iter()
            .map(|e| {
                (
                    (e.table.clone(), e.chunk),
                    FinishedChunk::from_entry(&workdir, e),
                )
            })
            .collect(),
    );
    let targets = Arc::new(copy_targets(&plan, settings.copy_format));
    let failure = Arc::new(Failure::default());
    let mut writers = Vec::new();
    for _ in 0..settings.writers {
        let (url, plan_id) = (settings.require_target()?.clone(), plan.plan_id.clone());
        let timeout = settings.io_timeout;
        let (entries, targets, failure) = (entries.clone(), targets.clone(), failure.clone());
        writers.push(tokio::spawn(async move {
            // A transient error loses at most the claimed chunk's transaction: reconnect and
            // go on with the queue.
            let mut attempt = 0;
            loop {
                let outcome = async {
                    let mut client = sink::connect(&url).await?;
                    queue_writer(&mut client, timeout, &plan_id, &entries, &targets, &failure).await
                }
                .await;
                match outcome {
                    Ok(()) => break,
                    Err(e) => match retry_pause(&e, attempt) {
                        Some(pause) => {
                            attempt += 1;
                            tokio::time::sleep(pause).await;
                        }
                        None => {
                            failure.fail(e);
                            break;
                        }
                    },
                }
            }
        }));
    }
    for writer in writers {
        writer
            .await
            .map_err(|e| Error::Environment(format!("a writer panicked: {e}")))?;
    }
    failure.into_result()?;
    complete(settings, &plan, &manifest, started).await
}

/// One import writer: claims and loads chunks until none is left unloaded. A chunk held by
/// another process is waited for, since that process may die and release it.
async fn queue_writer(
    client: &mut tokio_postgres::Client,
    timeout: Duration,
    plan_id: &str,
    entries: &HashMap<(String, u32), FinishedChunk>,
    targets: &HashMap<String, CopyTarget>,
    failure: &Failure,
) -> Result<()> {
    while !failure.is_cancelled() {
        let tx = client
            .transaction()
            .await
            .map_err(Error::target("claiming a chunk"))?;
        let claimed = within(
            timeout,
            "claiming a chunk",
            sink::ledger::claim_next(&tx, plan_id),
        )
        .await?;
        let Some((table, chunk_id)) = claimed else {
            drop(tx);
            if sink::ledger::unloaded_count(client, plan_id).await? == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let chunk = entries.get(&(table.clone(), chunk_id)).ok_or_else(|| {
            Error::Data(format!(
                "chunk {chunk_id} of `{table}` is in the ledger but not in the manifest"
            ))
        })?;
        let target = &targets[&table];
        let context = format!(
            "loading chunk {chunk_id} of `{table}` into {}",
            target.qualified
        );
        sink::copy_and_mark(&tx, plan_id, target, chunk, &context, timeout).await?;
        within(timeout, &context, async {
            tx.commit().await.map_err(Error::target(&context))
        })
        .await?;
        tracing::debug!(table = %table, chunk = chunk_id, rows = chunk.rows, "Chunk loaded.");
    }
    Ok(())
}

fn copy_targets(plan: &Plan, format: CopyFormat) -> HashMap<String, CopyTarget> {
    plan.tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                CopyTarget {
                    qualified: t.target.clone(),
                    columns: t.target_columns.clone(),
                    format,
                },
            )
        })
        .collect()
}

/// The last steps of a load: foreign keys, sequences, statistics; the summary of the whole
/// plan (this run and earlier ones) from the manifest.
async fn complete(
    settings: &Settings,
    plan: &Plan,
    manifest: &Manifest,
    started: Instant,
) -> Result<Summary> {
    let sequences = finish_target(settings, plan).await?;
    let mut summary = Summary::from_manifest(manifest, started.elapsed());
    summary.sequences = sequences;
    Ok(summary)
}

/// What `reset` will do, for the operator to read before saying yes.
pub struct ResetPlan {
    pub plan: Plan,
    pub tables: Vec<String>,
    pub foreign_keys: i64,
    pub sequences: i64,
}

/// Reads what a reset of `workdir`'s plan would touch; changes nothing.
pub async fn reset_preview(settings: &Settings) -> Result<ResetPlan> {
    let workdir = settings.require_workdir()?;
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let client = sink::connect(settings.require_target()?).await?;
    let (mut foreign_keys, mut sequences) = (0, 0);
    if sink::ledger::plan_fingerprint(&client, &plan.plan_id)
        .await?
        .is_some()
    {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM pgclipper.deferred_constraints WHERE plan_id = $1),
                        (SELECT count(*) FROM pgclipper.sequences WHERE plan_id = $1)",
                &[&plan.plan_id],
            )
            .await
            .map_err(Error::target("reading the ledger"))?;
        (foreign_keys, sequences) = (row.get(0), row.get(1));
    }
    Ok(ResetPlan {
        tables: plan.tables.iter().map(|t| t.target.clone()).collect(),
        plan,
        foreign_keys,
        sequences,
    })
}

/// `pgclipper reset`: empties the tables of the workdir's plan, puts back the foreign keys and
/// sequences as they were, forgets the plan in the ledger and clears the workdir. The source
/// is never written: pointing the application back at MySQL is the rollback.
pub async fn reset(settings: &Settings) -> Result<ResetPlan> {
    let preview = reset_preview(settings).await?;
    reset_plan(settings, settings.require_workdir()?).await?;
    Ok(preview)
}

async fn reset_plan(settings: &Settings, workdir: &Path) -> Result<()> {
    let plan: Plan = workdir::read_json(&workdir.join(workdir::PLAN_FILE))?;
    let client = sink::connect(settings.require_target()?).await?;
    let context = "resetting the target";
    if !plan.tables.is_empty() {
        let tables: Vec<&str> = plan.tables.iter().map(|t| t.target.as_str()).collect();
        client
            .batch_execute(&format!("TRUNCATE {}", tables.join(", ")))
            .await
            .map_err(Error::target(context))?;
    }
    if sink::ledger::plan_fingerprint(&client, &plan.plan_id)
        .await?
        .is_some()
    {
        post::restore_deferred(settings.require_target()?, &plan.plan_id, settings.writers).await?;
        post::restore_sequences(&client, &plan.plan_id).await?;
        sink::ledger::forget_plan(&client, &plan.plan_id).await?;
    }
    workdir::clear(workdir)?;
    tracing::info!(plan_id = %plan.plan_id, tables = plan.tables.len(), "Reset: target tables emptied, constraints and sequences restored.");
    Ok(())
}

/// A progress line every 10 seconds while chunks load.
fn spawn_progress(loaded: Arc<Mutex<Summary>>) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    let rows_before = AtomicU64::new(0);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let (rows, bytes) = {
                let s = loaded.lock().expect("summary lock");
                (s.total_rows(), s.total_bytes())
            };
            let last = rows_before.swap(rows, Ordering::Relaxed);
            tracing::info!(
                rows,
                mib = bytes >> 20,
                rows_per_s = (rows - last) / 10,
                elapsed_s = started.elapsed().as_secs(),
                "Loading."
            );
        }
    })
}
