//! TLS on both sides, against servers that accept nothing else (`tools/dbctl start --tls`):
//! MariaDB with require_secure_transport=ON and Postgres with hostssl-only rules, with
//! certificates made for the run (a CA, a server certificate for 127.0.0.1 and localhost,
//! a client certificate for the user `pgclipper_cert`). 127.0.0.2 reaches the same servers
//! by a name their certificate does not list.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

/// The TLS-only servers of this test, a one-table database on both, and the certificates.
struct TlsCase {
    servers: PrivateServers,
    my: String,
    pg: String,
    db: String,
}

impl TlsCase {
    fn start() -> TlsCase {
        let private = PrivateServers::start(&["--tls"]);
        let (my, pg) = servers(&private.env());
        let db = unique("tls");
        let sql = format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id int PRIMARY KEY, v varchar(10)); \
             INSERT INTO {db}.t VALUES (1, 'a'), (2, NULL), (3, 'c');"
        );
        let socket = private.dir.join("mariadb/sock");
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-uroot",
                &format!("--socket={}", socket.display()),
            ])
            .args(["-e", &sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let case = TlsCase {
            servers: private,
            my,
            pg,
            db,
        };
        case.psql("postgres", &format!("CREATE DATABASE {}", case.db));
        case.psql(
            &case.db,
            "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))",
        );
        case
    }

    fn file(&self, name: &str) -> String {
        let path: PathBuf = self.servers.dir.join("tls").join(name);
        path.to_str().unwrap().to_string()
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let url = format!("{}/{db}?sslmode=require", self.pg);
        let out = Command::new("psql")
            .args(["-qAt", "-v", "ON_ERROR_STOP=1", &url, "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The source URL as user `user` (`pgclipper` or `pgclipper_cert`) at `host`, with `query`.
    fn source(&self, user: &str, host: &str, query: &str) -> String {
        url(&self.my, user, host, &self.db, query)
    }

    fn target(&self, user: &str, host: &str, query: &str) -> String {
        url(&self.pg, user, host, &self.db, query)
    }
}

/// `base` (`scheme://pgclipper:pass@127.0.0.1:port`) for `user` at `host`, database `db`.
fn url(base: &str, user: &str, host: &str, db: &str, query: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap();
    let (userinfo, hostport) = rest.split_once('@').unwrap();
    let port = hostport.rsplit(':').next().unwrap();
    let userinfo = if user == "pgclipper" {
        userinfo.to_string()
    } else {
        user.to_string()
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{userinfo}@{host}:{port}/{db}{query}")
}

#[test]
fn tls_connections_work_and_each_failure_says_which_side_and_what_to_change() {
    let case = TlsCase::start();
    let (ca, other_ca) = (case.file("ca.crt"), case.file("other-ca.crt"));
    let (crt, key) = (case.file("client.crt"), case.file("client.key"));
    let my_full = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}");
    let pg_full = format!("sslmode=verify-full&sslrootcert={ca}");
    let good_source = case.source("pgclipper", "127.0.0.1", &my_full);
    let good_target = case.target("pgclipper", "127.0.0.1", &pg_full);
    let my_cert = format!("{my_full}&ssl-cert={crt}&ssl-key={key}");
    let pg_cert = format!("{pg_full}&sslcert={crt}&sslkey={key}");

    // (what, source URL, target URL, environment, exit code, words the output must hold)
    type Row<'a> = (
        &'a str,
        String,
        String,
        Vec<(&'a str, String)>,
        i32,
        Vec<&'a str>,
    );
    let ok = vec!["no problems"];
    let rows: Vec<Row> = vec![
        (
            "both verified",
            good_source.clone(),
            good_target.clone(),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "defaults (PREFERRED, prefer) encrypt",
            case.source("pgclipper", "127.0.0.1", ""),
            case.target("pgclipper", "127.0.0.1", ""),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "source: wrong CA",
            case.source(
                "pgclipper",
                "127.0.0.1",
                &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other_ca}"),
            ),
            good_target.clone(),
            vec![],
            3,
            vec![
                "cannot connect to the source",
                "not signed by a CA",
                "ssl-ca=FILE",
            ],
        ),
        (
            "source: wrong host name",
            case.source("pgclipper", "127.0.0.2", &my_full),
            good_target.clone(),
            vec![],
            3,
            vec![
                "cannot connect to the source",
                "not valid for the host name `127.0.0.2`",
                "ssl-mode=VERIFY_CA",
            ],
        ),
        (
            "source: VERIFY_CA ignores the host name",
            case.source(
                "pgclipper",
                "127.0.0.2",
                &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
            ),
            good_target.clone(),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "source: plain to a TLS-only server",
            case.source("pgclipper", "127.0.0.1", "ssl-mode=DISABLED"),
            good_target.clone(),
            vec![],
            3,
            vec!["cannot connect to the source", "remove ssl-mode=DISABLED"],
        ),
        (
            "source: certificate user without a certificate",
            case.source("pgclipper_cert", "127.0.0.1", &my_full),
            good_target.clone(),
            vec![],
            3,
            vec![
                "cannot connect to the source",
                "ssl-cert=FILE and ssl-key=FILE",
            ],
        ),
        (
            "source: certificate user with its certificate",
            case.source("pgclipper_cert", "127.0.0.1", &my_cert),
            good_target.clone(),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "target: wrong CA",
            good_source.clone(),
            case.target(
                "pgclipper",
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            vec![],
            3,
            vec![
                "cannot connect to the target",
                "not signed by a CA",
                "sslrootcert=FILE",
            ],
        ),
        (
            "target: wrong host name",
            good_source.clone(),
            case.target("pgclipper", "127.0.0.2", &pg_full),
            vec![],
            3,
            vec![
                "cannot connect to the target",
                "not valid for the host name `127.0.0.2`",
                "sslmode=verify-ca",
            ],
        ),
        (
            "target: verify-ca ignores the host name",
            good_source.clone(),
            case.target(
                "pgclipper",
                "127.0.0.2",
                &format!("sslmode=verify-ca&sslrootcert={ca}"),
            ),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "target: plain to a TLS-only server",
            good_source.clone(),
            case.target("pgclipper", "127.0.0.1", "sslmode=disable"),
            vec![],
            3,
            vec![
                "cannot connect to the target",
                "no encryption",
                "accepts only encrypted connections",
            ],
        ),
        (
            "target: certificate user without a certificate",
            good_source.clone(),
            case.target("pgclipper_cert", "127.0.0.1", &pg_full),
            vec![],
            3,
            vec![
                "cannot connect to the target",
                "sslcert=FILE and sslkey=FILE",
            ],
        ),
        (
            "target: certificate user with its certificate",
            good_source.clone(),
            case.target("pgclipper_cert", "127.0.0.1", &pg_cert),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "target: settings from PGSSLMODE and PGSSLROOTCERT",
            good_source.clone(),
            case.target("pgclipper", "127.0.0.1", ""),
            vec![
                ("PGSSLMODE", "verify-full".into()),
                ("PGSSLROOTCERT", other_ca.clone()),
            ],
            3,
            vec!["cannot connect to the target", "not signed by a CA"],
        ),
        (
            "target: channel binding required",
            good_source.clone(),
            case.target(
                "pgclipper",
                "127.0.0.1",
                &format!("{pg_full}&channel_binding=require"),
            ),
            vec![],
            0,
            ok.clone(),
        ),
        (
            "target: verify-full without a CA",
            good_source.clone(),
            case.target("pgclipper", "127.0.0.1", "sslmode=verify-full"),
            vec![],
            2,
            vec!["no CA is named", "sslrootcert=FILE"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, source, target, env, code, words) in &rows {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, out) = run_cli(&["check", "--source", source, "--target", target], &env);
        let missing: Vec<_> = words.iter().filter(|w| !out.contains(**w)).collect();
        if got != Some(*code) || !missing.is_empty() {
            failures.push(format!(
                "{what}: exit {got:?} (expected {code}), missing {missing:?}:\n{out}"
            ));
        }
        assert!(
            !out.contains("pgclipper-test"),
            "{what}: the password leaked:\n{out}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // A whole run, and its proof, over TLS with client certificates on both sides; the
    // source checked by VERIFY_CA at a name its certificate does not list, so that every
    // reader connection goes through the issuer-only check.
    let source = case.source(
        "pgclipper_cert",
        "127.0.0.2",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}&ssl-cert={crt}&ssl-key={key}"),
    );
    let target = case.target("pgclipper_cert", "127.0.0.1", &pg_cert);
    let wd = workdir("tls");
    let wd = wd.to_str().unwrap();
    let (code, out) = run_cli(
        &[
            "migrate",
            "--source",
            &source,
            "--target",
            &target,
            "--workdir",
            wd,
            "--readers",
            "2",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        case.psql(
            &case.db,
            "SELECT string_agg(id || ':' || coalesce(v, '-'), ',' ORDER BY id) FROM t"
        ),
        "1:a,2:-,3:c"
    );
    let (code, out) = run_cli(
        &[
            "verify",
            "--source",
            &source,
            "--target",
            &target,
            "--workdir",
            wd,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
}

/// A server without TLS: a mode that insists on it says so; the defaults go on in the clear
/// (the whole suite runs so, on loopback, without a warning).
#[test]
fn a_server_without_tls_is_named_when_tls_is_required() {
    let (source, target) = tiny_pair();
    let (code, out) = run_cli(
        &[
            "check",
            "--source",
            &format!("{source}?ssl-mode=REQUIRED"),
            "--target",
            &target,
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("the source does not offer TLS"), "{out}");
    let (code, out) = run_cli(
        &[
            "check",
            "--source",
            &source,
            "--target",
            &format!("{target}?sslmode=require"),
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("the target does not offer TLS"), "{out}");
    let (code, out) = run_cli(&["check", "--source", &source, "--target", &target], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("not encrypted"), "{out}");

    // The same server by a name that is not this machine's (libpq's hostaddr says where it
    // really is): in the clear, with prefer as with disable, the operator is warned once.
    let (_, rest) = target.split_once('@').unwrap();
    let (hostport, db) = rest.split_once('/').unwrap();
    let port = hostport.rsplit(':').next().unwrap();
    let userinfo = target
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0;
    for mode in ["prefer", "disable"] {
        let remote = format!(
            "postgres://{userinfo}@db.example.com:{port}/{db}?hostaddr=127.0.0.1&sslmode={mode}"
        );
        let (code, out) = run_cli(&["check", "--source", &source, "--target", &remote], &[]);
        assert_eq!(code, Some(0), "{out}");
        let warned = out
            .matches("connection to db.example.com is not encrypted")
            .count();
        assert_eq!(warned, 1, "sslmode={mode}: {out}");
        assert!(out.contains("sslmode=verify-full"), "{out}");
    }
}
