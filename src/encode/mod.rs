//! Rows → CSV bytes (and binary COPY tuples) → chunk files. Runs on the encoder pool
//! ([`pool`]): each batch of rows is converted column by column ([`convert`], [`binary`]),
//! written in the Postgres CSV dialect ([`csv`]), summed into the chunk's checksum and
//! appended to the chunk's files ([`chunk`]), which are fsynced and renamed into place when
//! the chunk's last batch is in.

pub mod binary;
pub mod budget;
pub mod check;
pub mod chunk;
pub mod convert;
pub mod csv;
pub mod json;
pub mod parquet;
pub mod pool;
pub mod read;
use std::sync::Arc;

use mysql_async::{Row, Value};

pub use chunk::{ChunkWriter, FinishedChunk};
pub use read::Refusal;

use crate::canon::digest::{CanonRow, TableCanon};
use crate::error::ValueError;
use crate::mapping::{Conversion, TableMapping, Travel, Wire};

/// What the encoder knows of one table: a conversion per written column.
#[derive(Debug)]
pub struct TableCodec {
    pub table: String,
    pub columns: Vec<String>,
    pub conversions: Vec<Conversion>,
    /// Target columns that are NOT NULL: a NULL there is refused here, with its key,
    /// rather than by Postgres for the whole chunk.
    pub not_null: Vec<bool>,
    pub key_columns: Vec<String>,
    pub key_positions: Vec<usize>,
    /// The binary COPY form of every column, when the table loads in binary: asked for,
    /// and every column has one.
    pub wires: Option<Vec<Wire>>,
    /// Whether the binary file is what Postgres loads (else it exists for the Parquet
    /// sidecar only, and goes once that is written).
    pub loads_binary: bool,
    /// The Parquet sidecar's columns, with `--parquet`.
    pub parquet: Option<Arc<parquet::ParquetColumns>>,
    /// How `verify` compares the table: the export digests the rows in that form, from
    /// MySQL's values, by verify's own path, so that a verify right after the migration
    /// reads only the target.
    pub canon: TableCanon,
}

impl TableCodec {
    /// `binary`: the table loads in binary COPY format when it can; `parquet`: a Parquet
    /// sidecar beside each chunk, written from the binary file (made for it, then, even
    /// when the table loads from CSV).
    pub fn new(mapping: &TableMapping, binary: bool, parquet: bool, canon: TableCanon) -> Self {
        let wires = mapping
            .columns
            .iter()
            .map(|c| match c.travel {
                Travel::Binary(wire) => Some(wire),
                Travel::CsvOnly(_) => None,
            })
            .collect::<Option<Vec<_>>>()
            .filter(|_| binary || parquet);
        let parquet_columns = wires
            .as_ref()
            .filter(|_| parquet)
            .and_then(|w| parquet::ParquetColumns::of(mapping, w))
            .map(Arc::new);
        TableCodec {
            table: mapping.name().to_string(),
            columns: mapping.columns.iter().map(|c| c.source.clone()).collect(),
            conversions: mapping
                .columns
                .iter()
                .map(|c| c.conversion.clone())
                .collect(),
            not_null: mapping
                .columns
                .iter()
                .map(|c| mapping.target.column(&c.target).is_some_and(|t| t.not_null))
                .collect(),
            key_columns: mapping.key_columns().to_vec(),
            key_positions: mapping.key_positions.clone(),
            wires,
            loads_binary: binary,
            parquet: parquet_columns,
            canon,
        }
    }

    /// Appends `rows` as CSV lines to `out`, and as binary COPY tuples to `binary` when the
    /// table loads in binary (`wires`); returns the wrapping sum of the rows' checksums (of
    /// the CSV lines; order-independent, so batches may be written in any order).
    pub fn encode_rows(
        &self,
        rows: &[Row],
        out: &mut Vec<u8>,
        binary: &mut Vec<u8>,
    ) -> Result<u64, Box<ValueError>> {
        let mut sum = 0u64;
        for row in rows {
            let start = out.len();
            if self.wires.is_some() {
                binary.extend_from_slice(&(self.conversions.len() as i16).to_be_bytes());
            }
            for (i, conversion) in self.conversions.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let value = row.as_ref(i).unwrap_or(&Value::NULL);
                let field_start = out.len();
                if let Err(refusal) = conversion.encode(value, out) {
                    return Err(self.value_error(row, i, value, refusal));
                }
                // An empty field is NULL (the empty string is written `""`): a NULL from the
                // source, or a zero date written as NULL.
                if self.not_null[i] && out.len() == field_start {
                    return Err(self.value_error(row, i, value, Refusal::null_into_not_null()));
                }
                if let Some(wires) = &self.wires {
                    wires[i].encode(conversion, value, &out[field_start..], binary);
                }
            }
            out.push(b'\n');
            sum = sum.wrapping_add(row_checksum(&out[start..]));
        }
        Ok(sum)
    }

    /// Appends the (key hash, row hash) of each row in `verify`'s canonical form.
    pub fn digest_rows(&self, rows: &[Row], scratch: &mut CanonRow, out: &mut Vec<(u64, u64)>) {
        let canon = &self.canon;
        for row in rows {
            scratch.fill(canon.columns.len(), |i, field| {
                canon.kinds[i].source(row.as_ref(i).unwrap_or(&Value::NULL), field)
            });
            out.push((scratch.key_hash(&canon.key), scratch.hash()));
        }
    }

    #[cold]
    fn value_error(
        &self,
        row: &Row,
        column: usize,
        value: &Value,
        refusal: Refusal,
    ) -> Box<ValueError> {
        Box::new(ValueError {
            table: self.table.clone(),
            key: self.render_key(row),
            column: self.columns[column].clone(),
            excerpt: convert::excerpt(value),
            reason: refusal.reason.into_owned(),
            hint: refusal.hint,
        })
    }

    fn render_key(&self, row: &Row) -> String {
        if self.key_positions.is_empty() {
            return "(table has no key)".to_string();
        }
        self.key_columns
            .iter()
            .zip(&self.key_positions)
            .map(|(name, &i)| {
                format!(
                    "{name}={}",
                    convert::excerpt(row.as_ref(i).unwrap_or(&Value::NULL))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The checksum of one row: xxh3 of its CSV line, a canonical rendering of its values.
pub fn row_checksum(line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(line)
}
