//! The Postgres CSV dialect, written by hand because the `csv` crate cannot tell NULL
//! from the empty string: NULL is an unquoted empty field, `""` is the empty string.

/// Appends one text field, quoting it when Postgres would otherwise misread it.
#[inline]
pub fn push_field(out: &mut Vec<u8>, value: &[u8]) {
    if needs_quotes(value) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        let mut start = 0;
        for (i, &b) in value.iter().enumerate() {
            if b == b'"' {
                out.extend_from_slice(&value[start..=i]);
                out.push(b'"');
                start = i + 1;
            }
        }
        out.extend_from_slice(&value[start..]);
        out.push(b'"');
    } else {
        out.extend_from_slice(value);
    }
}

/// Empty (would read as NULL), delimiter, quote, line breaks, a backslash (`\.` alone on a
/// line ends COPY data), and leading/trailing spaces (kept by Postgres, but not by every
/// other CSV reader an operator may point at the files).
#[inline]
fn needs_quotes(value: &[u8]) -> bool {
    match (value.first(), value.last()) {
        (None, _) => true,
        (Some(b' '), _) | (_, Some(b' ')) => true,
        _ => value
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r' | b'\\')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> String {
        let mut out = Vec::new();
        push_field(&mut out, s.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn empty_string_is_quoted_so_it_is_not_null() {
        assert_eq!(field(""), "\"\"");
    }

    #[test]
    fn quotes_double_and_specials_are_quoted() {
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("a\nb"), "\"a\nb\"");
        assert_eq!(field("\\."), "\"\\.\"");
        assert_eq!(field(" x"), "\" x\"");
    }

    #[test]
    fn null_lookalikes_stay_plain_text() {
        assert_eq!(field("NULL"), "NULL");
        assert_eq!(field("\\N"), "\"\\N\"");
    }
}
