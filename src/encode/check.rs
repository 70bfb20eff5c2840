//! The checks a value passes before its text is written: a decimal's integer digits, a
//! time's fractional digits, a network address; and the excerpt of a refused value.

use crate::source::row::ValueRef;

use super::read::Refusal;

type Outcome = Result<(), Refusal>;

/// An IP address with an optional prefix length (`10.0.0.0/8`, `::1`); for a cidr column
/// no address bit may be set past the prefix, which Postgres would refuse for the chunk.
pub(super) fn check_inet(text: &str, cidr: bool) -> Outcome {
    let invalid = |why: &str| Err(Refusal::new(format!("not an IP address{why}")));
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(address) = address.trim().parse::<std::net::IpAddr>() else {
        return invalid("");
    };
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix.map(str::parse::<u32>) {
        None => bits,
        Some(Ok(p)) if p <= bits => p,
        Some(_) => return invalid(": the prefix length is not 0 to 32 (IPv4) or 128 (IPv6)"),
    };
    if cidr {
        let value: u128 = match address {
            std::net::IpAddr::V4(a) => u32::from(a) as u128,
            std::net::IpAddr::V6(a) => u128::from(a),
        };
        let host_bits = bits - prefix;
        if host_bits > 0 && value & ((1u128 << host_bits) - 1) != 0 {
            return Err(Refusal::new(
                "not a network: bits are set past the prefix length (a cidr value is a network address)",
            ));
        }
    }
    Ok(())
}

/// Postgres would round fractional seconds beyond the column's precision: refused instead.
pub(super) fn check_precision(us: u32, precision: u8) -> Outcome {
    let unit = 10u32.pow(6 - precision.min(6) as u32);
    if !us.is_multiple_of(unit) {
        return Err(Refusal::new(format!(
            "fractional seconds beyond the target's precision of {precision} digits would be rounded"
        )));
    }
    Ok(())
}

/// Decimal text from MySQL is already canonical (`-123.4500`); check only that its integer
/// digits fit, since Postgres would otherwise fail the whole COPY without naming the row.
pub(super) fn check_decimal(text: &[u8], max_integer_digits: Option<u32>) -> Outcome {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let integer_part = digits.split(|&b| b == b'.').next().unwrap_or(b"");
    if integer_part.is_empty() || !digits.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        return Err(Refusal::new("not a decimal number"));
    }
    if let Some(max) = max_integer_digits {
        let significant = integer_part.iter().skip_while(|&&b| b == b'0').count();
        if significant > max as usize {
            return Err(Refusal::new(format!(
                "{significant} integer digits do not fit the target's {max}"
            )));
        }
    }
    Ok(())
}

/// A short, printable excerpt of a value for error messages: at most 64 characters.
pub fn excerpt(value: &ValueRef) -> String {
    const MAX: usize = 64;
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Bytes(b) => {
            let text = String::from_utf8_lossy(&b[..b.len().min(4 * MAX)]);
            let mut shown: String = text.chars().take(MAX).collect();
            if text.chars().count() > MAX || b.len() > 4 * MAX {
                shown.push('…');
            }
            format!("{shown:?}")
        }
        ValueRef::Int(n) => n.to_string(),
        ValueRef::UInt(n) => n.to_string(),
        ValueRef::Float(f) => f.to_string(),
        ValueRef::Double(f) => f.to_string(),
        // A date alone when the time of day is zero (a `date` column sends none),
        // fractions of a second only when there are any.
        ValueRef::Date(y, m, d, 0, 0, 0, 0) => format!("{y:04}-{m:02}-{d:02}"),
        ValueRef::Date(y, m, d, hh, mm, ss, 0) => {
            format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
        }
        ValueRef::Date(y, m, d, hh, mm, ss, us) => {
            format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{us:06}")
        }
        ValueRef::Time(neg, days, hh, mm, ss, us) => format!(
            "{}{}:{mm:02}:{ss:02}.{us:06}",
            if *neg { "-" } else { "" },
            days * 24 + *hh as u32
        ),
    }
}
