//! The source's TLS settings as the MySQL client has them: `ssl-mode`
//! (`DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY`, default `PREFERRED`),
//! `ssl-ca`, `ssl-cert` and `ssl-key` in the URL's query (`ssl_mode` … also accepted).
//! mysql_async does the handshake with rustls; its own `require_ssl`/`verify_ca` URL
//! parameters are overridden by these.

use std::path::PathBuf;
use std::sync::Mutex;

use mysql_async::{ClientIdentity, SslOpts};

use crate::error::{Error, Result};
use crate::tls;

/// The MySQL client's `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => {
                return Err(Error::Usage(format!(
                    "ssl-mode={text}: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or \
                     VERIFY_IDENTITY"
                )))
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct SourceTls {
    pub mode: SslMode,
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
}

impl SourceTls {
    /// Takes the TLS settings out of `url`, so that the driver parses the rest.
    pub fn take(url: &mut String) -> Result<SourceTls> {
        let mode = tls::take_query_param(url, &["ssl-mode", "ssl_mode", "sslmode"]);
        let ca = tls::take_query_param(url, &["ssl-ca", "ssl_ca"]).map(PathBuf::from);
        let cert = tls::take_query_param(url, &["ssl-cert", "ssl_cert"]).map(PathBuf::from);
        let key = tls::take_query_param(url, &["ssl-key", "ssl_key"]).map(PathBuf::from);
        let mode = match mode {
            Some(text) => SslMode::parse(&text)?,
            // As the MySQL 8 client: naming a CA asks for it to be checked.
            None if ca.is_some() => SslMode::VerifyCa,
            None => SslMode::Preferred,
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => {
                return Err(Error::Usage(
                    "ssl-cert names a client certificate but no key: add ssl-key=FILE".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Usage(
                    "ssl-key names a client key but no certificate: add ssl-cert=FILE".into(),
                ))
            }
            (None, None) => None,
        };
        if mode == SslMode::Disabled && identity.is_some() {
            return Err(Error::Usage(
                "ssl-mode=DISABLED with ssl-cert: a client certificate needs TLS".into(),
            ));
        }
        Ok(SourceTls { mode, ca, identity })
    }

    /// The driver's TLS options for one attempt; `name` is the name the certificate is
    /// checked against when it is not the host's (see [`name_for_issuer_check`]).
    pub fn ssl_opts(&self, name: Option<String>) -> Result<Option<SslOpts>> {
        if self.mode == SslMode::Disabled {
            return Ok(None);
        }
        let mut opts = SslOpts::default();
        if let Some(ca) = &self.ca {
            // Read here, so that a missing file is one clear sentence; handed over one DER
            // certificate each. Only the named CA is trusted then, as by the MySQL client.
            let certs = tls::read_certificates(ca, "ssl-ca")?;
            opts = opts
                .with_root_certs(certs.iter().map(|der| der.to_vec().into()).collect())
                .with_disable_built_in_roots(true);
        }
        if let Some((cert, key)) = &self.identity {
            tls::read_identity(cert, key, ("ssl-cert", "ssl-key"))?;
            opts = opts.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        opts = match self.mode {
            SslMode::Preferred | SslMode::Required => opts.with_danger_accept_invalid_certs(true),
            SslMode::VerifyCa => opts.with_danger_tls_hostname_override(name),
            SslMode::VerifyIdentity | SslMode::Disabled => opts,
        };
        Ok(Some(opts))
    }
}

/// The name a VERIFY_CA connection checks the certificate against. mysql_async 0.37 cannot
/// skip the host-name check with today's rustls (mysql_async#404: it looks for a word in
/// the error's text that rustls no longer prints), so VERIFY_CA connects once with the
/// full check; when only the name fails, the chain has been checked already (webpki
/// checks it first) and the certificate's own names are in the error: later attempts
/// check against the first of them, which is the chain check and nothing more.
pub fn name_for_issuer_check(e: &mysql_async::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
        presented,
        ..
    }) = tls::rustls_error(e)?
    else {
        return None;
    };
    presented.iter().find_map(|name| certificate_name(name))
}

/// A name webpki prints as `DnsName("db.example.com")` or `IpAddress(10.0.0.5)`, as a name
/// to connect by (a wildcard's label filled in).
fn certificate_name(printed: &str) -> Option<String> {
    if let Some(dns) = printed
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
    {
        return Some(match dns.strip_prefix("*.") {
            Some(parent) => format!("pgclipper.{parent}"),
            None => dns.to_string(),
        });
    }
    printed
        .strip_prefix("IpAddress(")
        .and_then(|s| s.strip_suffix(')'))
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
}

/// The name found by [`name_for_issuer_check`], kept for the run's later connections.
pub static ISSUER_CHECK_NAME: Mutex<Option<String>> = Mutex::new(None);

/// The reason a connection failed, with what to change when TLS is the cause.
pub fn explain(e: &mysql_async::Error, tls: &SourceTls, host: &str) -> String {
    if let Some(handshake) = tls::rustls_error(e) {
        let settings = tls::Settings {
            ca: "ssl-ca",
            verify_ca: "ssl-mode=VERIFY_CA",
        };
        return tls::explain(handshake, host, &settings);
    }
    let message = crate::error::mysql_message(e);
    match e {
        // ER_SECURE_TRANSPORT_REQUIRED (MySQL 8 and MariaDB)
        mysql_async::Error::Server(s) if s.code == 3159 || s.code == 4036 => format!(
            "{message}: the source accepts only encrypted connections; remove \
             ssl-mode=DISABLED (or use ssl-mode=VERIFY_IDENTITY with ssl-ca=FILE)"
        ),
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            format!(
                "the source does not offer TLS, and ssl-mode={:?} insists on it: enable TLS \
                 on the server (ssl_cert, ssl_key), or connect with ssl-mode=PREFERRED",
                tls.mode
            )
        }
        // MariaDB refuses a plain login under require_secure_transport as "Access denied".
        mysql_async::Error::Server(s) if s.code == 1045 && tls.mode == SslMode::Disabled => {
            format!(
                "{message} (if the source accepts only encrypted connections, as with \
                 require_secure_transport=ON, remove ssl-mode=DISABLED)"
            )
        }
        mysql_async::Error::Server(s) if s.code == 1045 && tls.identity.is_none() => format!(
            "{message} (if this account is created REQUIRE X509 or SUBJECT, name a client \
             certificate with ssl-cert=FILE and ssl-key=FILE)"
        ),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(url: &str) -> Result<(String, SourceTls)> {
        let mut url = url.to_string();
        let tls = SourceTls::take(&mut url)?;
        Ok((url, tls))
    }

    #[test]
    fn settings_use_the_mysql_clients_names() {
        let (url, tls) = take("mysql://u:p@h/db?ssl-mode=verify_identity&ssl-ca=/ca.pem").unwrap();
        assert_eq!(url, "mysql://u:p@h/db");
        assert_eq!(tls.mode, SslMode::VerifyIdentity);
        assert_eq!(take("mysql://u:p@h/db").unwrap().1.mode, SslMode::Preferred);
        assert_eq!(
            take("mysql://u:p@h/db?ssl_ca=/ca.pem").unwrap().1.mode,
            SslMode::VerifyCa
        );
        let e = take("mysql://u:p@h/db?ssl-mode=VERIFY").unwrap_err();
        assert!(
            e.to_string().contains("expected DISABLED, PREFERRED"),
            "{e}"
        );
        let e = take("mysql://u:p@h/db?ssl-key=/k.pem").unwrap_err();
        assert!(e.to_string().contains("add ssl-cert=FILE"), "{e}");
    }

    #[test]
    fn certificate_names_are_read_as_webpki_prints_them() {
        assert_eq!(
            certificate_name("DnsName(\"db.example.com\")").as_deref(),
            Some("db.example.com")
        );
        assert_eq!(
            certificate_name("DnsName(\"*.example.com\")").as_deref(),
            Some("pgclipper.example.com")
        );
        assert_eq!(
            certificate_name("IpAddress(10.0.0.5)").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(certificate_name("UniformResourceIdentifier(\"x\")"), None);
    }
}
