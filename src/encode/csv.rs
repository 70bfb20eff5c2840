//! The Postgres CSV dialect, written by hand because the `csv` crate cannot tell NULL
//! from the empty string: NULL is an unquoted empty field, `""` is the empty string.

use super::word;

/// Appends one text field, quoting it when Postgres would otherwise misread it.
#[inline]
pub fn push_field(out: &mut Vec<u8>, value: &[u8]) {
    if !needs_quotes(value) {
        out.extend_from_slice(value);
        return;
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    push_doubling_quotes(out, value);
    out.push(b'"');
}

/// Appends `value` with its quotes doubled, eight bytes at a time. JSON has a quote every few
/// bytes, where a search for each quote (`doubled_quotes`) cost more than the copy: 10% of the
/// tool's CPU on Alkemio's authorization rules.
fn push_doubling_quotes(out: &mut Vec<u8>, value: &[u8]) {
    let mut rest = value;
    while let Some(word) = word::first_word(rest) {
        // The whole word goes out (one store); if it holds a quote, it is cut back to just
        // after its first, and that quote doubled.
        out.extend_from_slice(&rest[..8]);
        let quotes = word::bytes_equal(word, b'"');
        if quotes == 0 {
            rest = &rest[8..];
            continue;
        }
        let first = word::first_flagged(quotes);
        out.truncate(out.len() - 7 + first);
        out.push(b'"');
        rest = &rest[first + 1..];
    }
    for &b in rest {
        out.push(b);
        if b == b'"' {
            out.push(b'"');
        }
    }
}

/// One text field as the pieces `put` gets in order: the value as it is, or quoted with its
/// quotes doubled (a large value goes to its file this way, piece by piece).
#[inline]
pub(crate) fn field_pieces<E>(
    value: &[u8],
    mut put: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    if !needs_quotes(value) {
        return put(value);
    }
    put(b"\"")?;
    doubled_quotes(value, &mut put)?;
    put(b"\"")
}

/// The inside of a quoted field: `value` with its quotes doubled, as pieces for `put`. A
/// value read in slices goes through here slice by slice (a quote is one byte in UTF-8,
/// never part of another character).
#[inline]
pub(crate) fn doubled_quotes<E>(
    value: &[u8],
    mut put: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut start = 0;
    for quote in memchr::memchr_iter(b'"', value) {
        put(&value[start..=quote])?;
        put(b"\"")?;
        start = quote + 1;
    }
    put(&value[start..])
}

/// Empty (would read as NULL), delimiter, quote, line breaks, a backslash (`\.` alone on a
/// line ends COPY data), and leading/trailing spaces (kept by Postgres, but not by every
/// other CSV reader an operator may point at the files).
#[inline]
fn needs_quotes(value: &[u8]) -> bool {
    match (value.first(), value.last()) {
        (None, _) => true,
        (Some(b' '), _) | (_, Some(b' ')) => true,
        // Short values (keys, numbers, uuids) byte by byte; long texts by memchr's
        // vectorised search (the byte loop was 4% of the export's CPU on long texts).
        _ if value.len() < 64 => value
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r' | b'\\')),
        _ => {
            memchr::memchr3(b',', b'"', b'\n', value).is_some()
                || memchr::memchr2(b'\r', b'\\', value).is_some()
        }
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
    fn quotes_double_wherever_they_fall_in_a_word() {
        // Every string of up to 10 bytes (a word and a bit) over a quote, its neighbour `#`
        // (a borrow away) and 0xA2 (a quote with the high bit set): where a
        // word-at-a-time test could go wrong.
        let alphabet = [b'"', b'#', 0xA2];
        for len in 0..=10u32 {
            for pattern in 0..3usize.pow(len) {
                let value: Vec<u8> = (0..len)
                    .map(|i| alphabet[pattern / 3usize.pow(i) % 3])
                    .collect();
                let mut expected = Vec::new();
                for &b in &value {
                    expected.push(b);
                    if b == b'"' {
                        expected.push(b'"');
                    }
                }
                let mut out = b"x".to_vec();
                push_doubling_quotes(&mut out, &value);
                assert_eq!(&out[1..], &expected[..], "{value:?}");
            }
        }
    }

    #[test]
    fn null_lookalikes_stay_plain_text() {
        assert_eq!(field("NULL"), "NULL");
        assert_eq!(field("\\N"), "\"\\N\"");
    }
}

/// The fields of row `n` (1-based) of a CSV chunk file, as text (`None` for NULL); `None`
/// if the file has fewer rows. For naming the row Postgres refused: COPY counts rows.
pub fn row_of_file(path: &std::path::Path, n: u64) -> Option<Vec<Option<String>>> {
    use std::io::BufRead;
    let mut file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let (mut row, mut line, mut quoted) = (1u64, Vec::new(), false);
    loop {
        let mut part = Vec::new();
        if file.read_until(b'\n', &mut part).ok()? == 0 {
            return None;
        }
        quoted ^= part.iter().filter(|&&b| b == b'"').count() % 2 == 1;
        if row == n {
            line.extend_from_slice(&part);
        }
        if !quoted {
            if row == n {
                return Some(split_row(&line));
            }
            row += 1;
        }
    }
}

/// One CSV row's fields: quotes removed and doubled quotes undone; an unquoted empty field
/// is NULL.
fn split_row(line: &[u8]) -> Vec<Option<String>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (mut fields, mut field, mut quoted, mut was_quoted) =
        (Vec::new(), Vec::new(), false, false);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        match (b, quoted) {
            (b'"', true) if line.get(i + 1) == Some(&b'"') => {
                field.push(b'"');
                i += 1;
            }
            (b'"', _) => {
                quoted = !quoted;
                was_quoted = true;
            }
            (b',', false) => {
                let text = String::from_utf8_lossy(&field).into_owned();
                fields.push((was_quoted || !field.is_empty()).then_some(text));
                field.clear();
                was_quoted = false;
            }
            _ => field.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8_lossy(&field).into_owned();
    fields.push((was_quoted || !field.is_empty()).then_some(text));
    fields
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn the_nth_row_is_found_across_quoted_line_breaks() {
        let path = std::env::temp_dir().join(format!("pgclipper-rows-{}.csv", std::process::id()));
        std::fs::write(&path, "1,\"a\nb\"\n2,\n3,\"say \"\"hi\"\"\",\"\"\n").unwrap();
        assert_eq!(row_of_file(&path, 2), Some(vec![Some("2".into()), None]));
        assert_eq!(
            row_of_file(&path, 3),
            Some(vec![
                Some("3".into()),
                Some("say \"hi\"".into()),
                Some(String::new())
            ])
        );
        assert_eq!(row_of_file(&path, 1).unwrap()[1].as_deref(), Some("a\nb"));
        assert_eq!(row_of_file(&path, 4), None);
        std::fs::remove_file(&path).unwrap();
    }
}
