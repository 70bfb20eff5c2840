//! Long values read by key in slices (`SUBSTRING(col, n, SLICE)`), on the reader's own
//! connection, so in its snapshot transaction: the value is the one the chunk's query saw.
//! The chunk's query left such values out ([`crate::encode::sliced`]); their rows are
//! read after the chunk's other rows, one by one, each slice handed to the encoder before
//! the next is read.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::{key_predicate, KeyColumn};
use crate::catalog::my_ident;
use crate::encode::pool::Input;
use crate::encode::sliced::SLICE;
use crate::encode::{ChunkWriter, TableCodec};
use crate::error::{within, Error, Result};

/// Hands `row` to the encoders, then reads its sliced values into them, slice by slice.
/// Slices that add up to less than the value's length (it changed, which a snapshot rules
/// out) end with an empty slice, which the encoder refuses with the row's key.
#[allow(clippy::too_many_arguments)]
pub async fn read_row(
    conn: &mut Conn,
    database: &str,
    codec: &TableCodec,
    key: &[KeyColumn],
    row: Row,
    input: &Input,
    writer: &Arc<ChunkWriter>,
    timeout: Duration,
) -> Result<()> {
    let key_values: Vec<Value> = codec
        .key_positions
        .iter()
        .map(|&i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
        .collect();
    let values: Vec<_> = codec
        .sliced
        .iter()
        .filter_map(|c| Some((c, c.length(&row)?)))
        .collect();
    let (slices, pieces) = tokio::sync::mpsc::channel(1);
    input.sliced(writer, row, pieces)?;
    for (column, length) in values {
        let sql = format!(
            "SELECT SUBSTRING({}, ?, {SLICE}) FROM {}.{} WHERE {}",
            my_ident(&column.name),
            my_ident(database),
            my_ident(&codec.table),
            key_predicate(key)
        );
        let context = format!(
            "reading a long value of `{}` (column `{}`) in slices",
            codec.table, column.name
        );
        let (mut received, mut start) = (0u64, 1u64);
        while received < length {
            if input.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut params = vec![Value::UInt(start)];
            params.extend(key_values.iter().cloned());
            let slice: Option<Row> = within(timeout, &context, async {
                conn.exec_first(&sql, params)
                    .await
                    .map_err(Error::mysql(&context))
            })
            .await?;
            let slice = match slice.and_then(|row| row.unwrap().into_iter().next()) {
                Some(Value::Bytes(bytes)) => bytes,
                _ => Vec::new(),
            };
            let end = slice.is_empty();
            received += slice.len() as u64;
            start += SLICE;
            // A closed channel: the encoder stopped, and its failure is recorded.
            if slices.send(slice).await.is_err() {
                return Err(Error::Cancelled);
            }
            if end {
                break;
            }
        }
    }
    Ok(())
}
