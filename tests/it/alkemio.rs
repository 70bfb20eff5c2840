//! Alkemio's MySQL schema filled with generated rows that respect every foreign key and
//! carry awkward text, migrated into Alkemio's Postgres baseline, compared value by value.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use pgclipper::catalog::{self, MyType, PgType, SourceTable, TargetTable};

const ROWS_PER_TABLE: usize = 40;

/// Text that earlier tools got wrong: quotes, delimiters, line breaks, backslashes, NULL
/// look-alikes, the end-of-data marker, emoji, padding, and the empty string.
const AWKWARD: &[&str] = &[
    "plain",
    "",
    "with 'single' and \"double\" quotes",
    "comma, separated, values",
    "line one\nline two\r\nline three",
    "back\\slash \\N \\. and \\\\",
    "emoji 😀🚀 and accents éàü ñ 中文",
    "NULL",
    "\\N",
    "  leading and trailing  ",
    "tab\there",
    "\\.",
    ",",
    "\"",
];

const JSON: &[&str] = &[
    r#"{"a":"quote \" comma , newline \n","emoji":"😀","num":12345678901234567890123,"nested":{"x":[1,2,{"y":null}]}}"#,
    "[]",
    r#""just a string""#,
    r#"{"unicode":"\u00e9\ud83d\ude00","empty":""}"#,
    r#"{"backslash":"\\N","marker":"\\."}"#,
    r#"[{"type":"global-admin","resourceID":"","grantedPrivileges":["create","read"],"inheritable":true}]"#,
];

struct Schema {
    source: Vec<SourceTable>,
    target: BTreeMap<String, TargetTable>,
    /// (table, column) → (referenced table, referenced column)
    foreign: HashMap<(String, String), (String, String)>,
    unique: BTreeSet<(String, String)>,
}

fn read_schema(mysql_db: &str, pg_db: &str) -> Schema {
    block_on(async {
        let mut conn =
            mysql_async::Conn::new(mysql_async::Opts::from_url(&mysql_url(mysql_db)).unwrap())
                .await
                .unwrap();
        let source = catalog::mysql::read(&mut conn, mysql_db).await.unwrap();
        let fk_rows: Vec<(String, String, String, String)> = conn
            .exec(
                "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
                (mysql_db,),
            )
            .await
            .unwrap();
        let unique_rows: Vec<(String, String)> = conn
            .exec(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 0",
                (mysql_db,),
            )
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        let (client, c) = tokio_postgres::connect(&postgres_url(pg_db), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(c);
        let target = catalog::postgres::read(&client, "public")
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        Schema {
            source,
            target,
            foreign: fk_rows
                .into_iter()
                .map(|(t, c, rt, rc)| ((t, c), (rt, rc)))
                .collect(),
            unique: unique_rows.into_iter().collect(),
        }
    })
}

fn uuid(table: &str, column: &str, i: usize) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(format!("{table}.{column}.{i}").as_bytes());
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The generated value of row `i` of `table.column`: deterministic, so a foreign key can
/// name the value of the row it points to before that row exists.
fn value(schema: &Schema, table: &str, column: &str, i: usize) -> Value {
    if let Some((rt, rc)) = schema.foreign.get(&(table.to_string(), column.to_string())) {
        return value(schema, rt, rc, i);
    }
    let src = schema.source.iter().find(|t| t.name == table).unwrap();
    let sc = src.column(column).unwrap();
    let tc = schema.target.get(table).and_then(|t| t.column(column));
    let is_key = src.key.iter().any(|k| k == column);
    let unique = is_key
        || schema
            .unique
            .contains(&(table.to_string(), column.to_string()));
    if sc.nullable && !tc.is_some_and(|c| c.not_null) && !unique && i % 7 == 3 {
        return Value::NULL;
    }
    let target = tc.map(|c| c.ty.clone()).unwrap_or(PgType::Text);
    let bytes = |s: String| Value::Bytes(s.into_bytes());
    match (&sc.ty, &target) {
        (_, PgType::Uuid) => {
            let u = uuid(table, column, i);
            // Upper case where it is no key: the target must lower-case it.
            bytes(if unique || i.is_multiple_of(2) {
                u
            } else {
                u.to_uppercase()
            })
        }
        (_, PgType::Json | PgType::Jsonb) => bytes(JSON[i % JSON.len()].to_string()),
        (_, PgType::Bool) => Value::Int((i % 2) as i64),
        (_, PgType::Enum { labels, .. }) => bytes(labels[i % labels.len()].clone()),
        (_, PgType::Bytea) => Value::Bytes(
            (0..(i * 37 % 300))
                .map(|k| ((i * 7 + k) % 256) as u8)
                .collect(),
        ),
        (MyType::Int { bytes: 8, .. }, _) => Value::Int(if unique {
            i as i64 + 1
        } else {
            i as i64 * 1_000_000_007 - 5
        }),
        (MyType::Int { .. }, _) => Value::Int(if unique {
            i as i64 + 1
        } else {
            i as i64 * 13 - 100
        }),
        (MyType::Decimal { precision, scale }, _) => {
            let int_digits = (precision - scale) as usize;
            let int_part = (i * 7919) % 10usize.pow(int_digits.min(9) as u32);
            let frac = (i * 31) % 10usize.pow(*scale);
            let sign = if i.is_multiple_of(3) { "-" } else { "" };
            bytes(format!(
                "{sign}{int_part}.{frac:0width$}",
                width = *scale as usize
            ))
        }
        (MyType::DateTime(p) | MyType::Timestamp(p), _) => {
            let us = if *p == 6 && !i.is_multiple_of(4) {
                (i * 123457) % 1_000_000
            } else {
                0
            } as u32;
            Value::Date(
                2000 + (i % 30) as u16,
                1 + (i % 12) as u8,
                1 + (i % 28) as u8,
                (i % 24) as u8,
                (i * 7 % 60) as u8,
                (i * 13 % 60) as u8,
                us,
            )
        }
        (MyType::Date, _) => Value::Date(1990 + i as u16, 2, 28, 0, 0, 0, 0),
        (MyType::Char { max_chars, .. }, _)
        | (
            MyType::Binary {
                max_bytes: max_chars,
                ..
            },
            _,
        ) => {
            let limit = match target {
                PgType::Varchar(Some(n)) | PgType::Char(n) => n as usize,
                _ => max_chars.unwrap_or(255) as usize,
            };
            bytes(awkward(i, unique, limit))
        }
        (MyType::Text, _) => bytes(awkward(i, unique, usize::MAX)),
        (ty, _) => panic!("no generator for {table}.{column} {ty:?}"),
    }
}

fn awkward(i: usize, unique: bool, limit: usize) -> String {
    let base = AWKWARD[i % AWKWARD.len()];
    let text = if unique {
        format!("{i}-{base}")
    } else {
        base.to_string()
    };
    text.chars().take(limit).collect()
}

fn fill(mysql_db: &str, schema: &Schema) {
    block_on(async {
        let opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&mysql_url(mysql_db)).unwrap(),
        )
        .init(vec![
            "SET NAMES utf8mb4",
            "SET FOREIGN_KEY_CHECKS = 0",
            "SET time_zone = '+00:00'",
        ]);
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        for table in &schema.source {
            let columns: Vec<&str> = table
                .columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.as_str())
                .collect();
            let sql = format!(
                "INSERT INTO `{}` ({}) VALUES ({})",
                table.name,
                columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                vec!["?"; columns.len()].join(", ")
            );
            let rows: Vec<Vec<Value>> = (0..ROWS_PER_TABLE)
                .map(|i| {
                    columns
                        .iter()
                        .map(|c| value(schema, &table.name, c, i))
                        .collect()
                })
                .collect();
            conn.exec_batch(sql.as_str(), rows)
                .await
                .unwrap_or_else(|e| panic!("filling {}: {e}", table.name));
        }
        conn.query_drop("ANALYZE TABLE `user`").await.unwrap();
        conn.disconnect().await.unwrap();
    })
}

/// What MySQL prints for a value, in the form Postgres prints it for the target type.
fn expected_text(raw: &[u8], target: &PgType) -> String {
    let text = String::from_utf8_lossy(raw).into_owned();
    match target {
        PgType::Uuid => text.to_lowercase(),
        PgType::Bool => match text.as_str() {
            "0" => "false".into(),
            "1" => "true".into(),
            other => panic!("not a boolean: {other}"),
        },
        PgType::Timestamp(_) => match text.split_once('.') {
            Some((whole, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    whole.to_string()
                } else {
                    format!("{whole}.{frac}")
                }
            }
            None => text,
        },
        PgType::Bytea => format!(
            "\\x{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        _ => text,
    }
}

#[test]
fn alkemio_generated_rows_arrive_value_by_value() {
    let source = unique("alkemio");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        &read(&fixtures().join("alkemio/mysql-schema.sql")),
    );
    let target = unique("alkemio");
    create_pg_db(&target);
    psql(
        &target,
        &read(&fixtures().join("alkemio/postgres-schema.sql")),
    );

    let schema = read_schema(&source, &target);
    assert!(schema.source.len() >= 70, "{} tables", schema.source.len());
    fill(&source, &schema);

    let wd = workdir("alkemio");
    let out = migrate_ok(
        &source,
        &target,
        &wd,
        &["--exclude", "migrations_typeorm", "--chunk-rows", "7"],
    );
    let migrated_tables = schema.source.len() - 1;
    assert!(
        out.contains(&format!(
            "pgclipper migrated {} rows",
            migrated_tables * ROWS_PER_TABLE
        )),
        "{out}"
    );

    let mut values_compared = 0;
    for table in schema
        .source
        .iter()
        .filter(|t| t.name != "migrations_typeorm")
    {
        let pg_table = &schema.target[&table.name];
        let columns: Vec<(&str, &PgType)> = table
            .columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| (c.name.as_str(), &pg_table.column(&c.name).unwrap().ty))
            .collect();
        let key = &table.key[0];
        let key_index = columns.iter().position(|(c, _)| c == key).unwrap();
        let my_rows = mysql_query(
            &source,
            &format!(
                "SELECT {} FROM `{}`",
                columns
                    .iter()
                    .map(|(c, _)| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                table.name
            ),
        );
        let pg_rows = pg_query(
            &target,
            &format!(
                "SELECT {} FROM public.\"{}\"",
                columns
                    .iter()
                    .map(|(c, _)| format!("\"{c}\"::text"))
                    .collect::<Vec<_>>()
                    .join(", "),
                table.name
            ),
        );
        assert_eq!(my_rows.len(), pg_rows.len(), "row count of {}", table.name);
        let pg_by_key: HashMap<String, &Vec<Option<String>>> = pg_rows
            .iter()
            .map(|r| (r[key_index].clone().unwrap(), r))
            .collect();
        for my_row in &my_rows {
            let key_text = expected_text(my_row[key_index].as_ref().unwrap(), columns[key_index].1);
            let pg_row = pg_by_key
                .get(&key_text)
                .unwrap_or_else(|| panic!("{} row {key_text} missing in Postgres", table.name));
            for (i, (column, ty)) in columns.iter().enumerate() {
                let expected = my_row[i].as_ref().map(|raw| expected_text(raw, ty));
                assert_eq!(
                    pg_row[i], expected,
                    "{}.{column} of row {key_text} ({ty:?})",
                    table.name
                );
                values_compared += 1;
            }
        }
    }
    assert!(
        values_compared > 20_000,
        "{values_compared} values compared"
    );

    // Sequences moved past the copied ids.
    let last = pg_query(
        &target,
        "SELECT last_value FROM public.\"activity_rowId_seq\"",
    );
    assert_eq!(
        last[0][0].as_deref(),
        Some(ROWS_PER_TABLE.to_string().as_str())
    );

    // And verify proves it: every row, key, constraint, index, foreign key and sequence.
    let checklist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alkemio.toml");
    let fresh = workdir("alkemio_verify");
    for wd in [&wd, &fresh] {
        let (code, text) = verify_run(
            &source,
            &target,
            wd,
            &["--config", checklist.to_str().unwrap()],
        );
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(text.matches("ok: critical: ").count(), 15, "{text}");
        let rows = migrated_tables * ROWS_PER_TABLE;
        assert!(
            text.contains(&format!("identical: {migrated_tables} tables, {rows} rows")),
            "{text}"
        );
    }
}
