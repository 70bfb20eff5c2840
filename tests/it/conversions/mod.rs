//! Every conversion rule of docs/mapping.md against the real servers: values written into
//! MariaDB, migrated, and read back from Postgres as text; and every refusal: exit code 1,
//! a message naming table, key, column, value and reason, nothing committed, source intact.

mod dates;
mod refusals;
mod values;

use crate::common::*;

/// One rule: a MySQL column type, a Postgres column type, MySQL literals, and what
/// Postgres prints for each (`None` for NULL).
pub struct Rule {
    my: &'static str,
    pg: &'static str,
    values: &'static [&'static str],
    expected: &'static [Option<&'static str>],
}

pub const fn rule(
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
pub fn check_rules(rules: &[Rule], my_prelude: &str, pg_prelude: &str, extra: &[&str]) {
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
        let wd = workdir("conv");
        migrate_ok(&source, &target, &wd, &args);
        compare_rules(rules, &target, format);
        // verify, with its own canonical forms, finds the values equal too.
        let (code, text) = verify_run(&source, &target, &wd, extra);
        assert_eq!(code, Some(0), "verify after loading from {format}:\n{text}");
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
