//! Kratos' own migration test data, dumped from MySQL, migrated by pgclipper into Kratos'
//! Postgres schema, must equal the same test data as Kratos itself wrote it into Postgres.

use crate::common::*;

const KRATOS: &str = "kratos-v1.3.1";

/// MariaDB with Kratos' MySQL test dump, Postgres with Kratos' schema as `kratos migrate sql`
/// leaves it, and a second Postgres database with Kratos' own Postgres test dump.
pub(crate) fn kratos_databases() -> (String, String, String) {
    let dir = fixtures().join(KRATOS);
    let source = unique("kratos");
    create_mysql_db(&source);
    mysql_exec(Some(&source), &read(&dir.join("mysql-testdata-dump.sql")));

    let target = unique("kratos");
    create_pg_db(&target);
    psql(&target, &read(&dir.join("postgres-schema.sql")));
    psql(
        &target,
        &read(&dir.join("postgres-schema_migration-rows.sql")),
    );

    let expected = unique("kratos_expected");
    create_pg_db(&expected);
    psql(&expected, &read(&dir.join("postgres-testdata-dump.sql")));
    (source, target, expected)
}

fn tables(db: &str) -> Vec<String> {
    pg_query(
        db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migration' ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

#[test]
fn kratos_test_data_arrives_identical_to_kratos_own_postgres_dump() {
    let (source, target, expected) = kratos_databases();
    let wd = workdir("kratos");
    // Three rows per chunk: every table of more than three rows is split on its uuid key.
    let out = migrate_ok(
        &source,
        &target,
        &wd,
        &["--exclude", "schema_migration", "--chunk-rows", "3"],
    );
    assert!(out.contains("pgclipper migrated 115 rows"), "{out}");

    let tables = tables(&expected);
    assert_eq!(tables.len(), 25, "{tables:?}");
    for table in &tables {
        assert_eq!(
            pg_table_text(&target, table),
            pg_table_text(&expected, table),
            "table {table} differs from Kratos' own Postgres data"
        );
    }
    // Split tables really were split, and every chunk is in the ledger.
    let chunks = pg_query(
        &target,
        "SELECT count(*) FROM pgclipper.chunks WHERE table_name = 'selfservice_login_flows'",
    );
    assert_eq!(chunks[0][0].as_deref(), Some("6"), "17 rows in chunks of 3");
    // The excluded table was left alone.
    let migrations = pg_query(&target, "SELECT count(*) FROM public.schema_migration");
    assert_eq!(migrations[0][0].as_deref(), Some("315"));
    // The catalog is exactly as Kratos' own: every index and constraint back, validated.
    for catalog in [
        "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT conrelid::regclass || '.' || conname || ': ' || pg_get_constraintdef(oid) || ' ' || convalidated
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
    ] {
        assert_eq!(pg_query(&target, catalog), pg_query(&expected, catalog), "{catalog}");
    }
    assert_eq!(
        pg_query(
            &target,
            "SELECT count(*) FROM pgclipper.deferred_constraints WHERE restored_at IS NULL"
        )[0][0]
            .as_deref(),
        Some("0")
    );
    // Every foreign key is back, validated.
    let fks = pg_query(
        &target,
        "SELECT count(*), bool_and(convalidated) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    );
    let expected_fks = pg_query(
        &expected,
        "SELECT count(*), bool_and(convalidated) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    );
    assert_eq!(fks, expected_fks);

    // Chunk files are private.
    use std::os::unix::fs::PermissionsExt;
    let file = wd.join("data/identities/000000.csv");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&wd).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // And verify proves it, on the migration's workdir and on a new one, with the shipped
    // critical-data checklist.
    let checklist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kratos.toml");
    let fresh = workdir("kratos_verify");
    for wd in [&wd, &fresh] {
        let (code, text) = verify_run(
            &source,
            &target,
            wd,
            &["--config", checklist.to_str().unwrap()],
        );
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("identical: 25 tables, 115 rows"), "{text}");
        assert_eq!(text.matches("ok: critical: ").count(), 9, "{text}");
        assert!(
            text.contains("ok: critical: identities: rows: source [[Some(\"11\")]]"),
            "{text}"
        );
    }
}

#[test]
fn a_target_that_is_not_empty_is_refused_before_any_data_moves() {
    let (source, target, _) = kratos_databases();
    psql(
        &target,
        b"INSERT INTO public.networks (id, created_at, updated_at) VALUES (gen_random_uuid(), now(), now())",
    );
    let wd = workdir("kratos_nonempty");
    let out = migrate(&source, &target, &wd, &["--exclude", "schema_migration"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`networks`") && stderr.contains("not empty"),
        "{stderr}"
    );
    // schema_migration holds rows too, but it is excluded and so not named.
    assert!(!stderr.contains("schema_migration"), "{stderr}");
    let identities = pg_query(&target, "SELECT count(*) FROM public.identities");
    assert_eq!(identities[0][0].as_deref(), Some("0"), "no data moved");
}

#[test]
fn export_then_import_equals_migrate() {
    let (source, target, expected) = kratos_databases();
    let wd = workdir("kratos_split");
    let common = |cmd: &'static str| {
        vec![
            cmd.to_string(),
            "--source".into(),
            mysql_url(&source),
            "--target".into(),
            postgres_url(&target),
            "--workdir".into(),
            wd.to_str().unwrap().into(),
            "--exclude".into(),
            "schema_migration".into(),
        ]
    };
    let export: Vec<String> = common("export");
    pgclipper_ok(&export.iter().map(String::as_str).collect::<Vec<_>>());
    let identities = pg_query(&target, "SELECT count(*) FROM public.identities");
    assert_eq!(
        identities[0][0].as_deref(),
        Some("0"),
        "export writes nothing to the target"
    );
    pgclipper_ok(&[
        "import",
        "--target",
        &postgres_url(&target),
        "--workdir",
        wd.to_str().unwrap(),
    ]);
    for table in tables(&expected) {
        assert_eq!(
            pg_table_text(&target, &table),
            pg_table_text(&expected, &table),
            "{table}"
        );
    }
    // Both runs are in the workdir's report: what export wrote, what import loaded.
    let report: serde_json::Value = serde_json::from_slice(&read(&wd.join("report.json"))).unwrap();
    let attempts = report["attempts"].as_array().unwrap();
    let commands: Vec<&str> = attempts
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["export", "import"]);
    let rows = |attempt: &serde_json::Value, field: &str| -> u64 {
        let tables = attempt["tables"].as_object().unwrap();
        tables.values().map(|t| t[field].as_u64().unwrap()).sum()
    };
    assert_eq!(rows(&attempts[0], "exported_rows"), 115);
    assert_eq!(rows(&attempts[1], "rows"), 115);
    assert_eq!(attempts[0]["plan_id"], attempts[1]["plan_id"]);
    assert!(attempts[1]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["phase"] == "load"));
}

#[test]
fn check_reports_every_problem_at_once() {
    let (source, target, _) = kratos_databases();
    // Without --exclude: schema_migration is not empty in the target.
    psql(
        &target,
        b"ALTER TABLE public.sessions DROP COLUMN aal; CREATE TABLE public.unrelated (x int)",
    );
    let out = check(&source, &target, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("`sessions`.`aal`"), "{stdout}");
    assert!(
        stdout.contains("`schema_migration`") && stdout.contains("not empty"),
        "{stdout}"
    );
    assert!(stdout.contains("2 problem(s)"), "{stdout}");
}
