//! A new operator's first hour, against the real servers: typos, wrong passwords, the
//! wrong folder, a second run, a closed pipe. Each gets one clear sentence and its
//! documented exit code, never a panic, a bare OS error or a password.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn passwords_never_show_in_argument_or_config_errors() {
    // A URL given without --source: clap quotes it back.
    let (code, text) = run_cli(&["check", "mysql://u:S3cretPW@db.example:3306/prod"], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("mysql://u:***@db.example"), "{text}");
    assert!(!text.contains("S3cretPW"), "{text}");
    // A config file with an unclosed quote: TOML quotes the line back.
    let dir = workdir("cfg_quote");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pgclipper.toml");
    std::fs::write(&config, "source = \"mysql://u:S3cretPW@db.example/prod\n").unwrap();
    let (code, text) = run_cli(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("invalid configuration"), "{text}");
    assert!(!text.contains("S3cretPW"), "{text}");
    // A config file that is not there is a usage error too.
    let missing = dir.join("missing.toml");
    let (code, text) = run_cli(&["check", "--config", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cannot read the configuration file"),
        "{text}"
    );
}

#[test]
fn each_command_refuses_the_options_it_does_not_use() {
    let wd = workdir("unused");
    let wd = wd.to_str().unwrap();
    for args in [
        &["reset", "--tables", "networks", "--yes", "--workdir", wd][..],
        &["import", "--tables", "networks", "--workdir", wd],
        &["check", "--restart"],
        &["check", "--writers", "2"],
        &["reset", "--source", "mysql://u@h/db", "--workdir", wd],
        &["export", "--writers", "2"],
    ] {
        let (code, text) = run_cli(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains("unexpected argument"), "{args:?}: {text}");
    }
    let (code, help) = run_cli(&["check", "--help"], &[]);
    assert_eq!(code, Some(0), "{help}");
    assert!(
        help.contains("--source") && help.contains("--tables"),
        "{help}"
    );
    assert!(
        !help.contains("--writers") && !help.contains("--restart"),
        "{help}"
    );
    let (_, help) = run_cli(&["reset", "--help"], &[]);
    assert!(
        help.contains("--yes") && !help.contains("--source") && !help.contains("--tables"),
        "{help}"
    );
}

#[test]
fn connection_errors_carry_the_servers_reason() {
    let (source, target) = tiny_pair();
    let check = |target: &str| run_cli(&["check", "--source", &source, "--target", target], &[]);
    let wrong_password = target.replace("pgclipper-test", "Wr0ng");
    let (code, text) = check(&wrong_password);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("28P01") && text.contains("password authentication failed"),
        "{text}"
    );
    assert!(
        !text.contains("db error") && !text.contains("Wr0ng"),
        "{text}"
    );

    let (code, text) = check(&postgres_url("no_such_database"));
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("3D000") && text.contains("does not exist"),
        "{text}"
    );

    let (code, text) = check(&postgres_base());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--target URL") && text.contains("names no database"),
        "{text}"
    );

    let (code, text) = check("postgres://pgclipper:x@127.0.0.1:1/db");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("Connection refused"), "{text}");

    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            "mysql://u:x@127.0.0.1:1/db",
            "--target",
            &target,
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(
        !text.contains("Input/output error: Input/output error"),
        "{text}"
    );
}

#[test]
fn workdir_mistakes_get_one_clear_sentence() {
    let (source, target) = tiny_pair();
    let migrate = |wd: &str| {
        run_cli(
            &[
                "migrate",
                "--source",
                &source,
                "--target",
                &target,
                "--workdir",
                wd,
            ],
            &[],
        )
    };
    let (code, text) = migrate("/proc/pgclipper-x-wd");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cannot create the directory /proc/pgclipper-x-wd"),
        "{text}"
    );

    let file = workdir("afile");
    std::fs::write(&file, "x").unwrap();
    let (code, text) = migrate(file.to_str().unwrap());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is a file, not a directory"), "{text}");

    // An operator's folder: refused, untouched.
    let folder = workdir("folder");
    std::fs::create_dir_all(folder.join("data")).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let (code, text) = migrate(folder.to_str().unwrap());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("holds files that are not pgclipper's (notes.txt)"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.txt")).unwrap(),
        "mine"
    );

    // Import and reset need a plan.
    let empty = workdir("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        &["import", "--target", &target, "--workdir", empty][..],
        &["reset", "--target", &target, "--workdir", empty, "--yes"],
    ] {
        let (code, text) = run_cli(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(&format!("no plan in {empty}")), "{text}");
        assert!(!text.contains("No such file or directory"), "{text}");
    }

    // An empty folder others may read: used, made private, and the log says so.
    let open = workdir("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text) = migrate(open.to_str().unwrap());
    assert_eq!(code, Some(0), "{text}");
    let mode = std::fs::metadata(&open).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(text.contains("made it private"), "{text}");
}

#[test]
fn summaries_say_what_this_run_did_and_where_the_data_lies() {
    let (source, target) = tiny_pair();
    let wd = workdir("summary");
    let wd_text = wd.to_str().unwrap();
    let args = [
        "migrate",
        "--source",
        &source,
        "--target",
        &target,
        "--workdir",
        wd_text,
    ];
    let (code, text) = run_cli(&args, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pgclipper migrated 2 rows"), "{text}");
    assert!(
        text.contains("1 sequences advanced") || text.contains("0 sequences advanced"),
        "{text}"
    );
    assert!(
        text.contains(&format!("the chunk files in {wd_text}")) && text.contains("personal data"),
        "{text}"
    );
    assert!(text.contains("DROP SCHEMA pgclipper CASCADE"), "{text}");
    // The manifest lists only files that exist: migrate deleted the binary files it loaded.
    let manifest = std::fs::read_to_string(wd.join("manifest.json")).unwrap();
    assert!(!manifest.contains("binary_file"), "{manifest}");

    let (code, text) = run_cli(&args, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("nothing to do: this plan completed at"),
        "{text}"
    );
    assert!(!text.contains("rows/s"), "{text}");

    // check alone finds the loaded table not empty; with the workdir it sees the plan.
    let (code, text) = run_cli(&["check", "--source", &source, "--target", &target], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is not empty"), "{text}");
    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            &source,
            "--target",
            &target,
            "--workdir",
            wd_text,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("resumes plan") && text.contains("1 of 1 chunks loaded"),
        "{text}"
    );

    // export moves nothing into the target: no sequences, no ledger note.
    let export_wd = workdir("summary_export");
    let (code, text) = run_cli(
        &[
            "export",
            "--source",
            &source,
            "--target",
            &target,
            "--workdir",
            export_wd.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pgclipper exported 2 rows"), "{text}");
    assert!(
        !text.contains("sequences") && !text.contains("DROP SCHEMA"),
        "{text}"
    );
}

#[test]
fn a_closed_stdout_a_missing_schema_and_a_zero_date_get_plain_answers() {
    let (source, target) = tiny_pair();
    // `pgclipper check | head -1`: the reader is gone before the report is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args(["check", "--source", &source, "--target", &target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            &source,
            "--target",
            &target,
            "--target-schema",
            "nosuchschema",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(
            "--target-schema nosuchschema: the target database has no schema of that name"
        ),
        "{text}"
    );
    assert_eq!(text.matches("nosuchschema").count(), 1, "{text}");

    let db = database_pair(
        "zero_date",
        b"SET sql_mode = ''; CREATE TABLE d (id int PRIMARY KEY, day date); INSERT INTO d VALUES (1, '0000-00-00');",
        b"CREATE TABLE d (id int PRIMARY KEY, day date)",
    );
    let out = migrate(&db, &db, &workdir("zero_date"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(value: 0000-00-00);"), "{stderr}");
}

#[test]
fn without_a_terminal_the_final_error_is_a_json_line_like_the_logs() {
    let (source, _) = tiny_pair();
    let out = Command::new(env!("CARGO_BIN_EXE_pgclipper"))
        .args([
            "check",
            "--source",
            &source,
            "--target",
            &postgres_url("no_such_database"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let line: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(line["level"], "ERROR", "{last}");
    assert_eq!(line["fields"]["exit_code"], 3, "{last}");
    let message = line["fields"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("pgclipper: error: cannot connect to the target database"),
        "{message}"
    );
    assert!(message.contains("3D000"), "{message}");
}

#[test]
fn catalog_warnings_are_told_once_by_migrate_and_listed_by_check() {
    let db = database_pair(
        "warned",
        b"CREATE TABLE w (id int PRIMARY KEY, a varchar(10), b varchar(10)); INSERT INTO w VALUES (1, 'x', 'y');",
        b"CREATE TABLE w (id int PRIMARY KEY, a varchar(10) NOT NULL, b varchar(10) NOT NULL)",
    );
    let out = check(&db, &db, &[]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listed
            .matches("nullable in the source, NOT NULL in the target")
            .count(),
        2,
        "{listed}"
    );
    let out = migrate(&db, &db, &workdir("warned"), &[]);
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    assert!(!logged.contains("nullable in the source"), "{logged}");
    assert_eq!(
        logged.matches("The catalogs gave warnings").count(),
        1,
        "{logged}"
    );
}
