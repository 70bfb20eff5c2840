//! Target schemas as people write them by hand or port them with other tools: triggers that
//! fill columns, domains with checks, arrays of short labels. A row the target refuses is
//! named by its key, as pgclipper's own refusals are.

use crate::common::*;

/// A source database and a target database of one name, made from the SQL given.
fn pair(prefix: &str, mysql: &str, postgres: &str) -> String {
    let db = unique(prefix);
    create_mysql_db(&db);
    mysql_exec(Some(&db), mysql.as_bytes());
    create_pg_db(&db);
    psql(&db, postgres.as_bytes());
    db
}

const SLUG_TRIGGER: &str = "
    CREATE TABLE t (id int PRIMARY KEY, name text, slug text NOT NULL);
    CREATE FUNCTION fill_slug() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.name IS NOT NULL THEN NEW.slug := lower(NEW.name); END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER t_slug BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION fill_slug();";

#[test]
fn a_not_null_column_a_before_insert_trigger_fills_is_a_warning_and_the_load_proves_it() {
    let db = pair(
        "trigger_ok",
        "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'Hello'), (2, 'World');",
        SLUG_TRIGGER,
    );
    let out = check(&db, &db, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("`t`.`slug`: target column is NOT NULL without a default and no source column fills it; the BEFORE INSERT trigger t_slug may"), "{text}");
    assert!(
        text.contains("trigger t_slug (fill_slug) fires for every row loaded"),
        "{text}"
    );
    migrate_ok(&db, &db, &workdir("trigger_ok"), &[]);
    let slugs = pg_query(&db, "SELECT slug FROM t ORDER BY id");
    assert_eq!(
        slugs,
        [[Some("hello".to_string())], [Some("world".to_string())]]
    );
}

#[test]
fn rows_the_target_refuses_are_named_by_key() {
    // A NULL the trigger leaves, a domain's CHECK: each refused by Postgres for the whole
    // chunk, each named by its row's key; a set label too long for varchar(3)[], refused by
    // pgclipper before Postgres sees it.
    let cases = [
        (
            "trigger_null",
            "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c');",
            SLUG_TRIGGER.to_string(),
            "table `t`, key id=2, column `slug`: Postgres refused the row: 23502",
        ),
        (
            "domain",
            "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 5), (7, -1), (9, 3);",
            "CREATE DOMAIN positive AS int CHECK (VALUE > 0); CREATE TABLE t (id int PRIMARY KEY, v positive);".to_string(),
            "table `t`, key id=7: Postgres refused the row: 23514: value for domain positive violates check constraint",
        ),
        (
            "set_label",
            "CREATE TABLE t (id int PRIMARY KEY, tags set('ab','abcdef')); INSERT INTO t VALUES (1, 'ab'), (4, 'ab,abcdef');",
            "CREATE TABLE t (id int PRIMARY KEY, tags varchar(3)[]);".to_string(),
            // Checked by pgclipper itself, with the value.
            "table `t`, key id=4, column `tags`: set label",
        ),
    ];
    for (name, mysql, postgres, expected) in cases {
        let db = pair(name, mysql, &postgres);
        for format in ["binary", "csv"] {
            let out = migrate(&db, &db, &workdir(name), &["--copy-format", format]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}, {format}: {stderr}");
            assert!(
                stderr.contains(expected),
                "{name}, {format}: {expected}\n{stderr}"
            );
            assert!(!stderr.contains("Failing row contains"), "{stderr}");
            let rows = pg_query(&db, "SELECT count(*) FROM t");
            assert_eq!(
                rows[0][0].as_deref(),
                Some("0"),
                "{name}: nothing of the chunk committed"
            );
        }
    }
}
