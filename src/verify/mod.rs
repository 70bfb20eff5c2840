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

use crate::canon::digest::{Differences, Digest, Matcher, RowDetail, TableCanon, LISTED_ROWS};

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
                    let mut digest = Digest::new(job.canon.buckets);
                    let chunk = std::slice::from_ref(&job.chunks[c]);
                    read::source_rows(
                        &mut conn,
                        &readers.database,
                        &job.mapping,
                        chunk,
                        &job.canon,
                        timeout,
                        |row| digest.add(row.key_hash(&job.canon.key), row.hash()),
                    )
                    .await?;
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

/// Reads the rows of the differing buckets again on both sides, in passes of at most
/// [`ROWS_PER_PASS`] rows, and matches them by key.
async fn narrow(
    readers: &Readers,
    job: &TableJob,
    source: &Digest,
    target: &Digest,
    differing: Vec<usize>,
    options: &RowOptions,
) -> Result<Differences> {
    let canon = &job.canon;
    let mut found = Differences::default();
    let client = sink::connect(&options.target).await?;
    let mut conn = readers.take();
    let outcome = async {
        // The export's digest says where to look; the source's rows themselves decide. Read
        // once in full, a source equal to the target means the digest file was damaged.
        let read_now;
        let (source, differing) = match job.exported {
            None => (source, differing),
            Some(_) => {
                let mut digest = Digest::new(canon.buckets);
                read::source_rows(&mut conn, &readers.database, &job.mapping, &job.chunks, canon, options.io_timeout, |row| {
                    digest.add(row.key_hash(&canon.key), row.hash())
                })
                .await?;
                read_now = digest;
                let differing = read_now.differing(target);
                if differing.is_empty() {
                    tracing::warn!(table = %canon.table, "The export's digest of this table does not match the source; read again, the source equals the target.");
                }
                (&read_now, differing)
            }
        };
        compare_buckets(&mut conn, &client, readers, job, source, target, differing, options, &mut found).await
    }
    .await;
    readers.give_back(conn);
    outcome.map(|()| found)
}

/// Compares the rows of `differing` buckets one by one, in passes of bounded size.
#[allow(clippy::too_many_arguments)]
async fn compare_buckets(
    conn: &mut Conn,
    client: &tokio_postgres::Client,
    readers: &Readers,
    job: &TableJob,
    source: &Digest,
    target: &Digest,
    differing: Vec<usize>,
    options: &RowOptions,
    found: &mut Differences,
) -> Result<()> {
    let canon = &job.canon;
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    for b in differing {
        let group = groups.last_mut().expect("one group");
        if !group.is_empty()
            && source.rows_in(target, group) + source.rows_in(target, &[b]) > ROWS_PER_PASS
        {
            groups.push(vec![b]);
        } else {
            group.push(b);
        }
    }
    for group in groups {
        let wanted: HashSet<usize> = group.into_iter().collect();
        let mut matcher = Matcher::default();
        read::source_rows(
            conn,
            &readers.database,
            &job.mapping,
            &job.chunks,
            canon,
            options.io_timeout,
            |row| {
                let key_hash = row.key_hash(&canon.key);
                if wanted.contains(&source.bucket(key_hash)) {
                    matcher.source_row(
                        row.key_bytes(&canon.key),
                        RowDetail::of(row, canon, options.show_values),
                    );
                }
            },
        )
        .await?;
        read::target_rows(client, canon, options.io_timeout, |row| {
            let key_hash = row.key_hash(&canon.key);
            if wanted.contains(&target.bucket(key_hash)) {
                matcher.target_row(
                    row.key_bytes(&canon.key),
                    RowDetail::of(row, canon, options.show_values),
                    canon,
                );
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
    Ok(())
}
