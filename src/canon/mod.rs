//! What `verify` compares: the canonical form of a value, computed on each side by its own
//! simple path, chosen by the target column's type, and the digests of rows in that form
//! ([`digest`]; the export computes the source's as it reads, `verify` the target's). The
//! forms are chosen by the target column's type: from MySQL's own value on the source side, from Postgres'
//! text rendering of the stored value on the target side. Neither path calls the
//! conversion code, so a conversion bug (a time zone shift, a lost fraction, a flipped
//! boolean) shows as a difference instead of being reproduced on both sides.
//!
//! The forms: integers and booleans as Postgres prints them; exact decimals without
//! trailing zeros; floats by their bits; text as is (`char(n)` without its padding);
//! uuids lower-case 8-4-4-4-12; bytes as hex; jsonb with sorted keys, exact numbers and
//! one escaping, json as its text (Postgres keeps it); dates and timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` (timestamptz in UTC,
//! or in the source time zone for a datetime placed there); times to the microsecond;
//! intervals in microseconds; bit strings as 0/1; sets and arrays as JSON arrays.

pub mod digest;
mod json;
mod number;

pub use number::format_integer;

pub use json::json;
use json::set_as_json;
pub use number::push_decimal;

use crate::source::row::ValueRef;

use crate::catalog::{MyType, PgType};
use crate::mapping::ZeroDates;

/// How one column's values are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Decimal,
    Float4,
    Float8,
    /// `char(n)`: Postgres pads with spaces; MySQL does not return them.
    Text {
        trim_end: bool,
    },
    Uuid,
    Bytea,
    /// jsonb: Postgres parses it, so both sides are compared parsed ([`json`]).
    Json,
    /// json: Postgres keeps the text it was given, byte for byte, so both sides are
    /// compared as they are (stricter than parsed, and without a parse per value: parsing
    /// was a fifth of the export's CPU on Alkemio's authorization rules).
    JsonText,
    Date {
        zero_dates: ZeroDates,
    },
    /// timestamp or timestamptz; for timestamptz the zone the target renders the value in.
    Timestamp {
        zone: Option<String>,
        zero_dates: ZeroDates,
    },
    Time,
    Interval,
    Bits {
        width: u32,
    },
    TextArray,
    /// inet or cidr: the address and prefix as Postgres prints them.
    Inet {
        cidr: bool,
    },
    /// Lower-case `08:00:2b:01:02:03`.
    Macaddr,
}

impl Kind {
    /// The comparison for a column of `source` type stored as `target`. `source_zone` is the
    /// zone of MySQL datetimes placed into timestamptz (UTC when `None`).
    pub fn of(
        source: &MyType,
        target: &PgType,
        zero_dates: ZeroDates,
        source_zone: Option<&str>,
    ) -> Kind {
        use PgType as P;
        match target {
            P::Bool => Kind::Bool,
            P::Int2 | P::Int4 | P::Int8 => Kind::Integer,
            P::Numeric(_) => Kind::Decimal,
            P::Float4 => Kind::Float4,
            P::Float8 => Kind::Float8,
            P::Char(_) => Kind::Text { trim_end: true },
            P::Uuid => Kind::Uuid,
            P::Bytea => Kind::Bytea,
            P::Json => Kind::JsonText,
            P::Jsonb => Kind::Json,
            P::Date => Kind::Date { zero_dates },
            P::Timestamp(_) => Kind::Timestamp {
                zone: None,
                zero_dates,
            },
            P::Timestamptz(_) => Kind::Timestamp {
                // A MySQL timestamp is read in UTC; a datetime is wall-clock time in the
                // source zone, so the stored instant is shown back in that zone.
                zone: Some(match source {
                    MyType::Timestamp(_) => "UTC".to_string(),
                    _ => source_zone.unwrap_or("UTC").to_string(),
                }),
                zero_dates,
            },
            P::Time(_) => Kind::Time,
            P::Interval => Kind::Interval,
            P::Bit(_) | P::Varbit(_) => Kind::Bits {
                width: match source {
                    MyType::Bit(n) => *n,
                    _ => 64,
                },
            },
            P::TextArray { .. } => Kind::TextArray,
            P::Inet { cidr } => Kind::Inet { cidr: *cidr },
            P::Macaddr => Kind::Macaddr,
            P::Text | P::Varchar(_) | P::Enum { .. } | P::Other(_) => {
                Kind::Text { trim_end: false }
            }
        }
    }

    /// The SQL that makes Postgres render the stored value of `column` (quoted) as text
    /// this kind reads.
    pub fn target_sql(&self, column: &str) -> String {
        match self {
            Kind::Bytea => format!("encode({column}, 'hex')"),
            Kind::Timestamp { zone: None, .. } => {
                format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            Kind::Timestamp {
                zone: Some(zone), ..
            } => format!(
                "to_char({column} AT TIME ZONE '{}', 'YYYY-MM-DD HH24:MI:SS.US')",
                zone.replace('\'', "''")
            ),
            Kind::Interval => format!("(extract(epoch FROM {column}) * 1000000)::bigint::text"),
            Kind::TextArray => format!("array_to_json({column})::text"),
            _ => format!("{column}::text"),
        }
    }

    /// Appends the canonical form of a MySQL value; `false` for NULL (and for a zero date
    /// that `--zero-dates null` writes as NULL).
    pub fn source(&self, value: &ValueRef, out: &mut Vec<u8>) -> bool {
        if let ValueRef::Null = value {
            return false;
        }
        // Written digit by digit: the export digests every row with this, next to the
        // conversion, so it must not allocate.
        match (self, value) {
            (Kind::Bool, ValueRef::Int(n)) => push_bool(*n as i128, out),
            (Kind::Bool, ValueRef::UInt(n)) => push_bool(*n as i128, out),
            (Kind::Bool, ValueRef::Bytes(b)) => {
                push_bool(b.iter().fold(0i128, |a, &x| (a << 8) | x as i128), out)
            }
            (Kind::Integer | Kind::Decimal, ValueRef::Int(n)) => push_integer(*n as i128, out),
            (Kind::Integer | Kind::Decimal, ValueRef::UInt(n)) => push_integer(*n as i128, out),
            (Kind::Decimal, ValueRef::Bytes(b)) => push_decimal(b, out),
            (Kind::Float4, ValueRef::Float(f)) => push_hex_u64(f.to_bits() as u64, 8, out),
            (Kind::Float4, ValueRef::Double(f)) => {
                push_hex_u64((*f as f32).to_bits() as u64, 8, out)
            }
            (Kind::Float8, ValueRef::Float(f)) => push_hex_u64((*f as f64).to_bits(), 16, out),
            (Kind::Float8, ValueRef::Double(f)) => push_hex_u64(f.to_bits(), 16, out),
            (Kind::Text { trim_end }, ValueRef::Bytes(b)) => {
                let text = if *trim_end { trim_spaces(b) } else { b };
                out.extend_from_slice(text);
            }
            (Kind::Uuid, ValueRef::Bytes(b)) if b.len() == 16 => push_uuid(
                b.iter()
                    .flat_map(|&x| [HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]),
                out,
            ),
            // Already in the one form (MySQL's UUID() and most applications write it so):
            // as it is, without taking it apart (a uuid key is in every row).
            (Kind::Uuid, ValueRef::Bytes(b)) if is_lower_dashed_uuid(b) => out.extend_from_slice(b),
            (Kind::Uuid, ValueRef::Bytes(b)) => push_uuid(
                b.iter().filter(|&&c| c != b'-').map(u8::to_ascii_lowercase),
                out,
            ),
            (Kind::Bytea, ValueRef::Bytes(b)) => {
                for &x in b.iter() {
                    out.extend_from_slice(&[HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]);
                }
            }
            (Kind::Json, ValueRef::Bytes(b)) => json(b, out),
            (Kind::JsonText, ValueRef::Bytes(b)) => out.extend_from_slice(b),
            (Kind::TextArray, ValueRef::Bytes(b)) => set_as_json(b, out),
            (Kind::Date { zero_dates }, ValueRef::Date(y, m, d, ..)) => {
                if is_zero(*y, *m, *d) && *zero_dates == ZeroDates::Null {
                    return false;
                }
                push_date(*y, *m, *d, out);
            }
            (Kind::Timestamp { zero_dates, .. }, ValueRef::Date(y, m, d, hh, mm, ss, us)) => {
                if is_zero(*y, *m, *d) && *zero_dates == ZeroDates::Null {
                    return false;
                }
                push_date(*y, *m, *d, out);
                out.push(b' ');
                push_clock(*hh as u32, *mm, *ss, *us, out);
            }
            (Kind::Time, ValueRef::Time(negative, days, hh, mm, ss, us)) => {
                if *negative {
                    out.push(b'-');
                }
                push_clock(*days * 24 + *hh as u32, *mm, *ss, *us, out);
            }
            (Kind::Interval, ValueRef::Time(negative, days, hh, mm, ss, us)) => {
                let micros = ((((*days as i64 * 24 + *hh as i64) * 60 + *mm as i64) * 60
                    + *ss as i64)
                    * 1_000_000)
                    + *us as i64;
                push_integer(if *negative { -micros } else { micros } as i128, out)
            }
            (Kind::Bits { width }, ValueRef::Bytes(b)) => {
                let n = b.iter().fold(0u128, |a, &x| (a << 8) | x as u128);
                for i in (0..*width).rev() {
                    out.push(if (n >> i) & 1 == 1 { b'1' } else { b'0' });
                }
            }
            (Kind::Integer, ValueRef::Bytes(b)) => out.extend_from_slice(b),
            (Kind::Inet { cidr }, ValueRef::Bytes(b)) => push_inet(b, *cidr, out),
            (Kind::Macaddr, ValueRef::Bytes(b)) => {
                let digits: Vec<u8> = b
                    .iter()
                    .filter(|c| c.is_ascii_hexdigit())
                    .map(u8::to_ascii_lowercase)
                    .collect();
                for (i, pair) in digits.chunks(2).enumerate() {
                    if i > 0 {
                        out.push(b':');
                    }
                    out.extend_from_slice(pair);
                }
            }
            // A value of a kind the rule did not expect: shown as the server sent it, so
            // the comparison fails visibly rather than silently.
            (_, other) => push_display(&format!("{other:?}"), out),
        }
        true
    }

    /// Appends the canonical form of Postgres' rendering of a value (from
    /// [`Kind::target_sql`]); `false` for NULL.
    pub fn target(&self, text: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
        let Some(text) = text else {
            return false;
        };
        match self {
            // `boolean::text` is true/false.
            Kind::Bool => out.push(if text == b"true" { b't' } else { b'f' }),
            Kind::Decimal => push_decimal(text, out),
            Kind::Float4 => match std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<f32>().ok())
            {
                Some(f) => push_hex_u64(f.to_bits() as u64, 8, out),
                None => out.extend_from_slice(text),
            },
            Kind::Float8 => match std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
            {
                Some(f) => push_hex_u64(f.to_bits(), 16, out),
                None => out.extend_from_slice(text),
            },
            Kind::Text { trim_end: true } => out.extend_from_slice(trim_spaces(text)),
            Kind::Json | Kind::TextArray => json(text, out),
            Kind::Time => push_time_text(text, out),
            _ => out.extend_from_slice(text),
        }
        true
    }
}

// The digit writers below resemble those of `encode::convert` on purpose: this side must
// not share code with the conversion it checks, or a bug there would be reproduced here.
pub(super) const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_integer(n: i128, out: &mut Vec<u8>) {
    out.extend_from_slice(format_integer(n, &mut itoa::Buffer::new()).as_bytes());
}

/// The low `digits` hex digits of `n`.
fn push_hex_u64(n: u64, digits: u32, out: &mut Vec<u8>) {
    for i in (0..digits).rev() {
        out.push(HEX[((n >> (4 * i)) & 15) as usize]);
    }
}

fn push_2(n: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&two_digits(n));
}

/// `YYYY-MM-DD` (the CSV files' spelling too).
pub(crate) fn push_date(y: u16, m: u8, d: u8, out: &mut Vec<u8>) {
    let mut date = *b"0000-00-00";
    date[0..2].copy_from_slice(&two_digits((y / 100) as u8));
    date[2..4].copy_from_slice(&two_digits((y % 100) as u8));
    date[5..7].copy_from_slice(&two_digits(m));
    date[8..10].copy_from_slice(&two_digits(d));
    out.extend_from_slice(&date);
}

/// `HH:MM:SS.ffffff`, hours of two digits or more (the CSV files' spelling too, less a
/// zero fraction).
pub(crate) fn push_clock(hours: u32, mm: u8, ss: u8, us: u32, out: &mut Vec<u8>) {
    if hours < 100 {
        push_2(hours as u8, out);
    } else {
        push_integer(hours as i128, out);
    }
    // `:MM:SS.ffffff` spelled on the stack and appended at once (a timestamp is in most
    // rows; a push per character checked the vector's capacity each time).
    let mut rest = *b":00:00.000000";
    rest[1..3].copy_from_slice(&two_digits(mm));
    rest[4..6].copy_from_slice(&two_digits(ss));
    let mut n = us;
    for d in rest[7..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&rest);
}

fn two_digits(n: u8) -> [u8; 2] {
    [b'0' + n / 10, b'0' + n % 10]
}

/// Whether `text` is a uuid in the canonical form: lower-case hex digits, 8-4-4-4-12.
fn is_lower_dashed_uuid(text: &[u8]) -> bool {
    const DASH_AT: [bool; 36] = {
        let mut at = [false; 36];
        (at[8], at[13], at[18], at[23]) = (true, true, true, true);
        at
    };
    let Ok(text) = <&[u8; 36]>::try_from(text) else {
        return false;
    };
    // Every byte tested without a branch, so that the test runs over all of them at once.
    text.iter().zip(DASH_AT).fold(true, |ok, (&c, dash)| {
        let hex = (c.wrapping_sub(b'0') < 10) | (c.wrapping_sub(b'a') < 6);
        ok & ((dash & (c == b'-')) | (!dash & hex))
    })
}

/// 32 hex digits as 8-4-4-4-12; anything else as it is (it will not match).
fn push_uuid(digits: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let start = out.len();
    for (i, d) in digits.enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(d);
    }
    if out.len() - start != 36 {
        // Not 32 digits: keep the digits alone, which match no uuid.
        let kept: Vec<u8> = out[start..]
            .iter()
            .copied()
            .filter(|&b| b != b'-')
            .collect();
        out.truncate(start);
        out.extend_from_slice(&kept);
    }
}

fn push_display(value: &impl std::fmt::Display, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{value}");
}

fn push_bool(n: i128, out: &mut Vec<u8>) {
    match n {
        0 => out.push(b'f'),
        1 => out.push(b't'),
        n => push_display(&n, out),
    }
}

fn is_zero(y: u16, m: u8, d: u8) -> bool {
    y == 0 || m == 0 || d == 0
}

fn trim_spaces(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &text[..end]
}

/// An address with its prefix length, as `inet::text` and `cidr::text` print it (the
/// prefix always, `/32` for an IPv4 host too); text that is no address is kept as it is.
fn push_inet(text: &[u8], _cidr: bool, out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(text);
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, p.parse::<u32>().ok()),
        None => (text.as_ref(), None),
    };
    let Ok(address) = address.trim().parse::<std::net::IpAddr>() else {
        out.extend_from_slice(text.as_bytes());
        return;
    };
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(bits);
    push_display(&address, out);
    push_display(&format!("/{prefix}"), out);
}

/// `HH:MM:SS[.f…]` with the fraction padded to six digits.
fn push_time_text(text: &[u8], out: &mut Vec<u8>) {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    out.extend_from_slice(whole);
    out.push(b'.');
    out.extend_from_slice(&fraction[..fraction.len().min(6)]);
    out.extend(std::iter::repeat_n(b'0', 6 - fraction.len().min(6)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    fn source(kind: &Kind, value: Value) -> String {
        let mut out = Vec::new();
        assert!(kind.source(&ValueRef::from(&value), &mut out));
        String::from_utf8(out).unwrap()
    }

    fn target(kind: &Kind, text: &str) -> String {
        let mut out = Vec::new();
        assert!(kind.target(Some(text.as_bytes()), &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_lower_case_dashed_uuids_are_taken_as_they_are() {
        assert!(is_lower_dashed_uuid(
            b"0149ce5f-76a8-4efe-b2e3-431b8c6cceb6"
        ));
        for text in [
            &b"0149CE5F-76a8-4efe-b2e3-431b8c6cceb6"[..],
            b"0149ce5f76a8-4efe-b2e3-431b8c6cceb6-",
            b"0149ce5f-76a8-4efe-b2e3-431b8c6cce-6",
            b"0149ce5f-76a8-4efe-b2e3-431b8c6cceg6",
            b"0149ce5f76a84efeb2e3431b8c6cceb6",
        ] {
            assert!(
                !is_lower_dashed_uuid(text),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn both_sides_meet_in_one_form() {
        let uuid = Kind::Uuid;
        let canonical = "0f8fad5b-d9cb-469f-a165-70867728950e";
        for written in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "0f8fad5bd9cb469fa16570867728950e",
            "0F8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            let value = Value::Bytes(written.as_bytes().to_vec());
            assert_eq!(source(&uuid, value), target(&uuid, canonical), "{written}");
        }
        // Not a uuid: kept apart from every uuid, dashes or not.
        for other in [
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "0f8fad5b-d9cb-469f-a165",
        ] {
            let value = Value::Bytes(other.as_bytes().to_vec());
            assert_ne!(source(&uuid, value), target(&uuid, canonical), "{other}");
        }
        let ts = Kind::Timestamp {
            zone: Some("UTC".into()),
            zero_dates: ZeroDates::Error,
        };
        assert_eq!(
            source(&ts, Value::Date(2024, 3, 31, 1, 30, 0, 120_000)),
            target(&ts, "2024-03-31 01:30:00.120000")
        );
        let padded = Kind::Text { trim_end: true };
        assert_eq!(
            source(&padded, Value::Bytes(b"ab".to_vec())),
            target(&padded, "ab   ")
        );
        assert_eq!(
            source(&Kind::Time, Value::Time(false, 1, 2, 3, 4, 0)),
            "26:03:04.000000"
        );
        assert_eq!(target(&Kind::Time, "26:03:04"), "26:03:04.000000");
        assert_eq!(
            source(&Kind::Bool, Value::Int(1)),
            target(&Kind::Bool, "true")
        );
        assert_eq!(
            source(&Kind::Bool, Value::Int(0)),
            target(&Kind::Bool, "false")
        );
        assert_ne!(source(&Kind::Bool, Value::Int(2)), "t");
        assert_eq!(
            source(&Kind::Float4, Value::Float(0.1)),
            target(&Kind::Float4, "0.1")
        );
        assert_eq!(
            source(&Kind::TextArray, Value::Bytes(b"a,b".to_vec())),
            target(&Kind::TextArray, r#"["a","b"]"#)
        );
        let zero = Kind::Date {
            zero_dates: ZeroDates::Null,
        };
        assert!(!zero.source(&ValueRef::Date(0, 0, 0, 0, 0, 0, 0), &mut Vec::new()));
    }
}
