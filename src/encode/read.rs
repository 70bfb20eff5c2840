//! Readers of MySQL values, shared by the CSV and the binary encoder: each takes the
//! value a conversion expects (an integer, bytes, UTF-8 text, a calendar date, a time, a
//! uuid) or refuses it with the reason.

use std::borrow::Cow;

use crate::source::row::ValueRef;

use crate::mapping::ZeroDates;

/// Why a value was refused; the encoder adds table, key and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Cow<'static, str>,
    pub hint: Option<&'static str>,
}

impl Refusal {
    pub fn null_into_not_null() -> Self {
        Refusal::new("NULL into a NOT NULL target column")
    }

    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            reason: reason.into(),
            hint: None,
        }
    }
}

pub(crate) fn unexpected(value: &ValueRef) -> Refusal {
    Refusal::new(format!(
        "the server sent a {} value where this conversion expects another kind",
        match value {
            ValueRef::Null => "NULL",
            ValueRef::Bytes(_) => "string",
            ValueRef::Int(_) | ValueRef::UInt(_) => "integer",
            ValueRef::Float(_) | ValueRef::Double(_) => "floating-point",
            ValueRef::Date(..) => "date",
            ValueRef::Time(..) => "time",
        }
    ))
}

#[inline]
pub(crate) fn integer(value: &ValueRef) -> Result<i128, Refusal> {
    match value {
        ValueRef::Int(n) => Ok(*n as i128),
        ValueRef::UInt(n) => Ok(*n as i128),
        ValueRef::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Refusal::new("not an integer")),
        _ => Err(unexpected(value)),
    }
}

/// A bit(n) value: big-endian bytes.
pub(crate) fn bits(value: &ValueRef) -> Result<u64, Refusal> {
    match value {
        ValueRef::Bytes(b) if b.len() <= 8 => {
            Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
        }
        ValueRef::Int(n) => Ok(*n as u64),
        ValueRef::UInt(n) => Ok(*n),
        _ => Err(unexpected(value)),
    }
}

#[inline]
pub(crate) fn bytes<'a>(value: &ValueRef<'a>) -> Result<&'a [u8], Refusal> {
    match value {
        ValueRef::Bytes(b) => Ok(b),
        _ => Err(unexpected(value)),
    }
}

/// Text as Postgres can hold it: UTF-8 (the session asks MySQL for utf8mb4, so every
/// character set arrives converted) and without NUL, which Postgres text cannot store.
#[inline]
pub(crate) fn text<'a>(value: &ValueRef<'a>) -> Result<&'a str, Refusal> {
    text_bytes(bytes(value)?, 0)
}

/// [`text`] of raw bytes that start `offset` bytes into their value (a slice of a long
/// text read in pieces: whole characters, so each piece is UTF-8 on its own).
#[inline]
pub(crate) fn text_bytes(raw: &[u8], offset: u64) -> Result<&str, Refusal> {
    // simdutf8 checks long texts several times faster than std (std's check was a tenth
    // of the export's CPU on long texts); std says where a bad byte is.
    let text = simdutf8::basic::from_utf8(raw).map_err(|_| {
        let at = offset + std::str::from_utf8(raw).map_or_else(|e| e.valid_up_to(), |_| 0) as u64;
        Refusal::new(format!(
            "not valid UTF-8 at byte {at} (binary data in a text column?)"
        ))
    })?;
    if memchr::memchr(0, raw).is_some() {
        return Err(Refusal::new(
            "contains a NUL byte (0x00), which Postgres text cannot store",
        ));
    }
    Ok(text)
}

pub(crate) type DateParts = (u16, u8, u8, u8, u8, u8, u32);

/// The parts of a date, or `None` for a zero date that is to become NULL.
pub(crate) fn date(value: &ValueRef, zero_dates: ZeroDates) -> Result<Option<DateParts>, Refusal> {
    let ValueRef::Date(y, m, d, hh, mm, ss, us) = *value else {
        return Err(unexpected(value));
    };
    if y == 0 || m == 0 || d == 0 {
        return match zero_dates {
            ZeroDates::Null => Ok(None),
            ZeroDates::Error => Err(Refusal {
                reason: "zero date (year, month or day 0) has no Postgres equivalent".into(),
                hint: Some("--zero-dates null writes NULL instead"),
            }),
        };
    }
    if m > 12 || d > days_in_month(y, m) {
        return Err(Refusal::new("not a calendar date"));
    }
    Ok(Some((y, m, d, hh, mm, ss, us)))
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (negative, hours, minutes, seconds, microseconds) with days folded into hours.
pub(crate) fn time(value: &ValueRef) -> Result<(bool, u32, u8, u8, u32), Refusal> {
    let ValueRef::Time(negative, days, hh, mm, ss, us) = *value else {
        return Err(unexpected(value));
    };
    Ok((negative, days * 24 + hh as u32, mm, ss, us))
}

/// The 16 bytes of a uuid written as text (8-4-4-4-12 or 32 bare hex digits, any case).
pub(crate) fn parse_uuid(text: &[u8]) -> Result<[u8; 16], Refusal> {
    let invalid = || Refusal::new("not a uuid (expected 8-4-4-4-12 hex digits)");
    // The 32 digits side by side, then each tested and valued without a branch or a table:
    // the compiler runs that over all of them at once (a third of the time of a loop
    // over the digits in place).
    let mut digits = [0u8; 32];
    match text.len() {
        36 if [8, 13, 18, 23].iter().all(|&i| text[i] == b'-') => {
            digits[..8].copy_from_slice(&text[..8]);
            digits[8..12].copy_from_slice(&text[9..13]);
            digits[12..16].copy_from_slice(&text[14..18]);
            digits[16..20].copy_from_slice(&text[19..23]);
            digits[20..].copy_from_slice(&text[24..]);
        }
        32 => digits.copy_from_slice(text),
        _ => return Err(invalid()),
    }
    let mut values = [0u8; 32];
    let mut bad = false;
    for (value, &c) in values.iter_mut().zip(&digits) {
        let decimal = c.wrapping_sub(b'0');
        let letter = (c | 0x20).wrapping_sub(b'a'); // a-f and A-F
        *value = if decimal < 10 {
            decimal
        } else {
            letter.wrapping_add(10)
        };
        bad |= (decimal >= 10) & (letter >= 6);
    }
    if bad {
        return Err(invalid());
    }
    let mut raw = [0u8; 16];
    for (byte, pair) in raw.iter_mut().zip(values.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::parse_uuid;
    use proptest::prelude::*;

    /// What a uuid's text is, by its definition: 32 hex digits, bare or with dashes at
    /// 8-4-4-4-12, in either case.
    fn reference(text: &[u8]) -> Option<[u8; 16]> {
        let digits: Vec<u8> = match text.len() {
            36 if (0..36).all(|i| (text[i] == b'-') == matches!(i, 8 | 13 | 18 | 23)) => {
                text.iter().copied().filter(|&c| c != b'-').collect()
            }
            32 => text.to_vec(),
            _ => return None,
        };
        let hex = std::str::from_utf8(&digits).ok()?;
        let value = u128::from_str_radix(hex, 16).ok()?;
        (!hex.starts_with('+')).then(|| value.to_be_bytes())
    }

    proptest! {
        #[test]
        fn a_uuid_is_read_as_its_definition_says(
            digits in proptest::collection::vec(
                proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                32,
            ),
            dashed in proptest::bool::ANY,
            // One byte replaced, in most cases, by one near a hex digit or a dash.
            replaced in proptest::option::weighted(
                0.8,
                (0..36usize, proptest::sample::select(b"-gG@`/:0aA\x00\xff".to_vec())),
            ),
        ) {
            let mut text = digits;
            if dashed {
                for at in [8, 13, 18, 23] {
                    text.insert(at, b'-');
                }
            }
            if let Some((at, byte)) = replaced {
                let at = at % text.len();
                text[at] = byte;
            }
            let shown = String::from_utf8_lossy(&text).into_owned();
            prop_assert_eq!(parse_uuid(&text).ok(), reference(&text), "{}", shown);
        }
    }
}
