//! `verify` against real migrations: clean ones verify clean, right after `migrate` on its
//! workdir and on a new one; every damage done to the target behind the tool's back is
//! found and named by table and key; keys that differ only in case, accents or trailing
//! spaces are told apart whatever the collations.

use std::path::Path;

use crate::common::*;

/// Runs `verify`; returns its exit code and what it printed.
fn verify(source: &str, target: &str, workdir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let wd = workdir.to_str().unwrap();
    let mut args = vec![
        "verify",
        "--source",
        source,
        "--target",
        target,
        "--workdir",
        wd,
    ];
    args.extend_from_slice(extra);
    run_cli(&args, &[("PGCLIPPER_LOG", "warn")])
}

#[test]
fn a_clean_migration_verifies_clean_after_migrate_and_on_a_new_workdir() {
    let env = shared_env();
    let (my, pg) = servers(&env);
    let db = dataset(&env, 3_000, 30_000);
    let (source, target) = (format!("{my}/{db}"), format!("{pg}/{db}"));
    let wd = workdir("verify_clean");
    migrate_ok(&db, &db, &wd, &["--chunk-rows", "4000"]);
    let (code, text) = verify(&source, &target, &wd, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the migration's plan, reused"), "{text}");
    assert!(
        text.contains("events: 30000 rows identical")
            && text.contains("users: 3000 rows identical"),
        "{text}"
    );
    assert!(
        text.contains("ok: as recorded before the load: 5 keys"),
        "{text}"
    );
    assert!(
        text.contains("ok: sequences past the loaded values: events_id_seq"),
        "{text}"
    );
    assert!(text.contains("identical: 2 tables, 33000 rows"), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&read(&wd.join("verify.json"))).unwrap();
    assert_eq!(report["tables"].as_array().unwrap().len(), 2);

    let fresh = workdir("verify_fresh");
    let (code, text) = verify(&source, &target, &fresh, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("a new plan") && text.contains("identical: 2 tables"),
        "{text}"
    );
}

#[test]
fn every_damage_to_the_target_is_found_and_named() {
    let env = shared_env();
    let (my, pg) = servers(&env);
    let db = dataset(&env, 2_000, 20_000);
    let (source, target) = (format!("{my}/{db}"), format!("{pg}/{db}"));
    let wd = workdir("verify_damage");
    migrate_ok(&db, &db, &wd, &[]);
    let user = |n: u32| {
        pg_query(
            &db,
            &format!("SELECT id::text FROM users WHERE email = 'user{n}@example.org'"),
        )[0][0]
            .clone()
            .unwrap()
    };
    let (changed, json, inserted) = (user(10), user(20), user(30));
    psql(
        &db,
        format!(
            "UPDATE users SET name = 'someone else' WHERE id = '{changed}';
             UPDATE users SET profile = jsonb_set(profile, '{{lang}}', '\"xx\"') WHERE id = '{json}';
             DELETE FROM events WHERE id = 5;
             INSERT INTO events (id, user_id, kind, created_at) VALUES (999999, '{inserted}', 'login', '2021-01-01');
             UPDATE events SET payload = '' WHERE id = 13;
             UPDATE events SET created_at = created_at + interval '2 hours' WHERE id = 7;
             DROP INDEX events_user_id;
             ALTER TABLE events DROP CONSTRAINT events_user_id_fkey;
             ALTER TABLE events ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
             SELECT setval('events_id_seq', 1);"
        )
        .as_bytes(),
    );
    let (code, text) = verify(&source, &target, &wd, &[]);
    assert_eq!(code, Some(1), "{text}");
    for expected in [
        "users: DIFFERS: 0 missing in the target, 0 extra, 2 changed".to_string(),
        format!("changed id={changed}: name"),
        format!("changed id={json}: profile"),
        "events: DIFFERS: 1 missing in the target, 1 extra, 2 changed".into(),
        "missing id=5".into(),
        "extra id=999999".into(),
        "changed id=13: payload".into(),
        "changed id=7: created_at".into(),
        "FAILED: as recorded before the load: index public.events_user_id on public.events is missing".into(),
        "FAILED: validated: events_user_id_fkey on events is not valid".into(),
        "FAILED: sequences past the loaded values: events_id_seq".into(),
    ] {
        assert!(text.contains(&expected), "{expected}\n{text}");
    }
    // Values only when asked: the data are personal.
    assert!(!text.contains("someone else"), "{text}");
    let (_, shown) = verify(&source, &target, &wd, &["--show-values"]);
    assert!(shown.contains("someone else"), "{shown}");
    assert!(
        shown.contains("2021-01-01 00:00:07.000000 → 2021-01-01 02:00:07.000000"),
        "{shown}"
    );
}

#[test]
fn keys_that_differ_only_in_case_accents_or_trailing_spaces_are_told_apart() {
    let db = database_pair(
        "verify_keys",
        "CREATE TABLE exact (id varchar(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, v int);
         INSERT INTO exact VALUES ('abc', 1), ('ABC', 2), ('Abc', 3), ('abc ', 4), ('ábc', 5), ('abd', 6);
         CREATE TABLE folded (id varchar(20) COLLATE utf8mb4_unicode_ci PRIMARY KEY, v int);
         INSERT INTO folded VALUES ('émile', 1), ('Zoë', 2), ('apple', 3), ('Banana', 4), ('cherry ', 5);"
            .as_bytes(),
        b"CREATE TABLE exact (id varchar(20) PRIMARY KEY, v int);
          CREATE TABLE folded (id varchar(20) COLLATE \"C\" PRIMARY KEY, v int);",
    );
    let wd = workdir("verify_keys");
    migrate_ok(&db, &db, &wd, &["--chunk-rows", "2"]);
    let (source, target) = (mysql_url(&db), postgres_url(&db));
    let (code, text) = verify(&source, &target, &wd, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("exact: 6 rows identical") && text.contains("folded: 5 rows identical"),
        "{text}"
    );

    psql(
        &db,
        "UPDATE exact SET id = 'aBC' WHERE id = 'ABC'; UPDATE exact SET id = 'abc' || ' ' || ' ' WHERE id = 'abc ';
         UPDATE folded SET id = 'emile' WHERE id = 'émile';"
            .as_bytes(),
    );
    let (code, text) = verify(&source, &target, &wd, &[]);
    assert_eq!(code, Some(1), "{text}");
    for expected in [
        "exact: DIFFERS: 2 missing in the target, 2 extra, 0 changed",
        "missing id=ABC",
        "extra id=aBC",
        "missing id=abc ",
        "folded: DIFFERS: 1 missing in the target, 1 extra, 0 changed",
        "missing id=émile",
        "extra id=emile",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
}

#[test]
fn critical_assertions_run_on_both_sides_with_their_verdicts() {
    let (source, target) = tiny_pair();
    let dir = workdir("verify_critical");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pgclipper.toml");
    std::fs::write(
        &config,
        "[[critical]]\nname = \"rows of t\"\nsource_sql = \"SELECT count(*) FROM t\"\ntarget_sql = \"SELECT count(*) FROM t\"\n\n\
         [[critical]]\nname = \"a question with two answers\"\nsource_sql = \"SELECT 1\"\ntarget_sql = \"SELECT 2\"\n",
    )
    .unwrap();
    let wd = dir.join("work");
    let migrate = [
        "migrate",
        "--source",
        &source,
        "--target",
        &target,
        "--workdir",
        wd.to_str().unwrap(),
    ];
    let (code, text) = run_cli(&migrate, &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = verify(
        &source,
        &target,
        &wd,
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("ok: critical: rows of t: source [[Some(\"2\")]], target [[Some(\"2\")]]"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: critical: a question with two answers"),
        "{text}"
    );
    assert!(text.contains("t: 2 rows identical"), "{text}");
}

/// A conversion that placed values wrong is found, not reproduced: the load puts datetimes
/// in Amsterdam time, a verify that expects UTC (as a buggy rule would have loaded them)
/// names every shifted row and the column.
#[test]
fn a_time_zone_shift_in_the_load_is_found_row_by_row() {
    let db = database_pair(
        "verify_zone",
        b"CREATE TABLE e (id int PRIMARY KEY, at datetime(6), flag tinyint(1));
          INSERT INTO e VALUES (1, '2024-01-15 12:00:00', 1), (2, '2024-07-15 12:00:00.5', 0), (3, NULL, 1);",
        b"CREATE TABLE e (id int PRIMARY KEY, at timestamptz(6), flag boolean)",
    );
    let wd = workdir("verify_zone");
    migrate_ok(&db, &db, &wd, &["--source-timezone", "Europe/Amsterdam"]);
    let zone = ["--source-timezone", "Europe/Amsterdam"];
    let (code, text) = verify_run(&db, &db, &wd, &zone);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = verify_run(&db, &db, &workdir("verify_zone_utc"), &["--show-values"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("e: DIFFERS: 0 missing in the target, 0 extra, 2 changed"),
        "{text}"
    );
    assert!(
        text.contains("changed id=1: at (2024-01-15 12:00:00.000000 → 2024-01-15 11:00:00.000000)"),
        "{text}"
    );
    assert!(
        text.contains("changed id=2: at (2024-07-15 12:00:00.500000 → 2024-07-15 10:00:00.500000)"),
        "{text}"
    );
    // A flipped boolean is a changed row too.
    psql(&db, b"UPDATE e SET flag = NOT flag WHERE id = 3");
    let (code, text) = verify_run(&db, &db, &wd, &zone);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("changed id=3: flag"), "{text}");
}

/// A sequence a column's default draws from without owning it (pg_dump output of ported
/// schemas): the application's next insert must not collide with a copied row.
#[test]
fn sequences_a_default_draws_from_are_past_the_loaded_values_even_when_not_owned() {
    let db = database_pair(
        "verify_seq",
        b"CREATE TABLE a (id int PRIMARY KEY, v int); INSERT INTO a VALUES (1, 1), (41, 2);
          CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (7), (99);",
        b"CREATE SEQUENCE shared_seq; CREATE SEQUENCE a_v_seq;
          CREATE TABLE a (id int PRIMARY KEY DEFAULT nextval('shared_seq'), v int DEFAULT nextval('a_v_seq'));
          CREATE TABLE b (id int PRIMARY KEY DEFAULT nextval('shared_seq'));",
    );
    let wd = workdir("verify_seq");
    migrate_ok(&db, &db, &wd, &[]);
    let (code, text) = verify_run(&db, &db, &wd, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ok: sequences past the loaded values: shared_seq (for a.id)"),
        "{text}"
    );
    assert!(
        text.contains("ok: sequences past the loaded values: shared_seq (for b.id)"),
        "{text}"
    );
    // The shared sequence is past the max of both tables; an insert takes the next value.
    let next = pg_query(&db, "SELECT nextval('shared_seq')");
    assert_eq!(next[0][0].as_deref(), Some("100"));
    let next = pg_query(&db, "SELECT nextval('a_v_seq')");
    assert_eq!(next[0][0].as_deref(), Some("3"));
    // And reset puts both back as they were.
    let reset = [
        "reset",
        "--target",
        &postgres_url(&db),
        "--workdir",
        wd.to_str().unwrap(),
        "--yes",
    ];
    let (code, text) = run_cli(&reset, &[]);
    assert_eq!(code, Some(0), "{text}");
    let state = pg_query(&db, "SELECT last_value, is_called FROM shared_seq");
    assert_eq!(state[0], [Some("1".to_string()), Some("f".to_string())]);
}
