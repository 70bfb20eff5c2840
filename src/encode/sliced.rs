//! Rows whose large values arrive in slices. MySQL sends a row whole, and the driver
//! assembles it whole (a 40 MB value cost about 136 MB of buffers before pgclipper saw it),
//! so the chunk's query does not read a long text's or blob's value of more than
//! [`LARGE_VALUE`] bytes: it reads NULL in its place and the value's length beside the
//! row's other columns. The reader then reads the value by the row's key in slices
//! ([`crate::source::slices`]) and hands them over one by one, through a channel of one
//! slice; here the row is written straight to its chunk's files as the slices come: the
//! CSV field always quoted (whether it needs quotes is not known before its last slice),
//! the binary field as the length read up front then the slices, the canonical digest
//! streamed as for [any large value](TableCodec::digest_rows).

use crate::source::row::{RowLayout, ValueRef};
use xxhash_rust::xxh3::Xxh3;

use super::{csv, put_csv, put_hex, read, spill_buffers, Refusal, Spill, TableCodec, LARGE_VALUE};
use crate::canon::digest::{CanonRow, StreamedRow, TableCanon};
use crate::canon::Kind;
use crate::error::{Error, Result};
use crate::mapping::{Conversion, TableMapping};

/// The size of a slice of a blob (larger for a blob of more than 1000 slices); a text's
/// slices are counted in characters, at least a quarter of this many
/// ([`crate::source::slices`] says why and how many).
pub const SLICE: u64 = 2 << 20;

/// A sliced value's slices, in order, from the reader.
pub type Pieces = tokio::sync::mpsc::Receiver<Vec<u8>>;

/// A column whose long values are read in slices.
#[derive(Debug, Clone)]
pub struct SlicedColumn {
    /// Its place in the chunk query's rows and in the codec's columns.
    pub position: usize,
    /// The source column.
    pub name: String,
    /// A blob into bytea (else a text into text).
    pub bytea: bool,
    /// Where the chunk query's rows carry its value's length (NULL when the value came
    /// whole): after the selected columns.
    pub length_at: usize,
}

impl SlicedColumn {
    /// The columns of `mapping` read in slices: mediumtext, longtext, mediumblob and
    /// longblob columns outside the key that load as they are (text into text, blob into
    /// bytea, compared byte for byte), in a table with a key to read them by. JSON is not
    /// sliced: its check needs the whole document.
    pub fn of(mapping: &TableMapping, canon: &TableCanon) -> Vec<SlicedColumn> {
        if mapping.key_positions.is_empty() {
            return Vec::new();
        }
        let mut sliced = Vec::new();
        for (i, column) in mapping.columns.iter().enumerate() {
            let Some(source) = mapping.source.column(&column.source) else {
                continue;
            };
            let long = ["mediumtext", "longtext", "mediumblob", "longblob"]
                .iter()
                .any(|t| source.column_type.to_ascii_lowercase().starts_with(t));
            let bytea = match (&column.conversion, &canon.kinds[i]) {
                (Conversion::Text { .. }, Kind::Text { trim_end: false }) => false,
                (Conversion::Bytea, Kind::Bytea) => true,
                _ => continue,
            };
            if long && !mapping.key_positions.contains(&i) {
                sliced.push(SlicedColumn {
                    position: i,
                    name: column.source.clone(),
                    bytea,
                    length_at: mapping.select.len() + sliced.len(),
                });
            }
        }
        sliced
    }

    /// The chunk query's expressions for this column: its value when it is at most
    /// [`LARGE_VALUE`] bytes, and (after the selected columns) the length in bytes of a
    /// longer one as the client receives it (in utf8mb4, for a text).
    pub fn select(&self, quoted: &str) -> (String, String) {
        let long = format!("OCTET_LENGTH({quoted}) > {LARGE_VALUE}");
        let received = match self.bytea {
            true => format!("OCTET_LENGTH({quoted})"),
            false => format!("OCTET_LENGTH(CONVERT({quoted} USING utf8mb4))"),
        };
        (
            format!("IF({long}, NULL, {quoted})"),
            format!("IF({long}, {received}, NULL)"),
        )
    }

    /// The length of this column's value in `row`, when it is to be read in slices.
    pub fn length(&self, row: &[ValueRef]) -> Option<u64> {
        length(row[self.length_at])
    }
}

/// A sliced value's length as the chunk query sent it (NULL: the value came whole).
fn length(value: ValueRef) -> Option<u64> {
    match value {
        ValueRef::Int(n) => Some(n as u64),
        ValueRef::UInt(n) => Some(n),
        ValueRef::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

impl TableCodec {
    /// Whether row `packet` has a value left to be read in slices.
    pub fn is_sliced(&self, layout: &RowLayout, packet: &[u8]) -> Result<bool> {
        for column in &self.sliced {
            if length(layout.value_at(packet, column.length_at)?).is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes `row`, whose sliced values come from `pieces` in column order, to `spill` as
    /// it goes: the same checks, fields and digest as [`TableCodec::encode_rows`] and
    /// [`TableCodec::digest_rows`]. Returns the CSV line's checksum and the row's (key hash,
    /// row hash), or `None` when the slices stopped short (the reader gave the chunk up, and
    /// the partial files go with it).
    pub fn encode_sliced_row(
        &self,
        row: &[ValueRef],
        pieces: &mut Pieces,
        out: &mut Vec<u8>,
        binary: &mut Vec<u8>,
        spill: &mut dyn Spill,
        scratch: &mut CanonRow,
    ) -> Result<Option<(u64, (u64, u64))>> {
        out.clear();
        binary.clear();
        let mut line = Xxh3::new();
        let mut digest = scratch.streamed(&self.canon.key);
        if self.wires.is_some() {
            binary.extend_from_slice(&(self.conversions.len() as i16).to_be_bytes());
        }
        for (i, conversion) in self.conversions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let value = &row[i];
            let sliced = self
                .sliced
                .iter()
                .find(|c| c.position == i)
                .and_then(|c| Some((c, c.length(row)?)));
            let Some((column, length)) = sliced else {
                self.encode_field(row, i, conversion, value, out, binary)?;
                digest.field(i, |field| self.canon.kinds[i].source(value, field));
                continue;
            };
            spill_buffers(out, 0, binary, &mut line, spill)?;
            let value = Slices {
                row,
                column,
                length,
            };
            if !self.stream_slices(&value, pieces, &mut line, out, spill, &mut digest)? {
                return Ok(None);
            }
        }
        out.push(b'\n');
        spill_buffers(out, 0, binary, &mut line, spill)?;
        Ok(Some((line.digest(), digest.hashes())))
    }

    /// One sliced value from `pieces` into the row's CSV line, binary tuple and digest;
    /// `false` when the slices stopped short.
    fn stream_slices(
        &self,
        value: &Slices,
        pieces: &mut Pieces,
        line: &mut Xxh3,
        out: &mut Vec<u8>,
        spill: &mut dyn Spill,
        digest: &mut StreamedRow,
    ) -> Result<bool> {
        let (column, length) = (value.column, value.length);
        let max_chars = match &self.conversions[column.position] {
            Conversion::Text { max_chars } => *max_chars,
            _ => None,
        };
        put_csv(if column.bytea { b"\\x" } else { b"\"" }, out, line, spill)?;
        digest.large_field(if column.bytea { 2 * length } else { length });
        if self.wires.is_some() {
            // text and bytea travel as their bytes: the length, then the value.
            spill.binary(&(length as i32).to_be_bytes())?;
        }
        let (mut received, mut chars) = (0u64, 0u64);
        let mut head = Vec::new();
        let mut hex = Vec::with_capacity(64 << 10);
        while received < length {
            let Some(piece) = pieces.blocking_recv() else {
                return Ok(false);
            };
            if head.is_empty() {
                head = piece[..piece.len().min(64)].to_vec();
            }
            let refused = |reason: String| self.slice_error(value, &head, reason);
            if piece.is_empty() || received + piece.len() as u64 > length {
                let more = received + piece.len() as u64;
                return Err(refused(format!(
                    "its slices brought {} bytes where its length was {length}: the value changed while it was read",
                    if piece.is_empty() { received } else { more }
                )));
            }
            if column.bytea {
                put_hex(&piece, &mut hex, &mut |h| put_csv(h, out, line, spill))?;
                digest.hex_piece(&piece);
            } else {
                read::text_bytes(&piece, received).map_err(|r| refused(r.reason.into_owned()))?;
                if max_chars.is_some() {
                    chars += piece.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64;
                }
                csv::doubled_quotes(&piece, |part| put_csv(part, out, line, spill))?;
                digest.raw_piece(&piece);
            }
            if self.wires.is_some() {
                spill.binary(&piece)?;
            }
            received += piece.len() as u64;
        }
        if let Some(max) = max_chars.filter(|&max| chars > max as u64) {
            let reason = format!("{chars} characters do not fit the target's limit of {max}");
            return Err(self.slice_error(value, &head, reason));
        }
        if !column.bytea {
            put_csv(b"\"", out, line, spill)?;
        }
        Ok(true)
    }

    #[cold]
    fn slice_error(&self, value: &Slices, head: &[u8], reason: String) -> Error {
        let excerpt = ValueRef::Bytes(head);
        let refusal = Refusal::new(reason);
        Error::Value(self.value_error(value.row, value.column.position, &excerpt, refusal))
    }
}

/// A value being read in slices: its row (the value NULL there), column and length.
struct Slices<'a> {
    row: &'a [ValueRef<'a>],
    column: &'a SlicedColumn,
    length: u64,
}
