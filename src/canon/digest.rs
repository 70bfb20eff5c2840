//! Rows as canonical bytes and their digests. A row's key (its key columns' canonical
//! values) chooses its bucket by hash, on both sides alike: which rows are compared with
//! which never depends on how MySQL or Postgres collate strings. A table's digest is, per
//! bucket, the number of rows and the wrapping sum of their hashes, so rows may arrive in
//! any order; buckets that differ are read again row by row ([`Differences`]).

use std::collections::HashMap;

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::{Kind, HEX};
use crate::catalog::pg_ident;
use crate::mapping::{MappingOptions, TableMapping};

/// How one table is compared.
#[derive(Debug, Clone)]
pub struct TableCanon {
    /// The source table's name.
    pub table: String,
    pub qualified: String,
    /// Target column names, in the order of the mapping (the source SELECT's first columns).
    pub columns: Vec<String>,
    pub kinds: Vec<Kind>,
    /// Positions in `columns` of the key columns; empty for a table compared without key.
    pub key: Vec<usize>,
    pub buckets: usize,
}

/// Buckets a table's digest has at most: with the sums, 64 KiB a digest.
pub const MAX_BUCKETS: u64 = 4096;

impl TableCanon {
    /// How `table` compares under `options`; `estimated_rows` (the plan's, so that export
    /// and verify agree) sets the number of buckets.
    pub fn new(table: &TableMapping, options: &MappingOptions, estimated_rows: u64) -> TableCanon {
        let zone = options.source_timezone.as_deref();
        let kinds = table
            .columns
            .iter()
            .map(|c| {
                let source = &table.source.column(&c.source).expect("mapped column").ty;
                let target = &table.target.column(&c.target).expect("mapped column").ty;
                Kind::of(source, target, options.zero_dates, zone)
            })
            .collect();
        // Key columns that are not copied cannot be matched on the target side: such a
        // table is compared as a multiset of rows.
        let key: Option<Vec<usize>> = table
            .key_columns()
            .iter()
            .map(|k| table.columns.iter().position(|c| &c.source == k))
            .collect();
        TableCanon {
            table: table.name().to_string(),
            qualified: table.target.qualified(),
            columns: table.columns.iter().map(|c| c.target.clone()).collect(),
            kinds,
            key: key.unwrap_or_default(),
            // A few rows a bucket for small tables; large ones share 4096 buckets (only a
            // damaged bucket's rows are held to be compared row by row).
            buckets: (estimated_rows / 16).clamp(1, MAX_BUCKETS) as usize,
        }
    }

    /// Identifies the comparison (kinds, key, buckets): a digest computed under another is
    /// not comparable.
    pub fn fingerprint(&self) -> u64 {
        xxh3_64(format!("{:?}|{:?}|{}", self.kinds, self.key, self.buckets).as_bytes())
    }

    /// The query that makes Postgres render every compared column as canonical-ready text.
    pub fn target_select(&self) -> String {
        let exprs: Vec<String> = self
            .columns
            .iter()
            .zip(&self.kinds)
            .map(|(c, k)| k.target_sql(&pg_ident(c)))
            .collect();
        format!("SELECT {} FROM {}", exprs.join(", "), self.qualified)
    }
}

/// One row in canonical bytes: every field as a NULL mark or a length and its bytes.
#[derive(Debug, Default)]
pub struct CanonRow {
    bytes: Vec<u8>,
    /// Where each field's encoding ends in `bytes`.
    ends: Vec<usize>,
}

impl CanonRow {
    /// Fills the row from `field(i, out)`, which appends column `i`'s canonical value and
    /// says whether it is not NULL.
    pub fn fill(&mut self, columns: usize, mut field: impl FnMut(usize, &mut Vec<u8>) -> bool) {
        self.bytes.clear();
        self.ends.clear();
        for i in 0..columns {
            push_framed(&mut self.bytes, |out| field(i, out));
            self.ends.push(self.bytes.len());
        }
    }

    pub fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub fn hash(&self) -> u64 {
        xxh3_64(&self.bytes)
    }

    /// The key's canonical bytes (the whole row for a table compared without key).
    pub fn key_bytes(&self, key: &[usize]) -> Vec<u8> {
        if key.is_empty() {
            return self.bytes.clone();
        }
        let mut out = Vec::new();
        for &i in key {
            out.extend_from_slice(self.field(i));
        }
        out
    }

    /// The hash of [`CanonRow::key_bytes`], without building them.
    pub fn key_hash(&self, key: &[usize]) -> u64 {
        match key {
            [] => self.hash(),
            [only] => xxh3_64(self.field(*only)),
            _ => {
                let mut hasher = xxhash_rust::xxh3::Xxh3::new();
                for &i in key {
                    hasher.update(self.field(i));
                }
                hasher.digest()
            }
        }
    }
}

/// A field too large to copy into a [`CanonRow`] (a blob, a long text): its canonical
/// form is the value's own bytes, or their lower-case hex.
pub enum LargeField<'a> {
    Raw(&'a [u8]),
    Hex(&'a [u8]),
}

impl CanonRow {
    /// What [`CanonRow::fill`] then ([`CanonRow::key_hash`], [`CanonRow::hash`]) give, for
    /// a row whose `large(i)` fields are hashed as they are, in pieces, instead of copied
    /// (a 40 MB blob would otherwise be held twice more, as hex): xxh3 streamed over the
    /// same bytes gives the same hash. Key fields must not be large (MySQL keys are at
    /// most 3072 bytes). [`CanonRow::field`] is not meaningful afterwards.
    pub fn hashes_streaming<'a>(
        &mut self,
        columns: usize,
        key: &[usize],
        mut large: impl FnMut(usize) -> Option<LargeField<'a>>,
        mut field: impl FnMut(usize, &mut Vec<u8>) -> bool,
    ) -> (u64, u64) {
        let mut row = self.streamed(key);
        for i in 0..columns {
            match large(i) {
                Some(LargeField::Raw(b)) => {
                    row.large_field(b.len() as u64);
                    row.raw_piece(b);
                }
                Some(LargeField::Hex(b)) => {
                    row.large_field(2 * b.len() as u64);
                    row.hex_piece(b);
                }
                None => row.field(i, |out| field(i, out)),
            }
        }
        row.hashes()
    }

    /// A row hashed field by field in column order, its large fields in pieces as they
    /// arrive: what [`CanonRow::hashes_streaming`] gives, for values not held whole anywhere
    /// (read from MySQL in slices).
    pub fn streamed<'a>(&'a mut self, key: &'a [usize]) -> StreamedRow<'a> {
        self.bytes.clear();
        self.ends.clear();
        StreamedRow {
            row: Xxh3::new(),
            pending: &mut self.bytes,
            key,
            keys: Vec::with_capacity(key.len()),
        }
    }
}

/// See [`CanonRow::streamed`]. `pending` holds the framed small fields not hashed yet.
pub struct StreamedRow<'a> {
    row: Xxh3,
    pending: &'a mut Vec<u8>,
    key: &'a [usize],
    keys: Vec<(usize, Vec<u8>)>,
}

impl StreamedRow<'_> {
    /// Column `i`, small: `write` appends its canonical value and says whether it is not NULL.
    pub fn field(&mut self, i: usize, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        let mark = self.pending.len();
        push_framed(self.pending, write);
        if self.key.contains(&i) {
            self.keys.push((i, self.pending[mark..].to_vec()));
        }
    }

    /// The next column is large, `canonical_len` bytes in canonical form, which the
    /// following pieces bring. Large fields are never key fields.
    pub fn large_field(&mut self, canonical_len: u64) {
        self.pending.push(1);
        self.pending
            .extend_from_slice(&(canonical_len as u32).to_le_bytes());
        self.row.update(self.pending);
        self.pending.clear();
    }

    /// A piece of a large field whose canonical form is its bytes as they are.
    pub fn raw_piece(&mut self, bytes: &[u8]) {
        self.row.update(bytes);
    }

    /// A piece of a large field whose canonical form is its bytes' lower-case hex.
    pub fn hex_piece(&mut self, bytes: &[u8]) {
        let mut hex = Vec::with_capacity(64 << 10);
        for piece in bytes.chunks(32 << 10) {
            hex.clear();
            hex.extend(
                piece
                    .iter()
                    .flat_map(|&x| [HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]),
            );
            self.row.update(&hex);
        }
    }

    /// (key hash, row hash), as [`CanonRow::key_hash`] and [`CanonRow::hash`] give them.
    pub fn hashes(mut self) -> (u64, u64) {
        self.row.update(self.pending);
        let row_hash = self.row.digest();
        let key_hash = match self.key {
            [] => row_hash,
            key => {
                let mut hasher = Xxh3::new();
                for k in key {
                    let (_, bytes) = self
                        .keys
                        .iter()
                        .find(|(i, _)| i == k)
                        .expect("key fields are not large");
                    hasher.update(bytes);
                }
                hasher.digest()
            }
        };
        (key_hash, row_hash)
    }
}

/// One field of a canonical row: `1`, its length (u32, little-endian), the canonical value
/// `write` appends; or `0` alone for NULL (distinct from every value, the empty string too).
fn push_framed(bytes: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> bool) {
    let mark = bytes.len();
    bytes.extend_from_slice(&[1, 0, 0, 0, 0]);
    if write(bytes) {
        let len = (bytes.len() - mark - 5) as u32;
        bytes[mark + 1..mark + 5].copy_from_slice(&len.to_le_bytes());
    } else {
        bytes.truncate(mark);
        bytes.push(0);
    }
}

/// Per bucket, how many rows and the wrapping sum of their hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub rows: u64,
    counts: Vec<u64>,
    sums: Vec<u64>,
}

/// The file signature of a digest stored beside a chunk file (`NNNNNN.digest`).
const DIGEST_MAGIC: &[u8; 8] = b"PGCLDIG1";

impl Digest {
    /// The digest as a file: signature, the comparison's fingerprint, buckets, rows, then
    /// every bucket's count and sum (little-endian).
    pub fn to_bytes(&self, fingerprint: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + 16 * self.counts.len());
        out.extend_from_slice(DIGEST_MAGIC);
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&(self.counts.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        for n in self.counts.iter().chain(&self.sums) {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// A digest file written under the comparison `fingerprint`; `None` for anything else.
    pub fn from_bytes(bytes: &[u8], fingerprint: u64) -> Option<Digest> {
        let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        if bytes.get(..8)? != DIGEST_MAGIC || u64_at(8)? != fingerprint {
            return None;
        }
        let buckets = u32::from_le_bytes(bytes.get(16..20)?.try_into().ok()?) as usize;
        if bytes.len() != 28 + 16 * buckets {
            return None;
        }
        let mut digest = Digest::new(buckets);
        digest.rows = u64_at(20)?;
        for b in 0..buckets {
            digest.counts[b] = u64_at(28 + 8 * b)?;
            digest.sums[b] = u64_at(28 + 8 * (buckets + b))?;
        }
        Some(digest)
    }

    pub fn new(buckets: usize) -> Digest {
        Digest {
            rows: 0,
            counts: vec![0; buckets],
            sums: vec![0; buckets],
        }
    }

    pub fn bucket(&self, key_hash: u64) -> usize {
        (key_hash % self.counts.len() as u64) as usize
    }

    pub fn add(&mut self, key_hash: u64, row_hash: u64) {
        let b = self.bucket(key_hash);
        self.rows += 1;
        self.counts[b] += 1;
        self.sums[b] = self.sums[b].wrapping_add(row_hash);
    }

    pub fn merge(&mut self, other: &Digest) {
        self.rows += other.rows;
        for b in 0..self.counts.len() {
            self.counts[b] += other.counts[b];
            self.sums[b] = self.sums[b].wrapping_add(other.sums[b]);
        }
    }

    /// The buckets in which `self` and `other` differ.
    pub fn differing(&self, other: &Digest) -> Vec<usize> {
        (0..self.counts.len())
            .filter(|&b| self.counts[b] != other.counts[b] || self.sums[b] != other.sums[b])
            .collect()
    }

    /// The larger of the two sides' row counts in `bucket`: what reading it again holds.
    pub fn rows_in(&self, other: &Digest, bucket: usize) -> u64 {
        self.counts[bucket].max(other.counts[bucket])
    }
}

/// A row read again for the comparison: enough to name it and its changed columns.
#[derive(Debug, Clone)]
pub struct RowDetail {
    /// `col=value, …` from the canonical key values.
    pub key: String,
    pub hash: u64,
    pub columns: Vec<u64>,
    /// Value excerpts, kept only with `--show-values`.
    pub values: Option<Vec<String>>,
}

impl RowDetail {
    pub fn of(row: &CanonRow, canon: &TableCanon, show_values: bool) -> RowDetail {
        let key = if canon.key.is_empty() {
            "(no key)".to_string()
        } else {
            canon
                .key
                .iter()
                .map(|&i| format!("{}={}", canon.columns[i], excerpt(row.field(i))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        RowDetail {
            key,
            hash: row.hash(),
            columns: (0..canon.columns.len())
                .map(|i| xxh3_64(row.field(i)))
                .collect(),
            values: show_values.then(|| {
                (0..canon.columns.len())
                    .map(|i| excerpt(row.field(i)))
                    .collect()
            }),
        }
    }
}

/// At most 64 characters of a canonical field, or NULL.
fn excerpt(field: &[u8]) -> String {
    if field.first() == Some(&0) {
        return "NULL".to_string();
    }
    let text = String::from_utf8_lossy(&field[5..]);
    // One line per finding: control characters shown escaped.
    let mut shown: String = text
        .chars()
        .take(64)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

/// What a row-by-row comparison of some buckets found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Differences {
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    /// The first rows found, up to [`LISTED_ROWS`].
    pub rows: Vec<RowDifference>,
}

/// Rows listed per table; all are counted.
pub const LISTED_ROWS: usize = 100;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RowDifference {
    /// `missing` (in the source, not the target), `extra` or `changed`.
    pub what: &'static str,
    pub key: String,
    /// For a changed row: the columns that differ, with `source → target` excerpts
    /// when values are shown.
    pub columns: Vec<String>,
}

/// The source rows of the buckets being compared, by key, waiting for their target rows.
#[derive(Default)]
pub struct Matcher {
    waiting: HashMap<Vec<u8>, Vec<RowDetail>>,
    pub found: Differences,
}

impl Matcher {
    pub fn source_row(&mut self, key: Vec<u8>, detail: RowDetail) {
        self.waiting.entry(key).or_default().push(detail);
    }

    pub fn target_row(&mut self, key: Vec<u8>, detail: RowDetail, canon: &TableCanon) {
        let source = self.waiting.get_mut(&key).and_then(|rows| {
            // The same row if one waits (a keyless table's duplicates), else any.
            let at = rows.iter().position(|r| r.hash == detail.hash).unwrap_or(0);
            (!rows.is_empty()).then(|| rows.swap_remove(at))
        });
        match source {
            None => {
                self.found.extra += 1;
                self.list("extra", &detail, Vec::new());
            }
            Some(source) if source.hash == detail.hash => {}
            Some(source) => {
                self.found.changed += 1;
                let columns = (0..canon.columns.len())
                    .filter(|&i| source.columns[i] != detail.columns[i])
                    .map(|i| match (&source.values, &detail.values) {
                        (Some(s), Some(t)) => format!("{} ({} → {})", canon.columns[i], s[i], t[i]),
                        _ => canon.columns[i].clone(),
                    })
                    .collect();
                self.list("changed", &detail, columns);
            }
        }
    }

    /// Ends the comparison: source rows still waiting are missing from the target.
    pub fn finish(mut self) -> Differences {
        let waiting: Vec<RowDetail> = self.waiting.drain().flat_map(|(_, rows)| rows).collect();
        for row in waiting {
            self.found.missing += 1;
            self.list("missing", &row, Vec::new());
        }
        self.found
    }

    fn list(&mut self, what: &'static str, row: &RowDetail, columns: Vec<String>) {
        if self.found.rows.len() < LISTED_ROWS {
            let mut key = row.key.clone();
            if let (Some(values), true) = (&row.values, what != "changed") {
                key.push_str(&format!(" ({})", values.join(", ")));
            }
            self.found.rows.push(RowDifference { what, key, columns });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_hashes_are_the_buffered_ones() {
        let text = vec![b'x'; 3 << 20];
        let blob: Vec<u8> = (0..2u32 << 20).map(|i| (i * 7) as u8).collect();
        let small = |i: usize, out: &mut Vec<u8>| match i {
            0 => {
                out.extend_from_slice(b"42");
                true
            }
            3 => false,
            _ => {
                out.extend_from_slice(b"s");
                true
            }
        };
        let mut buffered = CanonRow::default();
        buffered.fill(5, |i, out| match i {
            1 => {
                out.extend_from_slice(&text);
                true
            }
            2 => {
                out.extend(
                    blob.iter()
                        .flat_map(|&x| [HEX[(x >> 4) as usize], HEX[(x & 15) as usize]]),
                );
                true
            }
            _ => small(i, out),
        });
        let large = |i: usize| match i {
            1 => Some(LargeField::Raw(&text)),
            2 => Some(LargeField::Hex(&blob)),
            _ => None,
        };
        // A key in another order than the columns', one column, and none.
        for key in [vec![4, 0], vec![0], vec![]] {
            let mut streamed = CanonRow::default();
            assert_eq!(
                streamed.hashes_streaming(5, &key, large, small),
                (buffered.key_hash(&key), buffered.hash()),
                "key {key:?}"
            );
        }
    }

    fn canon(key: Vec<usize>) -> TableCanon {
        TableCanon {
            table: "t".into(),
            qualified: "\"public\".\"t\"".into(),
            columns: vec!["id".into(), "v".into()],
            kinds: vec![Kind::Integer, Kind::Text { trim_end: false }],
            key,
            buckets: 4,
        }
    }

    fn row(id: &str, v: Option<&str>) -> CanonRow {
        let mut row = CanonRow::default();
        row.fill(2, |i, out| match (i, v) {
            (0, _) => {
                out.extend_from_slice(id.as_bytes());
                true
            }
            (_, Some(v)) => {
                out.extend_from_slice(v.as_bytes());
                true
            }
            (_, None) => false,
        });
        row
    }

    #[test]
    fn null_and_the_empty_string_differ_and_order_does_not_matter() {
        assert_ne!(row("1", None).hash(), row("1", Some("")).hash());
        let (mut a, mut b) = (Digest::new(4), Digest::new(4));
        let rows = [row("1", Some("x")), row("2", None)];
        for r in &rows {
            a.add(r.key_hash(&[0]), r.hash());
        }
        for r in rows.iter().rev() {
            b.add(r.key_hash(&[0]), r.hash());
        }
        assert_eq!(a, b);
        assert!(a.differing(&b).is_empty());
    }

    #[test]
    fn a_digest_file_is_read_back_only_under_its_own_comparison() {
        let mut d = Digest::new(3);
        d.add(7, 11);
        d.add(8, 13);
        let bytes = d.to_bytes(42);
        assert_eq!(Digest::from_bytes(&bytes, 42), Some(d));
        assert_eq!(Digest::from_bytes(&bytes, 43), None);
        assert_eq!(Digest::from_bytes(&bytes[..bytes.len() - 1], 42), None);
    }

    #[test]
    fn the_matcher_names_missing_extra_and_changed_rows_and_columns() {
        let canon = canon(vec![0]);
        let mut m = Matcher::default();
        for r in [row("1", Some("a")), row("2", Some("b")), row("3", None)] {
            m.source_row(r.key_bytes(&canon.key), RowDetail::of(&r, &canon, true));
        }
        for r in [row("1", Some("a")), row("3", Some("")), row("4", Some("d"))] {
            m.target_row(
                r.key_bytes(&canon.key),
                RowDetail::of(&r, &canon, true),
                &canon,
            );
        }
        let found = m.finish();
        assert_eq!((found.missing, found.extra, found.changed), (1, 1, 1));
        let changed = found.rows.iter().find(|r| r.what == "changed").unwrap();
        assert_eq!(changed.key, "id=3");
        assert_eq!(changed.columns, ["v (NULL → )"]);
        assert!(found
            .rows
            .iter()
            .any(|r| r.what == "missing" && r.key.starts_with("id=2")));
        assert!(found
            .rows
            .iter()
            .any(|r| r.what == "extra" && r.key.starts_with("id=4")));
    }
}
