//! Eight bytes at a time: which bytes of a little-endian word are a given byte, or below a
//! bound, each flagged by its high bit. The scans of CSV quotes and of JSON strings test a
//! word at once and fall back to single bytes only around a hit.

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = ONES * 0x80;

/// The word of the first eight bytes of `bytes`, if it has that many.
#[inline]
pub(super) fn first_word(bytes: &[u8]) -> Option<u64> {
    bytes.first_chunk::<8>().map(|w| u64::from_le_bytes(*w))
}

/// A flag for each byte of `word` equal to `b` (the classic "has zero byte" on `word ^ b…b`).
#[inline]
pub(super) fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ (ONES * b as u64);
    x.wrapping_sub(ONES) & !x & HIGH_BITS
}

/// A flag for each byte of `word` below `n`, which is at most 128.
#[inline]
pub(super) fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * n as u64) & !word & HIGH_BITS
}

/// The index of the first flagged byte. A byte after a true hit may be flagged falsely (the
/// subtraction's borrow), never one before it: the lowest flag is always a true hit, in any
/// union of these flags.
#[inline]
pub(super) fn first_flagged(flags: u64) -> usize {
    flags.trailing_zeros() as usize / 8
}
