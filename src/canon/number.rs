//! Exact decimals in one canonical spelling: digits without leading zeros, trailing
//! fractional zeros or exponent, so `12.50`, `012.5` and `1.25E1` compare equal; and
//! integers, in the one spelling both the CSV files and the digests use.

/// `n` in decimal, through `i64` where it fits: itoa formats an `i128` with 128-bit
/// divisions, and every integer of every row went that way (1% of the tool's CPU).
pub fn format_integer(n: i128, buffer: &mut itoa::Buffer) -> &str {
    match i64::try_from(n) {
        Ok(n) => buffer.format(n),
        Err(_) => buffer.format(n),
    }
}

/// An exact decimal as digits without leading zeros, without trailing fractional zeros,
/// without exponent: `-012.50` and `-1.25E1` are both `-12.5`; `-0.0` is `0`.
pub fn push_decimal(text: &[u8], out: &mut Vec<u8>) {
    if push_plain_decimal(text, out) {
        return;
    }
    let Some(canonical) = canonical_decimal(text) else {
        out.extend_from_slice(text); // not a number: compared as it is
        return;
    };
    out.extend_from_slice(canonical.as_bytes());
}

/// The common case without allocating: `-?digits(.digits)?` as MySQL and Postgres print
/// decimals. Returns `false` (writing nothing) for anything else.
pub(super) fn push_plain_decimal(text: &[u8], out: &mut Vec<u8>) -> bool {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let dot = body.iter().position(|&b| b == b'.');
    let (integer, fraction) = match dot {
        Some(at) => (&body[..at], &body[at + 1..]),
        None => (body, &b""[..]),
    };
    if integer.is_empty() || !integer.iter().chain(fraction).all(u8::is_ascii_digit) {
        return false;
    }
    let integer = &integer[integer.iter().take_while(|&&b| b == b'0').count()..];
    let fraction =
        &fraction[..fraction.len() - fraction.iter().rev().take_while(|&&b| b == b'0').count()];
    if integer.is_empty() && fraction.is_empty() {
        out.push(b'0');
        return true;
    }
    if negative {
        out.push(b'-');
    }
    if integer.is_empty() {
        out.push(b'0');
    }
    out.extend_from_slice(integer);
    if !fraction.is_empty() {
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
    true
}

pub(super) fn canonical_decimal(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], body[at + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if integer.is_empty() && fraction.is_empty()
        || !integer
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the decimal point falls among them.
    let digits: String = format!("{integer}{fraction}");
    let point = integer.len() as i64 + exponent;
    let digits = digits.trim_start_matches('0');
    let leading_zeros = (integer.len() + fraction.len() - digits.len()) as i64;
    let point = point - leading_zeros;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".to_string());
    }
    if point.abs() > 100_000 {
        return None; // absurd exponents: compared as written
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let n = digits.len() as i64;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(digits);
    } else if point >= n {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (point - n) as usize));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_take_the_short_path_to_the_same_form() {
        for text in [
            "-012.50",
            "0.000",
            "-0.0",
            "120",
            "0.05",
            "-7",
            "00",
            "18446744073709551615.10",
        ] {
            let (mut short, mut long) = (Vec::new(), Vec::new());
            assert!(push_plain_decimal(text.as_bytes(), &mut short), "{text}");
            long.extend_from_slice(canonical_decimal(text.as_bytes()).unwrap().as_bytes());
            assert_eq!(short, long, "{text}");
        }
        assert!(!push_plain_decimal(b"1e5", &mut Vec::new()));
    }

    #[test]
    fn decimals_compare_by_value() {
        let d = |t: &str| canonical_decimal(t.as_bytes());
        assert_eq!(d("-012.50").as_deref(), Some("-12.5"));
        assert_eq!(d("-1.25E1").as_deref(), Some("-12.5"));
        assert_eq!(d("0.000").as_deref(), Some("0"));
        assert_eq!(d("-0.0").as_deref(), Some("0"));
        assert_eq!(
            d("18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(d("1E-3").as_deref(), Some("0.001"));
        assert_eq!(d("120").as_deref(), Some("120"));
        assert_eq!(d("abc"), None);
    }

    #[test]
    fn integers_are_spelled_the_same_through_i64_and_beyond_it() {
        let mut buffer = itoa::Buffer::new();
        for n in [
            0i128,
            -1,
            i64::MAX as i128,
            i64::MIN as i128,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            u64::MAX as i128,
        ] {
            assert_eq!(format_integer(n, &mut buffer), n.to_string());
        }
    }
}
