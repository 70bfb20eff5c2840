//! JSON in one canonical spelling, written by hand (serde_json stops at 128 levels of
//! nesting and would need its `arbitrary_precision` feature, which changes how the rest of
//! the crate reads numbers): objects with sorted keys, exact numbers, one escaping.

use super::number::canonical_decimal;

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
pub fn json(text: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut parser = JsonParser { text, at: 0 };
    let parsed = parser.value(0).filter(|_| {
        parser.skip_space();
        parser.at == text.len()
    });
    match parsed {
        Some(value) => value.render(out),
        None => {
            out.truncate(start);
            out.push(b'!');
            out.extend_from_slice(text);
        }
    }
}

/// Deeper JSON is compared as text: the parser recurses, and must not overflow a stack.
const MAX_DEPTH: usize = 1000;

enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(std::collections::BTreeMap<String, Json>),
}

impl Json {
    fn render(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Number(n) => out.extend_from_slice(n.as_bytes()),
            Json::String(s) => push_json_string(s, out),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.render(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_json_string(key, out);
                    out.push(b':');
                    value.render(out);
                }
                out.push(b'}');
            }
        }
    }
}

fn push_json_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::to_string(s)
            .expect("strings serialize")
            .as_bytes(),
    );
}

struct JsonParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
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

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match *self.text.get(self.at)? {
            b'n' => self.literal(b"null").then_some(Json::Null),
            b't' => self.literal(b"true").then_some(Json::Bool(true)),
            b'f' => self.literal(b"false").then_some(Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut members = std::collections::BTreeMap::new();
                if self.eat(b'}') {
                    return Some(Json::Object(members));
                }
                loop {
                    self.skip_space();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    members.insert(key, self.value(depth + 1)?);
                    if self.eat(b'}') {
                        return Some(Json::Object(members));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
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
                canonical_decimal(&self.text[start..self.at]).map(Json::Number)
            }
        }
    }

    /// A string at the cursor, its escapes decoded; a lone surrogate escape is kept as
    /// written (json accepts it, and it must still compare equal to itself).
    fn string(&mut self) -> Option<String> {
        if self.text.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let b = *self.text.get(self.at)?;
            self.at += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
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
                                        0x10000
                                            + ((unit as u32 - 0xD800) << 10)
                                            + (low as u32 - 0xDC00),
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
                _ => {
                    // A UTF-8 sequence: copy its bytes whole.
                    let len = match b {
                        0..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let start = self.at - 1;
                    let bytes = self.text.get(start..start + len)?;
                    out.push_str(std::str::from_utf8(bytes).ok()?);
                    self.at = start + len;
                }
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
    }
}
