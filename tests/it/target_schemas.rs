//! Target schemas as people write them by hand or port them with other tools: triggers that
//! fill columns, domains with checks, arrays of short labels. A row the target refuses is
//! named by its key, as pgclipper's own refusals are.

use crate::common::*;

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
    let db = database_pair(
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
        let db = database_pair(name, mysql, &postgres);
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

#[test]
fn citext_network_and_mac_addresses_and_domains_arrive_and_verify() {
    let db = database_pair(
        "net_types",
        "CREATE TABLE h (id int PRIMARY KEY, email varchar(100), ip varchar(50), net varchar(50), mac char(17), n int);
         INSERT INTO h VALUES
           (1, 'Alice@Example.org', '192.168.0.1', '10.0.0.0/8', '08:00:2B:01:02:03', 1),
           (2, 'bob@example.org', '2001:DB8::1', '2001:db8::/32', '08-00-2b-01-02-04', 2),
           (3, NULL, '10.1.2.3/24', '192.168.1.0/24', '0800.2b01.0205', 3);",
        "CREATE EXTENSION citext;
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE h (id int PRIMARY KEY, email citext, ip inet, net cidr, mac macaddr, n positive);",
    );
    let wd = workdir("net_types");
    migrate_ok(&db, &db, &wd, &[]);
    let rows = pg_query(
        &db,
        "SELECT email::text, ip::text, net::text, mac::text, n::text FROM h ORDER BY id",
    );
    let text = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        rows[0],
        text(&[
            "Alice@Example.org",
            "192.168.0.1/32",
            "10.0.0.0/8",
            "08:00:2b:01:02:03",
            "1"
        ])
    );
    assert_eq!(
        rows[1],
        text(&[
            "bob@example.org",
            "2001:db8::1/128",
            "2001:db8::/32",
            "08:00:2b:01:02:04",
            "2"
        ])
    );
    assert_eq!(rows[2][1].as_deref(), Some("10.1.2.3/24"));
    // citext compares without case, as the application expects of emails.
    let found = pg_query(&db, "SELECT id FROM h WHERE email = 'alice@example.ORG'");
    assert_eq!(found[0][0].as_deref(), Some("1"));
    let (code, out) = verify_run(&db, &db, &wd, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("h: 3 rows identical"), "{out}");

    // Text that is no address is refused by pgclipper, naming the row.
    for (column, bad, reason) in [
        ("ip", "'300.1.1.1'", "not an IP address"),
        (
            "net",
            "'10.0.0.1/8'",
            "not a network: bits are set past the prefix length",
        ),
        ("mac", "'08:00:2b:01:02'", "not a MAC address"),
    ] {
        let db = database_pair(
            "net_bad",
            format!(
                "CREATE TABLE h (id int PRIMARY KEY, {column} varchar(50)); INSERT INTO h VALUES (1, NULL), (5, {bad});"
            ),
            format!(
                "CREATE TABLE h (id int PRIMARY KEY, {column} {});",
                match column {
                    "ip" => "inet",
                    "net" => "cidr",
                    _ => "macaddr",
                }
            ),
        );
        let out = migrate(&db, &db, &workdir("net_bad"), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{column}: {stderr}");
        assert!(
            stderr.contains(&format!("table `h`, key id=5, column `{column}`: {reason}")),
            "{column}: {stderr}"
        );
    }
}

#[test]
fn a_row_whose_parent_is_missing_stops_the_run_at_its_foreign_key_and_a_fixed_target_resumes() {
    // MySQL with foreign_key_checks off (as every mysqldump restores) can hold a child row
    // whose parent is gone. Postgres refuses the foreign key when it validates it: the run
    // stops naming the row by its key, the column, the parent and the constraint; the rows
    // stay loaded, the foreign key stays recorded (not half there), and once the operator
    // fixes the target a second run on the same workdir puts it back, validated. The parent
    // is `user`, whose name needs quotes (Alkemio has it), so its key, rebuilt in the first
    // run, must be known as rebuilt in the second.
    let db = orphans("orphan");
    let wd = workdir("orphan");
    for format in ["binary", "csv"] {
        let out = migrate(
            &db,
            &db,
            &wd,
            &["--exclude", "other", "--copy-format", format],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let expected =
            "table `note`, key id=11, column `user_id`: `user` has no row with `id` = 3, \
            which foreign key note_user_fk requires (2 more rows of `note` like it); the rows stay \
            loaded and note_user_fk stays off (recorded in pgclipper.deferred_constraints)";
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
        assert!(
            stderr.contains("`pgclipper migrate` on the same workdir puts it back"),
            "{stderr}"
        );
    }
    let foreign_keys = |db: &str| {
        pg_query(
            db,
            "SELECT conname::text, convalidated::text FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY 1",
        )
    };
    // other_user_fk (from a table outside the plan) may be back already, or not: the
    // sessions stop at the first error.
    assert!(
        !foreign_keys(&db)
            .iter()
            .any(|fk| fk[0].as_deref() == Some("note_user_fk")),
        "note_user_fk absent, not half there"
    );
    assert_eq!(
        pg_query(&db, "SELECT count(*) FROM note")[0][0].as_deref(),
        Some("6")
    );
    let recorded = pg_query(
        &db,
        "SELECT object_name FROM pgclipper.deferred_constraints WHERE restored_at IS NULL AND kind <> 'foreign'
         UNION ALL SELECT 'note_user_fk' FROM pgclipper.deferred_constraints WHERE restored_at IS NULL AND object_name = 'note_user_fk'",
    );
    assert_eq!(
        recorded,
        [[Some("note_user_fk".to_string())]],
        "the keys are known as rebuilt"
    );
    assert_eq!(autovacuum(&db), rows(HELD_OFF), "until the rebuild is done");

    psql(&db, b"INSERT INTO \"user\" VALUES (3), (4);");
    migrate_ok(&db, &db, &wd, &["--exclude", "other"]);
    let valid = |name: &str| vec![Some(name.to_string()), Some("true".to_string())];
    assert_eq!(
        foreign_keys(&db),
        [valid("note_user_fk"), valid("other_user_fk")]
    );
    let unrestored = pg_query(
        &db,
        "SELECT count(*) FROM pgclipper.deferred_constraints WHERE restored_at IS NULL",
    );
    assert_eq!(unrestored[0][0].as_deref(), Some("0"));
    assert_eq!(
        autovacuum(&db),
        rows(OWN_SETTINGS),
        "each table's own, exactly"
    );
}

#[test]
fn a_large_foreign_key_whose_columns_lead_an_index_is_validated_from_the_indexes_and_still_refuses_orphans(
) {
    // 1.1M sheets and 1.1M lines: past the size where a hash join of the validation misses
    // the processor's cache. `line`'s two-column key to `sheet` leads an index (in the other
    // column order), so the rebuild vacuums both tables before validating it and steers the
    // validation to a merge join of the two indexes; its second key to `sheet` leads none
    // and is validated as before. Line 12's sheet is missing: the merge join finds it.
    let db = database_pair(
        "fk_index",
        "CREATE TABLE sheet (book int, page int, PRIMARY KEY (book, page));
         INSERT INTO sheet SELECT seq DIV 1000, seq MOD 1000 FROM seq_0_to_1099999;
         CREATE TABLE line (id int PRIMARY KEY, book int, page int, was_book int, was_page int);
         INSERT INTO line SELECT seq, seq DIV 1000, seq MOD 1000, NULL, NULL FROM seq_0_to_1099999;
         UPDATE line SET page = 5000 WHERE id = 12;
         UPDATE line SET was_book = 1, was_page = 1 WHERE id = 13;",
        "CREATE TABLE sheet (book int, page int, PRIMARY KEY (book, page));
         CREATE TABLE line (id int PRIMARY KEY, book int, page int, was_book int, was_page int,
             CONSTRAINT line_sheet_fk FOREIGN KEY (book, page) REFERENCES sheet (book, page),
             CONSTRAINT line_was_fk FOREIGN KEY (was_book, was_page) REFERENCES sheet (book, page));
         CREATE INDEX line_page_book ON line (page, book, id);",
    );
    let wd = workdir("fk_index");
    let (code, failed) = migrate_logging(&db, &db, &wd, &[]);
    assert_eq!(code, Some(1), "{failed}");
    let expected = "table `line`, key id=12, column (`book`, `page`): `sheet` has no row with \
        (`book`, `page`) = (0, 5000), which foreign key line_sheet_fk requires (the only such row)";
    assert!(failed.contains(expected), "{expected}:\n{failed}");
    let from_index = |log: &str, fk: &str| {
        log.lines().any(|l| {
            l.contains("Vacuumed before validating a foreign key from its index")
                && l.contains(&format!("\"object\":\"{fk}\""))
        })
    };
    assert!(from_index(&failed, "line_sheet_fk"), "{failed}");

    psql(&db, b"INSERT INTO sheet VALUES (0, 5000);");
    let (code, resumed) = migrate_logging(&db, &db, &wd, &[]);
    assert_eq!(code, Some(0), "{resumed}");
    assert!(from_index(&resumed, "line_sheet_fk"), "{resumed}");
    assert!(!from_index(&failed, "line_was_fk") && !from_index(&resumed, "line_was_fk"));
    let valid = pg_query(
        &db,
        "SELECT conname::text, convalidated::text FROM pg_constraint
         WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY 1",
    );
    let row = |name: &str| vec![Some(name.to_string()), Some("true".to_string())];
    assert_eq!(valid, [row("line_sheet_fk"), row("line_was_fk")]);
    // Vacuumed: the tables' visibility maps are set.
    let visible = pg_query(
        &db,
        "SELECT relname::text, relallvisible > 0 FROM pg_class
         WHERE relname IN ('line', 'sheet') ORDER BY 1",
    );
    let set = |name: &str| vec![Some(name.to_string()), Some("t".to_string())];
    assert_eq!(visible, [set("line"), set("sheet")]);
}

/// `user` and `note`, in which rows 11 and 14 name user 3, and row 15 user 4, none there;
/// `other`, in the target only, references `user` too. Each table has its own autovacuum
/// setting ([`OWN_SETTINGS`]).
fn orphans(name: &str) -> String {
    database_pair(
        name,
        "CREATE TABLE `user` (id int PRIMARY KEY);
         CREATE TABLE note (id int PRIMARY KEY, user_id int, body text);
         INSERT INTO `user` VALUES (1), (2);
         INSERT INTO note (id, user_id) VALUES (10, 1), (11, 3), (12, 2), (13, NULL), (14, 3), (15, 4);",
        "CREATE TABLE \"user\" (id int PRIMARY KEY) WITH (autovacuum_enabled = true);
         CREATE TABLE note (id int PRIMARY KEY, user_id int CONSTRAINT note_user_fk REFERENCES \"user\" (id), body text)
             WITH (toast.autovacuum_enabled = false, fillfactor = 90);
         CREATE TABLE other (id int PRIMARY KEY, user_id int CONSTRAINT other_user_fk REFERENCES \"user\" (id));",
    )
}

/// Each table's storage options and its TOAST table's, `-` for none.
fn autovacuum(db: &str) -> Vec<Vec<Option<String>>> {
    pg_query(
        db,
        "SELECT c.relname::text, coalesce(c.reloptions::text, '-'), coalesce(t.reloptions::text, '-')
         FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1",
    )
}

fn rows(rows: &[[&str; 3]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|v| Some(v.to_string())).collect())
        .collect()
}

const OWN_SETTINGS: &[[&str; 3]] = &[
    ["note", "{fillfactor=90}", "{autovacuum_enabled=false}"],
    ["other", "-", "-"],
    ["user", "{autovacuum_enabled=true}", "-"],
];
const HELD_OFF: &[[&str; 3]] = &[
    [
        "note",
        "{fillfactor=90,autovacuum_enabled=off}",
        "{autovacuum_enabled=off}",
    ],
    ["other", "-", "-"],
    ["user", "{autovacuum_enabled=off}", "-"],
];

#[test]
fn reset_puts_back_autovacuum_and_a_foreign_key_from_outside_the_plan() {
    let db = orphans("orphan_reset");
    let wd = workdir("orphan_reset");
    let out = migrate(&db, &db, &wd, &["--exclude", "other"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(autovacuum(&db), rows(HELD_OFF));
    let target = postgres_url(&db);
    let wd_text = wd.to_string_lossy();
    let reset = ["reset", "--target", &target, "--workdir", &wd_text, "--yes"];
    pgclipper_ok(&reset);
    assert_eq!(autovacuum(&db), rows(OWN_SETTINGS));

    // After a complete run too, though `other`, outside the plan, references `user` (which
    // TRUNCATE alone refuses): its foreign key is taken off for the reset and put back.
    mysql_exec(Some(&db), b"INSERT INTO `user` VALUES (3), (4);");
    migrate_ok(&db, &db, &wd, &["--exclude", "other"]);
    pgclipper_ok(&reset);
    assert_eq!(autovacuum(&db), rows(OWN_SETTINGS));
    let left = pg_query(
        &db,
        "SELECT (SELECT count(*) FROM \"user\") + (SELECT count(*) FROM note),
                (SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname)
                 FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace)",
    );
    assert_eq!(
        left[0],
        [
            Some("0".to_string()),
            Some("note_user_fk true, other_user_fk true".to_string())
        ]
    );
}

#[test]
fn a_partitioned_target_table_loads_with_autovacuum_held_off_its_partitions() {
    // A partitioned table has no storage of its own (no storage options either): autovacuum
    // is held off its partitions, and each gets its own setting back.
    let db = database_pair(
        "partitioned",
        "CREATE TABLE ev (id int, at date, PRIMARY KEY (id, at));
         INSERT INTO ev VALUES (1, '2025-03-01'), (2, '2026-03-01'), (3, '2026-04-01');",
        "CREATE TABLE ev (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
             WITH (autovacuum_enabled = false);
         CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
    );
    migrate_ok(&db, &db, &workdir("partitioned"), &[]);
    let partitions = pg_query(
        &db,
        "SELECT relname::text, coalesce(reloptions::text, '-'),
                (SELECT count(*) FROM ev WHERE tableoid = c.oid)::text
         FROM pg_class c WHERE relname LIKE 'ev\\_%' AND relkind = 'r' ORDER BY 1",
    );
    assert_eq!(
        partitions,
        rows(&[
            ["ev_2025", "{autovacuum_enabled=false}", "1"],
            ["ev_2026", "-", "2"]
        ])
    );
    let held = pg_query(
        &db,
        "SELECT string_agg(table_name, ', ' ORDER BY table_name) FROM pgclipper.autovacuum",
    );
    assert_eq!(
        held[0][0].as_deref(),
        Some("public.ev_2025, public.ev_2026")
    );
}
