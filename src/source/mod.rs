//! MySQL/MariaDB readers: sessions pinned to UTC and utf8mb4, all opened on one consistent
//! snapshot ([`snapshot`]), each streaming chunks as `SELECT cols FROM t WHERE key range`
//! ([`reader`]). The source is only ever read: snapshot transactions are READ ONLY.

pub mod reader;
pub mod row;
pub mod slices;
pub mod snapshot;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::{Conn, DriverError, Opts, OptsBuilder, Params, SslOpts, Value};

use tls::{SourceTls, SslMode};

use crate::catalog::my_ident;
use crate::encode::SlicedColumn;
use crate::error::{Error, Result};
use crate::plan::{Chunk, KeyValue};
use crate::url::DbUrl;

/// Session settings of every source connection. `net_write_timeout` is raised because a
/// reader held back by a slow target must not have its query cut by the server.
const SESSION_SETUP: &[&str] = &[
    "SET time_zone = '+00:00'",
    "SET NAMES utf8mb4",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION net_read_timeout = 3600",
];

/// The driver's options of `url` without TLS, and the TLS settings taken out of it.
fn opts(url: &DbUrl) -> Result<(Opts, SourceTls)> {
    let mut text = url.expose().to_string();
    let tls = SourceTls::take(&mut text)?;
    let parsed = Opts::from_url(&text)
        .map_err(|e| Error::Usage(format!("invalid --source URL {url}: {e}")))?;
    if parsed.db_name().is_none() {
        return Err(Error::Usage(format!(
            "--source URL {url} names no database (mysql://user:pass@host:port/DATABASE)"
        )));
    }
    let opts = OptsBuilder::from_opts(parsed)
        .init(SESSION_SETUP.to_vec())
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .stmt_cache_size(64)
        .into();
    Ok((opts, tls))
}

/// Whether the source declined TLS under ssl-mode=PREFERRED: later connections of the run
/// go without asking again.
static SOURCE_HAS_NO_TLS: AtomicBool = AtomicBool::new(false);

pub async fn connect(url: &DbUrl) -> Result<Conn> {
    let (opts, tls) = opts(url)?;
    let host = opts.ip_or_hostname().to_string();
    let attempt = |ssl: Option<SslOpts>| {
        let opts = OptsBuilder::from_opts(opts.clone()).ssl_opts(ssl);
        async move {
            match tokio::time::timeout(Duration::from_secs(30), Conn::new(opts)).await {
                Ok(result) => result.map_err(Some),
                Err(_) => Err(None),
            }
        }
    };
    const ADVICE: &str = "Use ssl-mode=VERIFY_IDENTITY with ssl-ca=FILE (the server's CA).";
    let connected = match tls.mode {
        SslMode::Disabled => {
            crate::tls::warn_unencrypted(crate::tls::Side::Source, &host, ADVICE);
            attempt(None).await
        }
        SslMode::Preferred if SOURCE_HAS_NO_TLS.load(Ordering::Relaxed) => attempt(None).await,
        SslMode::Preferred => match attempt(tls.ssl_opts(None)?).await {
            Err(Some(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))) => {
                SOURCE_HAS_NO_TLS.store(true, Ordering::Relaxed);
                crate::tls::warn_unencrypted(crate::tls::Side::Source, &host, ADVICE);
                attempt(None).await
            }
            other => other,
        },
        SslMode::VerifyCa => {
            let known = tls::ISSUER_CHECK_NAME.lock().unwrap().clone();
            let first = attempt(tls.ssl_opts(known.clone())?).await;
            match (&first, known) {
                (Err(Some(e)), None) => match tls::name_for_issuer_check(e) {
                    Some(name) => {
                        *tls::ISSUER_CHECK_NAME.lock().unwrap() = Some(name.clone());
                        attempt(tls.ssl_opts(Some(name))?).await
                    }
                    None => first,
                },
                _ => first,
            }
        }
        SslMode::Required | SslMode::VerifyIdentity => attempt(tls.ssl_opts(None)?).await,
    };
    connected.map_err(|e| Error::Connect {
        side: "source",
        url: url.redacted(),
        reason: match e {
            Some(e) => tls::explain(&e, &tls, &host),
            None => "no answer within 30 s".into(),
        },
    })
}

/// `10.11.19-MariaDB-0+deb12u1 (Debian 12)` as the server says, for the report.
pub async fn server_version(conn: &mut Conn) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let row: Option<(String, String)> = conn
        .query_first("SELECT VERSION(), @@version_comment")
        .await
        .ok()?;
    row.map(|(version, comment)| format!("{version} ({comment})"))
}

/// The rows of the database's tables but `excluded`, by its own statistics (InnoDB's
/// estimates), for the report's projection of a rehearsal on some tables.
pub async fn estimated_rows(conn: &mut Conn, database: &str, excluded: &[String]) -> Option<u64> {
    use mysql_async::prelude::Queryable;
    let tables: Vec<(String, Option<u64>)> = conn
        .exec(
            "SELECT table_name, table_rows FROM information_schema.tables \
             WHERE table_schema = ? AND table_type = 'BASE TABLE'",
            (database,),
        )
        .await
        .ok()?;
    let included = tables.iter().filter(|(name, _)| !excluded.contains(name));
    Some(included.map(|(_, rows)| rows.unwrap_or(0)).sum())
}

pub fn database(url: &DbUrl) -> Result<String> {
    Ok(opts(url)?.0.db_name().unwrap_or_default().to_string())
}

/// A key column as the range predicate needs it.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    pub name: String,
    /// (character set, collation) for string keys: bound values are compared in the
    /// column's own collation, so the index serves the range and plan and read agree.
    pub string: Option<(String, String)>,
}

/// The key columns of a mapped table as the range predicate needs them.
pub fn key_columns(table: &crate::mapping::TableMapping) -> Vec<KeyColumn> {
    table
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
        .collect()
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

/// `t.k1 = ? AND t.k2 = ?`: the one row with the key, compared as the range predicate
/// compares; `table` is the table's name or alias in the statement.
pub fn key_predicate(table: &str, key: &[KeyColumn]) -> String {
    key.iter()
        .map(|column| {
            let name = my_ident(&column.name);
            format!("{table}.{name} = {}", placeholder(column))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn placeholder(column: &KeyColumn) -> String {
    match &column.string {
        Some((charset, collation)) => format!("CONVERT(? USING {charset}) COLLATE {collation}"),
        None => "?".to_string(),
    }
}

/// The chunk query's select list: the `columns`, the `sliced` ones as NULL where their
/// value is to be read in slices, followed by those values' lengths.
pub fn select_list(columns: &[String], sliced: &[SlicedColumn]) -> String {
    let mut list: Vec<String> = columns.iter().map(|c| my_ident(c)).collect();
    for column in sliced {
        let (value, length) = column.select(&list[column.position]);
        list[column.position] = value;
        list.push(length);
    }
    list.join(", ")
}

/// The statement that reads one chunk; `select` from [`select_list`].
pub fn chunk_query(
    database: &str,
    table: &str,
    select: &str,
    key: &[KeyColumn],
    chunk: &Chunk,
) -> (String, Params) {
    let (predicate, params) = range_predicate(key, chunk);
    let sql = format!(
        "SELECT {select} FROM {}.{} WHERE {predicate}",
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
