//! Reading rows for the comparison, each side by its own path: the source's chunks on a
//! snapshot connection, as MySQL's values; the target's table by `COPY (SELECT …) TO
//! STDOUT`, as the text Postgres renders. Every row becomes a [`CanonRow`] handed to the
//! caller, one at a time: memory stays at one batch, whatever the table's size.

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio_postgres::Client;

use crate::canon::digest::{CanonRow, TableCanon};
use crate::error::{within, Error, Result};
use crate::mapping::TableMapping;
use crate::plan::Chunk;
use crate::source;
use crate::source::row::ValueRef;

/// Streams the rows of `chunks` of `table` from the source into `each`.
pub async fn source_rows(
    conn: &mut Conn,
    database: &str,
    table: &TableMapping,
    chunks: &[Chunk],
    canon: &TableCanon,
    timeout: Duration,
    mut each: impl FnMut(&CanonRow),
) -> Result<()> {
    let key = source::key_columns(table);
    let columns = canon.columns.len();
    let mut row = CanonRow::default();
    for chunk in chunks {
        let context = format!(
            "reading chunk {} of `{}` to verify it",
            chunk.id,
            table.name()
        );
        let select = source::select_list(&table.select, &[]);
        let (sql, params) = source::chunk_query(database, table.name(), &select, &key, chunk);
        let mut result = within(timeout, &context, async {
            conn.exec_iter(sql, params)
                .await
                .map_err(Error::mysql(&context))
        })
        .await?;
        while let Some(values) = within(timeout, &context, async {
            result.next().await.map_err(Error::mysql(&context))
        })
        .await?
        {
            row.fill(columns, |i, out| {
                canon.kinds[i].source(
                    &values.as_ref(i).map_or(ValueRef::Null, ValueRef::from),
                    out,
                )
            });
            each(&row);
        }
    }
    Ok(())
}

/// Streams every row of the target table into `each`.
pub async fn target_rows(
    client: &Client,
    canon: &TableCanon,
    timeout: Duration,
    mut each: impl FnMut(&CanonRow),
) -> Result<()> {
    let context = format!("reading {} to verify it", canon.qualified);
    let sql = format!("COPY ({}) TO STDOUT", canon.target_select());
    let stream = within(timeout, &context, async {
        client
            .copy_out(&sql)
            .await
            .map_err(Error::postgres(&context))
    })
    .await?;
    futures_util::pin_mut!(stream);
    let columns = canon.columns.len();
    let (mut pending, mut row, mut fields) = (Vec::new(), CanonRow::default(), Vec::new());
    loop {
        let next = within(timeout, &context, async {
            stream
                .next()
                .await
                .transpose()
                .map_err(Error::postgres(&context))
        })
        .await?;
        let Some(bytes) = next else { break };
        pending.extend_from_slice(&bytes);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            split_text_row(&pending[start..start + end], &mut fields);
            if fields.len() != columns {
                return Err(Error::Data(format!(
                    "{context}: COPY sent {} fields, {columns} expected",
                    fields.len()
                )));
            }
            row.fill(columns, |i, out| {
                canon.kinds[i].target(fields[i].as_deref(), out)
            });
            each(&row);
            start += end + 1;
        }
        pending.drain(..start);
    }
    Ok(())
}

/// One line of COPY's text format into its fields: tab-separated, `\N` for NULL,
/// backslash escapes decoded.
fn split_text_row(line: &[u8], fields: &mut Vec<Option<Vec<u8>>>) {
    fields.clear();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] != b'\\' || i + 1 == raw.len() {
                out.push(raw[i]);
                i += 1;
                continue;
            }
            let e = raw[i + 1];
            i += 2;
            match e {
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut n = (e - b'0') as u32;
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                n = n * 8 + (d - b'0') as u32;
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(n as u8);
                }
                b'x' => {
                    let mut n = 0u32;
                    for _ in 0..2 {
                        match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                n = n * 16 + d;
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(n as u8);
                }
                other => out.push(other),
            }
        }
        fields.push(Some(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_fields_are_unescaped_and_null_is_not_the_text_backslash_n() {
        let mut fields = Vec::new();
        split_text_row(b"a\\tb\t\\N\t\\\\N\t\t\\303\\251", &mut fields);
        assert_eq!(
            fields,
            vec![
                Some(b"a\tb".to_vec()),
                None,
                Some(b"\\N".to_vec()),
                Some(Vec::new()),
                Some("é".as_bytes().to_vec()),
            ]
        );
    }
}
