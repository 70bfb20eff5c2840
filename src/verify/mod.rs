//! The proof that the target holds the source's data: every row of every planned table
//! compared, by canonical forms computed independently on each side ([`crate::canon`]),
//! bucketed by key hash so string collations play no part; buckets that differ read
//! again to name each missing, extra and changed row and column. Then what rows do not
//! show: keys, constraints, indexes and foreign keys, sequences, row counts ([`catalog`]).

pub mod catalog;
pub mod critical;
pub mod read;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::Conn;

use crate::canon::digest::{
    CanonRow, Differences, Digest, Matcher, RowDetail, TableCanon, LISTED_ROWS,
};

use crate::error::Result;
use crate::mapping::TableMapping;
use crate::plan::Chunk;
use crate::sink;
use crate::url::DbUrl;
use crate::work::{interleave, Failure, Queue, Tally, Workers};

/// Rows of one table held at once while damaged buckets are compared row by row; more are
/// compared in several passes.
const ROWS_PER_PASS: u64 = 200_000;

/// One table to compare: its mapping, how it compares, and the chunks that read it.
pub struct TableJob {
    pub mapping: TableMapping,
    pub canon: TableCanon,
    pub chunks: Vec<Chunk>,
    /// The source's digest as the export computed it, when it can be trusted: then the
    /// source is read only for the buckets that differ.
    pub exported: Option<Digest>,
}

/// How the comparison runs.
#[derive(Debug, Clone)]
pub struct RowOptions {
    pub target: DbUrl,
    /// Postgres sessions reading target tables at once.
    pub sessions: usize,
    pub io_timeout: Duration,
    /// Value excerpts in the findings (the data are personal: off by default).
    pub show_values: bool,
}

/// What the comparison of one table found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableVerdict {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    #[serde(flatten)]
    pub differences: Differences,
}

impl TableVerdict {
    pub fn identical(&self) -> bool {
        self.differences.missing + self.differences.extra + self.differences.changed == 0
    }
}

/// Source connections on one snapshot, shared by the passes.
struct Readers {
    database: String,
    idle: Mutex<Vec<Conn>>,
}

impl Readers {
    fn take(&self) -> Conn {
        self.idle
            .lock()
            .expect("readers lock")
            .pop()
            .expect("a reader per worker")
    }

    fn give_back(&self, conn: Conn) {
        self.idle.lock().expect("readers lock").push(conn);
    }
}

/// Compares every row of `tables`, the source read on `readers` (connections of one
/// snapshot of `database`), the target on `options.sessions` sessions, both at once.
pub async fn compare_rows(
    readers: Vec<Conn>,
    database: &str,
    tables: Vec<TableJob>,
    options: &RowOptions,
) -> Result<(Vec<TableVerdict>, Vec<Conn>)> {
    let from_export = tables.iter().filter(|t| t.exported.is_some()).count();
    if from_export > 0 {
        tracing::info!(
            tables = from_export,
            "The source's digests of the export are reused: only the target is read in full."
        );
    }
    let tables = Arc::new(tables);
    let readers = Arc::new(Readers {
        database: database.to_string(),
        idle: Mutex::new(readers),
    });
    let compared = Arc::new(Tally::default());
    let progress = compared.log_every_10s("Verifying: target rows read.");
    let (source, target) = tokio::try_join!(
        source_digests(&readers, &tables, options.io_timeout),
        target_digests(&tables, options, &compared),
    )?;
    progress.abort();
    let mut verdicts = Vec::new();
    for (i, job) in tables.iter().enumerate() {
        let differing = source[i].differing(&target[i]);
        let mut differences = Differences::default();
        if !differing.is_empty() {
            tracing::info!(table = %job.canon.table, buckets = differing.len(), "Rows differ; comparing them one by one.");
            differences = narrow(&readers, job, &source[i], &target[i], differing, options).await?;
        }
        tracing::info!(table = %job.canon.table, rows = source[i].rows, identical = differences.missing + differences.extra + differences.changed == 0, "Table compared.");
        verdicts.push(TableVerdict {
            table: job.canon.table.clone(),
            source_rows: source[i].rows,
            target_rows: target[i].rows,
            differences,
        });
    }
    let readers = Arc::try_unwrap(readers)
        .map_err(|_| crate::Error::Environment("a verify reader is still running".into()))?;
    Ok((verdicts, readers.idle.into_inner().expect("readers lock")))
}

/// Every table's source digest, its chunks dealt out over the snapshot's readers.
async fn source_digests(
    readers: &Arc<Readers>,
    tables: &Arc<Vec<TableJob>>,
    timeout: Duration,
) -> Result<Vec<Digest>> {
    let digests = empty_digests(tables);
    // The tables whose digest the export did not leave, their chunks dealt out in turn.
    let tasks = interleave(
        tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.exported.is_none())
            .map(|(i, t)| (0..t.chunks.len()).map(|c| (i, c)).collect())
            .collect(),
    );
    let failure = Failure::new();
    let queue = Queue::new(tasks, &failure);
    let n = readers.idle.lock().expect("readers lock").len();
    Workers::spawn(n, &failure, "a verify reader", |_| {
        let (readers, tables, queue, digests) = (
            readers.clone(),
            tables.clone(),
            queue.clone(),
            digests.clone(),
        );
        async move {
            let mut conn = readers.take();
            let outcome = async {
                while let Some((i, c)) = queue.next() {
                    let job = &tables[i];
                    let chunk = std::slice::from_ref(&job.chunks[c]);
                    let digest =
                        source_digest(&mut conn, &readers.database, job, chunk, timeout).await?;
                    digests.lock().expect("digests lock")[i].merge(&digest);
                }
                Ok(())
            }
            .await;
            readers.give_back(conn);
            outcome
        }
    })
    .wait()
    .await?;
    let mut digests = into_digests(digests);
    for (i, t) in tables.iter().enumerate() {
        if let Some(exported) = &t.exported {
            digests[i] = exported.clone();
        }
    }
    Ok(digests)
}

/// Every table's target digest, tables dealt out over Postgres sessions.
async fn target_digests(
    tables: &Arc<Vec<TableJob>>,
    options: &RowOptions,
    compared: &Arc<Tally>,
) -> Result<Vec<Digest>> {
    let digests = empty_digests(tables);
    let failure = Failure::new();
    let queue = Queue::new(0..tables.len(), &failure);
    let sessions = options.sessions.min(tables.len()).max(1);
    Workers::spawn(sessions, &failure, "a verify session", |_| {
        let (tables, queue, digests, url, timeout, compared) = (
            tables.clone(),
            queue.clone(),
            digests.clone(),
            options.target.clone(),
            options.io_timeout,
            compared.clone(),
        );
        async move {
            let client = sink::connect(&url).await?;
            while let Some(i) = queue.next() {
                let canon = &tables[i].canon;
                let mut digest = Digest::new(canon.buckets);
                read::target_rows(&client, canon, timeout, |row| {
                    digest.add(row.key_hash(&canon.key), row.hash())
                })
                .await?;
                compared.add(digest.rows, 0);
                digests.lock().expect("digests lock")[i] = digest;
            }
            Ok(())
        }
    })
    .wait()
    .await?;
    Ok(into_digests(digests))
}

/// One empty digest per table, for workers to fill.
fn empty_digests(tables: &[TableJob]) -> Arc<Mutex<Vec<Digest>>> {
    let digests = tables
        .iter()
        .map(|t| Digest::new(t.canon.buckets))
        .collect();
    Arc::new(Mutex::new(digests))
}

/// The digests, once every worker is done with them.
fn into_digests(digests: Arc<Mutex<Vec<Digest>>>) -> Vec<Digest> {
    Arc::try_unwrap(digests)
        .expect("workers done")
        .into_inner()
        .expect("digests lock")
}

/// The digest of `chunks` of `job`'s table as the source holds them now.
async fn source_digest(
    conn: &mut Conn,
    database: &str,
    job: &TableJob,
    chunks: &[Chunk],
    timeout: Duration,
) -> Result<Digest> {
    let canon = &job.canon;
    let mut digest = Digest::new(canon.buckets);
    read::source_rows(
        conn,
        database,
        &job.mapping,
        chunks,
        canon,
        timeout,
        |row| digest.add(row.key_hash(&canon.key), row.hash()),
    )
    .await?;
    Ok(digest)
}

/// Reads the rows of the differing buckets again on both sides and matches them by key.
async fn narrow(
    readers: &Readers,
    job: &TableJob,
    source: &Digest,
    target: &Digest,
    differing: Vec<usize>,
    options: &RowOptions,
) -> Result<Differences> {
    let postgres = sink::connect(&options.target).await?;
    let mut mysql = readers.take();
    let mut both = BothSides {
        mysql: &mut mysql,
        database: &readers.database,
        postgres: &postgres,
        job,
        options,
    };
    let outcome = async {
        match job.exported {
            None => both.compare(source, target, differing).await,
            // The export's digest said where to look; the source's rows themselves decide.
            // Read once in full, a source equal to the target means the digest file was
            // damaged.
            Some(_) => {
                let timeout = options.io_timeout;
                let now = source_digest(both.mysql, both.database, job, &job.chunks, timeout).await?;
                let differing = now.differing(target);
                if differing.is_empty() {
                    tracing::warn!(table = %job.canon.table, "The export's digest of this table does not match the source; read again, the source equals the target.");
                }
                both.compare(&now, target, differing).await
            }
        }
    }
    .await;
    readers.give_back(mysql);
    outcome
}

/// One table's two sides, open for reading it again row by row.
struct BothSides<'a> {
    mysql: &'a mut Conn,
    database: &'a str,
    postgres: &'a tokio_postgres::Client,
    job: &'a TableJob,
    options: &'a RowOptions,
}

impl BothSides<'_> {
    /// Compares the rows of the `differing` buckets one by one, in passes of at most
    /// [`ROWS_PER_PASS`] rows.
    async fn compare(
        &mut self,
        source: &Digest,
        target: &Digest,
        differing: Vec<usize>,
    ) -> Result<Differences> {
        let (job, options) = (self.job, self.options);
        let canon = &job.canon;
        let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
        let mut held = 0;
        for b in differing {
            let rows = source.rows_in(target, b);
            if held > 0 && held + rows > ROWS_PER_PASS {
                groups.push(Vec::new());
                held = 0;
            }
            groups.last_mut().expect("one group").push(b);
            held += rows;
        }
        let mut found = Differences::default();
        for group in groups {
            let wanted: HashSet<usize> = group.into_iter().collect();
            let mut matcher = Matcher::default();
            let detail = |row: &CanonRow| RowDetail::of(row, canon, options.show_values);
            read::source_rows(
                self.mysql,
                self.database,
                &job.mapping,
                &job.chunks,
                canon,
                options.io_timeout,
                |row| {
                    if wanted.contains(&source.bucket(row.key_hash(&canon.key))) {
                        matcher.source_row(row.key_bytes(&canon.key), detail(row));
                    }
                },
            )
            .await?;
            read::target_rows(self.postgres, canon, options.io_timeout, |row| {
                if wanted.contains(&target.bucket(row.key_hash(&canon.key))) {
                    matcher.target_row(row.key_bytes(&canon.key), detail(row), canon);
                }
            })
            .await?;
            let pass = matcher.finish();
            found.missing += pass.missing;
            found.extra += pass.extra;
            found.changed += pass.changed;
            let room = LISTED_ROWS.saturating_sub(found.rows.len());
            found.rows.extend(pass.rows.into_iter().take(room));
        }
        Ok(found)
    }
}
