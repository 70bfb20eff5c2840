//! The operator's own assertions about critical data (`[[critical]]` in the config): a
//! query on each side, their results compared row by row as text. Counts, sums, lists of
//! rows: whatever proves that what matters most arrived.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, Result};

/// One assertion: the same question asked of both databases.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    /// What it proves, as the report shows it.
    pub name: String,
    /// Run on the source, in the verify's snapshot.
    pub source_sql: String,
    /// Run on the target.
    pub target_sql: String,
    /// The source's result must not be empty nor start with a zero count.
    #[serde(default)]
    pub non_empty: bool,
    /// What the first value of the first row must be, on both sides (`"0"` for "no
    /// orphans", say).
    #[serde(default)]
    pub expect: Option<String>,
}

/// The outcome of one assertion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CriticalResult {
    pub name: String,
    /// Both results equal, and as `non_empty` and `expect` demand.
    pub equal: bool,
    /// Both results, at most ten rows each, as text.
    pub source: Vec<Vec<Option<String>>>,
    pub target: Vec<Vec<Option<String>>>,
}

/// Runs every assertion; a query that fails is an error naming the assertion.
pub async fn run(
    assertions: &[Critical],
    mysql: &mut Conn,
    postgres: &Client,
) -> Result<Vec<CriticalResult>> {
    let mut results = Vec::new();
    for a in assertions {
        let context = format!("running the critical check {:?}", a.name);
        let rows: Vec<Row> = mysql
            .query(&a.source_sql)
            .await
            .map_err(Error::mysql(&context))?;
        let source: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| (0..r.len()).map(|i| mysql_text(r.as_ref(i))).collect())
            .collect();
        let messages = postgres
            .simple_query(&a.target_sql)
            .await
            .map_err(Error::postgres(&context))?;
        let target: Vec<Vec<Option<String>>> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect();
        let first = source.first().and_then(|r| r.first()).cloned().flatten();
        let equal = source == target
            && (!a.non_empty || first.as_deref().is_some_and(|v| v != "0"))
            && a.expect.as_ref().is_none_or(|e| first.as_ref() == Some(e));
        let shown = |rows: Vec<Vec<Option<String>>>| rows.into_iter().take(10).collect();
        results.push(CriticalResult {
            name: a.name.clone(),
            equal,
            source: shown(source),
            target: shown(target),
        });
    }
    Ok(results)
}

/// A value of MySQL's text protocol as text.
fn mysql_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}
