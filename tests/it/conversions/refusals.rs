//! Every refusal: exit code 1, a message naming table, key, column, value and reason,
//! nothing committed, source intact; and type pairs `check` refuses before any data moves.

use crate::common::*;

/// A value pgclipper must refuse: row 1 is fine, row 2 is not.
struct Refusal<'a> {
    my: &'static str,
    pg: &'static str,
    good: &'a str,
    bad: &'a str,
    reason: &'static str,
    hint: Option<&'static str>,
    extra: &'static [&'static str],
}

const fn refusal<'a>(
    my: &'static str,
    pg: &'static str,
    good: &'a str,
    bad: &'a str,
    reason: &'static str,
) -> Refusal<'a> {
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
    assert!(
        stderr.len() < 4096,
        "{case}: one short message, {} bytes of it",
        stderr.len()
    );
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

/// Values of a megabyte or more are converted in pieces as they are written (the streamed
/// path): a bad one is refused like a small one, with its location and reason, a short
/// excerpt and not the value, and nothing of its chunk committed. Row 1 is a good large
/// value, so the bad row comes in a batch the streamed path is already taking.
#[test]
fn a_bad_value_of_megabytes_is_refused_like_a_small_one() {
    const TWO_MIB: &str = "2 * 1024 * 1024";
    let good_text = format!("REPEAT('a', {TWO_MIB})");
    let refusals = [
        (
            "longblob",
            "text",
            format!("CONCAT(REPEAT('a', {TWO_MIB}), UNHEX('FF'))"),
            "not valid UTF-8",
        ),
        (
            "longtext",
            "text",
            format!("CONCAT(REPEAT('a', {TWO_MIB}), CHAR(0))"),
            "NUL byte",
        ),
        (
            "longtext",
            "varchar(2097152)",
            format!("CONCAT(REPEAT('é', {TWO_MIB}), 'z')"),
            "characters do not fit",
        ),
        (
            "longtext",
            "json",
            format!("CONCAT('[', REPEAT('1,', {TWO_MIB}), ']')"),
            "not valid JSON",
        ),
        (
            "longtext",
            "jsonb",
            format!("CONCAT('[\"', REPEAT('a', {TWO_MIB}), '\\\\u0000\"]')"),
            "jsonb cannot store",
        ),
    ];
    for (my, pg, bad, reason) in refusals {
        let good = if pg.starts_with("json") {
            format!("CONCAT('[\"', {good_text}, '\"]')")
        } else {
            good_text.clone()
        };
        check_refusal(&refusal(my, pg, &good, &bad, reason));
    }
}
