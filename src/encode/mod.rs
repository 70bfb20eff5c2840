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
pub mod sliced;
pub mod stream;
mod word;
use std::sync::Arc;

use crate::source::row::{Rows, ValueRef};

pub use chunk::{ChunkWriter, FinishedChunk};
pub use read::Refusal;
pub use sliced::{Pieces, SlicedColumn};

use xxhash_rust::xxh3::Xxh3;

use crate::canon::digest::{CanonRow, LargeField, TableCanon};
use crate::canon::Kind;
use crate::error::{Error, Result, ValueError};
use crate::mapping::{Conversion, TableMapping, Travel, Wire};

/// A value at least this large (a blob, a long text) is written to its chunk's files in
/// pieces as it is encoded, and hashed in pieces, instead of being encoded whole into the
/// batch's buffers: memory holds the row as read, not also its CSV, binary and canonical
/// forms (a 40 MB blob took 12 times its size before).
pub const LARGE_VALUE: usize = 1 << 20;

/// Where a batch with a large value writes as it goes: the chunk's files, in order.
pub trait Spill {
    fn csv(&mut self, bytes: &[u8]) -> Result<()>;
    fn binary(&mut self, bytes: &[u8]) -> Result<()>;
}

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
    /// The columns whose values of more than [`LARGE_VALUE`] bytes are read from MySQL in
    /// slices ([`sliced`]): never held whole, not even by the driver.
    pub sliced: Vec<SlicedColumn>,
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
            sliced: SlicedColumn::of(mapping, &canon),
            canon,
        }
    }

    /// Whether the binary form can go to its writer as it is encoded ([`stream`]): the table
    /// loads in binary, and no Parquet sidecar needs the binary file.
    pub fn can_stream(&self) -> bool {
        self.wires.is_some() && self.loads_binary && self.parquet.is_none()
    }

    /// Appends `rows` as CSV lines to `out`, and as binary COPY tuples to `binary` when the
    /// table loads in binary (`wires`); returns the wrapping sum of the rows' checksums (of
    /// the CSV lines; order-independent, so batches may be written in any order).
    ///
    /// With `spill`, a [large](TableCodec::is_large) value is not encoded into the buffers:
    /// what they hold goes to `spill`, then the value, in pieces; the buffers stay small.
    pub fn encode_rows(
        &self,
        rows: &Rows,
        out: &mut Vec<u8>,
        binary: &mut Vec<u8>,
        mut spill: Option<&mut dyn Spill>,
    ) -> Result<u64> {
        let mut sum = 0u64;
        for row in rows {
            // A row with a large value is hashed as it goes out: from `line_start` on, `out`
            // holds what is not hashed yet.
            let mut line_start = out.len();
            let mut streamed: Option<Xxh3> = None;
            if self.wires.is_some() {
                binary.extend_from_slice(&(self.conversions.len() as i16).to_be_bytes());
            }
            for (i, conversion) in self.conversions.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let value = &row[i];
                if let Some(spill) = spill.as_deref_mut().filter(|_| self.is_large(value, i)) {
                    let line = streamed.get_or_insert_with(Xxh3::new);
                    spill_buffers(out, line_start, binary, line, spill)?;
                    line_start = 0;
                    self.stream_value(row, i, value, line, out, &mut *spill)?;
                    continue;
                }
                self.encode_field(row, i, conversion, value, out, binary)?;
            }
            out.push(b'\n');
            let checksum = match streamed {
                Some(mut line) => {
                    line.update(&out[line_start..]);
                    line.digest()
                }
                None => row_checksum(&out[line_start..]),
            };
            sum = sum.wrapping_add(checksum);
        }
        Ok(sum)
    }

    /// Column `i`'s `value` as its CSV field (and binary tuple field, when the table loads
    /// in binary), or refused with its key.
    #[inline]
    fn encode_field(
        &self,
        row: &[ValueRef],
        i: usize,
        conversion: &Conversion,
        value: &ValueRef,
        out: &mut Vec<u8>,
        binary: &mut Vec<u8>,
    ) -> Result<()> {
        let field_start = out.len();
        if let Err(refusal) = conversion.encode(value, out) {
            return Err(Error::Value(self.value_error(row, i, value, refusal)));
        }
        // An empty field is NULL (the empty string is written `""`): a NULL from the
        // source, or a zero date written as NULL.
        if self.not_null[i] && out.len() == field_start {
            let refusal = Refusal::null_into_not_null();
            return Err(Error::Value(self.value_error(row, i, value, refusal)));
        }
        if let Some(wires) = &self.wires {
            wires[i].encode(conversion, value, &out[field_start..], binary);
        }
        Ok(())
    }

    /// Whether column `i`'s `value` is written in pieces when it can be: a text, json or
    /// bytea value of [`LARGE_VALUE`] bytes or more, outside the key.
    pub fn is_large(&self, value: &ValueRef, i: usize) -> bool {
        matches!(value, ValueRef::Bytes(b) if b.len() >= LARGE_VALUE)
            && matches!(
                self.conversions[i],
                Conversion::Text { .. } | Conversion::Json { jsonb: false } | Conversion::Bytea
            )
            && !self.key_positions.contains(&i)
    }

    /// Whether any value of `rows` is large: such a batch is written with a [`Spill`].
    pub fn has_large_value(&self, rows: &Rows) -> bool {
        rows.iter()
            .any(|row| (0..self.conversions.len()).any(|i| self.is_large(&row[i], i)))
    }

    /// A large value, checked as [`Conversion::encode`] checks it, then written to `spill`
    /// in pieces: the same CSV bytes (hashed into `line`) and binary tuple field as the
    /// buffered path writes. `out` collects small pieces (quotes, hex) up to
    /// [`LARGE_VALUE`] before they go.
    fn stream_value(
        &self,
        row: &[ValueRef],
        i: usize,
        value: &ValueRef,
        line: &mut Xxh3,
        out: &mut Vec<u8>,
        spill: &mut dyn Spill,
    ) -> Result<()> {
        let refused = |refusal| Error::Value(self.value_error(row, i, value, refusal));
        let raw = read::bytes(value).map_err(refused)?;
        let mut put = |piece: &[u8], out: &mut Vec<u8>| put_csv(piece, out, line, spill);
        match &self.conversions[i] {
            Conversion::Bytea => {
                put(b"\\x", out)?;
                put_hex(raw, &mut Vec::new(), &mut |hex| put(hex, out))?;
            }
            conversion => {
                conversion.checked_text(value).map_err(refused)?;
                csv::field_pieces(raw, |piece| put(piece, out))?;
            }
        }
        if self.wires.is_some() {
            // text, json and bytea travel as their bytes: the length, then the value.
            spill.binary(&(raw.len() as i32).to_be_bytes())?;
            spill.binary(raw)?;
        }
        Ok(())
    }

    /// Appends the (key hash, row hash) of each row in `verify`'s canonical form; in a
    /// batch with a large value (`has_large_value`), such values are hashed in pieces, not
    /// copied.
    pub fn digest_rows(
        &self,
        rows: &Rows,
        has_large_value: bool,
        scratch: &mut CanonRow,
        out: &mut Vec<(u64, u64)>,
    ) {
        let canon = &self.canon;
        for row in rows {
            let value = |i: usize| &row[i];
            let field = |i: usize, field: &mut Vec<u8>| canon.kinds[i].source(value(i), field);
            let large = |i: usize| match (&canon.kinds[i], value(i)) {
                (Kind::Text { trim_end: false } | Kind::JsonText, ValueRef::Bytes(b))
                    if b.len() >= LARGE_VALUE =>
                {
                    Some(LargeField::Raw(b))
                }
                (Kind::Bytea, ValueRef::Bytes(b)) if b.len() >= LARGE_VALUE => {
                    Some(LargeField::Hex(b))
                }
                _ => None,
            };
            if has_large_value && (0..canon.columns.len()).any(|i| large(i).is_some()) {
                out.push(scratch.hashes_streaming(canon.columns.len(), &canon.key, large, field));
                continue;
            }
            scratch.fill(canon.columns.len(), field);
            out.push((scratch.key_hash(&canon.key), scratch.hash()));
        }
    }

    #[cold]
    fn value_error(
        &self,
        row: &[ValueRef],
        column: usize,
        value: &ValueRef,
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

    /// The row's key as `col=value, …`, for messages.
    pub(crate) fn render_key(&self, row: &[ValueRef]) -> String {
        if self.key_positions.is_empty() {
            return "(table has no key)".to_string();
        }
        self.key_columns
            .iter()
            .zip(&self.key_positions)
            .map(|(name, &i)| format!("{name}={}", convert::excerpt(&row[i])))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Appends `piece` of a large value's CSV field to `out`, which goes to `spill` (hashed
/// into the row's `line`) before it would pass [`LARGE_VALUE`]; a piece that large goes
/// as it is.
fn put_csv(piece: &[u8], out: &mut Vec<u8>, line: &mut Xxh3, spill: &mut dyn Spill) -> Result<()> {
    if out.len() + piece.len() > LARGE_VALUE {
        line.update(out);
        spill.csv(out)?;
        out.clear();
    }
    if piece.len() >= LARGE_VALUE {
        line.update(piece);
        spill.csv(piece)
    } else {
        out.extend_from_slice(piece);
        Ok(())
    }
}

/// Sends what the buffers hold to `spill`, `out` from `unhashed` on hashed into the row's
/// `line` first (what comes before belongs to rows already summed), and empties them.
fn spill_buffers(
    out: &mut Vec<u8>,
    unhashed: usize,
    binary: &mut Vec<u8>,
    line: &mut Xxh3,
    spill: &mut dyn Spill,
) -> Result<()> {
    line.update(&out[unhashed..]);
    spill.csv(out)?;
    spill.binary(binary)?;
    out.clear();
    binary.clear();
    Ok(())
}

/// A bytea value's hex digits, as pieces for `put` (`hex` is their reusable buffer).
fn put_hex(raw: &[u8], hex: &mut Vec<u8>, put: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    for piece in raw.chunks(32 << 10) {
        hex.clear();
        hex.extend(piece.iter().flat_map(|&b| convert::hex_digits(b)));
        put(hex)?;
    }
    Ok(())
}

/// The checksum of one row: xxh3 of its CSV line, a canonical rendering of its values.
pub fn row_checksum(line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(line)
}
