//! Helpers for tests against the real MariaDB and Postgres servers that `tools/test`
//! starts. A missing server fails the test: nothing here skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::prelude::Queryable;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `tools/test`, which starts MariaDB and Postgres")
    })
}

/// `mysql://user:pass@127.0.0.1:port` of the test MariaDB (no database).
pub fn mysql_base() -> String {
    var("PGCLIPPER_TEST_MYSQL")
}

/// `postgres://user:pass@127.0.0.1:port` of the test Postgres (no database).
pub fn postgres_base() -> String {
    var("PGCLIPPER_TEST_POSTGRES")
}

pub fn mysql_url(db: &str) -> String {
    format!("{}/{db}", mysql_base())
}

pub fn postgres_url(db: &str) -> String {
    format!("{}/{db}", postgres_base())
}

/// A database name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn mysql_cli_args() -> Vec<String> {
    let base = mysql_base();
    let rest = base.strip_prefix("mysql://").expect("mysql:// URL");
    let (userinfo, hostport) = rest.split_once('@').expect("user@host");
    let (user, pass) = userinfo.split_once(':').expect("user:pass");
    let (host, port) = hostport.split_once(':').expect("host:port");
    vec![
        "--no-defaults".into(),
        format!("-h{host}"),
        format!("-P{port}"),
        format!("-u{user}"),
        format!("-p{pass}"),
        "--default-character-set=utf8mb4".into(),
    ]
}

/// Runs SQL through the `mariadb` client (which understands dump files).
pub fn mysql_exec(db: Option<&str>, sql: &[u8]) {
    let mut cmd = Command::new("mariadb");
    cmd.args(mysql_cli_args());
    if let Some(db) = db {
        cmd.arg(db);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadb client");
    child.stdin.take().unwrap().write_all(sql).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn create_mysql_db(name: &str) {
    mysql_exec(
        None,
        format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            .as_bytes(),
    );
}

/// Runs SQL through `psql`, stopping at the first error.
pub fn psql(db: &str, sql: &[u8]) {
    let mut child = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", &postgres_url(db)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    child.stdin.take().unwrap().write_all(sql).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn create_pg_db(name: &str) {
    psql("postgres", format!("CREATE DATABASE \"{name}\"").as_bytes());
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the pgclipper binary.
pub fn pgclipper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args(args)
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .env_remove("PGSSLCERT")
        .env_remove("PGSSLKEY")
        .env("PGCLIPPER_LOG", "warn")
        .output()
        .expect("pgclipper binary")
}

/// Runs pgclipper and fails the test, with its output, unless it succeeds.
pub fn pgclipper_ok(args: &[&str]) -> String {
    let out = pgclipper(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pgclipper {args:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The arguments of `pgclipper migrate` from MySQL database `source` into Postgres database
/// `target`, then `extra`.
fn migrate_args(source: &str, target: &str, workdir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "migrate".to_string(),
        "--source".into(),
        mysql_url(source),
        "--target".into(),
        postgres_url(target),
        "--workdir".into(),
        workdir.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn migrate(source: &str, target: &str, workdir: &Path, extra: &[&str]) -> Output {
    let args = migrate_args(source, target, workdir, extra);
    pgclipper(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`migrate`] with its log at `info`: its exit code and everything it printed.
pub fn migrate_logging(
    source: &str,
    target: &str,
    workdir: &Path,
    extra: &[&str],
) -> (Option<i32>, String) {
    let args = migrate_args(source, target, workdir, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cli(&args, &[("PGCLIPPER_LOG", "info")])
}

pub fn migrate_ok(source: &str, target: &str, workdir: &Path, extra: &[&str]) -> String {
    let args = migrate_args(source, target, workdir, extra);
    pgclipper_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `pgclipper check` of MySQL database `source` against Postgres database `target`, then `extra`.
pub fn check(source: &str, target: &str, extra: &[&str]) -> Output {
    let (source, target) = (mysql_url(source), postgres_url(target));
    let mut args = vec!["check", "--source", &source, "--target", &target];
    args.extend(extra);
    pgclipper(&args)
}

pub fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Rows of a Postgres query, every value as its text rendering (`col::text`).
pub fn pg_query(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    block_on(async {
        let (client, conn) = tokio_postgres::connect(&postgres_url(db), tokio_postgres::NoTls)
            .await
            .expect("connect to Postgres");
        tokio::spawn(conn);
        client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
        let rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// Rows of a MySQL query through the text protocol: what MySQL itself prints.
pub fn mysql_query(db: &str, sql: &str) -> Vec<Vec<Option<Vec<u8>>>> {
    block_on(async {
        let opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&mysql_url(db)).unwrap(),
        )
        .init(vec!["SET time_zone = '+00:00'", "SET NAMES utf8mb4"]);
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .expect("connect to MariaDB");
        let rows: Vec<mysql_async::Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let out = rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(b),
                        other => Some(other.as_sql(true).into_bytes()),
                    })
                    .collect()
            })
            .collect();
        conn.disconnect().await.unwrap();
        out
    })
}

/// Every row of `table` as text, sorted: for comparing two Postgres databases.
pub fn pg_table_text(db: &str, table: &str) -> Vec<String> {
    let mut rows: Vec<String> = pg_query(db, &format!("SELECT t::text FROM public.\"{table}\" t"))
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect();
    rows.sort();
    rows
}

/// Runs the pgclipper binary without the URL environment variables; returns its exit code
/// and everything it printed (stdout, then stderr).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args(args)
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .env_remove("PGSSLCERT")
        .env_remove("PGSSLKEY")
        .env_remove("PGCLIPPER_SOURCE")
        .env_remove("PGCLIPPER_TARGET")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A one-table source and its empty target, as URLs.
pub fn tiny_pair() -> (String, String) {
    let source = unique("cli");
    create_mysql_db(&source);
    mysql_exec(Some(&source), b"CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a'), (2, NULL);");
    let target = unique("cli");
    create_pg_db(&target);
    psql(
        &target,
        b"CREATE TABLE t (id int PRIMARY KEY, v varchar(10))",
    );
    (mysql_url(&source), postgres_url(&target))
}

/// The application-shaped dataset of `tools/dataset` on the servers of `env_file`.
pub fn dataset(env_file: &Path, users: u32, events: u32) -> String {
    let name = unique("ds");
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dataset"))
        .args([
            env_file.to_str().unwrap(),
            &name,
            &name,
            &users.to_string(),
            &events.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tools/dataset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// The env file of the servers `tools/test` started.
pub fn shared_env() -> PathBuf {
    PathBuf::from(std::env::var("PGCLIPPER_TEST_DIR").expect("run through tools/test")).join("env")
}

/// The (MySQL, Postgres) base URLs of the servers of `env_file`.
pub fn servers(env_file: &Path) -> (String, String) {
    let env = std::fs::read_to_string(env_file).unwrap();
    let get = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {key}=")))
            .unwrap()
            .to_string()
    };
    (get("PGCLIPPER_TEST_MYSQL"), get("PGCLIPPER_TEST_POSTGRES"))
}

/// Runs `verify` of source and target URLs (or database names, for the test servers) on
/// `workdir`; returns its exit code and what it printed.
pub fn verify_run(
    source: &str,
    target: &str,
    workdir: &Path,
    extra: &[&str],
) -> (Option<i32>, String) {
    let source = if source.contains("://") {
        source.to_string()
    } else {
        mysql_url(source)
    };
    let target = if target.contains("://") {
        target.to_string()
    } else {
        postgres_url(target)
    };
    let wd = workdir.to_str().unwrap();
    let mut args = vec![
        "verify",
        "--source",
        &source,
        "--target",
        &target,
        "--workdir",
        wd,
    ];
    args.extend_from_slice(extra);
    run_cli(&args, &[("PGCLIPPER_LOG", "warn")])
}

/// A MariaDB database and a Postgres database of one new name, made from the SQL given;
/// returns the name.
pub fn database_pair(prefix: &str, mysql: impl AsRef<[u8]>, postgres: impl AsRef<[u8]>) -> String {
    let db = unique(prefix);
    create_mysql_db(&db);
    mysql_exec(Some(&db), mysql.as_ref());
    create_pg_db(&db);
    psql(&db, postgres.as_ref());
    db
}

/// A MariaDB and Postgres pair of this test's own, to stop and restart at will.
pub struct PrivateServers {
    pub dir: PathBuf,
}

impl PrivateServers {
    /// `args` go to `tools/dbctl start` (`--tls`).
    pub fn start(args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique("private-servers"));
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dbctl"))
            .args(["start", dir.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivateServers { dir }
    }

    pub fn env(&self) -> PathBuf {
        self.dir.join("env")
    }

    pub fn mariadb_pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("mariadb/pid"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.mariadb_pid()])
            .status();
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dbctl"))
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}
