//! Splits every table into chunks: key ranges `[lower, upper)` planned once and written to
//! `workdir/plan.json`. The first chunk has no lower bound and the last no upper bound, so
//! the ranges cover every key the table may hold, whatever was inserted after planning.
//! Boundaries are MySQL key values and membership is decided by MySQL in the key column's
//! own collation, so a case-insensitive collation can neither drop nor double a row.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use serde::{Deserialize, Serialize};

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::catalog::{my_ident, MyType};
use crate::encode::read::parse_uuid;
use crate::error::{within, Error, Result};
use crate::mapping::{self, TableMapping};
use crate::url::DbUrl;
use crate::workdir;

/// A key value as stored in the plan; round-trips to the MySQL value it was read as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum KeyValue {
    Int(i64),
    UInt(u64),
    Text(String),
    /// Hex, for key bytes that are not UTF-8 (binary keys).
    Bytes(String),
    Double(f64),
    /// year, month, day, hour, minute, second, microsecond
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
}

impl KeyValue {
    pub fn from_mysql(v: &Value) -> Option<KeyValue> {
        Some(match v {
            Value::NULL => return None,
            Value::Int(n) => KeyValue::Int(*n),
            Value::UInt(n) => KeyValue::UInt(*n),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => KeyValue::Text(s.to_string()),
                Err(_) => KeyValue::Bytes(b.iter().map(|x| format!("{x:02x}")).collect()),
            },
            Value::Float(f) => KeyValue::Double(*f as f64),
            Value::Double(f) => KeyValue::Double(*f),
            Value::Date(y, m, d, hh, mm, ss, us) => KeyValue::Date(*y, *m, *d, *hh, *mm, *ss, *us),
            Value::Time(n, d, hh, mm, ss, us) => KeyValue::Time(*n, *d, *hh, *mm, *ss, *us),
        })
    }

    pub fn to_mysql(&self) -> Value {
        match self {
            KeyValue::Int(n) => Value::Int(*n),
            KeyValue::UInt(n) => Value::UInt(*n),
            KeyValue::Text(s) => Value::Bytes(s.clone().into_bytes()),
            KeyValue::Bytes(hex) => Value::Bytes(
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect(),
            ),
            KeyValue::Double(f) => Value::Double(*f),
            KeyValue::Date(y, m, d, hh, mm, ss, us) => Value::Date(*y, *m, *d, *hh, *mm, *ss, *us),
            KeyValue::Time(n, d, hh, mm, ss, us) => Value::Time(*n, *d, *hh, *mm, *ss, *us),
        }
    }
}

/// One unit of work: the rows of `table` whose key is in `[lower, upper)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: u32,
    /// Inclusive; `None` for the first chunk.
    pub lower: Option<Vec<KeyValue>>,
    /// Exclusive; `None` for the last chunk.
    pub upper: Option<Vec<KeyValue>>,
}

/// How a table's chunk boundaries were found; `plan.json` says it for each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// One chunk: the table has no key, or no more rows than a chunk.
    Whole,
    /// Evenly between the integer key's smallest and largest value.
    IntegerRange,
    /// Evenly between the uuid key's smallest and largest value, in the order and with
    /// the spread MySQL confirmed ([`uuid_key_boundaries`]).
    UuidRange,
    /// Every n-th key of one ordered pass over the whole key.
    KeyScan,
}

impl Split {
    /// As `plan.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Whole => "whole",
            Split::IntegerRange => "integer_range",
            Split::UuidRange => "uuid_range",
            Split::KeyScan => "key_scan",
        }
    }
}

/// Chunks from sorted boundaries: n boundaries make n + 1 chunks covering everything.
pub fn chunks_from_boundaries(boundaries: Vec<Vec<KeyValue>>) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(boundaries.len() + 1);
    let mut lower = None;
    for (i, b) in boundaries.into_iter().enumerate() {
        chunks.push(Chunk {
            id: i as u32,
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b);
    }
    chunks.push(Chunk {
        id: chunks.len() as u32,
        lower,
        upper: None,
    });
    chunks
}

/// Rows per chunk for a table: from the byte budget and MySQL's average row length,
/// unless fixed by the configuration.
pub fn rows_per_chunk(avg_row_length: u64, chunk_bytes: u64, fixed: Option<u64>) -> u64 {
    fixed.unwrap_or_else(|| (chunk_bytes / avg_row_length.max(32)).clamp(1_000, 5_000_000))
}

/// How large chunks are: a CSV file size, or a fixed number of rows.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSize {
    pub bytes: u64,
    pub rows: Option<u64>,
}

/// Where planning reads: the prepared connection, and the URL for more, so that the tables
/// whose boundaries need queries are planned `sessions` at a time.
pub struct PlanSource<'a> {
    pub conn: &'a mut Conn,
    pub url: &'a DbUrl,
    pub database: &'a str,
    pub sessions: usize,
}

/// Plans every mapped table and writes `plan.json` (and a directory per table) into the
/// workdir.
pub async fn make(
    source: PlanSource<'_>,
    tables: &[TableMapping],
    target_schema: &str,
    size: ChunkSize,
    timeout: Duration,
    workdir: &Path,
) -> Result<Plan> {
    workdir::create_private_dir(workdir)?;
    let database = source.database;
    let per_chunk: Vec<u64> = tables
        .iter()
        .map(|t| rows_per_chunk(t.source.avg_row_length, size.bytes, size.rows))
        .collect();
    // Tables of one chunk need no query; the others are shared by up to `sessions`
    // connections (the prepared one and new ones), each taking the next table in turn.
    let queried: Vec<usize> = (0..tables.len())
        .filter(|&i| needs_queries(&tables[i], per_chunk[i]))
        .collect();
    let mut connections = Vec::new();
    for _ in 1..source.sessions.min(queried.len()) {
        connections.push(crate::source::connect(source.url).await?);
    }
    let work = Planning {
        next: std::sync::atomic::AtomicUsize::new(0),
        queried: &queried,
        tables,
        per_chunk: &per_chunk,
        database,
        timeout,
    };
    let mut chunks: Vec<Option<(Vec<Chunk>, Split)>> = vec![None; tables.len()];
    {
        let mut sessions = vec![work.plan_some(source.conn)];
        sessions.extend(connections.iter_mut().map(|c| work.plan_some(c)));
        for done in futures_util::future::try_join_all(sessions).await? {
            for (i, planned) in done {
                chunks[i] = Some(planned);
            }
        }
    }
    for conn in connections {
        let _ = within(timeout, "closing a planning connection", async {
            conn.disconnect()
                .await
                .map_err(Error::mysql("closing a planning connection"))
        })
        .await;
    }
    let mut planned = Vec::new();
    for ((table, chunks), rows) in tables.iter().zip(chunks).zip(per_chunk) {
        let (chunks, split) =
            chunks.unwrap_or_else(|| (chunks_from_boundaries(Vec::new()), Split::Whole));
        tracing::info!(table = %table.name(), chunks = chunks.len(), rows_per_chunk = rows, split = split.name(), "Table planned.");
        workdir::create_private_dir(&workdir::table_dir(workdir, table.name()))?;
        planned.push(PlannedTable {
            name: table.name().to_string(),
            target: table.target.qualified(),
            target_columns: table.columns.iter().map(|c| c.target.clone()).collect(),
            key: table.key_columns().to_vec(),
            chunks,
            split: Some(split),
            estimated_rows: table.source.estimated_rows,
        });
    }
    let plan = Plan {
        plan_id: new_plan_id(),
        fingerprint: mapping::fingerprint(tables),
        source_database: database.to_string(),
        target_schema: target_schema.to_string(),
        tables: planned,
    };
    workdir::write_json(&workdir.join(workdir::PLAN_FILE), &plan)?;
    Ok(plan)
}

fn new_plan_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos, std::process::id())
}

/// The tables that need queries, shared by the planning sessions.
struct Planning<'a> {
    next: std::sync::atomic::AtomicUsize,
    /// Indexes into `tables`.
    queried: &'a [usize],
    tables: &'a [TableMapping],
    per_chunk: &'a [u64],
    database: &'a str,
    timeout: Duration,
}

impl Planning<'_> {
    /// Plans the next table left, until none is: (index, chunks) of each.
    async fn plan_some(&self, conn: &mut Conn) -> Result<Vec<(usize, (Vec<Chunk>, Split))>> {
        let mut done = Vec::new();
        loop {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&i) = self.queried.get(n) else {
                return Ok(done);
            };
            let (table, rows) = (&self.tables[i], self.per_chunk[i]);
            done.push((
                i,
                plan_table(conn, self.database, table, rows, self.timeout).await?,
            ));
        }
    }
}

/// Whether planning `table` asks MySQL for boundaries (a key, and more rows than a chunk).
fn needs_queries(table: &TableMapping, rows_per_chunk: u64) -> bool {
    !table.key_columns().is_empty() && table.source.estimated_rows > rows_per_chunk
}

/// Plans the chunks of one table, and says how.
pub async fn plan_table(
    conn: &mut Conn,
    database: &str,
    table: &TableMapping,
    rows_per_chunk: u64,
    timeout: Duration,
) -> Result<(Vec<Chunk>, Split)> {
    let whole = || (chunks_from_boundaries(Vec::new()), Split::Whole);
    let key = table.key_columns();
    let estimated = table.source.estimated_rows;
    if !needs_queries(table, rows_per_chunk) {
        return Ok(whole());
    }
    let from = format!("{}.{}", my_ident(database), my_ident(table.name()));
    let context = format!("planning chunks of `{}`", table.name());
    let key_column = table.source.column(&key[0]);
    let single_integer = key.len() == 1 && key_column.is_some_and(|c| c.ty.is_integer());

    let (boundaries, split) = if single_integer {
        let row = key_ends(conn, &from, &my_ident(&key[0]), timeout, &context).await?;
        let (Some(min), Some(max)) = row
            .map(|(a, b)| (as_i128(&a), as_i128(&b)))
            .unwrap_or((None, None))
        else {
            return Ok(whole());
        };
        let boundaries = integer_boundaries(min, max, estimated.div_ceil(rows_per_chunk))
            .into_iter()
            .map(|b| {
                vec![if b > i64::MAX as i128 {
                    KeyValue::UInt(b as u64)
                } else {
                    KeyValue::Int(b as i64)
                }]
            })
            .collect();
        (boundaries, Split::IntegerRange)
    } else if let Some(boundaries) = uuid_key_boundaries(
        conn,
        &from,
        key,
        key_column,
        estimated.div_ceil(rows_per_chunk),
        timeout,
        &context,
    )
    .await?
    {
        (boundaries, Split::UuidRange)
    } else {
        // One ordered pass over the key, keeping every n-th key as a boundary.
        let cols = key
            .iter()
            .map(|k| my_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        let mut result = within(timeout, &context, async {
            conn.exec_iter(format!("SELECT {cols} FROM {from} ORDER BY {cols}"), ())
                .await
                .map_err(Error::mysql(&context))
        })
        .await?;
        let mut boundaries = Vec::new();
        let mut seen = 0u64;
        while let Some(row) = within(timeout, &context, async {
            result.next().await.map_err(Error::mysql(&context))
        })
        .await?
        {
            if seen > 0 && seen.is_multiple_of(rows_per_chunk) {
                let values: Option<Vec<KeyValue>> =
                    row.unwrap().iter().map(KeyValue::from_mysql).collect();
                boundaries.extend(values);
            }
            seen += 1;
        }
        (boundaries, Split::KeyScan)
    };
    Ok((chunks_from_boundaries(boundaries), split))
}

/// The boundaries of a table keyed by one uuid, written as text (char(36): Alkemio's and
/// Kratos' tables) or as its 16 bytes (binary(16)), without reading the table: uuids spread
/// evenly over their range, so `parts - 1` boundaries evenly spaced between the smallest and
/// largest key (the two ends of the index) split it into chunks of about `rows_per_chunk`.
/// An ordered scan of the key reads the whole clustered index, that is the whole table,
/// before any row moves (8.5 s of planning on Alkemio's 2.59M rows when they are not all in
/// the buffer pool).
///
/// Two checks keep that safe and fair, or hand the table back to the ordered scan (`None`):
/// MySQL itself must order text boundaries as they were computed, in the key's collation (a
/// collation where "aa" sorts after "z" would otherwise make ranges overlap; bytes compare
/// as numbers); and MySQL's estimate of each chunk's rows (index dives, as the optimizer
/// makes them) must not exceed a few chunks' share, or the keys are not spread evenly
/// (time-ordered uuids inserted in bursts, a few outliers stretching the range).
async fn uuid_key_boundaries(
    conn: &mut Conn,
    from: &str,
    key: &[String],
    key_column: Option<&crate::catalog::SourceColumn>,
    parts: u64,
    timeout: Duration,
    context: &str,
) -> Result<Option<Vec<Vec<KeyValue>>>> {
    let Some(column) = key_column.filter(|_| key.len() == 1) else {
        return Ok(None);
    };
    // In which collation text boundaries are compared; `None` for 16 bytes.
    let collated = match &column.ty {
        MyType::Binary {
            fixed: true,
            max_bytes: Some(16),
        } => None,
        ty if ty.is_string() => {
            let (Some(charset), Some(collation)) = (&column.charset, &column.collation) else {
                return Ok(None);
            };
            if ![charset, collation]
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Ok(None);
            }
            Some((charset, collation))
        }
        _ => return Ok(None),
    };
    let k = my_ident(&key[0]);
    let Some((Value::Bytes(min), Value::Bytes(max))) =
        key_ends(conn, from, &k, timeout, context).await?
    else {
        return Ok(None);
    };
    // Each boundary as an SQL literal (hex digits and dashes, or X'' hex: nothing to
    // escape) and as the plan keeps it.
    let boundaries: Vec<(String, KeyValue)> = match collated {
        Some(_) => {
            let (Ok(min), Ok(max)) = (std::str::from_utf8(&min), std::str::from_utf8(&max)) else {
                return Ok(None);
            };
            let Some(boundaries) = uuid_boundaries(min, max, parts) else {
                return Ok(None);
            };
            boundaries
                .into_iter()
                .map(|b| (format!("'{b}'"), KeyValue::Text(b)))
                .collect()
        }
        None => {
            let (Ok(min), Ok(max)) = (<[u8; 16]>::try_from(min), <[u8; 16]>::try_from(max)) else {
                return Ok(None);
            };
            let (low, high) = (u128::from_be_bytes(min), u128::from_be_bytes(max));
            let Some(spaced) = evenly_inside(low, high, parts) else {
                return Ok(None);
            };
            spaced
                .into_iter()
                .map(|b| {
                    let hex = format!("{b:032x}");
                    (format!("X'{hex}'"), KeyValue::Bytes(hex))
                })
                .collect()
        }
    };
    if boundaries.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let Some((charset, collation)) = collated else {
        return estimated_evenly(conn, from, &k, boundaries, timeout, context).await;
    };
    let literal = |b: &str| format!("CONVERT({b} USING {charset}) COLLATE {collation}");
    let ordered = boundaries
        .windows(2)
        .map(|w| format!("{} < {}", literal(&w[0].0), literal(&w[1].0)))
        .chain(std::iter::once("TRUE".to_string()))
        .collect::<Vec<_>>()
        .join(" AND ");
    // The two checks only decide between two safe plans: a check MySQL refuses (a collation
    // name it spells otherwise, EXPLAIN not allowed) sends the table to the scan ([`answered`]).
    let in_order: Option<Option<bool>> = answered(
        from,
        within(timeout, context, async {
            conn.query_first(format!("SELECT {ordered}"))
                .await
                .map_err(Error::mysql(context))
        })
        .await,
    )?;
    let Some(in_order) = in_order else {
        return Ok(None);
    };
    if in_order != Some(true) {
        tracing::debug!(table = %from, "uuid boundaries out of the collation's order: ordered scan");
        return Ok(None);
    }
    estimated_evenly(conn, from, &k, boundaries, timeout, context).await
}

/// `boundaries` (SQL literal, plan value) of key column `k`, if MySQL's estimates of the
/// ranges between them are even enough (see [`uuid_key_boundaries`]).
async fn estimated_evenly(
    conn: &mut Conn,
    from: &str,
    k: &str,
    boundaries: Vec<(String, KeyValue)>,
    timeout: Duration,
    context: &str,
) -> Result<Option<Vec<Vec<KeyValue>>>> {
    let mut estimates = Vec::with_capacity(boundaries.len() + 1);
    let mut lower: Option<&str> = None;
    for upper in boundaries.iter().map(|b| Some(b.0.as_str())).chain([None]) {
        let range = match (lower, upper) {
            (None, Some(u)) => format!("{k} < {u}"),
            (Some(l), Some(u)) => format!("{k} >= {l} AND {k} < {u}"),
            (Some(l), None) => format!("{k} >= {l}"),
            (None, None) => unreachable!("at least one boundary"),
        };
        let explained: Option<Vec<mysql_async::Row>> = answered(
            from,
            within(timeout, context, async {
                conn.query(format!("EXPLAIN SELECT 1 FROM {from} WHERE {range}"))
                    .await
                    .map_err(Error::mysql(context))
            })
            .await,
        )?;
        let Some(mut plan) = explained else {
            return Ok(None);
        };
        let estimate = plan
            .pop()
            .and_then(|row| row.get_opt::<Option<u64>, _>("rows"))
            .and_then(|r| r.ok())
            .flatten();
        let Some(estimate) = estimate else {
            return Ok(None);
        };
        estimates.push(estimate);
        lower = upper;
    }
    // InnoDB's estimates of long ranges run about twice the real count, all alike (on
    // md5-spread keys: 1.6–2.6× for chunks within 2% of each other), so each chunk's share
    // of them is what is compared: none may hold more than three chunks' share.
    let total: u64 = estimates.iter().sum();
    let parts = estimates.len() as u64;
    if estimates
        .iter()
        .any(|&e| e.saturating_mul(parts) > total.saturating_mul(3))
    {
        tracing::debug!(table = %from, ?estimates, "uuid keys not spread evenly: ordered scan");
        return Ok(None);
    }
    Ok(Some(boundaries.into_iter().map(|(_, b)| vec![b]).collect()))
}

/// The smallest and largest value of key column `k` (the two ends of its index).
async fn key_ends(
    conn: &mut Conn,
    from: &str,
    k: &str,
    timeout: Duration,
    context: &str,
) -> Result<Option<(Value, Value)>> {
    within(timeout, context, async {
        conn.query_first(format!("SELECT MIN({k}), MAX({k}) FROM {from}"))
            .await
            .map_err(Error::mysql(context))
    })
    .await
}

/// The outcome of one of the uuid split's checks: `None` when MySQL refused it with an SQL
/// error (the table then takes the ordered scan, and the connection is still fit for it);
/// a lost connection or a timeout stops planning, as anywhere else.
fn answered<T>(table: &str, outcome: Result<T>) -> Result<Option<T>> {
    match outcome {
        Ok(answer) => Ok(Some(answer)),
        Err(
            error @ Error::Mysql {
                cause: mysql_async::Error::Server(_),
                ..
            },
        ) => {
            tracing::debug!(table, %error, "uuid split not checked: ordered scan");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// `parts - 1` uuids evenly spaced strictly inside `(min, max]`, written 8-4-4-4-12 in the
/// keys' case; `None` unless both ends are uuids written so.
pub fn uuid_boundaries(min: &str, max: &str, parts: u64) -> Option<Vec<String>> {
    // Only the dashed form: 32 bare digits sort otherwise against dashed ones.
    let value = |text: &str| -> Option<u128> {
        (text.len() == 36)
            .then(|| parse_uuid(text.as_bytes()).ok())
            .flatten()
            .map(u128::from_be_bytes)
    };
    let (low, high) = (value(min)?, value(max)?);
    let upper = |t: &str| t.bytes().any(|b| b.is_ascii_uppercase());
    let lower = |t: &str| t.bytes().any(|b| b.is_ascii_lowercase());
    let uppercase = (upper(min) || upper(max)) && !(lower(min) || lower(max));
    Some(
        evenly_inside(low, high, parts)?
            .into_iter()
            .map(|b| {
                let h = if uppercase {
                    format!("{b:032X}")
                } else {
                    format!("{b:032x}")
                };
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            })
            .collect(),
    )
}

/// `parts - 1` numbers evenly spaced, strictly increasing, inside `(low, high]`; `None`
/// when `high < low`.
fn evenly_inside(low: u128, high: u128, parts: u64) -> Option<Vec<u128>> {
    let span = high.checked_sub(low)?;
    // At most one part per key value, so that every part is at least one wide.
    let parts = (parts as u128).clamp(1, span.max(1));
    let width = span / parts;
    Some(
        (1..parts)
            .map(|i| low + i * width + (i * (span % parts)) / parts)
            .filter(|&b| b > low && b <= high)
            .collect(),
    )
}

/// `parts - 1` evenly spaced boundaries strictly inside `(min, max]`.
pub fn integer_boundaries(min: i128, max: i128, parts: u64) -> Vec<i128> {
    let span = max - min + 1;
    let parts = (parts as i128).clamp(1, span.max(1));
    let width = (span + parts - 1) / parts;
    (1..parts)
        .map(|i| min + i * width)
        .filter(|b| *b <= max)
        .collect()
}

fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Int(n) => Some(*n as i128),
        Value::UInt(n) => Some(*n as i128),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// The plan of one table as the workdir keeps it: enough to export or import again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedTable {
    pub name: String,
    /// `"schema"."table"` in the target.
    pub target: String,
    /// Target columns in COPY order.
    pub target_columns: Vec<String>,
    pub key: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// How the chunks were found (absent in plans of versions before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// MySQL's row estimate when planned: a resume refuses if it moved far since.
    #[serde(default)]
    pub estimated_rows: u64,
}

/// A row estimate far from the planned one: more than half off and by over 10,000 rows.
/// InnoDB's estimates wander a little; this much means the table really changed.
pub fn estimate_moved(planned: u64, now: u64) -> bool {
    planned.abs_diff(now) > 10_000 && planned.abs_diff(now) * 2 > planned.max(now)
}

impl Plan {
    /// Every chunk of the plan as (table, chunk id).
    pub fn chunk_ids(&self) -> impl Iterator<Item = (&str, u32)> {
        self.tables
            .iter()
            .flat_map(|t| t.chunks.iter().map(move |c| (t.name.as_str(), c.id)))
    }
}

/// `workdir/plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub plan_id: String,
    /// [`crate::mapping::fingerprint`] of the catalogs the plan was made from.
    pub fingerprint: String,
    pub source_database: String,
    pub target_schema: String,
    pub tables: Vec<PlannedTable>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_cover_everything_without_overlap() {
        let chunks = chunks_from_boundaries(vec![vec![KeyValue::Int(10)], vec![KeyValue::Int(20)]]);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].lower, None);
        assert_eq!(chunks[0].upper, Some(vec![KeyValue::Int(10)]));
        assert_eq!(chunks[1].lower, Some(vec![KeyValue::Int(10)]));
        assert_eq!(chunks[2].upper, None);
        // Each boundary is the upper (exclusive) bound of one chunk and the lower
        // (inclusive) bound of the next: the boundary row belongs to exactly one chunk.
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].upper, pair[1].lower);
        }
    }

    #[test]
    fn estimates_must_move_far_to_count() {
        assert!(!estimate_moved(1_000_000, 1_200_000));
        assert!(
            !estimate_moved(1_000, 9_000),
            "small tables: estimates are rough"
        );
        assert!(estimate_moved(1_000_000, 100_000));
        assert!(estimate_moved(10_000, 100_000));
    }

    #[test]
    fn no_boundaries_is_one_unbounded_chunk() {
        let chunks = chunks_from_boundaries(Vec::new());
        assert_eq!(
            chunks,
            vec![Chunk {
                id: 0,
                lower: None,
                upper: None
            }]
        );
    }

    #[test]
    fn split_names_are_those_of_the_plan_file() {
        for split in [
            Split::Whole,
            Split::IntegerRange,
            Split::UuidRange,
            Split::KeyScan,
        ] {
            let json = serde_json::to_string(&split).unwrap();
            assert_eq!(json, format!("\"{}\"", split.name()));
        }
    }

    #[test]
    fn uuid_boundaries_split_the_range_evenly_in_the_keys_case() {
        let b = uuid_boundaries(
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            4,
        )
        .unwrap();
        assert_eq!(
            b,
            [
                "3fffffff-ffff-ffff-ffff-ffffffffffff",
                "7fffffff-ffff-ffff-ffff-ffffffffffff",
                "bfffffff-ffff-ffff-ffff-ffffffffffff",
            ]
        );
        let upper = uuid_boundaries(
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "FF8FAD5B-D9CB-469F-A165-70867728950E",
            2,
        )
        .unwrap();
        assert_eq!(upper, ["878FAD5B-D9CB-469F-A165-70867728950E"]);
        // Strictly increasing, inside (min, max], even where the range is narrow.
        let narrow = uuid_boundaries(
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000004",
            10,
        )
        .unwrap();
        assert_eq!(narrow.len(), 2);
        assert!(narrow.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(uuid_boundaries("a", "b", 3), None);
        assert_eq!(
            uuid_boundaries(
                "+f8fad5b-d9cb-469f-a165-70867728950e",
                "ff8fad5b-d9cb-469f-a165-70867728950e",
                3
            ),
            None
        );
        assert_eq!(
            uuid_boundaries(
                "0f8fad5bd9cb469fa16570867728950e",
                "ff8fad5b-d9cb-469f-a165-70867728950e",
                3
            ),
            None,
            "the bare form sorts differently from the dashed one"
        );
        assert_eq!(
            uuid_boundaries(
                "ff8fad5b-d9cb-469f-a165-70867728950e",
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                3
            ),
            None
        );
    }

    #[test]
    fn integer_boundaries_are_inside_the_range() {
        assert_eq!(integer_boundaries(1, 100, 4), vec![26, 51, 76]);
        assert_eq!(integer_boundaries(5, 5, 10), Vec::<i128>::new());
        assert_eq!(integer_boundaries(1, 3, 10), vec![2, 3]);
        let big = integer_boundaries(0, u64::MAX as i128, 2);
        assert_eq!(big, vec![1i128 << 63]);
    }

    #[test]
    fn key_values_round_trip_through_json_and_mysql() {
        let values = vec![
            KeyValue::Text("Ä-b".into()),
            KeyValue::Bytes("00ff".into()),
            KeyValue::UInt(u64::MAX),
            KeyValue::Date(2020, 1, 2, 3, 4, 5, 6),
        ];
        let json = serde_json::to_string(&values).unwrap();
        let back: Vec<KeyValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, values);
        for v in values {
            assert_eq!(KeyValue::from_mysql(&v.to_mysql()), Some(v));
        }
    }
}
