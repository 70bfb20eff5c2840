//! MySQL/MariaDB readers: sessions pinned to UTC and utf8mb4, all opened on one consistent
//! snapshot, each streaming chunks as `SELECT cols FROM t WHERE key range`.
//! The source is only ever read: snapshot transactions are READ ONLY.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, Value};

use crate::catalog::my_ident;
use crate::config::DbUrl;
use crate::error::{Error, Result};
use crate::plan::{Chunk, KeyValue};

/// Session settings of every source connection. `net_write_timeout` is raised because a
/// reader held back by a slow target must not have its query cut by the server.
const SESSION_SETUP: &[&str] = &[
    "SET time_zone = '+00:00'",
    "SET NAMES utf8mb4",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION net_read_timeout = 3600",
];

pub fn opts(url: &DbUrl) -> Result<Opts> {
    let parsed = Opts::from_url(url.expose())
        .map_err(|e| Error::Usage(format!("invalid --source URL {url}: {e}")))?;
    if parsed.db_name().is_none() {
        return Err(Error::Usage(format!(
            "--source URL {url} names no database (mysql://user:pass@host:port/DATABASE)"
        )));
    }
    Ok(OptsBuilder::from_opts(parsed)
        .init(SESSION_SETUP.to_vec())
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .stmt_cache_size(64)
        .into())
}

pub async fn connect(url: &DbUrl) -> Result<Conn> {
    let opts = opts(url)?;
    let connecting = Conn::new(opts);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Error::Connect {
            side: "source",
            url: url.redacted(),
            reason: e.to_string(),
        }),
        Err(_) => Err(Error::Connect {
            side: "source",
            url: url.redacted(),
            reason: "no answer within 30 s".into(),
        }),
    }
}

pub fn database(url: &DbUrl) -> Result<String> {
    Ok(opts(url)?.db_name().unwrap_or_default().to_string())
}

/// Where the binary log stood; `None` where the server keeps no binary log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
}

async fn binlog_position(conn: &mut Conn) -> Result<Option<BinlogPosition>> {
    // MySQL 8.4 renamed SHOW MASTER STATUS; MariaDB and older MySQL know only the old name.
    let row: Option<Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(_) => match conn.query_first("SHOW BINARY LOG STATUS").await {
            Ok(row) => row,
            Err(e) => {
                // Most often a missing privilege: the run can go on without the proof.
                tracing::warn!(error = %e, "Cannot read the binary log position.");
                None
            }
        },
    };
    Ok(row.and_then(|r| {
        let file = match r.as_ref(0)? {
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            _ => return None,
        };
        let position = match r.as_ref(1)? {
            Value::Int(n) => *n as u64,
            Value::UInt(n) => *n,
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
            _ => return None,
        };
        Some(BinlogPosition { file, position })
    }))
}

/// Whether any binary-log event from `from` to `to` touches `database`: a row event on one
/// of its tables, or a statement that names it. `None` when the events cannot be read (no
/// privilege, purged logs, too many events to scan): the caller must then assume a change.
/// The binary log is server-wide, so writes to other databases on the same server (another
/// application, a monitoring table) must not count as changes to this one.
pub async fn binlog_touches(
    conn: &mut Conn,
    database: &str,
    from: &BinlogPosition,
    to: &BinlogPosition,
) -> Option<bool> {
    const PAGE: usize = 1000;
    const MAX_EVENTS: usize = 2_000_000;
    let logs: Vec<Row> = conn.query("SHOW BINARY LOGS").await.ok()?;
    let names: Vec<String> = logs
        .iter()
        .filter_map(|r| match r.as_ref(0) {
            Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    let first = names.iter().position(|n| *n == from.file)?;
    let last = names.iter().position(|n| *n == to.file)?;
    let table_prefix = format!("({database}.");
    let mut scanned = 0;
    for file in &names[first..=last] {
        let mut position = if *file == from.file { from.position } else { 4 };
        loop {
            let events: Vec<Row> = conn
                .query(format!(
                    "SHOW BINLOG EVENTS IN '{}' FROM {position} LIMIT {PAGE}",
                    file.replace('\'', "")
                ))
                .await
                .ok()?;
            for event in &events {
                let text = |i: usize| match event.as_ref(i) {
                    Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::Int(n)) => n.to_string(),
                    Some(Value::UInt(n)) => n.to_string(),
                    _ => String::new(),
                };
                let start: u64 = text(1).parse().ok()?;
                if *file == to.file && start >= to.position {
                    return Some(false);
                }
                let (kind, info) = (text(2), text(5));
                let touches = match kind.as_str() {
                    "Table_map" => info.contains(&table_prefix),
                    "Query" => {
                        !info.starts_with("BEGIN")
                            && !info.starts_with("COMMIT")
                            && info.contains(database)
                    }
                    _ => false,
                };
                if touches {
                    return Some(true);
                }
                position = text(4).parse().ok()?;
                scanned += 1;
                if scanned > MAX_EVENTS {
                    return None;
                }
            }
            if events.len() < PAGE {
                break;
            }
        }
    }
    Some(false)
}

/// A broken connection (reset, closed, killed, server shutting down): worth reading the
/// chunk again on a new connection, if the source has not changed meanwhile.
pub fn is_connection_loss(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error as E};
    match e {
        E::Io(_) | E::Driver(DriverError::ConnectionClosed) => true,
        // ER_CONNECTION_KILLED, ER_SERVER_SHUTDOWN, CR_SERVER_GONE_ERROR, CR_SERVER_LOST
        E::Server(s) => matches!(s.code, 1927 | 1053 | 2006 | 2013),
        _ => false,
    }
}

/// A new reader after a lost connection: a fresh snapshot, accepted only if the source
/// database has not been written since the run's snapshot at `original`.
pub async fn reopen_reader(
    url: &DbUrl,
    database: &str,
    original: &Option<BinlogPosition>,
) -> Result<Conn> {
    let mut snapshot = open_snapshot(url, 1).await?;
    let mut conn = snapshot.readers.pop().expect("one reader");
    if let (Some(original), Some(now)) = (original, &snapshot.binlog) {
        if original != now
            && binlog_touches(&mut conn, database, original, now).await != Some(false)
        {
            return Err(Error::Data(format!(
                "a reader lost its connection and `{database}` was written meanwhile (binlog {}:{} then, {}:{} now): stop the application and run `migrate` again",
                original.file, original.position, now.file, now.position
            )));
        }
    }
    Ok(conn)
}

/// `n` reader connections that all see the same instant of the source.
pub struct Snapshot {
    pub readers: Vec<Conn>,
    pub binlog: Option<BinlogPosition>,
}

/// Opens every reader's transaction between two reads of the binlog position; if the
/// position moved, someone wrote in between and the readers may disagree: try again.
pub async fn open_snapshot(url: &DbUrl, n: usize) -> Result<Snapshot> {
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        readers.push(connect(url).await?);
    }
    const ATTEMPTS: usize = 10;
    for attempt in 1..=ATTEMPTS {
        let before = binlog_position(&mut readers[0]).await?;
        for conn in readers.iter_mut() {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(Error::source("opening the consistent snapshot"))?;
        }
        let after = binlog_position(&mut readers[0]).await?;
        if before == after {
            if before.is_none() {
                tracing::warn!(
                    "The source keeps no binary log: pgclipper cannot prove that its readers share one instant. Stop writes to the source during the migration."
                );
            }
            return Ok(Snapshot {
                readers,
                binlog: after,
            });
        }
        tracing::info!(
            attempt,
            "The source was written while readers opened their snapshot; retrying."
        );
        for conn in readers.iter_mut() {
            conn.query_drop("ROLLBACK")
                .await
                .map_err(Error::source("rolling back a snapshot"))?;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
    }
    Err(Error::Environment(format!(
        "the source's binary log kept moving while {n} readers opened their snapshot ({ATTEMPTS} attempts): stop the application writing to it"
    )))
}

/// A key column as the range predicate needs it.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    pub name: String,
    /// (character set, collation) for string keys: bound values are compared in the
    /// column's own collation, so the index serves the range and plan and read agree.
    pub string: Option<(String, String)>,
}

/// `WHERE` clause and parameters selecting the rows of `chunk`. Tuple comparison is written
/// out lexicographically, which every MySQL version's range optimizer understands.
pub fn range_predicate(key: &[KeyColumn], chunk: &Chunk) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(lower) = &chunk.lower {
        clauses.push(tuple_compare(key, lower, ">", ">=", &mut params));
    }
    if let Some(upper) = &chunk.upper {
        clauses.push(tuple_compare(key, upper, "<", "<", &mut params));
    }
    if clauses.is_empty() {
        ("TRUE".to_string(), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

/// `(k1, k2) OP (v1, v2)` as `k1 STRICT v1 OR (k1 = v1 AND k2 LAST v2)`.
fn tuple_compare(
    key: &[KeyColumn],
    values: &[KeyValue],
    strict: &str,
    last: &str,
    params: &mut Vec<Value>,
) -> String {
    let mut alternatives = Vec::new();
    for i in 0..key.len() {
        let mut terms = Vec::new();
        for (j, column) in key.iter().enumerate().take(i + 1) {
            let op = if j < i {
                "="
            } else if i + 1 == key.len() {
                last
            } else {
                strict
            };
            terms.push(format!(
                "{} {op} {}",
                my_ident(&column.name),
                placeholder(column)
            ));
            params.push(values[j].to_mysql());
        }
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

fn placeholder(column: &KeyColumn) -> String {
    match &column.string {
        Some((charset, collation)) => format!("CONVERT(? USING {charset}) COLLATE {collation}"),
        None => "?".to_string(),
    }
}

/// The statement that reads one chunk.
pub fn chunk_query(
    database: &str,
    table: &str,
    select: &[String],
    key: &[KeyColumn],
    chunk: &Chunk,
) -> (String, Params) {
    let cols = select
        .iter()
        .map(|c| my_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let (predicate, params) = range_predicate(key, chunk);
    let sql = format!(
        "SELECT {cols} FROM {}.{} WHERE {predicate}",
        my_ident(database),
        my_ident(table)
    );
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(names: &[&str]) -> Vec<KeyColumn> {
        names
            .iter()
            .map(|n| KeyColumn {
                name: n.to_string(),
                string: None,
            })
            .collect()
    }

    #[test]
    fn single_key_range_is_half_open() {
        let chunk = Chunk {
            id: 1,
            lower: Some(vec![KeyValue::Int(10)]),
            upper: Some(vec![KeyValue::Int(20)]),
        };
        let (sql, params) = range_predicate(&key(&["id"]), &chunk);
        assert_eq!(sql, "((`id` >= ?)) AND ((`id` < ?))");
        assert_eq!(params, vec![Value::Int(10), Value::Int(20)]);
    }

    #[test]
    fn composite_key_range_is_lexicographic() {
        let chunk = Chunk {
            id: 1,
            lower: Some(vec![KeyValue::Int(1), KeyValue::Int(5)]),
            upper: None,
        };
        let (sql, params) = range_predicate(&key(&["a", "b"]), &chunk);
        assert_eq!(sql, "((`a` > ?) OR (`a` = ? AND `b` >= ?))");
        assert_eq!(params, vec![Value::Int(1), Value::Int(1), Value::Int(5)]);
    }

    #[test]
    fn unbounded_chunk_selects_everything() {
        let chunk = Chunk {
            id: 0,
            lower: None,
            upper: None,
        };
        assert_eq!(range_predicate(&key(&["id"]), &chunk).0, "TRUE");
    }

    #[test]
    fn string_keys_compare_in_their_column_collation() {
        let key = vec![KeyColumn {
            name: "id".into(),
            string: Some(("latin1".into(), "latin1_swedish_ci".into())),
        }];
        let chunk = Chunk {
            id: 0,
            lower: None,
            upper: Some(vec![KeyValue::Text("m".into())]),
        };
        assert_eq!(
            range_predicate(&key, &chunk).0,
            "((`id` < CONVERT(? USING latin1) COLLATE latin1_swedish_ci))"
        );
    }
}
