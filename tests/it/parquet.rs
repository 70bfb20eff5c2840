//! `--parquet`: a typed Parquet file beside every CSV chunk, read back with the parquet
//! crate and compared value by value with the CSV file it sits beside.

use std::path::Path;

use parquet::basic::{LogicalType, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::common::*;

const MYSQL: &str = "CREATE TABLE things (
    id int PRIMARY KEY, big bigint, small smallint, amount decimal(12,2), huge decimal(50,10),
    name varchar(40), body text, created datetime(6), local_ts datetime, day date,
    flag tinyint(1), ratio double, uid char(36), raw varbinary(16), doc json, at time(6));
INSERT INTO things VALUES
 (1, 9007199254740993, -32768, -1234567890.12, -12345678901234567890123456789012345678.0123456789,
  'comma, \"quote\"\nnewline', 'Grüße ✓', '2024-02-29 23:59:59.123456', '2001-02-03 04:05:06',
  '1999-12-31', 1, 0.1, '0e984725-c51c-4bf4-9960-e1c80e27aba0', x'00ff10', '{\"a\": [1, 2.5, \"x\"]}',
  '12:34:56.5'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -1, 7, 0.50, 1, '', '', '1970-01-01 00:00:00', '1969-07-20 20:17:40', '0001-01-01', 0,
  -1.5e300, '00000000-0000-0000-0000-000000000000', x'', '[]', '00:00:00');";

const POSTGRES: &str = "CREATE TABLE things (
    id integer PRIMARY KEY, big bigint, small smallint, amount numeric(12,2), huge numeric(50,10),
    name varchar(40), body text, created timestamptz, local_ts timestamp, day date,
    flag boolean, ratio double precision, uid uuid, raw bytea, doc jsonb, at time);";

#[test]
fn parquet_sidecars_are_typed_and_read_back_equal_to_the_csv() {
    let db = database_pair("pq", MYSQL, POSTGRES);
    let wd = workdir("parquet");
    for format in ["binary", "csv"] {
        let wd = wd.join(format);
        let out = migrate_ok(
            &db,
            &db,
            &wd,
            &["--parquet", "--chunk-rows", "2", "--copy-format", format],
        );
        assert!(out.contains("pgclipper migrated 3 rows"), "{out}");
        let dir = wd.join("data/things");
        let mut compared = 0;
        for chunk in ["000000", "000001"] {
            let parquet = dir.join(format!("{chunk}.parquet"));
            let csv = dir.join(format!("{chunk}.csv"));
            compared += compare(&parquet, &csv);
            // With --copy-format csv the binary file existed for the sidecar only.
            assert!(!dir.join(format!("{chunk}.pgcopy")).exists());
        }
        assert_eq!(compared, 3 * 16, "every value of every row");
        // Parquet files go with the chunk files on reset.
        let (code, text) = run_cli(
            &[
                "reset",
                "--target",
                &postgres_url(&db),
                "--workdir",
                wd.to_str().unwrap(),
                "--yes",
            ],
            &[],
        );
        assert_eq!(code, Some(0), "{text}");
        assert!(!dir.join("000000.parquet").exists());
    }
}

/// Compares every value of `parquet` with `csv`; returns how many were compared.
fn compare(parquet: &Path, csv: &Path) -> usize {
    let reader = SerializedFileReader::new(std::fs::File::open(parquet).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let types: Vec<(String, Physical, Option<LogicalType>, i32)> = schema
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                c.physical_type(),
                c.logical_type_ref().cloned(),
                c.type_length(),
            )
        })
        .collect();
    let typed = |name: &str| types.iter().find(|t| t.0 == name).unwrap().clone();
    assert_eq!(typed("big").1, Physical::INT64);
    assert_eq!(
        typed("small").2,
        Some(LogicalType::Integer {
            bit_width: 16,
            is_signed: true
        })
    );
    assert_eq!(
        typed("amount").2,
        Some(LogicalType::Decimal {
            scale: 2,
            precision: 12
        })
    );
    assert_eq!(
        (typed("amount").1, typed("amount").3),
        (Physical::FIXED_LEN_BYTE_ARRAY, 16)
    );
    assert_eq!(
        (typed("huge").1, typed("huge").3),
        (Physical::FIXED_LEN_BYTE_ARRAY, 32)
    );
    assert!(matches!(
        typed("created").2,
        Some(LogicalType::Timestamp {
            is_adjusted_to_u_t_c: true,
            ..
        })
    ));
    assert!(matches!(
        typed("local_ts").2,
        Some(LogicalType::Timestamp {
            is_adjusted_to_u_t_c: false,
            ..
        })
    ));
    assert_eq!(typed("day").2, Some(LogicalType::Date));
    assert_eq!(typed("flag").1, Physical::BOOLEAN);
    assert_eq!(typed("ratio").1, Physical::DOUBLE);
    assert_eq!(
        (typed("uid").2, typed("uid").3),
        (Some(LogicalType::Uuid), 16)
    );
    assert_eq!(typed("raw").1, Physical::BYTE_ARRAY);
    assert_eq!(typed("doc").2, Some(LogicalType::Json));
    assert_eq!(typed("name").2, Some(LogicalType::String));

    let mut compared = 0;
    for (n, row) in reader.get_row_iter(None).unwrap().enumerate() {
        let row = row.unwrap();
        let fields = pgclipper::encode::csv::row_of_file(csv, n as u64 + 1).expect("the CSV row");
        for (i, (name, value)) in row.get_column_iter().enumerate() {
            let text = fields[i].as_deref();
            let ty = typed(name);
            let same = match (value, text) {
                (Field::Null, None) => true,
                (_, None) | (Field::Null, _) => false,
                (value, Some(text)) => equal(value, text, &ty.2),
            };
            assert!(
                same,
                "{}: row {} column {name}: parquet {value:?}, CSV {text:?}",
                csv.display(),
                n + 1
            );
            compared += 1;
        }
    }
    compared
}

fn equal(value: &Field, text: &str, logical: &Option<LogicalType>) -> bool {
    match value {
        Field::Bool(b) => text == if *b { "t" } else { "f" },
        Field::Short(v) => text == v.to_string(),
        Field::Int(v) => text == v.to_string(),
        Field::Long(v) => text == v.to_string(),
        Field::Double(v) => text.parse::<f64>().unwrap().to_bits() == v.to_bits(),
        Field::Decimal(d) => {
            let Some(LogicalType::Decimal { scale, .. }) = logical else {
                return false;
            };
            decimal_text(d.data(), *scale as usize) == text
        }
        Field::Str(s) => match logical {
            Some(LogicalType::Json) => json(s) == json(text),
            _ => s == text,
        },
        Field::Bytes(b) => match logical {
            Some(LogicalType::Uuid) => uuid_text(b.data()) == text,
            Some(LogicalType::Json) => json(std::str::from_utf8(b.data()).unwrap()) == json(text),
            _ => format!("\\x{}", hex(b.data())) == text,
        },
        Field::Date(days) => days_of(text) == *days as i64,
        Field::TimestampMicros(micros) => micros_of(text) == *micros,
        Field::TimeMicros(micros) => time_micros(text) == *micros,
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid_text(b: &[u8]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Big-endian two's complement `bytes` at `scale` as decimal text.
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let negative = bytes[0] & 0x80 != 0;
    let mut magnitude: Vec<u8> = bytes.to_vec();
    if negative {
        // Negate: invert and add one.
        let mut carry = 1u16;
        for b in magnitude.iter_mut().rev() {
            let v = u16::from(!*b) + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut rest = 0u32;
        for b in magnitude.iter_mut() {
            let v = (rest << 8) | u32::from(*b);
            *b = (v / 10) as u8;
            rest = v % 10;
        }
        digits.push(b'0' + rest as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let mut text = String::from_utf8(digits).unwrap();
    if scale > 0 {
        text.insert(text.len() - scale, '.');
    }
    if negative {
        text.insert(0, '-');
    }
    text
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn days_of(date: &str) -> i64 {
    let p: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, d) = (p[0] - i64::from(p[1] <= 2), p[1], p[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since midnight of `HH:MM:SS[.ffffff]`.
fn time_micros(time: &str) -> i64 {
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let micros: i64 = format!("{fraction:0<6}").parse().unwrap();
    (p[0] * 3600 + p[1] * 60 + p[2]) * 1_000_000 + micros
}

/// Microseconds since 1970-01-01 UTC of `YYYY-MM-DD HH:MM:SS[.ffffff][+00]`.
fn micros_of(timestamp: &str) -> i64 {
    let timestamp = timestamp.trim_end_matches("+00");
    let (date, time) = timestamp.split_once(' ').unwrap();
    days_of(date) * 86_400_000_000 + time_micros(time)
}
