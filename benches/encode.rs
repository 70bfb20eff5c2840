//! Hot paths without a database: one value converted and written as CSV (and as a binary
//! COPY field), per column type, and the row checksum. Throughput is reported in values (or bytes) per second per core.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::{Column, Value};
use pgclipper::encode::row_checksum;
use pgclipper::mapping::{Conversion, Wire, ZeroDates, Zone};
use pgclipper::source::row::{Packets, RowLayout, ValueRef};

const VALUES: usize = 10_000;

fn cases() -> Vec<(&'static str, Wire, Conversion, Vec<Value>)> {
    let n = VALUES;
    vec![
        (
            "int_to_int4",
            Wire::Int4,
            Conversion::Integer {
                min: i32::MIN as i128,
                max: i32::MAX as i128,
            },
            (0..n).map(|i| Value::Int(i as i64 * 7919)).collect(),
        ),
        (
            "tinyint_to_bool",
            Wire::Bool,
            Conversion::IntegerToBool,
            (0..n).map(|i| Value::Int((i % 2) as i64)).collect(),
        ),
        (
            "decimal_to_numeric",
            Wire::Numeric,
            Conversion::Decimal {
                max_integer_digits: Some(10),
            },
            (0..n)
                .map(|i| Value::Bytes(format!("{}.{:02}", i * 31, i % 100).into_bytes()))
                .collect(),
        ),
        (
            "double_to_float8",
            Wire::Float8,
            Conversion::Float64,
            (0..n).map(|i| Value::Double(i as f64 / 7.0)).collect(),
        ),
        (
            "char36_to_uuid",
            Wire::Uuid,
            Conversion::TextToUuid,
            (0..n)
                .map(|i| {
                    Value::Bytes(format!("{:08x}-9e19-461f-a126-e3a08a814c33", i).into_bytes())
                })
                .collect(),
        ),
        (
            "varchar_to_varchar",
            Wire::Text,
            Conversion::Text {
                max_chars: Some(100),
            },
            (0..n)
                .map(|i| Value::Bytes(format!("Zoë \"{i}\" O'Brien, Jr.").into_bytes()))
                .collect(),
        ),
        (
            "text_plain",
            Wire::Text,
            Conversion::Text { max_chars: None },
            (0..n)
                .map(|i| {
                    Value::Bytes(
                        format!("plain text payload number {i} without specials").into_bytes(),
                    )
                })
                .collect(),
        ),
        (
            "longtext_to_jsonb",
            Wire::Jsonb,
            Conversion::Json { jsonb: true },
            (0..n)
                .map(|i| {
                    Value::Bytes(
                        format!(r#"{{"lang":"fr","tags":["a","b,c"],"n":{i}}}"#).into_bytes(),
                    )
                })
                .collect(),
        ),
        (
            // Alkemio's authorization rules: a JSON array of objects, quotes every few bytes.
            "rules_to_json",
            Wire::Text,
            Conversion::Json { jsonb: false },
            (0..n)
                .map(|i| {
                    let rule = format!(
                        r#"{{"type":"space-member","resourceID":"{i:08x}-9e19-461f-a126-e3a08a814c33","grantedPrivileges":["create","read","update","delete","grant"],"inheritable":true,"cascade":false,"criterias":[{{"type":"space-admin","resourceID":"0004d0b5-9e19-461f-a126-e3a08a814c33"}}]}}"#
                    );
                    Value::Bytes(format!("[{rule},{rule},{rule}]").into_bytes())
                })
                .collect(),
        ),
        (
            "datetime6_to_timestamp",
            Wire::Timestamp,
            Conversion::Timestamp {
                zone: Zone::Naive,
                precision: 6,
                zero_dates: ZeroDates::Error,
            },
            (0..n)
                .map(|i| {
                    Value::Date(
                        2020,
                        1 + (i % 12) as u8,
                        1 + (i % 28) as u8,
                        10,
                        20,
                        30,
                        i as u32,
                    )
                })
                .collect(),
        ),
        (
            "blob_to_bytea",
            Wire::Bytea,
            Conversion::Bytea,
            (0..n)
                .map(|i| Value::Bytes(vec![(i % 256) as u8; 64]))
                .collect(),
        ),
    ]
}

fn conversions(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert");
    for (name, _, conversion, values) in cases() {
        group.throughput(Throughput::Elements(values.len() as u64));
        let values: Vec<ValueRef> = values.iter().map(ValueRef::from).collect();
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_with_input(BenchmarkId::from_parameter(name), &values, |b, values| {
            b.iter(|| {
                out.clear();
                for v in values {
                    conversion.encode(black_box(v), &mut out).unwrap();
                    out.push(b',');
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// The CSV field and the binary COPY field of each value, as the encoder writes both.
fn conversions_with_binary(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_csv_and_binary");
    for (name, wire, conversion, values) in cases() {
        group.throughput(Throughput::Elements(values.len() as u64));
        let values: Vec<ValueRef> = values.iter().map(ValueRef::from).collect();
        let mut out = Vec::with_capacity(1 << 20);
        let mut binary = Vec::with_capacity(1 << 20);
        group.bench_with_input(BenchmarkId::from_parameter(name), &values, |b, values| {
            b.iter(|| {
                out.clear();
                binary.clear();
                for v in values {
                    let start = out.len();
                    conversion.encode(black_box(v), &mut out).unwrap();
                    wire.encode(&conversion, v, &out[start..], &mut binary);
                    out.push(b',');
                }
                black_box(out.len() + binary.len())
            })
        });
    }
    group.finish();
}

fn checksum(c: &mut Criterion) {
    let line = b"0004d0b5-9e19-461f-a126-e3a08a814c33,user1970@example.org,\"Anne \"\"1970\"\" O'Brien, Jr.\",2020-01-01 00:32:50.60043,\"{\"\"lang\"\":\"\"nl\"\"}\",f,970\n";
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("row_xxh3", |b| b.iter(|| row_checksum(black_box(line))));
    group.finish();
}

/// A batch of 1024 rows shaped like the bench's `events` (bigint key, char(36) uuid, enum,
/// text of about 100 bytes, decimal, datetime) read out of their binary-protocol packets.
fn row_packets(c: &mut Criterion) {
    let columns = [
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_flags(ColumnFlags::UNSIGNED_FLAG),
        Column::new(ColumnType::MYSQL_TYPE_STRING),
        Column::new(ColumnType::MYSQL_TYPE_STRING),
        Column::new(ColumnType::MYSQL_TYPE_BLOB),
        Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL),
        Column::new(ColumnType::MYSQL_TYPE_DATETIME),
    ];
    let layout = RowLayout::of(&columns).unwrap();
    let mut packets = Packets::default();
    let lenenc = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    };
    for i in 0..1024u64 {
        let out = packets.buffer();
        out.extend([0, 0]); // header, no NULLs
        out.extend(i.to_le_bytes());
        lenenc(
            out,
            format!("{:08x}-9e19-461f-a126-e3a08a814c33", i).as_bytes(),
        );
        lenenc(out, b"click");
        lenenc(
            out,
            format!(
                "payload {i}, with a comma\nand a newline, {}",
                "x".repeat(60)
            )
            .as_bytes(),
        );
        lenenc(out, format!("{}.{:02}", i * 31, i % 100).as_bytes());
        out.extend([7, 0xE4, 0x07, 1, 1, 12, 30, 45]);
        packets.push_row();
    }
    let mut group = c.benchmark_group("row_packets");
    group.throughput(Throughput::Bytes(packets.bytes() as u64));
    group.bench_function("events_1024", |b| {
        b.iter(|| black_box(packets.read(&layout).unwrap().len()))
    });
    group.finish();
}

/// `verify`'s canonical JSON (which `migrate` computes for every JSON value it loads): the
/// two-table bench's profile and an Alkemio authorization rule list.
fn canonical_json(c: &mut Criterion) {
    let rule = r#"{"type":"space-member","resourceID":"0004d0b5-9e19-461f-a126-e3a08a814c33","grantedPrivileges":["create","read","update","delete","grant"],"inheritable":true,"cascade":false,"criterias":[{"type":"space-admin","resourceID":"0004d0b5-9e19-461f-a126-e3a08a814c33"}]}"#;
    let cases = [
        (
            "profile",
            r#"{"lang":"fr","tags":["a","b,c"],"bio":"line1\nline2 é 😀","n":1970}"#.to_string(),
        ),
        ("credential_rules_3", format!("[{rule},{rule},{rule}]")),
    ];
    let mut group = c.benchmark_group("canon_json");
    for (name, text) in cases {
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut out = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                pgclipper::canon::json(black_box(text.as_bytes()), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// `verify`'s canonical uuid of a char(36) value, which `migrate` computes for every uuid.
fn canonical_uuid(c: &mut Criterion) {
    let values: Vec<Value> = (0..VALUES)
        .map(|i| Value::Bytes(format!("{:08x}-9e19-461f-a126-e3a08a814c33", i).into_bytes()))
        .collect();
    let values: Vec<ValueRef> = values.iter().map(ValueRef::from).collect();
    let mut group = c.benchmark_group("canon_uuid");
    group.throughput(Throughput::Elements(values.len() as u64));
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("char36", |b| {
        b.iter(|| {
            out.clear();
            for v in &values {
                pgclipper::canon::Kind::Uuid.source(black_box(v), &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    canonical_json,
    canonical_uuid,
    conversions,
    conversions_with_binary,
    checksum,
    row_packets
);
criterion_main!(benches);
