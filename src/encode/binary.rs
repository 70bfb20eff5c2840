//! The same values in Postgres' binary COPY format, for loading: Postgres parses CSV text
//! field by field (timestamps, uuids, numbers) at a cost that dominates a load, while the
//! binary form only needs copying. The CSV file stays the medium on disk; the binary file
//! beside it is written from the same values in the same pass and removed once loaded.
//!
//! Every value reaching [`Wire::encode`] has already been accepted (and checked) by
//! [`Conversion::encode`] for the CSV file, whose text this form must equal value for value.
//! Which wire a column travels on is decided with its conversion, in `mapping::rules`; a
//! rule marked CSV only (a `datetime` placed in a named time zone, whose offset Postgres
//! computes) makes its whole table load from CSV.

use crate::canon::format_integer;
use crate::source::row::ValueRef;

use super::read::{self, parse_uuid, Refusal};
use crate::mapping::{Conversion, Wire};

/// The file signature, flags and header extension length of a binary COPY stream.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends the stream.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Postgres counts days and microseconds from 2000-01-01.
const POSTGRES_EPOCH_DAYS: i64 = 10_957; // days from 1970-01-01
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Wire {
    /// Appends one field (length and bytes) for `value`, which `conversion` has just written
    /// to the CSV file as `csv_field` (empty for NULL).
    pub fn encode(
        self,
        conversion: &Conversion,
        value: &ValueRef,
        csv_field: &[u8],
        out: &mut Vec<u8>,
    ) {
        if csv_field.is_empty() {
            // NULL (an empty string is `""` in CSV, never an empty field).
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        let length_at = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            Wire::Bool => out.push((csv_field == b"t") as u8),
            Wire::Int2 => out.extend_from_slice(&(integer(value) as i16).to_be_bytes()),
            Wire::Int4 => out.extend_from_slice(&(integer(value) as i32).to_be_bytes()),
            Wire::Int8 => out.extend_from_slice(&(integer(value) as i64).to_be_bytes()),
            Wire::Numeric => match conversion {
                Conversion::Integer { .. } => push_numeric(
                    format_integer(integer(value), &mut itoa::Buffer::new()).as_bytes(),
                    out,
                ),
                _ => push_numeric(bytes(value), out),
            },
            // From the CSV text, so both files hold the same number: Postgres reads the text
            // with strtod/strtof, correctly rounded as Rust's parse is.
            Wire::Float4 => {
                out.extend_from_slice(&float_text::<f32>(csv_field).to_bits().to_be_bytes())
            }
            Wire::Float8 => {
                out.extend_from_slice(&float_text::<f64>(csv_field).to_bits().to_be_bytes())
            }
            Wire::Text => out.extend_from_slice(bytes(value)),
            Wire::Jsonb => {
                out.push(1);
                out.extend_from_slice(bytes(value));
            }
            Wire::Uuid => match conversion {
                Conversion::BinaryToUuid => out.extend_from_slice(bytes(value)),
                _ => out.extend_from_slice(&accepted(parse_uuid(bytes(value)))),
            },
            Wire::Bytea => out.extend_from_slice(bytes(value)),
            Wire::TextArray { element_oid } => push_text_array(bytes(value), element_oid, out),
            Wire::Date => {
                let ValueRef::Date(y, m, d, ..) = *value else {
                    unreachable!("a date value")
                };
                out.extend_from_slice(&(days_since_2000(y, m, d) as i32).to_be_bytes());
            }
            Wire::Timestamp => {
                let ValueRef::Date(y, m, d, hh, mm, ss, us) = *value else {
                    unreachable!("a date value")
                };
                let micros =
                    days_since_2000(y, m, d) * MICROS_PER_DAY + time_micros(hh as i64, mm, ss, us);
                out.extend_from_slice(&micros.to_be_bytes());
            }
            Wire::Time | Wire::Interval => {
                let (negative, hours, mm, ss, us) = accepted(read::time(value));
                let micros = time_micros(hours as i64, mm, ss, us);
                let micros = if negative { -micros } else { micros };
                out.extend_from_slice(&micros.to_be_bytes());
                if self == Wire::Interval {
                    out.extend_from_slice(&[0; 8]); // days, months: all in the time part, as the CSV text puts it
                }
            }
            Wire::Bits => {
                let Conversion::Bits { width } = *conversion else {
                    unreachable!("bits")
                };
                let n = accepted(read::bits(value));
                out.extend_from_slice(&(width as i32).to_be_bytes());
                // Most significant bit first, the last byte padded with zero bits.
                let mut byte = 0u8;
                for i in 0..width {
                    let bit = (n >> (width - 1 - i)) & 1;
                    byte |= (bit as u8) << (7 - i % 8);
                    if i % 8 == 7 {
                        out.push(byte);
                        byte = 0;
                    }
                }
                if width % 8 != 0 {
                    out.push(byte);
                }
            }
        }
        let length = (out.len() - length_at - 4) as i32;
        out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    }
}

/// What the CSV encoder's reader of `value` returned when it accepted the value.
fn accepted<T>(read: Result<T, Refusal>) -> T {
    read.expect("accepted by the CSV encoder")
}

fn integer(value: &ValueRef) -> i128 {
    accepted(read::integer(value))
}

fn bytes<'a>(value: &ValueRef<'a>) -> &'a [u8] {
    accepted(read::bytes(value))
}

fn float_text<F: std::str::FromStr>(text: &[u8]) -> F {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| unreachable!("the CSV encoder writes floats Rust reads back"))
}

/// Days from 2000-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_since_2000(y: u16, m: u8, d: u8) -> i64 {
    let (y, m, d) = (y as i64 - (m <= 2) as i64, m as i64, d as i64);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468 - POSTGRES_EPOCH_DAYS
}

fn time_micros(hours: i64, mm: u8, ss: u8, us: u32) -> i64 {
    ((hours * 60 + mm as i64) * 60 + ss as i64) * 1_000_000 + us as i64
}

/// Decimal text (`-123.4500`, as MySQL sends and the CSV file holds it) as Postgres' binary
/// numeric: base-10000 digits around the decimal point, the weight of the first, the sign
/// and the display scale. Postgres strips leading and trailing zero digits itself.
fn push_numeric(text: &[u8], out: &mut Vec<u8>) {
    let (negative, body) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (integer, fraction) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &b""[..]),
    };
    let integer = &integer[integer.iter().take_while(|&&b| b == b'0').count()..];
    let integer_groups = integer.len().div_ceil(4);
    let fraction_groups = fraction.len().div_ceil(4);
    let ndigits = integer_groups + fraction_groups;
    let weight = integer_groups as i16 - 1;
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&(fraction.len() as u16).to_be_bytes());
    let digit = |group: &[u8]| {
        group
            .iter()
            .fold(0u16, |acc, &b| acc * 10 + (b - b'0') as u16)
    };
    // The integer part's first group is the short one; the fraction's last is padded.
    let head = integer.len() - (integer_groups.saturating_sub(1)) * 4;
    if integer_groups > 0 {
        out.extend_from_slice(&digit(&integer[..head]).to_be_bytes());
        for group in integer[head..].chunks(4) {
            out.extend_from_slice(&digit(group).to_be_bytes());
        }
    }
    for group in fraction.chunks(4) {
        let padded = digit(group) * 10u16.pow(4 - group.len() as u32);
        out.extend_from_slice(&padded.to_be_bytes());
    }
}

/// A MySQL set (`a,b`) as a one-dimensional array; the empty set as an empty array.
fn push_text_array(set: &[u8], element_oid: u32, out: &mut Vec<u8>) {
    if set.is_empty() {
        out.extend_from_slice(&0i32.to_be_bytes()); // no dimensions
        out.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
        out.extend_from_slice(&element_oid.to_be_bytes());
        return;
    }
    let labels = set.split(|&b| b == b',');
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&element_oid.to_be_bytes());
    out.extend_from_slice(&(labels.clone().count() as i32).to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    for label in labels {
        out.extend_from_slice(&(label.len() as i32).to_be_bytes());
        out.extend_from_slice(label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<i16> {
        let mut out = Vec::new();
        push_numeric(text.as_bytes(), &mut out);
        out.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_group_digits_around_the_point() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(numeric("123.45"), [2, 0, 0, 2, 123, 4500]);
        assert_eq!(numeric("-12345.6"), [3, 1, 0x4000, 1, 1, 2345, 6000]);
        assert_eq!(numeric("0.0012"), [1, -1, 0, 4, 12]);
        assert_eq!(numeric("0"), [0, -1, 0, 0]);
        assert_eq!(numeric("10000"), [2, 1, 0, 0, 1, 0]);
        assert_eq!(
            numeric("18446744073709551615"),
            [5, 4, 0, 0, 1844, 6744, 737, 955, 1615]
        );
    }

    #[test]
    fn dates_count_from_2000() {
        assert_eq!(days_since_2000(2000, 1, 1), 0);
        assert_eq!(days_since_2000(1999, 12, 31), -1);
        assert_eq!(days_since_2000(2000, 3, 1), 60);
        assert_eq!(days_since_2000(1970, 1, 1), -10_957);
        assert_eq!(days_since_2000(9999, 12, 31), 2_921_939);
        assert_eq!(days_since_2000(1000, 1, 1), -365_242); // as Postgres counts them
    }
}
