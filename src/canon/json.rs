//! JSON in one canonical spelling, written by hand (serde_json stops at 128 levels of
//! nesting and would need its `arbitrary_precision` feature, which changes how the rest of
//! the crate reads numbers): objects with sorted keys, exact numbers, one escaping.

use std::borrow::Cow;
use std::ops::Range;

use super::number::{canonical_decimal, push_plain_decimal};

/// A MySQL set (`a,b`) as a JSON array of its labels, the form the target's text[] is
/// compared in.
pub(super) fn set_as_json(set: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(set);
    let labels: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').collect()
    };
    let array = serde_json::to_string(&labels).expect("strings serialize");
    json(array.as_bytes(), out);
}

/// Canonical JSON: objects with their keys sorted (the last of duplicate keys kept, as
/// jsonb does), numbers exact without trailing zeros, strings with one escaping, no
/// white space. Text that does not parse (or nests beyond [`MAX_DEPTH`]) is compared as
/// it is.
///
/// Written as it is parsed, with no tree: each object's members are written in the order
/// they come, then put in key order in place. Strings without escapes are not copied
/// before they are written (this runs on every JSON value `migrate` loads and `verify`
/// reads).
pub fn json(text: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut parser = JsonParser { text, at: 0 };
    let parsed = parser.value(0, out).is_some() && {
        parser.skip_space();
        parser.at == text.len()
    };
    if !parsed {
        out.truncate(start);
        out.push(b'!');
        out.extend_from_slice(text);
    }
}

/// Deeper JSON is compared as text: the parser recurses, and must not overflow a stack.
const MAX_DEPTH: usize = 1000;

/// A string in its one escaping (serde_json's: `"`, `\` and control characters escaped,
/// the rest as it is).
fn push_json_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("strings serialize");
}

struct JsonParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> JsonParser<'a> {
    fn skip_space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_space();
        if self.text.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            out.extend_from_slice(word);
            Some(())
        } else {
            None
        }
    }

    /// Writes the value at the cursor in canonical form; `None` if it does not parse
    /// (`out` then holds a part of it, which [`json`] drops).
    fn value(&mut self, depth: usize, out: &mut Vec<u8>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match *self.text.get(self.at)? {
            b'n' => self.literal(b"null", out),
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'"' => {
                push_json_string(&self.string()?, out);
                Some(())
            }
            b'[' => {
                self.at += 1;
                out.push(b'[');
                if !self.eat(b']') {
                    loop {
                        self.value(depth + 1, out)?;
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                        out.push(b',');
                    }
                }
                out.push(b']');
                Some(())
            }
            b'{' => {
                self.at += 1;
                self.object(depth, out)
            }
            _ => {
                let start = self.at;
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    self.at += 1;
                }
                let number = &self.text[start..self.at];
                if !push_plain_decimal(number, out) {
                    out.extend_from_slice(canonical_decimal(number)?.as_bytes());
                }
                Some(())
            }
        }
    }

    /// The members of the object whose `{` was just read: each written as `"key":value`
    /// after the others, then ordered by key (the last of equal keys kept).
    fn object(&mut self, depth: usize, out: &mut Vec<u8>) -> Option<()> {
        out.push(b'{');
        let start = out.len();
        // Each member's key, and where its `"key":value` was written (between commas).
        let mut members: Vec<(Cow<'a, str>, Range<usize>)> = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.skip_space();
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                if !members.is_empty() {
                    out.push(b',');
                }
                let member_start = out.len();
                push_json_string(&key, out);
                out.push(b':');
                self.value(depth + 1, out)?;
                members.push((key, member_start..out.len()));
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        // Members already in order, each key once (one member, or keys written sorted),
        // stay where they were written: moving them would copy everything nested in them
        // again, once per level of nesting.
        if !members.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            // A stable sort keeps equal keys in the order they came: the last is kept.
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let kept = |i: usize| members.get(i + 1).is_none_or(|next| next.0 != members[i].0);
            let written = out.split_off(start);
            let mut first = true;
            for (i, (_, range)) in members.iter().enumerate() {
                if !kept(i) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&written[range.start - start..range.end - start]);
            }
        }
        out.push(b'}');
        Some(())
    }

    /// A string at the cursor, its escapes decoded (borrowed when it has none); a lone
    /// surrogate escape is kept as written (json accepts it, and it must still compare
    /// equal to itself). Text that is not UTF-8 does not parse.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.text.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut decoded: Option<String> = None;
        loop {
            // A run without quote or backslash, as it is: neither byte occurs inside a
            // UTF-8 sequence, so the run is UTF-8 exactly when each sequence in it is.
            let rest = &self.text[self.at..];
            let end = memchr::memchr2(b'"', b'\\', rest)?;
            let run = std::str::from_utf8(&rest[..end]).ok()?;
            self.at += end + 1;
            if rest[end] == b'"' {
                return Some(match decoded {
                    None => Cow::Borrowed(run),
                    Some(mut s) => {
                        s.push_str(run);
                        Cow::Owned(s)
                    }
                });
            }
            let out = decoded.get_or_insert_with(String::new);
            out.push_str(run);
            let e = *self.text.get(self.at)?;
            self.at += 1;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let unit = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&unit)
                        && self.text[self.at..].starts_with(b"\\u")
                    {
                        let save = self.at;
                        self.at += 2;
                        match self.hex4() {
                            Some(low) if (0xDC00..0xE000).contains(&low) => char::from_u32(
                                0x10000 + ((unit as u32 - 0xD800) << 10) + (low as u32 - 0xDC00),
                            ),
                            _ => {
                                self.at = save;
                                None
                            }
                        }
                    } else {
                        char::from_u32(unit as u32)
                    };
                    match c {
                        Some(c) => out.push(c),
                        None => out.push_str(&format!("\\u{unit:04x}")),
                    }
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = std::str::from_utf8(self.text.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u16::from_str_radix(digits, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon_json(text: &str) -> String {
        let mut out = Vec::new();
        json(text.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_compares_by_content_not_by_spelling() {
        assert_eq!(
            canon_json(r#"{ "b": [1.50, 1e2, -0], "a": "\u00e9\"" }"#),
            r#"{"a":"é\"","b":[1.5,100,0]}"#
        );
        assert_eq!(canon_json(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
        assert_ne!(canon_json(r#"{"a":1}"#), canon_json(r#"{"a":"1"}"#));
        assert_eq!(canon_json("[\"\\ud83d\\ude00\"]"), "[\"😀\"]");
        assert_eq!(canon_json("not json"), "!not json");
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert_eq!(canon_json(&deep), deep);
        let deep = format!("{}1{}", r#"{"b":0,"a":"#.repeat(300), "}".repeat(300));
        let sorted = format!("{}1{}", r#"{"a":"#.repeat(300), r#","b":0}"#.repeat(300));
        assert_eq!(canon_json(&deep), sorted);
        assert_eq!(canon_json(&sorted), sorted);
    }

    #[test]
    fn text_that_is_not_json_is_compared_as_it_is() {
        assert_eq!(canon_json(r#"{"a":1,}"#), r#"!{"a":1,}"#);
        assert_eq!(canon_json(r#"{"a" 1}"#), r#"!{"a" 1}"#);
        assert_eq!(canon_json(r#"["\q"]"#), r#"!["\q"]"#);
        assert_eq!(canon_json(r#"[1] x"#), "![1] x");
        let mut out = Vec::new();
        json(b"[\"\xc3\"]", &mut out);
        assert_eq!(out, b"![\"\xc3\"]");
        // A lone surrogate is kept as it was written, and still equal to itself.
        assert_eq!(canon_json(r#"["\ud800x"]"#), r#"["\\ud800x"]"#);
        assert_eq!(
            canon_json(r#"{"k":[{"b":1,"a":2}],"a":"x"}"#),
            r#"{"a":"x","k":[{"a":2,"b":1}]}"#
        );
    }

    /// A JSON document as a structure, to spell in several ways.
    #[derive(Debug, Clone)]
    enum Doc {
        Null,
        Bool(bool),
        Number(i64),
        Str(String),
        Array(Vec<Doc>),
        Object(Vec<(String, Doc)>),
    }

    fn doc() -> impl proptest::strategy::Strategy<Value = Doc> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Doc::Null),
            any::<bool>().prop_map(Doc::Bool),
            any::<i64>().prop_map(Doc::Number),
            any::<String>().prop_map(Doc::Str),
            // Few distinct keys, so that objects have duplicates.
            "[a-c\"\\\\é]{0,2}".prop_map(Doc::Str),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Doc::Array),
                proptest::collection::vec(("[a-c\"\\\\é\n]{0,2}|\\PC{0,4}", inner), 0..6)
                    .prop_map(Doc::Object),
            ]
        })
    }

    /// The canonical spelling, from its definition: keys sorted as Rust sorts strings,
    /// the last of equal keys kept, serde_json's escaping.
    fn expected(doc: &Doc) -> String {
        match doc {
            Doc::Null => "null".into(),
            Doc::Bool(b) => b.to_string(),
            Doc::Number(n) => n.to_string(),
            Doc::Str(s) => serde_json::to_string(s).unwrap(),
            Doc::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(expected).collect::<Vec<_>>().join(",")
                )
            }
            Doc::Object(members) => {
                let sorted: std::collections::BTreeMap<&String, &Doc> =
                    members.iter().map(|(k, v)| (k, v)).collect();
                let members: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), expected(v)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
        }
    }

    /// Another spelling of the same document: white space everywhere, members in the order
    /// given, every character of a string but letters and digits as a `\u` escape, numbers
    /// with trailing zeros or an exponent.
    fn loose(doc: &Doc) -> String {
        let string = |s: &str| {
            let mut out = String::from("\"");
            for c in s.chars() {
                if c.is_ascii_alphanumeric() {
                    out.push(c);
                } else {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
            out + "\""
        };
        match doc {
            Doc::Null => " null ".into(),
            Doc::Bool(b) => format!(" {b}\n"),
            Doc::Number(n) if n % 2 == 0 => format!(" {n}.000 "),
            Doc::Number(n) => format!("\t{n}0e-1"),
            Doc::Str(s) => string(s),
            Doc::Array(items) => {
                format!(
                    "[ {} ]",
                    items.iter().map(loose).collect::<Vec<_>>().join(" ,\r\n")
                )
            }
            Doc::Object(members) => {
                let members: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!(" {} : {}", string(k), loose(v)))
                    .collect();
                format!("{{ {} }}", members.join(" , "))
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn every_spelling_of_a_document_has_its_one_canonical_form(doc in doc()) {
            let expected = expected(&doc);
            proptest::prop_assert_eq!(canon_json(&expected), expected.clone());
            proptest::prop_assert_eq!(canon_json(&loose(&doc)), expected);
        }
    }
}
