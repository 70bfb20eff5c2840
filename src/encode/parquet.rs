//! Parquet sidecars (`--parquet`): beside every CSV chunk file, the same rows in a typed
//! Parquet file, for analytics and for checking a migration with other tools. They are
//! written from the chunk's binary COPY file as the chunk finishes: the very values the
//! conversions produced, already in Postgres' binary forms, so the Parquet file says what
//! the target received, value for value.
//!
//! Types follow the target column (what an arrow schema of the table would say): integers
//! as INT32/INT64, `numeric(p,s)` as DECIMAL(p,s) (16 bytes, decimal128, up to 38 digits;
//! 32 bytes, decimal256, beyond), floats as FLOAT/DOUBLE, text as STRING, json and jsonb as
//! JSON, bytea as BINARY, uuid as UUID (16 bytes), date as DATE, timestamptz as
//! TIMESTAMP(MICROS, UTC), timestamp as TIMESTAMP(MICROS, local), time as TIME(MICROS).
//! Without a Parquet type of their own: unconstrained numeric (its text), interval (ISO
//! 8601 text), bit strings (their 0/1 text) and text arrays (a JSON array) travel as STRING.
//! A table without a binary COPY form (see docs/mapping.md) gets no sidecar.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use ::parquet::basic::{LogicalType, Repetition, TimeUnit, Type as Physical};
use ::parquet::data_type::{ByteArray, FixedLenByteArray};
use ::parquet::file::properties::WriterProperties;
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::types::Type;

use crate::catalog::PgType;
use crate::error::{Error, Result};
use crate::mapping::{TableMapping, Wire};

pub const EXTENSION: &str = "parquet";

/// Rows per row group: bounds the memory a sidecar takes while it is written.
const ROW_GROUP_ROWS: usize = 16_384;

/// How one column's binary COPY field becomes a Parquet value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Unscaled, big-endian two's complement of `width` bytes.
    Decimal {
        precision: u32,
        scale: u32,
        width: usize,
    },
    NumericText,
    Text,
    Json,
    /// jsonb: a version byte, then the text.
    Jsonb,
    Bytes,
    Uuid,
    Date,
    Timestamp {
        utc: bool,
    },
    Time,
    IntervalText,
    BitsText,
    TextArrayJson,
}

/// The Parquet columns of one table.
#[derive(Debug)]
pub struct ParquetColumns {
    names: Vec<String>,
    kinds: Vec<Kind>,
    schema: Arc<Type>,
}

impl ParquetColumns {
    /// `None` when a column has no binary COPY form.
    pub fn of(mapping: &TableMapping, wires: &[Wire]) -> Option<ParquetColumns> {
        let mut names = Vec::new();
        let mut kinds = Vec::new();
        for (column, wire) in mapping.columns.iter().zip(wires) {
            let ty = &mapping.target.column(&column.target)?.ty;
            names.push(column.target.clone());
            kinds.push(kind(*wire, ty));
        }
        let fields = names
            .iter()
            .zip(&kinds)
            .map(|(name, kind)| Arc::new(field(name, kind)))
            .collect();
        let schema = Type::group_type_builder("chunk")
            .with_fields(fields)
            .build()
            .ok()?;
        Some(ParquetColumns {
            names,
            kinds,
            schema: Arc::new(schema),
        })
    }

    /// Writes the rows of the binary COPY file `binary` (or none, for an empty chunk) to
    /// `out`, by way of a temporary file.
    pub fn write(&self, binary: Option<&Path>, out: &Path) -> Result<()> {
        let tmp = out.with_extension("parquet.tmp");
        let file = crate::workdir::create_private_file(&tmp)?;
        let props = WriterProperties::builder()
            .set_compression(::parquet::basic::Compression::SNAPPY)
            .set_created_by(format!("pgclipper {}", env!("CARGO_PKG_VERSION")))
            .build();
        let failed = |e: ::parquet::errors::ParquetError| {
            Error::Data(format!(
                "{}: writing the Parquet sidecar: {e}",
                out.display()
            ))
        };
        let mut writer = SerializedFileWriter::new(file, self.schema.clone(), Arc::new(props))
            .map_err(failed)?;
        if let Some(binary) = binary {
            let mut rows = Rows::open(binary)?;
            let mut group = Group::new(&self.kinds);
            while rows.next_row(|i, field| group.push(i, &self.kinds[i], field))? {
                group.rows += 1;
                if group.rows == ROW_GROUP_ROWS {
                    group.write(&mut writer).map_err(failed)?;
                    group = Group::new(&self.kinds);
                }
            }
            if group.rows > 0 {
                group.write(&mut writer).map_err(failed)?;
            }
        }
        writer.close().map_err(failed)?;
        std::fs::rename(&tmp, out).map_err(Error::io(out))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

fn kind(wire: Wire, ty: &PgType) -> Kind {
    match wire {
        Wire::Bool => Kind::Bool,
        Wire::Int2 => Kind::Int16,
        Wire::Int4 => Kind::Int32,
        Wire::Int8 => Kind::Int64,
        Wire::Float4 => Kind::Float32,
        Wire::Float8 => Kind::Float64,
        Wire::Numeric => match ty {
            PgType::Numeric(Some((precision, scale))) => Kind::Decimal {
                precision: *precision,
                scale: *scale,
                width: if *precision <= 38 { 16 } else { 32 },
            },
            _ => Kind::NumericText,
        },
        Wire::Text if matches!(ty, PgType::Json) => Kind::Json,
        Wire::Text => Kind::Text,
        Wire::Jsonb => Kind::Jsonb,
        Wire::Uuid => Kind::Uuid,
        Wire::Bytea => Kind::Bytes,
        Wire::TextArray { .. } => Kind::TextArrayJson,
        Wire::Date => Kind::Date,
        Wire::Timestamp => Kind::Timestamp {
            utc: matches!(ty, PgType::Timestamptz(_)),
        },
        Wire::Time => Kind::Time,
        Wire::Interval => Kind::IntervalText,
        Wire::Bits => Kind::BitsText,
    }
}

fn field(name: &str, kind: &Kind) -> Type {
    let (physical, logical, length) = match kind {
        Kind::Bool => (Physical::BOOLEAN, None, None),
        Kind::Int16 => (Physical::INT32, Some(integer(16)), None),
        Kind::Int32 => (Physical::INT32, None, None),
        Kind::Int64 => (Physical::INT64, None, None),
        Kind::Float32 => (Physical::FLOAT, None, None),
        Kind::Float64 => (Physical::DOUBLE, None, None),
        Kind::Decimal {
            precision,
            scale,
            width,
        } => (
            Physical::FIXED_LEN_BYTE_ARRAY,
            Some(LogicalType::Decimal {
                scale: *scale as i32,
                precision: *precision as i32,
            }),
            Some(*width as i32),
        ),
        Kind::Json | Kind::Jsonb => (Physical::BYTE_ARRAY, Some(LogicalType::Json), None),
        Kind::Bytes => (Physical::BYTE_ARRAY, None, None),
        Kind::Uuid => (
            Physical::FIXED_LEN_BYTE_ARRAY,
            Some(LogicalType::Uuid),
            Some(16),
        ),
        Kind::Date => (Physical::INT32, Some(LogicalType::Date), None),
        Kind::Timestamp { utc } => (
            Physical::INT64,
            Some(LogicalType::Timestamp {
                is_adjusted_to_u_t_c: *utc,
                unit: TimeUnit::MICROS,
            }),
            None,
        ),
        Kind::Time => (
            Physical::INT64,
            Some(LogicalType::Time {
                is_adjusted_to_u_t_c: false,
                unit: TimeUnit::MICROS,
            }),
            None,
        ),
        Kind::NumericText
        | Kind::Text
        | Kind::IntervalText
        | Kind::BitsText
        | Kind::TextArrayJson => (Physical::BYTE_ARRAY, Some(LogicalType::String), None),
    };
    let mut builder = Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical.clone());
    if let Some(length) = length {
        builder = builder.with_length(length);
    }
    if let Some(LogicalType::Decimal { scale, precision }) = logical {
        builder = builder.with_precision(precision).with_scale(scale);
    }
    builder.build().expect("a valid Parquet column type")
}

fn integer(bits: i8) -> LogicalType {
    LogicalType::Integer {
        bit_width: bits,
        is_signed: true,
    }
}

/// The tuples of a binary COPY file, field by field.
struct Rows {
    file: BufReader<File>,
    field: Vec<u8>,
    path: std::path::PathBuf,
}

impl Rows {
    fn open(path: &Path) -> Result<Rows> {
        let mut file =
            BufReader::with_capacity(1 << 20, File::open(path).map_err(Error::io(path))?);
        let mut header = [0u8; 19];
        file.read_exact(&mut header).map_err(Error::io(path))?;
        if &header[..] != super::binary::HEADER {
            return Err(Error::Data(format!(
                "{}: not a binary COPY file",
                path.display()
            )));
        }
        Ok(Rows {
            file,
            field: Vec::new(),
            path: path.to_path_buf(),
        })
    }

    /// Hands each field of the next tuple to `each` (`None` for NULL); `false` at the end.
    fn next_row(&mut self, mut each: impl FnMut(usize, Option<&[u8]>)) -> Result<bool> {
        let io = |e| Error::io(&self.path)(e);
        let mut count = [0u8; 2];
        self.file.read_exact(&mut count).map_err(io)?;
        let count = i16::from_be_bytes(count);
        if count < 0 {
            return Ok(false);
        }
        for i in 0..count as usize {
            let mut length = [0u8; 4];
            self.file
                .read_exact(&mut length)
                .map_err(|e| Error::io(&self.path)(e))?;
            let length = i32::from_be_bytes(length);
            if length < 0 {
                each(i, None);
                continue;
            }
            self.field.resize(length as usize, 0);
            self.file
                .read_exact(&mut self.field)
                .map_err(|e| Error::io(&self.path)(e))?;
            each(i, Some(&self.field));
        }
        Ok(true)
    }
}

/// One row group's values, column by column.
struct Group {
    rows: usize,
    columns: Vec<Values>,
    defined: Vec<Vec<i16>>,
}

enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

impl Group {
    fn new(kinds: &[Kind]) -> Group {
        let columns = kinds
            .iter()
            .map(|k| match k {
                Kind::Bool => Values::Bool(Vec::new()),
                Kind::Int16 | Kind::Int32 | Kind::Date => Values::I32(Vec::new()),
                Kind::Int64 | Kind::Timestamp { .. } | Kind::Time => Values::I64(Vec::new()),
                Kind::Float32 => Values::F32(Vec::new()),
                Kind::Float64 => Values::F64(Vec::new()),
                Kind::Decimal { .. } | Kind::Uuid => Values::Fixed(Vec::new()),
                _ => Values::Bytes(Vec::new()),
            })
            .collect();
        Group {
            rows: 0,
            columns,
            defined: vec![Vec::new(); kinds.len()],
        }
    }

    fn push(&mut self, i: usize, kind: &Kind, field: Option<&[u8]>) {
        let Some(f) = field else {
            self.defined[i].push(0);
            return;
        };
        self.defined[i].push(1);
        let be8 = |f: &[u8]| i64::from_be_bytes(f[..8].try_into().unwrap_or([0; 8]));
        let be4 = |f: &[u8]| i32::from_be_bytes(f[..4].try_into().unwrap_or([0; 4]));
        match (&mut self.columns[i], kind) {
            (Values::Bool(v), _) => v.push(f.first() == Some(&1)),
            (Values::I32(v), Kind::Int16) => v.push(i16::from_be_bytes([f[0], f[1]]) as i32),
            (Values::I32(v), Kind::Date) => v.push(be4(f) + POSTGRES_EPOCH_DAYS),
            (Values::I32(v), _) => v.push(be4(f)),
            (Values::I64(v), Kind::Timestamp { .. }) => v.push(be8(f) + POSTGRES_EPOCH_MICROS),
            (Values::I64(v), _) => v.push(be8(f)),
            (Values::F32(v), _) => v.push(f32::from_bits(be4(f) as u32)),
            (Values::F64(v), _) => v.push(f64::from_bits(be8(f) as u64)),
            (Values::Fixed(v), Kind::Decimal { scale, width, .. }) => {
                v.push(unscaled(&numeric_text(f), *scale, *width).into())
            }
            (Values::Fixed(v), _) => v.push(f.to_vec().into()),
            (Values::Bytes(v), kind) => v.push(
                match kind {
                    Kind::Jsonb => f.get(1..).unwrap_or_default().to_vec(),
                    Kind::NumericText => numeric_text(f).into_bytes(),
                    Kind::IntervalText => interval_text(f).into_bytes(),
                    Kind::BitsText => bits_text(f).into_bytes(),
                    Kind::TextArrayJson => array_json(f).into_bytes(),
                    _ => f.to_vec(),
                }
                .into(),
            ),
        }
    }

    fn write<W: std::io::Write + Send>(
        self,
        writer: &mut SerializedFileWriter<W>,
    ) -> ::parquet::errors::Result<()> {
        let mut group = writer.next_row_group()?;
        let mut columns = self.columns.into_iter().zip(self.defined);
        while let Some(mut column) = group.next_column()? {
            let (values, defined) = columns.next().expect("one buffer per column");
            use ::parquet::column::writer::ColumnWriter as W;
            let levels = Some(&defined[..]);
            match (column.untyped(), values) {
                (W::BoolColumnWriter(w), Values::Bool(v)) => w.write_batch(&v, levels, None)?,
                (W::Int32ColumnWriter(w), Values::I32(v)) => w.write_batch(&v, levels, None)?,
                (W::Int64ColumnWriter(w), Values::I64(v)) => w.write_batch(&v, levels, None)?,
                (W::FloatColumnWriter(w), Values::F32(v)) => w.write_batch(&v, levels, None)?,
                (W::DoubleColumnWriter(w), Values::F64(v)) => w.write_batch(&v, levels, None)?,
                (W::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
                    w.write_batch(&v, levels, None)?
                }
                (W::FixedLenByteArrayColumnWriter(w), Values::Fixed(v)) => {
                    w.write_batch(&v, levels, None)?
                }
                _ => unreachable!("the buffers follow the schema"),
            };
            column.close()?;
        }
        group.close()?;
        Ok(())
    }
}

const POSTGRES_EPOCH_DAYS: i32 = 10_957;
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A binary numeric as its decimal text (`-12.3400`, with `dscale` fraction digits).
fn numeric_text(f: &[u8]) -> String {
    let word = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    let (ndigits, weight, sign, dscale) = (
        word(0) as usize,
        word(2) as i16 as i32,
        word(4),
        word(6) as usize,
    );
    if sign == 0xC000 {
        return "NaN".into();
    }
    let digit = |i: i32| -> u16 {
        if i < 0 || i as usize >= ndigits {
            0
        } else {
            word(8 + 2 * i as usize)
        }
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    // Integer part: digit groups 0..=weight.
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            let group = digit(i);
            if i == 0 {
                text.push_str(&group.to_string());
            } else {
                text.push_str(&format!("{group:04}"));
            }
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push_str(&fraction);
    }
    text
}

/// `text` as the unscaled integer of `scale` fraction digits, big-endian two's complement
/// of `width` bytes.
fn unscaled(text: &str, scale: u32, width: usize) -> Vec<u8> {
    let negative = text.starts_with('-');
    let text = text.trim_start_matches('-');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut digits: String = whole.to_string();
    let mut fraction = fraction.to_string();
    fraction.truncate(scale as usize);
    while fraction.len() < scale as usize {
        fraction.push('0');
    }
    digits.push_str(&fraction);
    let mut magnitude = vec![0u8; width];
    for d in digits.bytes().filter(u8::is_ascii_digit) {
        let mut carry = u32::from(d - b'0');
        for byte in magnitude.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    if negative {
        // Two's complement: invert, add one.
        let mut carry = 1u16;
        for byte in magnitude.iter_mut().rev() {
            let v = u16::from(!*byte) + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    magnitude
}

/// A binary interval (microseconds, days, months) as ISO 8601: `P1Y2M3DT4H5M6.5S`.
fn interval_text(f: &[u8]) -> String {
    let micros = i64::from_be_bytes(f[..8].try_into().unwrap_or([0; 8]));
    let days = i32::from_be_bytes(f[8..12].try_into().unwrap_or([0; 4]));
    let months = i32::from_be_bytes(f[12..16].try_into().unwrap_or([0; 4]));
    let seconds = micros as f64 / 1e6;
    format!("P{months}M{days}DT{seconds}S")
}

/// A binary bit string as its `0`/`1` text.
fn bits_text(f: &[u8]) -> String {
    let length = i32::from_be_bytes(f[..4].try_into().unwrap_or([0; 4])).max(0) as usize;
    (0..length)
        .map(|i| {
            let byte = f.get(4 + i / 8).copied().unwrap_or(0);
            if byte & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

/// A binary one-dimensional text array as a JSON array of strings.
fn array_json(f: &[u8]) -> String {
    let int = |at: usize| i32::from_be_bytes(f[at..at + 4].try_into().unwrap_or([0; 4]));
    let dimensions = int(0);
    let mut items = Vec::new();
    if dimensions == 1 {
        let count = int(12).max(0) as usize;
        let mut at = 20;
        for _ in 0..count {
            let length = int(at);
            at += 4;
            if length < 0 {
                items.push(serde_json::Value::Null);
                continue;
            }
            let end = at + length as usize;
            items.push(String::from_utf8_lossy(&f[at..end]).into_owned().into());
            at = end;
        }
    }
    serde_json::Value::Array(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut f = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            f.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            f.extend_from_slice(&d.to_be_bytes());
        }
        f
    }

    #[test]
    fn binary_numerics_read_as_their_text() {
        // 12345.6789: groups 1 | 2345 . 6789
        assert_eq!(
            numeric_text(&numeric(3, 1, 0, 4, &[1, 2345, 6789])),
            "12345.6789"
        );
        assert_eq!(numeric_text(&numeric(1, -1, 0x4000, 2, &[5000])), "-0.50");
        assert_eq!(numeric_text(&numeric(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(numeric_text(&numeric(1, 2, 0, 0, &[7])), "700000000");
    }

    #[test]
    fn decimals_are_unscaled_twos_complement() {
        let v = unscaled("-0.50", 2, 16);
        assert_eq!(i128::from_be_bytes(v.try_into().unwrap()), -50);
        let v = unscaled("12345.6789", 2, 16);
        assert_eq!(i128::from_be_bytes(v.try_into().unwrap()), 1_234_567);
        let big = unscaled(&"9".repeat(60), 0, 32);
        assert_eq!(big.len(), 32);
        assert_eq!(big[0], 0); // positive, fits
    }

    #[test]
    fn bits_intervals_and_arrays_read_as_text() {
        assert_eq!(
            bits_text(&[0, 0, 0, 10, 0b1010_0000, 0b0100_0000]),
            "1010000001"
        );
        let mut iv = Vec::new();
        iv.extend_from_slice(&1_500_000i64.to_be_bytes());
        iv.extend_from_slice(&3i32.to_be_bytes());
        iv.extend_from_slice(&14i32.to_be_bytes());
        assert_eq!(interval_text(&iv), "P14M3DT1.5S");
        let mut a = Vec::new();
        for v in [1i32, 0, 25, 2, 1] {
            a.extend_from_slice(&v.to_be_bytes());
        }
        a.extend_from_slice(&1i32.to_be_bytes());
        a.push(b'x');
        a.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(array_json(&a), "[\"x\",null]");
    }
}
