//! JSON validation as Postgres does it, written by hand: serde_json stops at 128 levels of
//! nesting, Postgres does not, so a recursive parser would refuse valid data. This one keeps
//! an explicit stack and accepts exactly RFC 8259, plus Postgres' escape rules: `json` checks
//! only the syntax of `\uXXXX`; `jsonb` decodes it, so its surrogate escapes must pair up and
//! `\u0000` is refused.

use super::word;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value must come (top level, after `:`, after `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrEnd,
    /// Just after `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object.
    Key,
    /// After a value: `,`, the container's end, or (at top level) nothing more.
    AfterValue,
}

/// Checks `text` is one JSON value; the error says what is wrong and at which byte.
pub fn validate(text: &[u8], jsonb: bool) -> Result<(), String> {
    let mut stack: Vec<Container> = Vec::new();
    let mut state = State::Value;
    let mut i = 0;
    let err = |what: &str, at: usize| Err(format!("not valid JSON: {what} at byte {at}"));
    loop {
        while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        let Some(&b) = text.get(i) else {
            return if state == State::AfterValue && stack.is_empty() {
                Ok(())
            } else {
                err("unexpected end", i)
            };
        };
        match state {
            State::AfterValue => {
                match (stack.last(), b) {
                    (None, _) => return err("text after the value", i),
                    (Some(Container::Object), b',') => state = State::Key,
                    (Some(Container::Array), b',') => state = State::Value,
                    (Some(Container::Object), b'}') | (Some(Container::Array), b']') => {
                        stack.pop();
                    }
                    _ => return err("expected `,` or the end of the container", i),
                }
                i += 1;
            }
            State::KeyOrEnd | State::Key => {
                if b == b'}' && state == State::KeyOrEnd {
                    stack.pop();
                    state = State::AfterValue;
                    i += 1;
                    continue;
                }
                if b != b'"' {
                    return err("expected a string key", i);
                }
                i = string(text, i, jsonb)?;
                while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                if text.get(i) != Some(&b':') {
                    return err("expected `:`", i);
                }
                i += 1;
                state = State::Value;
            }
            State::Value | State::ValueOrEnd => {
                if b == b']' && state == State::ValueOrEnd {
                    stack.pop();
                    state = State::AfterValue;
                    i += 1;
                    continue;
                }
                match b {
                    b'{' => {
                        stack.push(Container::Object);
                        state = State::KeyOrEnd;
                        i += 1;
                    }
                    b'[' => {
                        stack.push(Container::Array);
                        state = State::ValueOrEnd;
                        i += 1;
                    }
                    b'"' => {
                        i = string(text, i, jsonb)?;
                        state = State::AfterValue;
                    }
                    b't' | b'f' | b'n' => {
                        let word: &[u8] = match b {
                            b't' => b"true",
                            b'f' => b"false",
                            _ => b"null",
                        };
                        if !text[i..].starts_with(word) {
                            return err("unknown literal", i);
                        }
                        i += word.len();
                        state = State::AfterValue;
                    }
                    b'-' | b'0'..=b'9' => {
                        i = number(text, i)?;
                        state = State::AfterValue;
                    }
                    _ => return err("expected a value", i),
                }
            }
        }
    }
}

/// Skips the string starting at the quote `start`; returns the index after its end quote.
fn string(text: &[u8], start: usize, jsonb: bool) -> Result<usize, String> {
    let mut i = start + 1;
    let mut pending_high_surrogate = false;
    while i < text.len() {
        if !pending_high_surrogate {
            // Most of a string is plain bytes: skipped in a tight loop (the match below
            // per byte made this function 5% of the export's CPU on JSON-heavy tables).
            i = skip_plain(text, i);
            if i == text.len() {
                break;
            }
        }
        let b = text[i];
        if pending_high_surrogate && !(b == b'\\' && text.get(i + 1) == Some(&b'u')) {
            return Err(format!(
                "not valid JSON: a Unicode high surrogate must be followed by a low surrogate at byte {i}"
            ));
        }
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => match text.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = text
                        .get(i + 2..i + 6)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                    let Some(hex) = hex else {
                        return Err(format!("not valid JSON: bad \\u escape at byte {i}"));
                    };
                    let code = u16::from_str_radix(std::str::from_utf8(hex).expect("hex"), 16)
                        .expect("hex");
                    if !jsonb {
                        i += 6;
                        continue; // json keeps the text: any four hex digits will do
                    }
                    match code {
                            0xD800..=0xDBFF if pending_high_surrogate => {
                                return Err(format!("not valid JSON: two high surrogates in a row at byte {i}"))
                            }
                            0xD800..=0xDBFF => pending_high_surrogate = true,
                            0xDC00..=0xDFFF if !pending_high_surrogate => {
                                return Err(format!(
                                    "not valid JSON: a Unicode low surrogate must follow a high surrogate at byte {i}"
                                ))
                            }
                            0xDC00..=0xDFFF => pending_high_surrogate = false,
                            _ if pending_high_surrogate => {
                                return Err(format!(
                                    "not valid JSON: a Unicode high surrogate must be followed by a low surrogate at byte {i}"
                                ))
                            }
                            0 if jsonb => {
                                return Err("JSON holds \\u0000, which Postgres jsonb cannot store".to_string())
                            }
                            _ => {}
                        }
                    i += 6;
                }
                _ => return Err(format!("not valid JSON: bad escape at byte {i}")),
            },
            0..=0x1f => {
                return Err(format!(
                    "not valid JSON: control character in a string at byte {i}"
                ))
            }
            _ => i += 1,
        }
    }
    Err(format!(
        "not valid JSON: unterminated string at byte {start}"
    ))
}

/// The index of the first byte from `i` on that is not [`PLAIN`], or `text.len()`: eight
/// bytes at a time, then byte by byte.
fn skip_plain(text: &[u8], mut i: usize) -> usize {
    while let Some(x) = text.get(i..).and_then(word::first_word) {
        let special =
            word::bytes_below(x, 0x20) | word::bytes_equal(x, b'"') | word::bytes_equal(x, b'\\');
        if special != 0 {
            return i + word::first_flagged(special);
        }
        i += 8;
    }
    while i < text.len() && PLAIN[text[i] as usize] {
        i += 1;
    }
    i
}

/// Bytes that stand for themselves inside a JSON string: not a control character, `"` or `\\`.
const PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        plain[b] = false;
        b += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};

/// Skips the number starting at `start`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number(text: &[u8], start: usize) -> Result<usize, String> {
    let bad = || Err(format!("not valid JSON: bad number at byte {start}"));
    let digits = |mut i: usize| {
        let from = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - from)
    };
    let mut i = start;
    if text[i] == b'-' {
        i += 1;
    }
    match text.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i).0,
        _ => return bad(),
    }
    if text.get(i) == Some(&b'.') {
        let (end, n) = digits(i + 1);
        if n == 0 {
            return bad();
        }
        i = end;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (end, n) = digits(i);
        if n == 0 {
            return bad();
        }
        i = end;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::{skip_plain, validate, PLAIN};

    #[test]
    fn accepts_rfc_8259() {
        for ok in [
            "{}",
            "[]",
            " \"s\" ",
            "0",
            "-0.5e-10",
            "12345678901234567890123456789",
            "true",
            "null",
            r#"{"a":[1,{"b":null}],"c":"\u00e9\ud83d\ude00\n"}"#,
            "[[],{},\"\"]",
        ] {
            assert_eq!(validate(ok.as_bytes(), true), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "tru",
            "\"\t\"",
            "[1] 2",
            "{'a':1}",
            "\"\\x\"",
            "\"\\u12\"",
            "NaN",
        ] {
            assert!(validate(bad.as_bytes(), false).is_err(), "{bad:?}");
        }
    }

    /// Found by the property test against Postgres: json accepts a lone surrogate escape,
    /// only jsonb decodes escapes and refuses it.
    #[test]
    fn lone_surrogates_are_refused_by_jsonb_only() {
        for text in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83d\ud83d""#,
        ] {
            assert!(validate(text.as_bytes(), false).is_ok(), "json {text}");
            assert!(validate(text.as_bytes(), true).is_err(), "jsonb {text}");
        }
        assert!(validate(br#""\ud83d\ude00""#, true).is_ok());
    }

    #[test]
    fn nul_escape_is_refused_by_jsonb_only() {
        assert!(validate(br#""\u0000""#, false).is_ok());
        assert!(validate(br#""\u0000""#, true).is_err());
    }

    #[test]
    fn plain_bytes_end_at_the_first_special_wherever_it_falls() {
        // Every string of up to 10 bytes over the specials, their neighbours a borrow away
        // and high bytes: the word-at-a-time skip stops where the byte loop does.
        let alphabet = [b'"', b'\\', 0x1F, b' ', b'#', b']', 0xA2, 0xDC];
        for len in 0..=7u32 {
            for pattern in 0..8usize.pow(len) {
                let text: Vec<u8> = (0..len)
                    .map(|i| alphabet[pattern / 8usize.pow(i) % 8])
                    .collect();
                let mut padded = vec![b'a'; 5];
                padded.extend_from_slice(&text);
                for start in 0..padded.len() {
                    let expected = (start..padded.len())
                        .find(|&j| !PLAIN[padded[j] as usize])
                        .unwrap_or(padded.len());
                    assert_eq!(
                        skip_plain(&padded, start),
                        expected,
                        "{padded:?} from {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn depth_is_not_limited() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(validate(deep.as_bytes(), true), Ok(()));
    }
}
