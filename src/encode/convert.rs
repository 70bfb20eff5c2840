//! One MySQL value into the CSV text of its target column, exactly or not at all.
//!
//! Values arrive through MySQL's binary protocol, so integers, floats, dates and times are
//! already typed; strings, decimals, JSON, enums, sets and bits arrive as bytes.

use crate::canon::{format_integer, push_clock, push_date};
use crate::source::row::ValueRef;

pub use super::check::excerpt;
use super::check::{check_decimal, check_inet, check_precision};
use super::csv::push_field;
use super::json;
use super::read::{bits, bytes, date, integer, parse_uuid, text, time, unexpected, Refusal};
use crate::mapping::{Conversion, Zone};

type Outcome = Result<(), Refusal>;

impl Conversion {
    /// The text of a text or json `value`, checked as its target takes it: UTF-8 without
    /// NUL, within a varchar's limit, valid JSON. For the buffered CSV field and for a
    /// large value written in pieces ([`super::TableCodec::encode_rows`]) alike.
    pub(crate) fn checked_text<'v>(&self, value: &'v ValueRef) -> Result<&'v str, Refusal> {
        let text = text(value)?;
        match self {
            // Byte length bounds the character count from above: skip counting for the
            // common case.
            Conversion::Text {
                max_chars: Some(max),
            } if text.len() > *max as usize => {
                let chars = text.chars().count();
                if chars > *max as usize {
                    return Err(Refusal::new(format!(
                        "{chars} characters do not fit the target's limit of {max}"
                    )));
                }
            }
            Conversion::Json { jsonb } => {
                json::validate(text.as_bytes(), *jsonb).map_err(Refusal::new)?
            }
            _ => {}
        }
        Ok(text)
    }

    /// Appends `value` as one CSV field (NULL as the empty unquoted field).
    #[inline]
    pub fn encode(&self, value: &ValueRef, out: &mut Vec<u8>) -> Outcome {
        if let ValueRef::Null = value {
            return Ok(());
        }
        match self {
            Conversion::Integer { min, max } => {
                let n = integer(value)?;
                if n < *min || n > *max {
                    return Err(Refusal::new(format!(
                        "{n} is outside the target column's range {min}..={max}"
                    )));
                }
                out.extend_from_slice(format_integer(n, &mut itoa::Buffer::new()).as_bytes());
            }
            Conversion::IntegerToBool => match integer(value)? {
                0 => out.push(b'f'),
                1 => out.push(b't'),
                n => {
                    return Err(Refusal::new(format!(
                        "{n} is not a boolean: only 0 and 1 are"
                    )))
                }
            },
            Conversion::BitToBool => match bits(value)? {
                0 => out.push(b'f'),
                1 => out.push(b't'),
                n => return Err(Refusal::new(format!("bit value {n} is not a boolean"))),
            },
            Conversion::Bits { width } => {
                let n = bits(value)?;
                for i in (0..*width).rev() {
                    out.push(if (n >> i) & 1 == 1 { b'1' } else { b'0' });
                }
            }
            Conversion::Decimal { max_integer_digits } => {
                let text = bytes(value)?;
                check_decimal(text, *max_integer_digits)?;
                out.extend_from_slice(text);
            }
            Conversion::Float32 => match value {
                ValueRef::Float(f) => {
                    out.extend_from_slice(ryu::Buffer::new().format(*f).as_bytes())
                }
                ValueRef::Double(f) => {
                    out.extend_from_slice(ryu::Buffer::new().format(*f).as_bytes())
                }
                _ => return Err(unexpected(value)),
            },
            Conversion::Float64 => match value {
                ValueRef::Double(f) => {
                    out.extend_from_slice(ryu::Buffer::new().format(*f).as_bytes())
                }
                ValueRef::Float(f) => {
                    out.extend_from_slice(ryu::Buffer::new().format(*f).as_bytes())
                }
                _ => return Err(unexpected(value)),
            },
            Conversion::Text { .. } | Conversion::Json { .. } => {
                push_field(out, self.checked_text(value)?.as_bytes());
            }
            Conversion::EnumLabel { labels } => {
                let raw = bytes(value)?;
                if !labels.contains(raw) {
                    let text = text(value)?;
                    return Err(Refusal::new(format!(
                        "label {text:?} does not exist in the target enum type"
                    )));
                }
                push_field(out, raw);
            }
            Conversion::TextToUuid => {
                let text = bytes(value)?;
                push_uuid_text(text, out)?;
            }
            Conversion::BinaryToUuid => {
                let raw = bytes(value)?;
                if raw.len() != 16 {
                    return Err(Refusal::new(format!(
                        "{} bytes are not a uuid (16 bytes)",
                        raw.len()
                    )));
                }
                push_uuid_bytes(raw, out);
            }
            Conversion::Bytea => {
                let raw = bytes(value)?;
                push_hex(raw, out);
            }
            Conversion::Inet { cidr } => {
                let text = text(value)?;
                check_inet(text, *cidr)?;
                push_field(out, text.as_bytes());
            }
            Conversion::Macaddr => {
                let text = text(value)?;
                let digits = text
                    .bytes()
                    .filter(|b| !matches!(b, b':' | b'-' | b'.'))
                    .count();
                if digits != 12
                    || !text
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'-' | b'.'))
                {
                    return Err(Refusal::new("not a MAC address (six bytes of hex digits)"));
                }
                push_field(out, text.as_bytes());
            }
            Conversion::SetToArray { max_chars } => {
                let text = text(value)?;
                if let Some(max) = max_chars {
                    if let Some(label) = text.split(',').find(|l| l.chars().count() > *max as usize)
                    {
                        return Err(Refusal::new(format!(
                            "set label {label:?} is longer than the target array's elements allow ({max} characters)"
                        )));
                    }
                }
                let mut array = Vec::with_capacity(text.len() + 2);
                array.push(b'{');
                if !text.is_empty() {
                    for (i, label) in text.split(',').enumerate() {
                        if i > 0 {
                            array.push(b',');
                        }
                        array.push(b'"');
                        for &b in label.as_bytes() {
                            if b == b'"' || b == b'\\' {
                                array.push(b'\\');
                            }
                            array.push(b);
                        }
                        array.push(b'"');
                    }
                }
                array.push(b'}');
                push_field(out, &array);
            }
            Conversion::Date { zero_dates } => {
                let Some((y, m, d, hh, mm, ss, us)) = date(value, *zero_dates)? else {
                    return Ok(()); // a zero date, written as NULL
                };
                if (hh, mm, ss, us) != (0, 0, 0, 0) {
                    return Err(Refusal::new(
                        "the time of day would be lost in a date column",
                    ));
                }
                push_date(y, m, d, out);
            }
            Conversion::Timestamp {
                zone,
                precision,
                zero_dates,
            } => {
                let Some((y, m, d, hh, mm, ss, us)) = date(value, *zero_dates)? else {
                    return Ok(());
                };
                check_precision(us, *precision)?;
                push_date(y, m, d, out);
                out.push(b' ');
                push_time(hh as u32, mm, ss, us, out);
                match zone {
                    Zone::Naive => {}
                    Zone::Utc => out.extend_from_slice(b"+00"),
                    Zone::Named(name) => {
                        out.push(b' ');
                        out.extend_from_slice(name.as_bytes());
                    }
                }
            }
            Conversion::Time { precision } => {
                let (negative, hours, mm, ss, us) = time(value)?;
                if negative || hours > 24 || (hours == 24 && (mm, ss, us) != (0, 0, 0)) {
                    return Err(Refusal::new(
                        "time outside 00:00:00..24:00:00 fits only an interval column",
                    ));
                }
                check_precision(us, *precision)?;
                push_time(hours, mm, ss, us, out);
            }
            Conversion::Interval => {
                let (negative, hours, mm, ss, us) = time(value)?;
                if negative {
                    out.push(b'-');
                }
                push_time(hours, mm, ss, us, out);
            }
            Conversion::Year => {
                let n = integer(value)?;
                out.extend_from_slice(format_integer(n, &mut itoa::Buffer::new()).as_bytes());
            }
        }
        Ok(())
    }
}

/// `HH:MM:SS`, hours of two digits or more, then `.ffffff` unless it is zero: the
/// canonical form's spelling, its fraction dropped when zero.
fn push_time(hours: u32, mm: u8, ss: u8, us: u32, out: &mut Vec<u8>) {
    push_clock(hours, mm, ss, us, out);
    if us == 0 {
        out.truncate(out.len() - ".000000".len());
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len() * 2 + 2);
    out.extend_from_slice(b"\\x");
    for &b in raw {
        out.extend_from_slice(&hex_digits(b));
    }
}

/// A byte as two lower-case hex digits, as bytea's text form writes it.
#[inline]
pub(crate) fn hex_digits(b: u8) -> [u8; 2] {
    [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
}

/// Accepts the canonical 8-4-4-4-12 form or 32 bare hex digits, writes the canonical
/// lower-case form: the text itself when it is in that form already (most are).
fn push_uuid_text(text: &[u8], out: &mut Vec<u8>) -> Outcome {
    let raw = parse_uuid(text)?;
    // A fold, not `any`: without an early exit the test runs over all bytes at once.
    if text.len() == 36
        && !text
            .iter()
            .fold(false, |upper, c| upper | c.is_ascii_uppercase())
    {
        out.extend_from_slice(text);
    } else {
        push_uuid_bytes(&raw, out);
    }
    Ok(())
}

/// 16 bytes as the canonical lower-case 8-4-4-4-12 text, written in one piece.
fn push_uuid_bytes(raw: &[u8], out: &mut Vec<u8>) {
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, &b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[(b >> 4) as usize];
        text[at + 1] = HEX[(b & 15) as usize];
        at += 2;
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::ZeroDates;
    use mysql_async::Value;

    fn enc(c: &Conversion, v: Value) -> Result<String, Refusal> {
        let mut out = Vec::new();
        c.encode(&ValueRef::from(&v), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn tinyint_two_is_not_true() {
        let c = Conversion::IntegerToBool;
        assert_eq!(enc(&c, Value::Int(1)).unwrap(), "t");
        assert_eq!(enc(&c, Value::Int(0)).unwrap(), "f");
        assert!(enc(&c, Value::Int(2))
            .unwrap_err()
            .reason
            .contains("only 0 and 1"));
    }

    #[test]
    fn integers_out_of_range_are_refused() {
        let c = Conversion::Integer {
            min: i16::MIN as i128,
            max: i16::MAX as i128,
        };
        assert_eq!(enc(&c, Value::Int(-32768)).unwrap(), "-32768");
        assert!(enc(&c, Value::Int(32768)).is_err());
        let c = Conversion::Integer {
            min: 0,
            max: u64::MAX as i128,
        };
        assert_eq!(
            enc(&c, Value::UInt(u64::MAX)).unwrap(),
            "18446744073709551615"
        );
    }

    #[test]
    fn null_is_an_empty_unquoted_field_and_empty_text_is_quoted() {
        let c = Conversion::Text { max_chars: None };
        assert_eq!(enc(&c, Value::NULL).unwrap(), "");
        assert_eq!(enc(&c, Value::Bytes(vec![])).unwrap(), "\"\"");
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let c = Conversion::Text { max_chars: Some(2) };
        assert_eq!(enc(&c, Value::Bytes("éé".into())).unwrap(), "éé");
        assert!(enc(&c, Value::Bytes("ééé".into())).is_err());
    }

    #[test]
    fn nul_bytes_are_refused_not_stripped() {
        let c = Conversion::Text { max_chars: None };
        assert!(enc(&c, Value::Bytes(b"a\0b".to_vec()))
            .unwrap_err()
            .reason
            .contains("NUL"));
    }

    #[test]
    fn uuids_are_validated_and_lowercased() {
        let c = Conversion::TextToUuid;
        assert_eq!(
            enc(
                &c,
                Value::Bytes(b"0149CE5F-76A8-4EFE-B2E3-431B8C6CCEB6".to_vec())
            )
            .unwrap(),
            "0149ce5f-76a8-4efe-b2e3-431b8c6cceb6"
        );
        assert!(enc(&c, Value::Bytes(b"not-a-uuid".to_vec())).is_err());
        assert!(enc(&c, Value::Bytes(b"".to_vec())).is_err());
        // A non-hex digit anywhere, a dash out of place, 32 bare digits.
        for bad in [
            "0149ce5f-76a8-4efe-b2e3-431b8c6cceg6",
            "g149ce5f-76a8-4efe-b2e3-431b8c6cceb6",
            "0149ce5f76a8-4efe-b2e3-431b8c6cceb6-",
            "0149ce5f-76a8-4efe-b2e3-431b8c6cce\u{e9}",
        ] {
            assert!(
                enc(&c, Value::Bytes(bad.as_bytes().to_vec())).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            enc(
                &c,
                Value::Bytes(b"0149CE5F76A84EFEB2E3431B8C6CCEB6".to_vec())
            )
            .unwrap(),
            "0149ce5f-76a8-4efe-b2e3-431b8c6cceb6"
        );
        let raw: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            enc(&Conversion::BinaryToUuid, Value::Bytes(raw)).unwrap(),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
    }

    #[test]
    fn dates_and_timestamps_render_exactly() {
        let ts = Value::Date(2013, 10, 7, 8, 23, 19, 120);
        let timestamp = |zone, precision| Conversion::Timestamp {
            zone,
            precision,
            zero_dates: ZeroDates::Error,
        };
        assert_eq!(
            enc(&timestamp(Zone::Naive, 6), ts.clone()).unwrap(),
            "2013-10-07 08:23:19.000120"
        );
        assert_eq!(
            enc(&timestamp(Zone::Utc, 6), ts.clone()).unwrap(),
            "2013-10-07 08:23:19.000120+00"
        );
        assert_eq!(
            enc(
                &timestamp(Zone::Named("Europe/Amsterdam".into()), 6),
                ts.clone()
            )
            .unwrap(),
            "2013-10-07 08:23:19.000120 Europe/Amsterdam"
        );
        assert!(enc(&timestamp(Zone::Naive, 3), ts)
            .unwrap_err()
            .reason
            .contains("precision"));
        let date = Conversion::Date {
            zero_dates: ZeroDates::Error,
        };
        let zero = enc(&date, Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap_err();
        assert!(zero.reason.contains("zero date"));
        assert_eq!(zero.hint, Some("--zero-dates null writes NULL instead"));
        assert!(enc(&date, Value::Date(2021, 2, 29, 0, 0, 0, 0)).is_err());
        let null = Conversion::Date {
            zero_dates: ZeroDates::Null,
        };
        assert_eq!(enc(&null, Value::Date(2021, 0, 1, 0, 0, 0, 0)).unwrap(), "");
    }

    #[test]
    fn bytea_is_hex() {
        assert_eq!(
            enc(&Conversion::Bytea, Value::Bytes(vec![0, 0xff, b','])).unwrap(),
            "\\x00ff2c"
        );
    }

    #[test]
    fn json_is_validated() {
        let c = Conversion::Json { jsonb: true };
        assert_eq!(enc(&c, Value::Bytes(b"{}".to_vec())).unwrap(), "{}");
        assert!(enc(&c, Value::Bytes(b"{".to_vec())).is_err());
        assert!(enc(&c, Value::Bytes(br#"{"a":"\u0000"}"#.to_vec())).is_err());
    }

    #[test]
    fn time_beyond_a_day_needs_an_interval() {
        let t = Value::Time(false, 1, 2, 3, 4, 0);
        assert!(enc(&Conversion::Time { precision: 6 }, t.clone()).is_err());
        assert_eq!(enc(&Conversion::Interval, t).unwrap(), "26:03:04");
    }

    #[test]
    fn a_time_writes_its_fraction_only_when_it_has_one() {
        let spelled = |hours, us| {
            let mut out = Vec::new();
            push_time(hours, 3, 4, us, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(spelled(7, 0), "07:03:04");
        assert_eq!(spelled(7, 120), "07:03:04.000120");
        assert_eq!(spelled(838, 0), "838:03:04");
        assert_eq!(spelled(838, 999_999), "838:03:04.999999");
    }

    #[test]
    fn sets_become_text_arrays() {
        assert_eq!(
            enc(
                &Conversion::SetToArray { max_chars: None },
                Value::Bytes(b"a,b".to_vec())
            )
            .unwrap(),
            "\"{\"\"a\"\",\"\"b\"\"}\""
        );
        assert_eq!(
            enc(
                &Conversion::SetToArray { max_chars: None },
                Value::Bytes(b"".to_vec())
            )
            .unwrap(),
            "{}"
        );
        let short = Conversion::SetToArray { max_chars: Some(3) };
        assert!(enc(&short, Value::Bytes("abc,déf".as_bytes().to_vec())).is_ok());
        let refused = enc(&short, Value::Bytes(b"ab,abcd".to_vec())).unwrap_err();
        assert!(refused.reason.contains("\"abcd\" is longer"), "{refused:?}");
    }

    #[test]
    fn decimals_keep_their_digits() {
        let c = Conversion::Decimal {
            max_integer_digits: Some(3),
        };
        assert_eq!(
            enc(&c, Value::Bytes(b"-123.4500".to_vec())).unwrap(),
            "-123.4500"
        );
        assert!(enc(&c, Value::Bytes(b"1234.5".to_vec())).is_err());
    }

    #[test]
    fn excerpts_are_short() {
        let long = Value::Bytes(vec![b'x'; 10_000]);
        assert!(excerpt(&ValueRef::from(&long)).chars().count() < 70);
    }
}
