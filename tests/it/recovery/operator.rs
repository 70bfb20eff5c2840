//! What an operator does to a run: starts a second one on the same workdir, damages a
//! chunk file, presses Ctrl-C. The workdir stays consistent and the final data exact.

use std::io::Read;
use std::time::{Duration, Instant};

use super::*;

/// Waits until `wd`'s lock file names its holder and the plan is written (the run is
/// under way).
fn wait_for_holder(wd: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder = std::fs::read_to_string(wd.join(".pgclipper.lock")).unwrap_or_default();
        if holder.starts_with("pid ") && wd.join("plan.json").exists() {
            return holder;
        }
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_second_run_on_a_busy_workdir_is_refused_naming_the_first() {
    let case = Case::new("busy", 2_000, 20_000);
    let mut first = spawn(&case.args("migrate", &["--chunk-rows", "1000"]));
    let holder = wait_for_holder(&case.wd);
    // Held still, so the second run certainly meets it at work.
    signal(&first, "STOP");
    for command in ["migrate", "export"] {
        let (code, err) = run(&case.args(command, &[]));
        assert_eq!(code, Some(3), "{command}: {err}");
        assert!(err.contains("is in use by another pgclipper"), "{err}");
        assert!(err.contains(&format!("pid {}", first.id())), "{err}");
        assert!(holder.contains(&format!("pid {}", first.id())), "{holder}");
    }
    let (target, wd) = (case.target(), case.wd.to_str().unwrap());
    let reset = ["reset", "--target", &target, "--workdir", wd, "--yes"];
    let (code, err) = run(&reset.map(String::from));
    assert_eq!(code, Some(3), "reset: {err}");
    signal(&first, "CONT");
    let status = first.wait().unwrap();
    let mut err = String::new();
    first
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    case.assert_exact();
}

/// Flips one byte in the middle of `path`, keeping its size.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'7' { b'8' } else { b'7' };
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_chunk_files_are_refused_by_import_and_exported_again_by_migrate() {
    let case = Case::new("damaged", 2_000, 20_000);
    let (code, err) = run(&case.args("export", &["--chunk-rows", "5000"]));
    assert_eq!(code, Some(0), "{err}");
    let events = case.wd.join("data/events");
    damage(&events.join("000001.csv"));
    damage(&events.join("000002.pgcopy"));

    let (target, wd) = (case.target(), case.wd.to_str().unwrap());
    let import = ["import", "--target", &target, "--workdir", wd];
    let (code, err) = run(&import.map(String::from));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not match its record"), "{err}");
    assert!(err.contains("data/events/00000"), "{err}");
    // What the failed import left deferred, by kind, as `reset` would put it back.
    let reset = ["reset", "--target", &target, "--workdir", wd];
    let (code, text) = run_cli(&reset, &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("restore as they were: 1 foreign keys, 3 primary keys and unique or exclusion constraints, 1 indexes, 0 sequences"),
        "{text}"
    );

    // migrate on the workdir writes the damaged chunks anew from the source (unchanged
    // since the export) and loads the rest from their files.
    let (code, err) = run(&case.args("migrate", &[]));
    assert_eq!(code, Some(0), "{err}");
    case.assert_exact();
}

#[test]
fn ctrl_c_stops_cleanly_says_how_to_go_on_and_the_run_resumes() {
    let case = Case::new("sigint", 40_000, 300_000);
    let run_args = case.args("migrate", &["--chunk-rows", "3000"]);
    let mut child = spawn(&run_args);
    wait_for_holder(&case.wd);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    if status.success() {
        panic!("the run ended before the signal: make the dataset larger\n{err}");
    }
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("stopped by SIGINT"), "{err}");
    assert!(
        err.contains("run the same command again to resume"),
        "{err}"
    );
    let (code, err) = run(&run_args);
    assert_eq!(code, Some(0), "{err}");
    case.assert_exact();
}
