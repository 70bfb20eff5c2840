//! Every conversion rule of docs/mapping.md against the real servers: values written into
//! MariaDB, migrated, and read back from Postgres as text; and every refusal: exit code 1,
//! a message naming table, key, column, value and reason, nothing committed, source intact.

mod common;

use common::*;

/// One rule: a MySQL column type, a Postgres column type, MySQL literals, and what
/// Postgres prints for each (`None` for NULL).
struct Rule {
    my: &'static str,
    pg: &'static str,
    values: &'static [&'static str],
    expected: &'static [Option<&'static str>],
}

const fn rule(
    my: &'static str,
    pg: &'static str,
    values: &'static [&'static str],
    expected: &'static [Option<&'static str>],
) -> Rule {
    Rule {
        my,
        pg,
        values,
        expected,
    }
}

/// Migrates one table per rule in one run and compares every value, twice: loaded from the
/// binary COPY files (the default) and from the CSV files (`--copy-format csv`).
fn check_rules(rules: &[Rule], my_prelude: &str, pg_prelude: &str, extra: &[&str]) {
    let source = unique("conv");
    create_mysql_db(&source);
    let mut my_sql = format!("SET sql_mode = ''; {my_prelude};");
    let mut pg_sql = format!("{pg_prelude};");
    for (n, r) in rules.iter().enumerate() {
        assert_eq!(r.values.len(), r.expected.len(), "rule {n}");
        my_sql.push_str(&format!(
            "CREATE TABLE c{n} (id int PRIMARY KEY, v {});",
            r.my
        ));
        let rows: Vec<String> = r
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("({i}, {v})"))
            .collect();
        my_sql.push_str(&format!("INSERT INTO c{n} VALUES {};", rows.join(", ")));
        pg_sql.push_str(&format!(
            "CREATE TABLE c{n} (id int PRIMARY KEY, v {});",
            r.pg
        ));
    }
    mysql_exec(Some(&source), my_sql.as_bytes());
    for format in ["binary", "csv"] {
        let target = unique("conv");
        create_pg_db(&target);
        psql(&target, pg_sql.as_bytes());
        let mut args = extra.to_vec();
        args.extend(["--copy-format", format]);
        migrate_ok(&source, &target, &workdir("conv"), &args);
        compare_rules(rules, &target, format);
    }
}

fn compare_rules(rules: &[Rule], target: &str, format: &str) {
    for (n, r) in rules.iter().enumerate() {
        let got: Vec<Option<String>> =
            pg_query(target, &format!("SELECT v::text FROM c{n} ORDER BY id"))
                .into_iter()
                .map(|row| row[0].clone())
                .collect();
        let expected: Vec<Option<String>> =
            r.expected.iter().map(|e| e.map(str::to_string)).collect();
        assert_eq!(
            got, expected,
            "MySQL {} into Postgres {}, loaded from {format}",
            r.my, r.pg
        );
    }
}

#[test]
fn integers_of_every_width_arrive_exactly() {
    check_rules(
        &[
            rule(
                "tinyint",
                "smallint",
                &["-128", "127", "NULL"],
                &[Some("-128"), Some("127"), None],
            ),
            rule(
                "tinyint unsigned",
                "smallint",
                &["0", "255"],
                &[Some("0"), Some("255")],
            ),
            rule(
                "smallint",
                "smallint",
                &["-32768", "32767"],
                &[Some("-32768"), Some("32767")],
            ),
            rule("smallint unsigned", "integer", &["65535"], &[Some("65535")]),
            rule(
                "mediumint",
                "integer",
                &["-8388608", "8388607"],
                &[Some("-8388608"), Some("8388607")],
            ),
            rule(
                "mediumint unsigned",
                "integer",
                &["16777215"],
                &[Some("16777215")],
            ),
            rule(
                "int",
                "integer",
                &["-2147483648", "2147483647"],
                &[Some("-2147483648"), Some("2147483647")],
            ),
            rule(
                "int unsigned",
                "bigint",
                &["4294967295"],
                &[Some("4294967295")],
            ),
            rule(
                "bigint",
                "bigint",
                &["-9223372036854775808", "9223372036854775807"],
                &[Some("-9223372036854775808"), Some("9223372036854775807")],
            ),
            rule(
                "bigint unsigned",
                "numeric(20)",
                &["18446744073709551615", "9223372036854775808", "0"],
                &[
                    Some("18446744073709551615"),
                    Some("9223372036854775808"),
                    Some("0"),
                ],
            ),
            rule(
                "int",
                "numeric(10,0)",
                &["-2147483648"],
                &[Some("-2147483648")],
            ),
            rule(
                "tinyint(1)",
                "boolean",
                &["0", "1", "NULL"],
                &[Some("false"), Some("true"), None],
            ),
            rule("tinyint(4)", "boolean", &["1"], &[Some("true")]),
            rule(
                "year",
                "smallint",
                &["1901", "2155"],
                &[Some("1901"), Some("2155")],
            ),
            rule(
                "bit(1)",
                "boolean",
                &["b'0'", "b'1'"],
                &[Some("false"), Some("true")],
            ),
            rule("bit(8)", "bit(8)", &["b'10100101'"], &[Some("10100101")]),
            rule("bit(5)", "varbit(10)", &["b'00101'"], &[Some("00101")]),
            rule(
                "bit(12)",
                "bit(12)",
                &["b'101100111000'", "b'000000000001'"],
                &[Some("101100111000"), Some("000000000001")],
            ),
        ],
        "",
        "",
        &[],
    );
}

#[test]
fn decimals_and_floats_arrive_exactly() {
    check_rules(
        &[
            rule(
                "decimal(65,30)",
                "numeric(65,30)",
                &[
                    "'12345678901234567890123456789012345.123456789012345678901234567890'",
                    "'-0.000000000000000000000000000001'",
                    "0",
                ],
                &[
                    Some("12345678901234567890123456789012345.123456789012345678901234567890"),
                    Some("-0.000000000000000000000000000001"),
                    Some("0.000000000000000000000000000000"),
                ],
            ),
            rule(
                "decimal(10,2)",
                "numeric",
                &["'-12.50'", "'99999999.99'"],
                &[Some("-12.50"), Some("99999999.99")],
            ),
            rule(
                "decimal(3,1)",
                "numeric(3,1)",
                &["'-99.9'"],
                &[Some("-99.9")],
            ),
            rule(
                "double",
                "double precision",
                &[
                    "1.7976931348623157e308",
                    "2.2250738585072014e-308",
                    "-0.1",
                    "0",
                    "123456789.125",
                ],
                &[
                    Some("1.7976931348623157e+308"),
                    Some("2.2250738585072014e-308"),
                    Some("-0.1"),
                    Some("0"),
                    Some("123456789.125"),
                ],
            ),
            rule(
                "float",
                "real",
                &["0.1", "-3.4028235e38", "1.5"],
                &[Some("0.1"), Some("-3.4028235e+38"), Some("1.5")],
            ),
        ],
        "",
        "",
        &[],
    );
}

#[test]
fn text_in_every_character_set_arrives_as_utf8() {
    check_rules(
        &[
            // MySQL's latin1 is cp1252: € is 0x80 there, and must come out as €.
            rule(
                "varchar(10) CHARACTER SET latin1",
                "text",
                &["'€uro'", "'Ålborg'"],
                &[Some("€uro"), Some("Ålborg")],
            ),
            rule(
                "varchar(10) CHARACTER SET utf8mb3",
                "varchar(10)",
                &["'héllo'"],
                &[Some("héllo")],
            ),
            rule(
                "varchar(20) CHARACTER SET utf8mb4",
                "varchar(3)",
                &["'é😀x'"],
                &[Some("é😀x")],
            ),
            rule(
                "varchar(10) CHARACTER SET greek",
                "text",
                &["'αβγ'"],
                &[Some("αβγ")],
            ),
            rule(
                "varchar(10) CHARACTER SET cp1251",
                "text",
                &["'Жизнь'"],
                &[Some("Жизнь")],
            ),
            rule(
                "varchar(20) CHARACTER SET sjis",
                "text",
                &["'こんにちは'"],
                &[Some("こんにちは")],
            ),
            rule(
                "varchar(20) CHARACTER SET ucs2",
                "text",
                &["'ünïcödé'"],
                &[Some("ünïcödé")],
            ),
            rule("char(5)", "character(5)", &["'ab'"], &[Some("ab")]),
            rule(
                "text",
                "text",
                &["''", "NULL", "'NULL'", "'\\\\N'", "'a,\"b\"\\nc'"],
                &[
                    Some(""),
                    None,
                    Some("NULL"),
                    Some("\\N"),
                    Some("a,\"b\"\nc"),
                ],
            ),
            rule("longtext", "varchar(5)", &["'12345'"], &[Some("12345")]),
        ],
        "",
        "",
        &[],
    );
}

#[test]
fn uuids_bytes_enums_and_sets() {
    check_rules(
        &[
            rule(
                "char(36)",
                "uuid",
                &[
                    "'AC2D2B0E-1A7F-4A5B-9C3D-0E1F2A3B4C5D'",
                    "'0149ce5f-76a8-4efe-b2e3-431b8c6cceb6'",
                ],
                &[
                    Some("ac2d2b0e-1a7f-4a5b-9c3d-0e1f2a3b4c5d"),
                    Some("0149ce5f-76a8-4efe-b2e3-431b8c6cceb6"),
                ],
            ),
            rule(
                "varchar(255)",
                "uuid",
                &["'0149CE5F76A84EFEB2E3431B8C6CCEB6'"],
                &[Some("0149ce5f-76a8-4efe-b2e3-431b8c6cceb6")],
            ),
            rule(
                "binary(16)",
                "uuid",
                &["UNHEX('00112233445566778899AABBCCDDEEFF')"],
                &[Some("00112233-4455-6677-8899-aabbccddeeff")],
            ),
            rule(
                "blob",
                "bytea",
                &["UNHEX('00FF00')", "''", "NULL"],
                &[Some("\\x00ff00"), Some("\\x"), None],
            ),
            rule(
                "varbinary(10)",
                "bytea",
                &["UNHEX('2C0D0A22')"],
                &[Some("\\x2c0d0a22")],
            ),
            rule(
                "enum('a','b c','d''e')",
                "text",
                &["'b c'", "'d''e'"],
                &[Some("b c"), Some("d'e")],
            ),
            rule(
                "enum('login','logout')",
                "kind",
                &["'logout'"],
                &[Some("logout")],
            ),
            rule("varchar(10)", "kind", &["'login'"], &[Some("login")]),
            rule(
                "set('x','y','z')",
                "text[]",
                &["'x,z'", "''"],
                &[Some("{x,z}"), Some("{}")],
            ),
            rule("set('x','y')", "text", &["'x,y'"], &[Some("x,y")]),
            rule(
                "set('a b','c\"d','e')",
                "varchar(20)[]",
                &["'a b,c\"d,e'", "'e'"],
                &[Some(r#"{"a b","c\"d",e}"#), Some("{e}")],
            ),
        ],
        "",
        "CREATE TYPE kind AS ENUM ('login', 'logout', 'other')",
        &[],
    );
}

#[test]
fn json_arrives_with_escapes_big_numbers_and_deep_nesting_intact() {
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let docs = [
        r#"{"a":"\u00e9\ud83d\ude00","b":"é😀"}"#.to_string(),
        r#"{"big":123456789012345678901234567890.123456789e10,"neg":-0.0}"#.to_string(),
        r#"[1, "two", null, true, {"k": "v,\"q\"\n"}]"#.to_string(),
        deep,
    ];
    let source = unique("json");
    create_mysql_db(&source);
    let target = unique("json");
    create_pg_db(&target);
    let mut sql = String::from("CREATE TABLE j (id int PRIMARY KEY, a longtext, b longtext);");
    for (i, d) in docs.iter().enumerate() {
        let lit = d.replace('\\', "\\\\").replace('\'', "\\'");
        sql.push_str(&format!("INSERT INTO j VALUES ({i}, '{lit}', '{lit}');"));
    }
    mysql_exec(Some(&source), sql.as_bytes());
    psql(
        &target,
        b"CREATE TABLE j (id int PRIMARY KEY, a json, b jsonb)",
    );
    migrate_ok(&source, &target, &workdir("json"), &[]);
    for (i, d) in docs.iter().enumerate() {
        let lit = d.replace('\'', "''");
        let row = pg_query(
            &target,
            &format!("SELECT a::text = '{lit}', b = '{lit}'::jsonb FROM j WHERE id = {i}"),
        );
        assert_eq!(
            row[0],
            vec![Some("t".to_string()), Some("t".to_string())],
            "document {i}"
        );
    }
}

#[test]
fn dates_and_times_arrive_at_the_target_precision() {
    check_rules(
        &[
            rule(
                "date",
                "date",
                &["'2024-02-29'", "'0001-01-01'", "'9999-12-31'"],
                &[Some("2024-02-29"), Some("0001-01-01"), Some("9999-12-31")],
            ),
            rule(
                "datetime(6)",
                "timestamp(6)",
                &[
                    "'2024-02-29 23:59:59.999999'",
                    "'1000-01-01 00:00:00.000001'",
                ],
                &[
                    Some("2024-02-29 23:59:59.999999"),
                    Some("1000-01-01 00:00:00.000001"),
                ],
            ),
            rule(
                "datetime",
                "timestamp(0)",
                &["'2024-01-01 00:00:00'"],
                &[Some("2024-01-01 00:00:00")],
            ),
            rule(
                "datetime(6)",
                "timestamp(3)",
                &["'2024-01-01 00:00:00.123000'"],
                &[Some("2024-01-01 00:00:00.123")],
            ),
            rule(
                "timestamp(3)",
                "timestamp(3)",
                &["'2038-01-19 03:14:07.123'"],
                &[Some("2038-01-19 03:14:07.123")],
            ),
            // Inserted while the session is in UTC; MySQL timestamps are read in UTC.
            rule(
                "timestamp",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "datetime",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "date",
                "timestamp",
                &["'2020-06-01'"],
                &[Some("2020-06-01 00:00:00")],
            ),
            rule(
                "time",
                "time",
                &["'23:59:59'", "'00:00:00'", "'24:00:00'"],
                &[Some("23:59:59"), Some("00:00:00"), Some("24:00:00")],
            ),
            rule(
                "time(6)",
                "time(6)",
                &["'12:34:56.789012'"],
                &[Some("12:34:56.789012")],
            ),
            rule(
                "time",
                "interval",
                &["'-838:59:59'", "'838:59:59'", "'100:00:00'"],
                &[Some("-838:59:59"), Some("838:59:59"), Some("100:00:00")],
            ),
            rule("year", "integer", &["2024"], &[Some("2024")]),
        ],
        "SET time_zone = '+00:00'",
        "",
        &[],
    );
}

#[test]
fn datetimes_into_timestamptz_are_read_in_the_source_time_zone() {
    check_rules(
        &[
            // Summer (UTC+2) and winter (UTC+1) in Amsterdam.
            rule(
                "datetime",
                "timestamptz",
                &["'2020-06-01 12:00:00'", "'2020-01-01 12:00:00'"],
                &[
                    Some("2020-06-01 10:00:00+00"),
                    Some("2020-01-01 11:00:00+00"),
                ],
            ),
            // timestamp values are UTC whatever the option says.
            rule(
                "timestamp",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "datetime",
                "timestamp",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00")],
            ),
        ],
        "SET time_zone = '+00:00'",
        "",
        &["--source-timezone", "Europe/Amsterdam"],
    );
}

#[test]
fn zero_dates_become_null_when_asked() {
    check_rules(
        &[
            rule(
                "datetime",
                "timestamp",
                &["'0000-00-00 00:00:00'", "'2020-00-10 00:00:00'"],
                &[None, None],
            ),
            rule(
                "date",
                "date",
                &["'2020-05-00'", "'2020-05-01'"],
                &[None, Some("2020-05-01")],
            ),
        ],
        "",
        "",
        &["--zero-dates", "null"],
    );
}

#[test]
fn generated_columns_are_skipped_and_target_only_columns_take_their_default() {
    let source = unique("gen");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        b"CREATE TABLE g (id int PRIMARY KEY, a int, twice int AS (a * 2) VIRTUAL, legacy varchar(5));
          INSERT INTO g (id, a, legacy) VALUES (1, 5, 'old');",
    );
    let target = unique("gen");
    create_pg_db(&target);
    psql(
        &target,
        b"CREATE TABLE g (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED,
                          created timestamptz NOT NULL DEFAULT '2001-01-01 00:00:00+00')",
    );
    // `legacy` has no target column: refused, unless dropped.
    let out = migrate(&source, &target, &workdir("gen"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`g`.`legacy`") && stderr.contains("--drop-column g.legacy"),
        "{stderr}"
    );
    migrate_ok(
        &source,
        &target,
        &workdir("gen"),
        &["--drop-column", "g.legacy"],
    );
    let row = pg_query(&target, "SELECT id, a, twice, created FROM g");
    assert_eq!(
        row[0],
        ["1", "5", "10", "2001-01-01 00:00:00+00"]
            .map(|s| Some(s.to_string()))
            .to_vec()
    );
}

#[test]
fn a_large_blob_arrives_intact() {
    let source = unique("blob");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        b"CREATE TABLE b (id int PRIMARY KEY, v longblob);
          INSERT INTO b VALUES (1, REPEAT(UNHEX('00FF2C0A22'), 6000000)), (2, UNHEX('00'));",
    );
    let target = unique("blob");
    create_pg_db(&target);
    psql(&target, b"CREATE TABLE b (id int PRIMARY KEY, v bytea)");
    migrate_ok(&source, &target, &workdir("blob"), &[]);
    let my: Vec<String> = mysql_query(
        &source,
        "SELECT CONCAT(LENGTH(v), ' ', MD5(v)) FROM b ORDER BY id",
    )
    .into_iter()
    .map(|r| String::from_utf8(r[0].clone().unwrap()).unwrap())
    .collect();
    let pg: Vec<String> = pg_query(
        &target,
        "SELECT length(v) || ' ' || md5(v) FROM b ORDER BY id",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    assert_eq!(my, pg);
    assert!(my[0].starts_with("30000000 "), "{my:?}");
}

/// A value pgclipper must refuse: row 1 is fine, row 2 is not.
struct Refusal {
    my: &'static str,
    pg: &'static str,
    good: &'static str,
    bad: &'static str,
    reason: &'static str,
    hint: Option<&'static str>,
    extra: &'static [&'static str],
}

const fn refusal(
    my: &'static str,
    pg: &'static str,
    good: &'static str,
    bad: &'static str,
    reason: &'static str,
) -> Refusal {
    Refusal {
        my,
        pg,
        good,
        bad,
        reason,
        hint: None,
        extra: &[],
    }
}

fn check_refusal(r: &Refusal) {
    let source = unique("refuse");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        format!(
            "SET sql_mode = 'ALLOW_INVALID_DATES'; CREATE TABLE r (id int PRIMARY KEY, v {}); INSERT INTO r VALUES (1, {}), (2, {});",
            r.my, r.good, r.bad
        )
        .as_bytes(),
    );
    let checksum_before = mysql_query(&source, "CHECKSUM TABLE r");
    let target = unique("refuse");
    create_pg_db(&target);
    psql(
        &target,
        format!(
            "CREATE TYPE kind AS ENUM ('a'); CREATE TABLE r (id int PRIMARY KEY, v {})",
            r.pg
        )
        .as_bytes(),
    );
    let out = migrate(&source, &target, &workdir("refuse"), r.extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let case = format!("MySQL {} = {} into Postgres {}", r.my, r.bad, r.pg);
    assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
    assert!(
        stderr.contains("table `r`, key id=2, column `v`: "),
        "{case}: {stderr}"
    );
    assert!(stderr.contains(r.reason), "{case}: {stderr}");
    assert!(stderr.contains("(value: "), "{case}: {stderr}");
    if let Some(hint) = r.hint {
        assert!(stderr.contains(hint), "{case}: {stderr}");
    }
    let committed = pg_query(&target, "SELECT count(*) FROM r");
    assert_eq!(
        committed[0][0].as_deref(),
        Some("0"),
        "{case}: nothing of the chunk is committed"
    );
    assert_eq!(
        mysql_query(&source, "CHECKSUM TABLE r"),
        checksum_before,
        "{case}: source untouched"
    );
}

#[test]
fn every_refused_value_stops_the_run_with_its_location_and_reason() {
    let refusals = [
        refusal(
            "int",
            "smallint",
            "1",
            "40000",
            "outside the target column's range",
        ),
        refusal(
            "bigint unsigned",
            "bigint",
            "1",
            "18446744073709551615",
            "outside the target column's range",
        ),
        refusal("tinyint", "boolean", "1", "2", "only 0 and 1"),
        refusal(
            "decimal(12,2)",
            "numeric(5,2)",
            "1",
            "'12345.67'",
            "integer digits do not fit",
        ),
        refusal(
            "varchar(10)",
            "varchar(3)",
            "'abc'",
            "'abcé'",
            "4 characters do not fit",
        ),
        refusal(
            "varchar(10)",
            "text",
            "'a'",
            "CONCAT('a', CHAR(0), 'b')",
            "NUL byte",
        ),
        refusal("blob", "text", "'a'", "UNHEX('FF')", "not valid UTF-8"),
        refusal("char(36)", "uuid", "UUID()", "'not-a-uuid'", "not a uuid"),
        refusal("char(36)", "uuid", "UUID()", "''", "not a uuid"),
        refusal("longtext", "jsonb", "'{}'", "'{\"a\":'", "not valid JSON"),
        refusal("longtext", "json", "'[]'", "'[1,]'", "not valid JSON"),
        refusal(
            "longtext",
            "jsonb",
            "'{}'",
            "'\"\\\\u0000\"'",
            "jsonb cannot store",
        ),
        refusal(
            "varchar(5)",
            "kind",
            "'a'",
            "'zzz'",
            "does not exist in the target enum type",
        ),
        Refusal {
            hint: Some("--zero-dates null writes NULL instead"),
            ..refusal(
                "datetime",
                "timestamp",
                "NOW()",
                "'0000-00-00 00:00:00'",
                "zero date",
            )
        },
        Refusal {
            extra: &["--zero-dates", "null"],
            ..refusal(
                "date",
                "date NOT NULL",
                "'2020-01-01'",
                "'2020-00-00'",
                "NULL into a NOT NULL target column",
            )
        },
        refusal(
            "date",
            "date",
            "'2020-01-01'",
            "'2021-02-29'",
            "not a calendar date",
        ),
        refusal(
            "datetime",
            "date",
            "'2020-01-01'",
            "'2020-01-01 10:00:00'",
            "time of day would be lost",
        ),
        refusal(
            "datetime(6)",
            "timestamp(0)",
            "'2020-01-01'",
            "'2020-01-01 00:00:00.5'",
            "precision",
        ),
        refusal(
            "time",
            "time",
            "'10:00:00'",
            "'25:00:00'",
            "fits only an interval column",
        ),
        refusal(
            "time",
            "time",
            "'10:00:00'",
            "'-01:00:00'",
            "fits only an interval column",
        ),
    ];
    for r in &refusals {
        check_refusal(r);
    }
}

#[test]
fn check_refuses_type_pairs_it_cannot_convert_before_any_data_moves() {
    let source = unique("checkrefuse");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        b"CREATE TABLE e (id int PRIMARY KEY, k enum('a','b','c'), d decimal(10,4), t date, extra int);
          INSERT INTO e VALUES (1, 'a', 1.5, '2020-01-01', 1);",
    );
    let target = unique("checkrefuse");
    create_pg_db(&target);
    psql(
        &target,
        b"CREATE TYPE kind AS ENUM ('a'); CREATE TABLE e (id int PRIMARY KEY, k kind, d numeric(10,2), t boolean, must text NOT NULL)",
    );
    let out = check(&source, &target, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "`e`.`k`: enum labels [\"b\", \"c\"] are missing in target type kind",
        "`e`.`d`: scale 4 of MySQL decimal(10,4) would be rounded to 2",
        "`e`.`t`: no rule converts MySQL date into Postgres boolean",
        "`e`.`extra`: no column of that name",
        "`e`.`must`: target column is NOT NULL without a default",
        "5 problem(s)",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
    let out = migrate(&source, &target, &workdir("checkrefuse"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        pg_query(&target, "SELECT count(*) FROM e")[0][0].as_deref(),
        Some("0")
    );
}

#[test]
fn an_unknown_source_time_zone_is_a_usage_error() {
    let source = unique("tz");
    create_mysql_db(&source);
    mysql_exec(Some(&source), b"CREATE TABLE t (id int PRIMARY KEY)");
    let target = unique("tz");
    create_pg_db(&target);
    psql(&target, b"CREATE TABLE t (id int PRIMARY KEY)");
    let out = check(
        &source,
        &target,
        &["--source-timezone", "Mars/Olympus_Mons"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
