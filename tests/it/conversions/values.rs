//! Numbers, text in every character set, uuids, bytes, enums, sets, JSON, generated
//! columns and large blobs.

use super::{check_rules, rule};
use crate::common::*;

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
