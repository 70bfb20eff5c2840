//! The one instant every reader sees: reader connections opened on one consistent
//! snapshot between two reads of the binary log position, and the proofs built on the
//! binary log: that a reopened reader, or a resumed export, sees the same source.

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::connect;
use crate::error::{Error, Result};
use crate::url::DbUrl;
use crate::workdir;

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

/// A new reader after a lost connection: a fresh snapshot, accepted only if the source
/// database has not been written since the run's snapshot at `original`.
pub async fn reopen_reader(
    url: &DbUrl,
    database: &str,
    original: &Option<BinlogPosition>,
) -> Result<Conn> {
    let mut snapshot = open(url, 1).await?;
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
pub async fn open(url: &DbUrl, n: usize) -> Result<Snapshot> {
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
                .map_err(Error::mysql("opening the consistent snapshot"))?;
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
                .map_err(Error::mysql("rolling back a snapshot"))?;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
    }
    Err(Error::Environment(format!(
        "the source's binary log kept moving while {n} readers opened their snapshot ({ATTEMPTS} attempts): stop the application writing to it"
    )))
}

/// Chunks exported in an earlier run came from an earlier snapshot: they only fit with the
/// ones exported now if the source database has not been written since. The first export
/// records the binlog position in the workdir; a later one reads the binlog events in
/// between and refuses if any touches the source database (or if they cannot be read).
pub async fn check_same_source(
    workdir: &Path,
    database: &str,
    snapshot: &mut Snapshot,
) -> Result<()> {
    let record = workdir.join(workdir::SNAPSHOT_FILE);
    let now = snapshot.binlog.clone();
    if !record.exists() {
        return workdir::write_json(&record, &now);
    }
    let first: Option<BinlogPosition> = workdir::read_json(&record)?;
    let refuse = |why: String| {
        Err(Error::Data(format!(
            "{why}: chunks already exported would not match the rest; stop the application and run again with --restart (`migrate --restart` first empties the plan's target tables)"
        )))
    };
    match (&first, &now) {
        (Some(first), Some(now)) if first != now => {
            let changed = binlog_touches(&mut snapshot.readers[0], database, first, now).await;
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
