//! The decisions `mapping` makes for a column, as plain data: how its values are converted
//! ([`Conversion`]) and how they travel to Postgres ([`Travel`]: a binary COPY [`Wire`], or
//! CSV only). [`crate::encode`] carries them out value by value.

use std::sync::Arc;

/// What a zero date (`0000-00-00`, or month or day 0) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDates {
    /// Stop the run (the default: a zero date has no Postgres equivalent).
    #[default]
    Error,
    /// Write NULL (refused still where the target column is NOT NULL).
    Null,
}

impl std::str::FromStr for ZeroDates {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "error" => Ok(ZeroDates::Error),
            "null" => Ok(ZeroDates::Null),
            _ => Err(format!("{text:?}: expected error or null")),
        }
    }
}

/// How a MySQL date or time of day is placed on the time line for a Postgres column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// Into `timestamp`: the wall-clock value as it is.
    Naive,
    /// Into `timestamptz`, for values that are UTC (MySQL `timestamp`, read with the session
    /// in UTC; `datetime` when the source time zone is UTC).
    Utc,
    /// Into `timestamptz`, for `datetime` values in this source time zone: Postgres applies
    /// the zone's rules (daylight saving included) as it reads the value.
    Named(Arc<str>),
}

/// How one column's values are rendered for its target column. Chosen once per column by
/// [`super::rules::choose`]; applied per value by the encoder.
#[derive(Debug, Clone)]
pub enum Conversion {
    /// Any integer into an integer or numeric column holding `min..=max`.
    Integer {
        min: i128,
        max: i128,
    },
    /// 0 → f, 1 → t; anything else is refused.
    IntegerToBool,
    /// bit(1) into boolean.
    BitToBool,
    /// bit(n) into bit(n)/varbit: the low `width` bits as `0`/`1` text.
    Bits {
        width: u32,
    },
    /// Exact decimal text; `max_integer_digits` from the target's precision − scale.
    Decimal {
        max_integer_digits: Option<u32>,
    },
    Float32,
    Float64,
    /// Text into text/varchar(n)/char(n): valid UTF-8, no NUL, at most `max_chars` characters.
    Text {
        max_chars: Option<u32>,
    },
    /// An enum or text label that must be one of the target enum's labels.
    EnumLabel {
        labels: Arc<Labels>,
    },
    /// Text holding a uuid, validated and lower-cased.
    TextToUuid,
    /// 16 raw bytes as a uuid.
    BinaryToUuid,
    /// Bytes as `\x` hex.
    Bytea,
    /// Text that must be JSON; `jsonb` also refuses `\u0000`, which jsonb cannot store.
    Json {
        jsonb: bool,
    },
    /// Text holding an IP address, with a prefix length for networks; for `cidr`, the bits
    /// past the prefix must be zero.
    Inet {
        cidr: bool,
    },
    /// Text holding a MAC address (six bytes, in any of Postgres' spellings).
    Macaddr,
    /// A MySQL set (`a,b`) into text[] or varchar(n)[] (each label at most `max_chars`).
    SetToArray {
        max_chars: Option<u32>,
    },
    Date {
        zero_dates: ZeroDates,
    },
    /// date/datetime/timestamp into timestamp or timestamptz of `precision` fractional digits.
    Timestamp {
        zone: Zone,
        precision: u8,
        zero_dates: ZeroDates,
    },
    /// time into time(precision): only 00:00:00 to 24:00:00.
    Time {
        precision: u8,
    },
    /// time into interval: MySQL's whole range, ±838:59:59.
    Interval,
    /// year into an integer column.
    Year,
}

/// How one column travels in Postgres' binary COPY format: the receive format of its
/// target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Numeric,
    Float4,
    Float8,
    /// text, varchar, char(n), enum labels, json: the UTF-8 bytes.
    Text,
    /// jsonb: a version byte (1), then the JSON text.
    Jsonb,
    Uuid,
    Bytea,
    /// A one-dimensional array of `element_oid` (text or varchar).
    TextArray {
        element_oid: u32,
    },
    Date,
    /// timestamp and timestamptz: microseconds since 2000-01-01 (UTC for timestamptz).
    Timestamp,
    Time,
    Interval,
    Bits,
}

/// How a column's values reach Postgres. Every rule says it: a rule without a binary form
/// is a visible choice with its reason, never a fallthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Travel {
    Binary(Wire),
    /// Only as CSV text, for this reason; the column's whole table then loads from CSV.
    CsvOnly(&'static str),
}

/// One row of the rule table: the conversion and how its values travel, decided together.
#[derive(Debug, Clone)]
pub struct Rule {
    pub conversion: Conversion,
    pub travel: Travel,
}

impl Rule {
    pub fn binary(conversion: Conversion, wire: Wire) -> Self {
        Rule {
            conversion,
            travel: Travel::Binary(wire),
        }
    }

    pub fn csv_only(conversion: Conversion, why: &'static str) -> Self {
        Rule {
            conversion,
            travel: Travel::CsvOnly(why),
        }
    }
}

/// A target enum's labels, sorted, to look a value up by its bytes: a binary search over a
/// few short labels costs less than hashing each value (SipHash was 2% of the tool's CPU on
/// the two-table bench) and needs no UTF-8 check for a value that matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels(Vec<Box<[u8]>>);

impl Labels {
    pub fn new<'a>(labels: impl IntoIterator<Item = &'a String>) -> Labels {
        let mut labels: Vec<Box<[u8]>> = labels.into_iter().map(|l| l.as_bytes().into()).collect();
        labels.sort_unstable();
        labels.dedup();
        Labels(labels)
    }

    pub fn contains(&self, value: &[u8]) -> bool {
        self.0
            .binary_search_by(|label| (**label).cmp(value))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Labels;

    #[test]
    fn labels_are_found_by_their_exact_bytes() {
        let names = ["view", "login", "logout", "purchase", "Zoë", "login"].map(String::from);
        let labels = Labels::new(&names);
        for name in &names {
            assert!(labels.contains(name.as_bytes()), "{name}");
        }
        for other in ["", "log", "Login", "logins", "Zoe", "view "] {
            assert!(!labels.contains(other.as_bytes()), "{other}");
        }
        assert!(!Labels::new(&[]).contains(b"view"));
    }
}
