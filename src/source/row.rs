//! Rows as the server sent them. A reader appends each row's packet (MySQL's binary
//! protocol: a header byte, a NULL bitmap, then the non-NULL values) to one buffer per
//! batch, [`Packets`]; the encoder reads the values out of it where they lie, as
//! [`ValueRef`]s. The driver's own `Row` allocated a `Vec<u8>` for every string value on the
//! reader's thread, which the encoder's thread then freed: an eighth of the tool's CPU went
//! to the allocator (docs/design.md, "Rows as packets").

use std::sync::Arc;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::{Column, Value};

use crate::error::{Error, Result};

/// A value of a row, borrowed from its packet: the driver's [`Value`] without its
/// allocations, the same variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Bytes(&'a [u8]),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// year, month, day, hour, minute, second, microsecond
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> Self {
        match *value {
            Value::NULL => ValueRef::Null,
            Value::Bytes(ref b) => ValueRef::Bytes(b),
            Value::Int(n) => ValueRef::Int(n),
            Value::UInt(n) => ValueRef::UInt(n),
            Value::Float(f) => ValueRef::Float(f),
            Value::Double(f) => ValueRef::Double(f),
            Value::Date(y, m, d, hh, mm, ss, us) => ValueRef::Date(y, m, d, hh, mm, ss, us),
            Value::Time(neg, days, hh, mm, ss, us) => ValueRef::Time(neg, days, hh, mm, ss, us),
        }
    }
}

impl ValueRef<'_> {
    /// The driver's value, owned: a statement's parameter.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::NULL,
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Int(n) => Value::Int(n),
            ValueRef::UInt(n) => Value::UInt(n),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Double(f) => Value::Double(f),
            ValueRef::Date(y, m, d, hh, mm, ss, us) => Value::Date(y, m, d, hh, mm, ss, us),
            ValueRef::Time(neg, days, hh, mm, ss, us) => Value::Time(neg, days, hh, mm, ss, us),
        }
    }
}

/// How each value of a result's rows is laid out in a packet: by its column's wire type.
#[derive(Debug)]
pub struct RowLayout {
    columns: Vec<Wire>,
}

/// A column's values on the wire (binary protocol), as the driver reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// A length-encoded string: text, blobs, decimals, JSON, bits, enums, sets.
    Bytes,
    /// A little-endian integer of 1, 2, 4 or 8 bytes, signed or not.
    Integer {
        bytes: u8,
        unsigned: bool,
    },
    Float,
    Double,
    /// A length byte (0, 4, 7 or 11), then as many bytes of date and time.
    DateTime,
    /// A length byte (0, 8 or 12), then as many bytes of a time.
    Time,
    /// Always NULL.
    Null,
}

impl RowLayout {
    /// The layout of rows of `columns`, or the column the reader cannot read.
    pub fn of(columns: &[Column]) -> Result<Arc<RowLayout>> {
        let columns = columns
            .iter()
            .map(|column| {
                let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
                let integer = |bytes| Wire::Integer { bytes, unsigned };
                Ok(match column.column_type() {
                    ColumnType::MYSQL_TYPE_STRING
                    | ColumnType::MYSQL_TYPE_VAR_STRING
                    | ColumnType::MYSQL_TYPE_BLOB
                    | ColumnType::MYSQL_TYPE_TINY_BLOB
                    | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                    | ColumnType::MYSQL_TYPE_LONG_BLOB
                    | ColumnType::MYSQL_TYPE_SET
                    | ColumnType::MYSQL_TYPE_ENUM
                    | ColumnType::MYSQL_TYPE_DECIMAL
                    | ColumnType::MYSQL_TYPE_VARCHAR
                    | ColumnType::MYSQL_TYPE_BIT
                    | ColumnType::MYSQL_TYPE_NEWDECIMAL
                    | ColumnType::MYSQL_TYPE_GEOMETRY
                    | ColumnType::MYSQL_TYPE_VECTOR
                    | ColumnType::MYSQL_TYPE_JSON => Wire::Bytes,
                    ColumnType::MYSQL_TYPE_TINY => integer(1),
                    ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => integer(2),
                    ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24 => integer(4),
                    ColumnType::MYSQL_TYPE_LONGLONG => integer(8),
                    ColumnType::MYSQL_TYPE_FLOAT => Wire::Float,
                    ColumnType::MYSQL_TYPE_DOUBLE => Wire::Double,
                    ColumnType::MYSQL_TYPE_TIMESTAMP
                    | ColumnType::MYSQL_TYPE_DATE
                    | ColumnType::MYSQL_TYPE_NEWDATE
                    | ColumnType::MYSQL_TYPE_DATETIME => Wire::DateTime,
                    ColumnType::MYSQL_TYPE_TIME => Wire::Time,
                    ColumnType::MYSQL_TYPE_NULL => Wire::Null,
                    other => {
                        return Err(Error::Environment(format!(
                        "the source sent column `{}` as {other:?}, a type pgclipper cannot read",
                        column.name_str()
                    )))
                    }
                })
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(RowLayout { columns }))
    }

    /// The number of values in a row.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The values of row `packet`, one by one: a value that runs past the packet's end is an
    /// error, and the last.
    pub fn values<'a>(&'a self, packet: &'a [u8]) -> RowValues<'a> {
        let bitmap_len = (self.columns.len() + 7 + 2) / 8;
        let (bitmap, rest) = match (packet.first(), packet.get(1..1 + bitmap_len)) {
            (Some(&0), Some(bitmap)) => (bitmap, &packet[1 + bitmap_len..]),
            _ => (&[][..], &[][..]), // (bitmap_len is never 0)
        };
        RowValues {
            columns: self.columns.iter().enumerate(),
            bitmap,
            rest: Cursor(rest),
            no_header: bitmap.is_empty(),
        }
    }

    /// Appends the values of row `packet` to `values`, or says why the packet is not a row
    /// of this layout.
    pub fn read<'a>(&'a self, packet: &'a [u8], values: &mut Vec<ValueRef<'a>>) -> Result<()> {
        for value in self.values(packet) {
            values.push(value?);
        }
        Ok(())
    }

    /// Value `i` of row `packet`.
    pub fn value_at<'a>(&'a self, packet: &'a [u8], i: usize) -> Result<ValueRef<'a>> {
        match self.values(packet).nth(i) {
            Some(value) => value,
            None => Err(malformed("fewer values than columns")),
        }
    }
}

/// See [`RowLayout::values`].
pub struct RowValues<'a> {
    columns: std::iter::Enumerate<std::slice::Iter<'a, Wire>>,
    bitmap: &'a [u8],
    rest: Cursor<'a>,
    /// The packet has no row header: one error, then nothing.
    no_header: bool,
}

impl<'a> Iterator for RowValues<'a> {
    type Item = Result<ValueRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.no_header {
            self.no_header = false;
            self.columns = [].iter().enumerate();
            return Some(Err(malformed("no row header")));
        }
        let (i, wire) = self.columns.next()?;
        // The binary protocol's NULL bitmap starts at bit 2.
        let bit = i + 2;
        if self.bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            return Some(Ok(ValueRef::Null));
        }
        match self.rest.value(*wire) {
            Some(value) => Some(Ok(value)),
            None => {
                self.columns = [].iter().enumerate();
                Some(Err(malformed("a value runs past its end")))
            }
        }
    }
}

#[cold]
fn malformed(what: &str) -> Error {
    Error::Environment(format!(
        "the source sent a row pgclipper cannot read ({what}); is the server MySQL or MariaDB?"
    ))
}

/// The unread rest of a packet.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("N bytes"))
    }

    /// A length-encoded integer: one byte below 251, else 0xFC, 0xFD or 0xFE and 2, 3 or 8
    /// bytes.
    #[inline]
    fn length(&mut self) -> Option<u64> {
        let [first] = self.array::<1>()?;
        Some(match first {
            0xFC => u16::from_le_bytes(self.array()?) as u64,
            0xFD => {
                let [a, b, c] = self.array()?;
                u32::from_le_bytes([a, b, c, 0]) as u64
            }
            0xFE => u64::from_le_bytes(self.array()?),
            0xFB | 0xFF => return None,
            n => n as u64,
        })
    }

    #[inline]
    fn value(&mut self, wire: Wire) -> Option<ValueRef<'a>> {
        Some(match wire {
            Wire::Bytes => {
                let len = usize::try_from(self.length()?).ok()?;
                ValueRef::Bytes(self.take(len)?)
            }
            Wire::Integer { bytes, unsigned } => {
                let raw = self.take(bytes as usize)?;
                let mut word = [0u8; 8];
                word[..raw.len()].copy_from_slice(raw);
                let n = u64::from_le_bytes(word);
                match unsigned {
                    true => ValueRef::UInt(n),
                    // Sign-extended from the value's own width.
                    false => {
                        let shift = 64 - 8 * bytes as u32;
                        ValueRef::Int(((n << shift) as i64) >> shift)
                    }
                }
            }
            Wire::Float => ValueRef::Float(f32::from_le_bytes(self.array()?)),
            Wire::Double => ValueRef::Double(f64::from_le_bytes(self.array()?)),
            Wire::DateTime => {
                let [len] = self.array::<1>()?;
                let b = self.take(len as usize)?;
                let (mut date, mut time, mut us) = ((0, 0, 0), (0, 0, 0), 0);
                if len >= 4 {
                    date = (u16::from_le_bytes([b[0], b[1]]), b[2], b[3]);
                }
                if len >= 7 {
                    time = (b[4], b[5], b[6]);
                }
                if len == 11 {
                    us = u32::from_le_bytes([b[7], b[8], b[9], b[10]]);
                }
                ValueRef::Date(date.0, date.1, date.2, time.0, time.1, time.2, us)
            }
            Wire::Time => {
                let [len] = self.array::<1>()?;
                let b = self.take(len as usize)?;
                let (mut negative, mut days, mut time, mut us) = (false, 0, (0, 0, 0), 0);
                if len >= 8 {
                    negative = b[0] == 1;
                    days = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                    time = (b[5], b[6], b[7]);
                }
                if len == 12 {
                    us = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                }
                ValueRef::Time(negative, days, time.0, time.1, time.2, us)
            }
            Wire::Null => ValueRef::Null,
        })
    }
}

/// A batch of one result's row packets, side by side in one buffer.
#[derive(Default)]
pub struct Packets {
    data: Vec<u8>,
    /// Where each row's packet ends in `data`.
    ends: Vec<usize>,
}

impl Packets {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        Packets {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Empties the batch for another, its buffers kept.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Makes room for at least `rows` rows of `bytes` in all without growing.
    pub fn reserve(&mut self, rows: usize, bytes: usize) {
        self.data.reserve(bytes.saturating_sub(self.data.len()));
        self.ends.reserve(rows.saturating_sub(self.ends.len()));
    }

    /// The memory the batch holds: its buffer's capacity, not only the bytes in it.
    pub fn capacity(&self) -> usize {
        self.data.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// The buffer the next row's packet is appended to; [`Packets::push_row`] then marks
    /// its end.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Marks the end of the row appended to [`Packets::buffer`]; returns its packet.
    pub fn push_row(&mut self) -> &[u8] {
        let start = self.ends.last().copied().unwrap_or(0);
        self.ends.push(self.data.len());
        &self.data[start..]
    }

    /// Takes the last row back out, as its own packet.
    pub fn pop_row(&mut self) -> Option<Vec<u8>> {
        self.ends.pop()?;
        let start = self.ends.last().copied().unwrap_or(0);
        Some(self.data.split_off(start))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of all the rows' packets.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Every row's values.
    pub fn read<'a>(&'a self, layout: &'a RowLayout) -> Result<Rows<'a>> {
        let mut values = Vec::with_capacity(self.ends.len() * layout.width());
        let mut start = 0;
        for &end in &self.ends {
            layout.read(&self.data[start..end], &mut values)?;
            start = end;
        }
        Ok(Rows {
            values,
            width: layout.width(),
        })
    }
}

/// A batch's rows read out of their packets: each row's values side by side.
pub struct Rows<'a> {
    values: Vec<ValueRef<'a>>,
    width: usize,
}

impl<'a> Rows<'a> {
    /// The values of each row, in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, ValueRef<'a>> {
        self.values.chunks_exact(self.width)
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<'r, 'a> IntoIterator for &'r Rows<'a> {
    type Item = &'r [ValueRef<'a>];
    type IntoIter = std::slice::ChunksExact<'r, ValueRef<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One row's packet on its own: a row whose long values are read in slices, after the
/// chunk's other rows.
pub struct OwnedRow {
    packet: Vec<u8>,
    layout: Arc<RowLayout>,
}

impl OwnedRow {
    pub fn new(packet: Vec<u8>, layout: Arc<RowLayout>) -> Self {
        OwnedRow { packet, layout }
    }

    /// The row's values.
    pub fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        let mut values = Vec::with_capacity(self.layout.width());
        self.layout.read(&self.packet, &mut values)?;
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(columns: &[Wire]) -> RowLayout {
        RowLayout {
            columns: columns.to_vec(),
        }
    }

    #[test]
    fn a_row_reads_as_the_driver_reads_it() {
        use Wire::*;
        let layout = layout(&[
            Integer {
                bytes: 1,
                unsigned: false,
            },
            Integer {
                bytes: 2,
                unsigned: true,
            },
            Bytes,
            Bytes,
            DateTime,
            Time,
            Double,
            Integer {
                bytes: 8,
                unsigned: false,
            },
        ]);
        // Column 3 NULL: bit 3 + 2 of the bitmap.
        let mut packet = vec![0x00, 0b0010_0000, 0x00];
        packet.push(0xFE); // -2
        packet.extend(65535u16.to_le_bytes());
        packet.extend([3, b'a', b'b', b'c']);
        packet.extend([11, 0xE8, 0x07, 12, 31, 23, 59, 58]);
        packet.extend(999_999u32.to_le_bytes());
        packet.extend([8, 1, 2, 0, 0, 0, 3, 4, 5]);
        packet.extend(0.5f64.to_le_bytes());
        packet.extend((-7i64).to_le_bytes());
        let mut values = Vec::new();
        layout.read(&packet, &mut values).unwrap();
        assert_eq!(
            values,
            [
                ValueRef::Int(-2),
                ValueRef::UInt(65535),
                ValueRef::Bytes(b"abc"),
                ValueRef::Null,
                ValueRef::Date(2024, 12, 31, 23, 59, 58, 999_999),
                ValueRef::Time(true, 2, 3, 4, 5, 0),
                ValueRef::Double(0.5),
                ValueRef::Int(-7),
            ]
        );
    }

    #[test]
    fn a_long_string_has_a_longer_length() {
        let layout = layout(&[Wire::Bytes]);
        let text = vec![b'x'; 70_000];
        let mut packet = vec![0x00, 0x00, 0xFD];
        packet.extend(&(70_000u32.to_le_bytes()[..3]));
        packet.extend(&text);
        let mut values = Vec::new();
        layout.read(&packet, &mut values).unwrap();
        assert_eq!(values, [ValueRef::Bytes(&text)]);
    }

    #[test]
    fn a_short_packet_is_an_error_not_a_panic() {
        let layout = layout(&[Wire::Bytes, Wire::DateTime]);
        for packet in [
            &[][..],
            &[0x00],
            &[0x00, 0x00, 5, b'a'],
            &[0x00, 0x00, 0, 11, 1],
        ] {
            let error = layout.read(packet, &mut Vec::new()).unwrap_err();
            assert!(error.to_string().contains("cannot read"), "{error}");
        }
    }

    #[test]
    fn packets_keep_their_rows_apart() {
        let mut packets = Packets::default();
        packets.buffer().extend([0, 0, 1, b'a']);
        packets.push_row();
        packets.buffer().extend([0, 0, 2, b'b', b'c']);
        assert_eq!(packets.push_row(), [0, 0, 2, b'b', b'c']);
        packets.buffer().extend([0, 0, 0]);
        packets.push_row();
        assert_eq!(packets.pop_row().unwrap(), [0, 0, 0]);
        let layout = layout(&[Wire::Bytes]);
        let rows = packets.read(&layout).unwrap();
        let rows: Vec<_> = rows.iter().collect();
        assert_eq!(rows, [[ValueRef::Bytes(b"a")], [ValueRef::Bytes(b"bc")]]);
        assert_eq!((packets.len(), packets.bytes()), (2, 9));
    }

    #[test]
    fn a_cleared_batch_keeps_its_room_for_the_next() {
        let mut packets = Packets::with_capacity(4, 100);
        packets.buffer().extend([0, 0, 1, b'a']);
        packets.push_row();
        let room = packets.capacity();
        packets.clear();
        assert!(packets.is_empty() && packets.bytes() == 0);
        assert_eq!(packets.capacity(), room);
        packets.reserve(4, 50); // already has room: nothing grows
        assert_eq!(packets.capacity(), room);
        packets.reserve(4, 1000);
        assert!(packets.capacity() >= 1000 + 4 * std::mem::size_of::<usize>());
    }
}
