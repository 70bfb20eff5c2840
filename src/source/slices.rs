//! Long values read by key in slices, on the reader's own connection, so in its snapshot
//! transaction: the value is the one the chunk's query saw. The chunk's query left such
//! values out ([`crate::encode::sliced`]); their rows are read after the chunk's other
//! rows, one by one, each value by one statement whose result has a row per slice:
//!
//! ```sql
//! WITH RECURSIVE pgclipper_slices (slice) AS
//!   (SELECT 0 UNION ALL SELECT slice + 1 FROM pgclipper_slices WHERE slice + 1 < ?)
//! SELECT slice, SUBSTRING(pgclipper_row.`body`, slice * ? + 1, ?)
//! FROM pgclipper_slices JOIN `db`.`t` AS pgclipper_row WHERE pgclipper_row.`id` = ?
//! ```
//!
//! The keyed row is a constant of the join: MySQL reads the value once and cuts every slice
//! from it (a statement per slice read the whole value again each time: 0.54 s against
//! 0.04 s for the 20 slices of a 40 MB blob). Each slice is handed to the encoder, through
//! a channel of one, before the next is asked of the driver. Recursive CTEs need MySQL 8.0
//! or MariaDB 10.2.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::row::OwnedRow;
use super::{key_predicate, KeyColumn};
use crate::catalog::my_ident;
use crate::encode::pool::Input;
use crate::encode::sliced::SLICE;
use crate::encode::{ChunkWriter, SlicedColumn, TableCodec};
use crate::error::{within, Error, Result};

/// At most this many slices of a blob per statement: MySQL 8 stops a recursive CTE at
/// `cte_max_recursion_depth` (1000 by default), so a blob of more than 1000 slices is cut
/// in larger ones. A blob's byte `n` is found at once: its slices cost nothing more.
const MAX_SLICES: u64 = 1000;

/// At most this many slices of a text. MySQL finds a text's character `n` by reading the
/// `n - 1` before it, so every slice costs the reading of the text up to it, and a text in
/// `k` slices is read about `k / 2` times (measured on MariaDB 10.11: a 35 MB text in 70
/// slices, 2.3 s; in 17, 0.6 s; whole, 0.07 s): a longer text is cut in larger slices,
/// about an eighth of it each.
const TEXT_SLICES: u64 = 8;

/// Hands `row` to the encoders, then reads its sliced values into them, slice by slice.
/// Slices that add up to less than the value's length (it changed, which a snapshot rules
/// out) end with an empty slice, which the encoder refuses with the row's key.
#[allow(clippy::too_many_arguments)]
pub async fn read_row(
    conn: &mut Conn,
    database: &str,
    codec: &TableCodec,
    key: &[KeyColumn],
    row: OwnedRow,
    input: &Input,
    writer: &Arc<ChunkWriter>,
    timeout: Duration,
) -> Result<()> {
    let (key_values, values, row_key) = {
        let row = row.values()?;
        let key_values: Vec<Value> = codec
            .key_positions
            .iter()
            .map(|&i| row[i].to_value())
            .collect();
        let values: Vec<_> = codec
            .sliced
            .iter()
            .filter_map(|c| Some((c, c.length(&row)?)))
            .collect();
        (key_values, values, codec.render_key(&row))
    };
    let (slices, pieces) = tokio::sync::mpsc::channel(1);
    input.sliced(writer, row, pieces)?;
    for (column, length) in values {
        let context = format!(
            "reading a long value of `{}` (key {row_key}, column `{}`) in slices",
            codec.table, column.name
        );
        let (sql, params) = statement(database, codec, key, &key_values, column, length);
        let mut result = within(timeout, &context, async {
            conn.exec_iter(sql, params)
                .await
                .map_err(Error::mysql(&context))
        })
        .await?;
        let (mut received, mut expected) = (0u64, 0u64);
        loop {
            let next = within(timeout, &context, async {
                result.next().await.map_err(Error::mysql(&context))
            })
            .await?;
            let Some(next) = next else { break };
            let (number, slice) = match next.unwrap().as_mut_slice() {
                [number, Value::Bytes(slice)] => (number.clone(), std::mem::take(slice)),
                [number, _] => (number.clone(), Vec::new()),
                _ => unreachable!("the statement selects two columns"),
            };
            if number != Value::Int(expected as i64) && number != Value::UInt(expected) {
                return Err(Error::Environment(format!(
                    "{context}: the server sent slice {number:?} where slice {expected} was due"
                )));
            }
            expected += 1;
            // A text's last slices are empty: it has fewer characters than bytes.
            if slice.is_empty() {
                continue;
            }
            received += slice.len() as u64;
            if received > length {
                // Never sent: the encoder would take the bytes for the next column's.
                return Err(Error::Environment(format!(
                    "{context}: the value has more than the {length} bytes the chunk's query \
                     counted; it changed while it was read"
                )));
            }
            // Memory holds the slice the encoder writes, the one in the channel and this
            // one, no more. A closed channel: the encoder stopped, and its failure is
            // recorded.
            slices.send(slice).await.map_err(|_| Error::Cancelled)?;
            if input.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
        drop(result);
        if received < length {
            let _ = slices.send(Vec::new()).await;
        }
    }
    Ok(())
}

/// The statement that reads `column`'s value of `length` bytes in the row with
/// `key_values`, and its parameters: the number of slices, a slice's length (characters of
/// a text, at most 4 bytes each in utf8mb4; bytes of a blob), then the key.
fn statement(
    database: &str,
    codec: &TableCodec,
    key: &[KeyColumn],
    key_values: &[Value],
    column: &SlicedColumn,
    length: u64,
) -> (String, Vec<Value>) {
    let (slice, count) = slicing(column.bytea, length);
    let sql = format!(
        "WITH RECURSIVE pgclipper_slices (slice) AS \
         (SELECT 0 UNION ALL SELECT slice + 1 FROM pgclipper_slices WHERE slice + 1 < ?) \
         SELECT slice, SUBSTRING(pgclipper_row.{}, slice * ? + 1, ?) \
         FROM pgclipper_slices JOIN {}.{} AS pgclipper_row WHERE {}",
        my_ident(&column.name),
        my_ident(database),
        my_ident(&codec.table),
        key_predicate("pgclipper_row", key)
    );
    let mut params = vec![Value::UInt(count), Value::UInt(slice), Value::UInt(slice)];
    params.extend(key_values.iter().cloned());
    (sql, params)
}

/// A slice's length and the number of slices for a value of `length` bytes: bytes of a
/// blob; characters of a text, which has at most as many characters as bytes (its last
/// slices come back empty when it has fewer).
fn slicing(bytea: bool, length: u64) -> (u64, u64) {
    let slice = match bytea {
        true => SLICE.max(length.div_ceil(MAX_SLICES)),
        false => (SLICE / 4).max(length.div_ceil(TEXT_SLICES)),
    };
    (slice, length.div_ceil(slice).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn a_blob_comes_in_slices_of_2_mib_and_at_most_1000_of_them() {
        assert_eq!(slicing(true, 40 * MB), (SLICE, 20));
        assert_eq!(slicing(true, SLICE + 1), (SLICE, 2));
        let (slice, count) = slicing(true, 4_294_967_295);
        assert!(count <= MAX_SLICES && slice * count >= 4_294_967_295);
    }

    #[test]
    fn a_text_comes_in_at_most_8_slices_of_at_least_512_ki_characters() {
        assert_eq!(slicing(false, 1_500_000), (SLICE / 4, 3));
        let (slice, count) = slicing(false, 35 * MB);
        assert_eq!((slice, count), (35 * MB / 8, 8));
        // 4-byte characters: a quarter as many, the later slices empty.
        assert!(slice * count >= 35 * MB);
    }
}
