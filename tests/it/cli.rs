//! The command line as an operator meets it: exit codes, configuration file, environment
//! variables, and passwords that never show.

use crate::common::*;

#[test]
fn usage_errors_exit_2() {
    let (code, text) = run_cli(&["migrate", "--workdir", "/tmp/x"], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no source"), "{text}");
    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            "postgres://x@h/db",
            "--target",
            "postgres://x@h/db",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("mysql://"), "{text}");
    let (code, _) = run_cli(&["migrate", "--no-such-flag"], &[]);
    assert_eq!(code, Some(2));
    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            "mysql://u@h:1",
            "--target",
            "postgres://u@h/db",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("names no database"), "{text}");
}

#[test]
fn unknown_configuration_keys_exit_2() {
    let dir = workdir("cfg_bad");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pgclipper.toml");
    std::fs::write(&config, "sourse = 'mysql://x@h/db'\n").unwrap();
    let (code, text) = run_cli(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("unknown field"), "{text}");
}

#[test]
fn a_wrong_password_exits_3_without_showing_any_password() {
    let (_, target) = tiny_pair();
    let base = mysql_base();
    let wrong = base.replace("pgclipper-test", "Wr0ngSecret");
    let source = format!("{wrong}/mysql");
    let (code, text) = run_cli(&["check", "--source", &source, "--target", &target], &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("source") && text.contains("pgclipper:***@"),
        "{text}"
    );
    assert!(
        !text.contains("Wr0ngSecret") && !text.contains("pgclipper-test"),
        "{text}"
    );
    // Nothing listens on port 1.
    let (code, text) = run_cli(
        &[
            "check",
            "--source",
            &source,
            "--target",
            "postgres://pgclipper:Wr0ngSecret@127.0.0.1:1/db",
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(!text.contains("Wr0ngSecret"), "{text}");
}

#[test]
fn environment_variables_and_config_file_supply_the_settings() {
    let (source, target) = tiny_pair();
    let (code, text) = run_cli(
        &["check"],
        &[("PGCLIPPER_SOURCE", &source), ("PGCLIPPER_TARGET", &target)],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 tables, 2 columns paired"), "{text}");

    let dir = workdir("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pgclipper.toml");
    let wd = dir.join("work");
    std::fs::write(
        &config,
        format!(
            "source = '{source}'\ntarget = '{target}'\nworkdir = '{}'\nreaders = 1\nwriters = 1\n",
            wd.display()
        ),
    )
    .unwrap();
    // Flags in any order, the rest from the file.
    let (code, text) = run_cli(
        &[
            "migrate",
            "--chunk-rows",
            "1",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pgclipper migrated 2 rows"), "{text}");
    assert!(wd.join("plan.json").exists() && wd.join("manifest.json").exists());
    assert!(!std::fs::read_to_string(wd.join("plan.json"))
        .unwrap()
        .contains("pgclipper-test"));
}

/// Every option of every command is on its page in docs/commands/, and every key of the
/// configuration file in docs/configuration.md.
#[test]
fn every_option_and_every_configuration_key_is_documented() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let page = |name: &str| std::fs::read_to_string(docs.join(name)).unwrap();
    let shared = page("commands/README.md");
    for command in [
        "check", "migrate", "export", "import", "verify", "status", "report", "reset",
    ] {
        let (code, help) = run_cli(&[command, "--help"], &[]);
        assert_eq!(code, Some(0));
        let text = page(&format!("commands/{command}.md"));
        // The option column of each line: `  -q, --quiet  …` or `      --source <URL>  …`.
        let options = help.lines().filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .split_once(", ")
                .filter(|(s, _)| s.len() == 2)
                .map_or(line, |(_, r)| r);
            let option = line.split_whitespace().next()?;
            (option.starts_with("--") && option.len() > 2).then_some(option)
        });
        let options: Vec<&str> = options.collect();
        assert!(options.len() >= 5, "{command}: {options:?}");
        for option in options {
            assert!(
                text.contains(&format!("`{option}"))
                    || text.contains(&format!("{option}`"))
                    || text.contains(&format!("{option},"))
                    || shared.contains(&format!("`{option}")),
                "{option} of `{command}` is not in docs/commands/{command}.md"
            );
        }
    }
    let file = std::env::temp_dir().join(unique("unknown-key"));
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    let (code, text) = run_cli(&["check", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{text}");
    let keys = text
        .split("expected one of")
        .nth(1)
        .expect("the keys there are");
    let configuration = page("configuration.md");
    let keys: Vec<&str> = keys.split('`').skip(1).step_by(2).collect();
    assert!(keys.len() > 10, "{keys:?}");
    for key in keys {
        assert!(
            configuration.contains(&format!("| `{key}` |")),
            "config key {key} is not in docs/configuration.md"
        );
    }
}
