//! The target's TLS settings as libpq has them: `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` in the URL, else `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, else
//! libpq's defaults (`prefer`; the files under `~/.postgresql/` when they exist).

use std::path::{Path, PathBuf};

use tokio_postgres::config::SslMode as DriverMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::tls::{self, Check, Roots};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str, from: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::Usage(format!(
                    "{from}={text}: expected disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

/// How the target connection is encrypted and what it checks.
#[derive(Debug, Clone)]
pub struct TargetTls {
    pub mode: SslMode,
    check: Check,
    roots: Roots,
    identity: Option<(PathBuf, PathBuf)>,
}

/// Where a setting is read when the URL does not have it.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl TargetTls {
    /// Takes the TLS settings out of `url`, so that the driver parses the rest, and reads
    /// those the URL does not set from `env` and libpq's default files.
    pub fn take(url: &mut String, env: Env) -> Result<TargetTls> {
        let mut setting = |key: &str, variable: &str| -> Option<(String, String)> {
            let in_url = tls::take_query_param(url, &[key]).map(|v| (v, key.to_string()));
            in_url.or_else(|| env(variable).map(|v| (v, variable.to_string())))
        };
        let mode = setting("sslmode", "PGSSLMODE");
        let root = setting("sslrootcert", "PGSSLROOTCERT");
        let cert = setting("sslcert", "PGSSLCERT");
        let key = setting("sslkey", "PGSSLKEY");
        let home = env("HOME").map(PathBuf::from);
        let default_file = |name: &str| {
            home.as_ref()
                .map(|h| h.join(".postgresql").join(name))
                .filter(|p| p.exists())
        };

        let given_mode = match &mode {
            Some((text, from)) => Some(SslMode::parse(text, from)?),
            None => None,
        };
        let roots = match &root {
            Some((text, _)) if text == "system" => Some(Roots::BuiltIn),
            Some((text, _)) => Some(Roots::File(PathBuf::from(text))),
            None => default_file("root.crt").map(Roots::File),
        };
        // sslrootcert=system makes verify-full the default and refuses weaker modes, as
        // libpq does: the public CAs sign certificates for anyone's host name.
        let mode = match (given_mode, &roots) {
            (None, Some(Roots::BuiltIn)) => SslMode::VerifyFull,
            (Some(m), Some(Roots::BuiltIn)) if m != SslMode::VerifyFull => {
                return Err(Error::Usage(format!(
                    "sslrootcert=system needs sslmode=verify-full (the public CAs sign \
                     certificates for anyone's host name), not {}",
                    mode.map(|(t, _)| t).unwrap_or_default()
                )))
            }
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        // As libpq: a root certificate file makes prefer and require check the issuer too.
        let check = match (mode, &roots) {
            (SslMode::VerifyFull, _) => Check::IssuerAndHost,
            (SslMode::VerifyCa, _) | (_, Some(Roots::File(_))) => Check::Issuer,
            _ => Check::Nothing,
        };
        let roots = match roots {
            Some(roots) => roots,
            None if check != Check::Nothing => {
                return Err(Error::Usage(format!(
                    "sslmode={} checks the target's certificate, but no CA is named: add \
                     sslrootcert=FILE (the CA that signed the server's certificate), or \
                     sslrootcert=system for a certificate from a public CA",
                    if mode == SslMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    }
                )))
            }
            None => Roots::BuiltIn,
        };
        let identity = match (cert, key) {
            (Some((cert, _)), Some((key, _))) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (Some((_, from)), None) => {
                return Err(Error::Usage(format!(
                    "{from} names a client certificate but no key: add sslkey=FILE"
                )))
            }
            (None, Some((_, from))) => {
                return Err(Error::Usage(format!(
                    "{from} names a client key but no certificate: add sslcert=FILE"
                )))
            }
            (None, None) => default_file("postgresql.crt").zip(default_file("postgresql.key")),
        };
        Ok(TargetTls {
            mode,
            check,
            roots,
            identity,
        })
    }

    /// What the driver does before the handshake: skip it, try it, or insist on it.
    pub fn driver_mode(&self) -> DriverMode {
        match self.mode {
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer => DriverMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
        }
    }

    pub fn connector(&self) -> Result<MakeRustlsConnect> {
        let identity = match &self.identity {
            Some((cert, key)) => Some(tls::read_identity(
                Path::new(cert),
                Path::new(key),
                ("sslcert", "sslkey"),
            )?),
            None => None,
        };
        let config = tls::client_config(self.check, &self.roots, identity, "sslrootcert")?;
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The reason a connection failed, with what to change when TLS is the cause.
pub fn explain(e: &tokio_postgres::Error, tls: &TargetTls, host: &str) -> String {
    let message = crate::error::pg_message(e);
    if let Some(handshake) = tls::rustls_error(e) {
        let settings = tls::Settings {
            ca: "sslrootcert",
            verify_ca: "sslmode=verify-ca",
        };
        return tls::explain(handshake, host, &settings);
    }
    let plain_refused = e
        .as_db_error()
        .is_some_and(|db| db.code().code() == "28000" && db.message().contains("no encryption"));
    if plain_refused {
        return format!(
            "{message}: the target accepts only encrypted connections here; use sslmode=require, \
             or better verify-full with sslrootcert=FILE"
        );
    }
    if message.contains("server does not support TLS") {
        return format!(
            "the target does not offer TLS, and sslmode={} insists on it: enable ssl on the \
             server, or connect with sslmode=prefer",
            match tls.mode {
                SslMode::VerifyCa => "verify-ca",
                SslMode::VerifyFull => "verify-full",
                _ => "require",
            }
        );
    }
    if message.contains("certificate") && tls.identity.is_none() {
        return format!("{message}: name a client certificate with sslcert=FILE and sslkey=FILE");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(url: &str, env: &[(&str, &str)]) -> Result<(String, TargetTls)> {
        let mut url = url.to_string();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let tls = TargetTls::take(&mut url, &lookup)?;
        Ok((url, tls))
    }

    #[test]
    fn settings_come_from_the_url_then_the_environment() {
        let (url, tls) = take(
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
            &[("PGSSLMODE", "disable")],
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p@h/db?application_name=x");
        assert_eq!(
            (tls.mode, tls.check),
            (SslMode::VerifyFull, Check::IssuerAndHost)
        );

        let (_, tls) = take(
            "postgres://u:p@h/db",
            &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", "/ca.pem")],
        )
        .unwrap();
        assert_eq!((tls.mode, tls.check), (SslMode::VerifyCa, Check::Issuer));
    }

    #[test]
    fn defaults_are_libpqs() {
        let (_, tls) = take("postgres://u:p@h/db", &[]).unwrap();
        assert_eq!((tls.mode, tls.check), (SslMode::Prefer, Check::Nothing));
        // A root certificate makes require check the issuer.
        let (_, tls) = take(
            "postgres://u:p@h/db?sslmode=require&sslrootcert=/ca.pem",
            &[],
        )
        .unwrap();
        assert_eq!(tls.check, Check::Issuer);
        // sslrootcert=system: verify-full by default, weaker modes refused.
        let (_, tls) = take("postgres://u:p@h/db?sslrootcert=system", &[]).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert!(take(
            "postgres://u:p@h/db?sslrootcert=system&sslmode=require",
            &[]
        )
        .is_err());
    }

    #[test]
    fn incomplete_settings_are_refused_in_one_sentence() {
        let e = take("postgres://u:p@h/db?sslmode=verify-full", &[]).unwrap_err();
        assert!(e.to_string().contains("add sslrootcert=FILE"), "{e}");
        let e = take("postgres://u:p@h/db?sslmode=verify_full", &[]).unwrap_err();
        assert!(e.to_string().contains("expected disable, prefer"), "{e}");
        let e = take("postgres://u:p@h/db?sslcert=/c.pem", &[]).unwrap_err();
        assert!(e.to_string().contains("add sslkey=FILE"), "{e}");
    }
}
