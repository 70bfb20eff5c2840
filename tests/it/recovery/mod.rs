//! Failures injected into real migrations — SIGKILL, a full disk, a stopped or restarted
//! server, killed connections, several processes on one plan — and every time the final
//! data checked against a clean migration of the same source: nothing lost, nothing twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod faults;
mod operator;

use crate::common::*;

/// `count:md5` of every table of the dataset, as Postgres holds it.
fn digests(pg: &str, pg_db: &str) -> Vec<String> {
    ["users", "events"]
        .iter()
        .map(|t| {
            let q = format!("SELECT count(*) || ':' || md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {t} t");
            query_text(pg, pg_db, &q)
        })
        .collect()
}

fn query_text(pg: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-At", &format!("{pg}/{db}"), "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args(args)
        .env("PGCLIPPER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args(args)
        .env("PGCLIPPER_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(cmd: &str, my: &str, pg: &str, db: &str, wd: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        cmd.into(),
        "--source".into(),
        format!("{my}/{db}"),
        "--target".into(),
        format!("{pg}/{db}"),
        "--workdir".into(),
        wd.to_string_lossy().into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// What a clean migration of a dataset gives: the reference to compare against.
fn reference(env_file: &Path, users: u32, events: u32) -> Vec<String> {
    let db = dataset(env_file, users, events);
    let (my, pg) = servers(env_file);
    let (code, err) = run(&args("migrate", &my, &pg, &db, &workdir("ref"), &[]));
    assert_eq!(code, Some(0), "{err}");
    digests(&pg, &db)
}

/// A generated dataset on the shared servers, what a clean migration of it gives, and a
/// fresh workdir: the set-up of most scenarios here.
struct Case {
    my: String,
    pg: String,
    db: String,
    wd: PathBuf,
    expected: Vec<String>,
}

impl Case {
    fn new(name: &str, users: u32, events: u32) -> Case {
        Case::on(&shared_env(), name, users, events)
    }

    /// The same on the servers of `env` (a test's private servers).
    fn on(env: &Path, name: &str, users: u32, events: u32) -> Case {
        let (my, pg) = servers(env);
        let expected = reference(env, users, events);
        let db = dataset(env, users, events);
        let wd = workdir(name);
        Case {
            my,
            pg,
            db,
            wd,
            expected,
        }
    }

    /// The arguments of `cmd` on this case's source, target and workdir, then `extra`.
    fn args(&self, cmd: &str, extra: &[&str]) -> Vec<String> {
        args(cmd, &self.my, &self.pg, &self.db, &self.wd, extra)
    }

    fn target(&self) -> String {
        format!("{}/{}", self.pg, self.db)
    }

    /// The target holds exactly what a clean migration gives, and the plan is complete.
    fn assert_exact(&self) {
        assert_eq!(digests(&self.pg, &self.db), self.expected);
        assert_complete(&self.pg, &self.db);
    }
}

/// Every chunk loaded, foreign keys back and valid, the sequence past the max id.
fn assert_complete(pg: &str, db: &str) {
    assert_eq!(
        query_text(
            pg,
            db,
            "SELECT count(*) FROM pgclipper.chunks WHERE loaded_at IS NULL"
        ),
        "0"
    );
    assert_eq!(
        query_text(
            pg,
            db,
            "SELECT count(*) FROM pgclipper.plans WHERE completed_at IS NULL"
        ),
        "0"
    );
    assert_eq!(
        query_text(pg, db, "SELECT count(*) || ' ' || bool_and(convalidated) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'events'::regclass"),
        "1 true"
    );
    assert_eq!(
        query_text(
            pg,
            db,
            "SELECT (SELECT last_value FROM events_id_seq) = (SELECT max(id) FROM events)"
        ),
        "t"
    );
}

/// A pseudo-random delay in [from, to) ms, different every call.
fn jitter(from: u64, to: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(from + nanos % (to - from))
}

#[test]
fn sigkill_at_random_moments_then_migrate_resumes_to_the_exact_data() {
    let case = Case::new("kill", 40_000, 300_000);
    let run_args = case.args("migrate", &["--chunk-rows", "3000", "--writers", "2"]);
    let mut kills = 0;
    for _ in 0..4 {
        let mut child = spawn(&run_args);
        // Early enough that a resumed run still has work left when the kill comes.
        std::thread::sleep(jitter(100, 600));
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} kills landed while pgclipper ran");
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(0), "{err}");
    case.assert_exact();
}

/// A dataset whose first migration stops on a bad value (a boolean 2 in the last chunk of
/// `users`), leaving a plan and part of the data behind. Returns the database and the
/// arguments that run the migration again.
fn failed_run_leaving_a_plan(env: &Path, events: u32, chunk_rows: &str) -> (String, Vec<String>) {
    let (my, pg) = servers(env);
    let db = dataset(env, 2_000, events);
    mysql_exec(
        Some(&db),
        b"UPDATE users SET active = 2 WHERE email = 'user1999@example.org'",
    );
    let wd = workdir("failed");
    let run_args = args("migrate", &my, &pg, &db, &wd, &["--chunk-rows", chunk_rows]);
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("only 0 and 1"), "{err}");
    (db, run_args)
}

#[test]
fn a_failed_run_resumes_but_a_changed_source_or_schema_is_refused_until_restart() {
    let env = shared_env();
    let (_, pg) = servers(&env);
    let expected = reference(&env, 2_000, 20_000);
    let (db, run_args) = failed_run_leaving_a_plan(&env, 20_000, "500");

    // Fixing the value writes to the source: the chunks exported already no longer match.
    mysql_exec(
        Some(&db),
        b"UPDATE users SET active = 1 WHERE email = 'user1999@example.org'",
    );
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("source was written since") && err.contains("--restart"),
        "{err}"
    );

    // A changed target schema is refused too (a mapped column's type).
    psql(&db, b"ALTER TABLE users ALTER COLUMN score TYPE bigint");
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("schema") && err.contains("--restart"), "{err}");
    psql(&db, b"ALTER TABLE users ALTER COLUMN score TYPE integer");

    // --restart empties the target tables: without a terminal to ask on, only with --yes.
    let mut restart = run_args.clone();
    restart.push("--restart".into());
    let (code, err) = run(&restart);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--restart empties the plan's target tables and asks first"),
        "{err}"
    );
    restart.push("--yes".into());
    let (code, err) = run(&restart);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(digests(&pg, &db), expected);
    assert_complete(&pg, &db);
}

#[test]
fn reset_puts_the_target_back_as_it_was() {
    let env = shared_env();
    let (my, pg) = servers(&env);
    let db = dataset(&env, 1_000, 5_000);
    let catalog = "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace";
    let sequence = "SELECT last_value || ' ' || is_called FROM events_id_seq";
    let (constraints_before, sequence_before) = (
        query_text(&pg, &db, catalog),
        query_text(&pg, &db, sequence),
    );
    let wd = workdir("reset");
    let (code, err) = run(&args("migrate", &my, &pg, &db, &wd, &[]));
    assert_eq!(code, Some(0), "{err}");

    // Without --yes and without a terminal, nothing happens.
    let reset = vec![
        "reset".to_string(),
        "--target".into(),
        format!("{pg}/{db}"),
        "--workdir".into(),
        wd.to_string_lossy().into(),
    ];
    let shown: Vec<&str> = reset.iter().map(String::as_str).collect();
    let (code, text) = run_cli(&shown, &[]);
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(query_text(&pg, &db, "SELECT count(*) FROM events"), "5000");
    // The preview counts what it restores by kind: after a completed load, only the
    // sequence is not as it was.
    assert!(
        text.contains("restore as they were: 0 foreign keys, 0 primary keys and unique or exclusion constraints, 0 indexes, 1 sequences"),
        "{text}"
    );
    // A file of the operator's in the workdir is not pgclipper's to delete.
    std::fs::write(wd.join("data/keep.txt"), "mine").unwrap();

    let mut yes = reset.clone();
    yes.push("--yes".into());
    let (code, err) = run(&yes);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        query_text(
            &pg,
            &db,
            "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM events)"
        ),
        "0"
    );
    assert_eq!(query_text(&pg, &db, catalog), constraints_before);
    assert_eq!(query_text(&pg, &db, sequence), sequence_before);
    assert_eq!(
        query_text(&pg, &db, "SELECT count(*) FROM pgclipper.plans"),
        "0"
    );
    assert!(!wd.join("plan.json").exists() && !wd.join("data/events").exists());
    assert_eq!(
        std::fs::read_to_string(wd.join("data/keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        mysql_query(&db, "SELECT count(*) FROM events")[0][0].as_deref(),
        Some(&b"5000"[..])
    );

    // And the migration can run again.
    let (code, err) = run(&args("migrate", &my, &pg, &db, &wd, &[]));
    assert_eq!(code, Some(0), "{err}");
    assert_complete(&pg, &db);
}

#[test]
fn three_import_processes_share_one_plan_and_one_killed_loses_nothing() {
    let case = Case::new("queue", 20_000, 120_000);
    let (pg, db) = (&case.pg, &case.db);
    let (code, err) = run(&case.args("export", &["--chunk-rows", "2000"]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(query_text(pg, db, "SELECT count(*) FROM events"), "0");

    let wd = case.wd.to_str().unwrap();
    let import = [
        "import",
        "--target",
        &case.target(),
        "--workdir",
        wd,
        "--writers",
        "2",
    ];
    let import = import.map(String::from);
    let mut processes: Vec<Child> = (0..3).map(|_| spawn(&import)).collect();
    std::thread::sleep(jitter(300, 700));
    let mut victim = processes.remove(0);
    let killed_while_running = victim.try_wait().unwrap().is_none();
    victim.kill().ok();
    victim.wait().unwrap();
    assert!(killed_while_running, "the import ended before the kill");
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    case.assert_exact();
    // Every chunk was loaded exactly once: loaded rows in the ledger equal the table's.
    assert_eq!(
        query_text(
            pg,
            db,
            "SELECT sum(rows) FROM pgclipper.chunks WHERE table_name = 'events'"
        ),
        "120000"
    );
}

#[test]
fn a_table_that_shrank_far_since_the_plan_is_refused() {
    let env = shared_env();
    let (db, run_args) = failed_run_leaving_a_plan(&env, 30_000, "1000");
    mysql_exec(
        Some(&db),
        b"DELETE FROM events WHERE id > 5000; ANALYZE TABLE events;",
    );
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`events` holds about") && err.contains("--restart"),
        "{err}"
    );
}
