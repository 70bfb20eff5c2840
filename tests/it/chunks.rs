//! Chunk boundaries against a real MariaDB: every row lands exactly once, whatever the key
//! shape or collation, with chunks small enough that every boundary is exercised.

use crate::common::*;

/// Creates the table on both sides, fills the source, migrates in chunks of `chunk_rows`,
/// and returns (source rows, target rows, chunks loaded), rows rendered by `columns`.
fn migrate_table(
    my_ddl: &str,
    pg_ddl: &str,
    inserts: &str,
    columns: &str,
    chunk_rows: u64,
) -> (Vec<String>, Vec<String>, usize) {
    let m = migrate_planned(my_ddl, pg_ddl, inserts, columns, chunk_rows);
    (m.source, m.target, m.chunks)
}

/// What [`migrate_planned`] saw.
struct Migrated {
    /// Rows rendered by `columns`, sorted.
    source: Vec<String>,
    target: Vec<String>,
    chunks: usize,
    /// The most rows a chunk loaded.
    largest_chunk: u64,
    /// How the table was split, as plan.json says.
    split: String,
}

fn migrate_planned(
    my_ddl: &str,
    pg_ddl: &str,
    inserts: &str,
    columns: &str,
    chunk_rows: u64,
) -> Migrated {
    let source = unique("chunks");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        format!("{my_ddl}; {inserts}; ANALYZE TABLE t;").as_bytes(),
    );
    let target = unique("chunks");
    create_pg_db(&target);
    psql(&target, pg_ddl.as_bytes());
    let wd = workdir("chunks");
    migrate_ok(
        &source,
        &target,
        &wd,
        &["--chunk-rows", &chunk_rows.to_string()],
    );
    let mut src: Vec<String> =
        mysql_query(&source, &format!("SELECT CONCAT_WS('|', {columns}) FROM t"))
            .into_iter()
            .map(|r| String::from_utf8(r[0].clone().unwrap()).unwrap())
            .collect();
    let mut dst: Vec<String> =
        pg_query(&target, &format!("SELECT CONCAT_WS('|', {columns}) FROM t"))
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect();
    src.sort();
    dst.sort();
    let counts = &pg_query(
        &target,
        "SELECT count(*), coalesce(max(rows), 0) FROM pgclipper.chunks",
    )[0];
    let plan: serde_json::Value = serde_json::from_slice(&read(&wd.join("plan.json"))).unwrap();
    Migrated {
        source: src,
        target: dst,
        chunks: counts[0].as_deref().unwrap().parse().unwrap(),
        largest_chunk: counts[1].as_deref().unwrap().parse().unwrap(),
        split: plan["tables"][0]["split"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    }
}

/// `n` rows of uuid keys from MariaDB's own md5, with `prefix` replacing their first
/// digits, as INSERT ... SELECT over its sequence engine.
fn uuid_rows(n: u32, prefix: &str) -> String {
    format!(
        "INSERT INTO t SELECT INSERT(CONCAT_WS('-', SUBSTR(h, 1, 8), SUBSTR(h, 9, 4), \
           SUBSTR(h, 13, 4), SUBSTR(h, 17, 4), SUBSTR(h, 21, 12)), 1, {len}, '{prefix}'), seq \
         FROM (SELECT MD5(CONCAT('{prefix}', seq)) AS h, seq FROM seq_1_to_{n}) AS s",
        len = prefix.len()
    )
}

/// 20,000 rows in chunks of 1,000 were split by their uuids' range, evenly.
fn assert_split_by_range(m: &Migrated) {
    assert_eq!(m.split, "uuid_range");
    assert!(m.chunks >= 18, "{} chunks", m.chunks);
    assert!(
        m.largest_chunk < 1_500,
        "{} rows in a chunk",
        m.largest_chunk
    );
}

#[test]
fn uuid_keys_are_split_by_their_range_without_reading_the_table() {
    let m = migrate_planned(
        "CREATE TABLE t (id char(36) PRIMARY KEY, v int)",
        "CREATE TABLE t (id uuid PRIMARY KEY, v int)",
        &uuid_rows(20_000, ""),
        "id, v",
        1_000,
    );
    assert_eq!(m.source.len(), 20_000);
    assert_eq!(m.source, m.target);
    assert_split_by_range(&m);
}

#[test]
fn uuid_keys_of_16_bytes_are_split_by_their_range_too() {
    let m = migrate_planned(
        "CREATE TABLE t (id binary(16) PRIMARY KEY, v int)",
        "CREATE TABLE t (id uuid PRIMARY KEY, v int)",
        "INSERT INTO t SELECT UNHEX(MD5(seq)), seq FROM seq_1_to_20000",
        // v is unique: a row dropped or doubled shows (the ids' text differs per side).
        "v",
        1_000,
    );
    assert_eq!(m.source.len(), 20_000);
    assert_eq!(m.source, m.target);
    assert_split_by_range(&m);
}

#[test]
fn uuid_keys_not_spread_evenly_are_split_by_a_scan() {
    // Two outliers stretch the range; every other key sits in 1/65536 of it.
    let inserts = format!(
        "{}; INSERT INTO t VALUES ('00000000-0000-0000-0000-000000000000', 0), \
           ('ffffffff-ffff-ffff-ffff-ffffffffffff', 0)",
        uuid_rows(20_000, "abcd")
    );
    let m = migrate_planned(
        "CREATE TABLE t (id char(36) PRIMARY KEY, v int)",
        "CREATE TABLE t (id uuid PRIMARY KEY, v int)",
        &inserts,
        "id, v",
        1_000,
    );
    assert_eq!(m.source.len(), 20_002);
    assert_eq!(m.source, m.target);
    assert_eq!(m.split, "key_scan");
    assert!(
        m.largest_chunk <= 1_000,
        "{} rows in a chunk",
        m.largest_chunk
    );
}

#[test]
fn uuid_keys_in_a_collation_that_orders_them_otherwise_are_split_by_a_scan() {
    // Danish sorts "aa" as å, after "z": boundaries computed evenly between 9f... and b2...
    // are not in MySQL's order there (ranges would overlap), and MySQL's estimates of their
    // ranges are uneven: either check hands the table to the ordered scan.
    let m = migrate_planned(
        "CREATE TABLE t (id char(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_danish_ci PRIMARY KEY, v int)",
        "CREATE TABLE t (id uuid PRIMARY KEY, v int)",
        &(0x9fu32..=0xb2)
            .map(|prefix| uuid_rows(300, &format!("{prefix:02x}")))
            .collect::<Vec<_>>()
            .join("; "),
        "id, v",
        300,
    );
    assert_eq!(m.source.len(), 20 * 300);
    assert_eq!(m.source, m.target);
    assert_eq!(m.split, "key_scan");
}

fn values(rows: impl IntoIterator<Item = String>) -> String {
    format!(
        "INSERT IGNORE INTO t VALUES {}",
        rows.into_iter().collect::<Vec<_>>().join(", ")
    )
}

#[test]
fn string_keys_under_a_case_insensitive_collation_land_exactly_once() {
    // Keys that the collation orders differently from bytes: case, accents, ß, spaces.
    let keys = [
        "a", "B", "c", "D", "é", "E", "f", "ß", "st", "Z", "zz", "Ä", "b ", "0", "_", "~", "Ω",
        "ω1", "M", "n",
    ];
    let mut rows: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("('{k}', {i})"))
        .collect();
    rows.extend((0..60).map(|i| format!("('k{i:03}', {i})")));
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (id varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v int)",
        "CREATE TABLE t (id text PRIMARY KEY, v int)",
        &values(rows),
        "id, v",
        4,
    );
    // Keys equal under the collation (é = E, Ä = a, ...) are refused by the source's own
    // primary key: what remains must arrive exactly.
    assert!(src.len() >= 75, "{} rows", src.len());
    assert_eq!(src, dst);
    assert!(chunks >= 15, "{chunks} chunks");
}

#[test]
fn latin1_keys_compare_in_their_own_collation() {
    let rows = (0..40).map(|i| format!("('{}{i}', {i})", if i % 2 == 0 { "Å" } else { "a" }));
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (id varchar(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY, v int)",
        "CREATE TABLE t (id varchar(20) PRIMARY KEY, v int)",
        &values(rows),
        "id, v",
        3,
    );
    assert_eq!(src.len(), 40);
    assert_eq!(src, dst);
    assert!(chunks >= 10, "{chunks} chunks");
}

#[test]
fn composite_keys_land_exactly_once() {
    let rows = (0..90).map(|i| format!("({}, '{}', {i})", i % 7, ["x", "Y", "z"][i % 3]));
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (a int, b varchar(5), v int, PRIMARY KEY (a, b, v))",
        "CREATE TABLE t (a int, b varchar(5), v int, PRIMARY KEY (a, b, v))",
        &values(rows),
        "a, b, v",
        4,
    );
    assert_eq!(src.len(), 90);
    assert_eq!(src, dst);
    assert!(chunks >= 20, "{chunks} chunks");
}

#[test]
fn integer_keys_with_gaps_and_extremes_land_exactly_once() {
    let mut rows: Vec<String> = (0..50)
        .map(|i| format!("({}, 'r{i}')", i * i * 1000))
        .collect();
    rows.push("(18446744073709551615, 'max')".into());
    rows.push("(9223372036854775808, 'past i64')".into());
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (id bigint unsigned PRIMARY KEY, v varchar(20))",
        "CREATE TABLE t (id numeric(20) PRIMARY KEY, v text)",
        &values(rows),
        "id, v",
        5,
    );
    assert_eq!(src.len(), 52);
    assert_eq!(src, dst);
    assert!(chunks >= 3, "{chunks} chunks");
}

#[test]
fn empty_and_one_row_tables() {
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "DO 0",
        "id, v",
        1,
    );
    assert!(src.is_empty() && dst.is_empty());
    assert_eq!(chunks, 1);
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (id char(36) PRIMARY KEY, v text)",
        "CREATE TABLE t (id uuid PRIMARY KEY, v text)",
        "INSERT INTO t VALUES ('0149ce5f-76a8-4efe-b2e3-431b8c6cceb6', 'only')",
        "id, v",
        1,
    );
    assert_eq!(src, dst);
    assert_eq!(src.len(), 1);
    assert_eq!(chunks, 1);
}

#[test]
fn tables_without_a_key_are_copied_whole_duplicates_included() {
    let rows = (0..30).map(|i| format!("({}, 'dup')", i % 5));
    let (src, dst, chunks) = migrate_table(
        "CREATE TABLE t (a int, v text)",
        "CREATE TABLE t (a int, v text)",
        &values(rows),
        "a, v",
        2,
    );
    assert_eq!(src.len(), 30);
    assert_eq!(src, dst);
    assert_eq!(chunks, 1);
}

#[test]
fn a_null_into_a_not_null_column_stops_the_run_naming_table_key_and_column() {
    let source = unique("nulls");
    create_mysql_db(&source);
    mysql_exec(
        Some(&source),
        b"CREATE TABLE people (id int PRIMARY KEY, email varchar(50), secret varchar(50));
          INSERT INTO people VALUES (1, 'a@example.org', 'hash-1'), (2, NULL, 'hash-2'), (3, 'c@example.org', 'hash-3');",
    );
    let target = unique("nulls");
    create_pg_db(&target);
    psql(
        &target,
        b"CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, secret text)",
    );
    let wd = workdir("nulls");
    let out = migrate(&source, &target, &wd, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "table `people`, key id=2, column `email`: NULL into a NOT NULL target column"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hash-2"),
        "no row data in errors: {stderr}"
    );
    let rows = pg_query(&target, "SELECT count(*) FROM people");
    assert_eq!(
        rows[0][0].as_deref(),
        Some("0"),
        "nothing of the chunk committed"
    );
}
