//! TLS for both connections, with rustls (no system OpenSSL): the certificate files an
//! operator names, the three levels of checking libpq and the MySQL client share (encrypt
//! only; check the issuer; check the issuer and the host name), what a failed handshake
//! means in one sentence, and the warning when password hashes and personal records would
//! cross a network in the clear. The URL conventions of each side live with their driver:
//! [`crate::source::tls`] (MySQL's `ssl-mode`) and [`crate::sink::tls`] (libpq's `sslmode`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::error::{Error, Result};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Encrypt, trust any certificate (libpq `require`, MySQL `REQUIRED`).
    Nothing,
    /// The certificate is signed by a trusted CA (`verify-ca`, `VERIFY_CA`).
    Issuer,
    /// … and names the host connected to (`verify-full`, `VERIFY_IDENTITY`).
    IssuerAndHost,
}

/// The CA certificates a connection trusts.
#[derive(Debug, Clone)]
pub enum Roots {
    /// The certificates of a PEM file the operator names.
    File(PathBuf),
    /// The public web's CAs (Mozilla's list, built in): libpq's `sslrootcert=system`, and
    /// MySQL's verification without `ssl-ca`. Managed services with a private CA (RDS,
    /// Cloud SQL) need their bundle named instead.
    BuiltIn,
}

/// A client certificate and its key, read from PEM files.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The certificates of `path` (PEM); `option` names the setting in messages.
pub fn read_certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_pem_file(path, option)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Usage(format!("{option}={}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{option}={} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate of `cert` and its private key in `key` (PEM: PKCS#8, PKCS#1 or
/// SEC1, not encrypted).
pub fn read_identity(cert: &Path, key: &Path, names: (&str, &str)) -> Result<Identity> {
    let certs = read_certificates(cert, names.0)?;
    let bytes = read_pem_file(key, names.1)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::Usage(format!(
            "{}={}: no unencrypted PEM private key in it ({e})",
            names.1,
            key.display()
        ))
    })?;
    Ok(Identity { certs, key })
}

fn read_pem_file(path: &Path, option: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::Usage(format!(
            "{option}={}: cannot read it: {}",
            path.display(),
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            }
        ))
    })
}

/// The rustls configuration of one connection setting.
pub fn client_config(
    check: Check,
    roots: &Roots,
    identity: Option<Identity>,
    option: &str,
) -> Result<ClientConfig> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certificates(path, option)? {
                store
                    .add(cert)
                    .map_err(|e| Error::Usage(format!("{option}={}: {e}", path.display())))?;
            }
        }
        Roots::BuiltIn => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = WebPkiServerVerifier::builder(Arc::new(store))
        .build()
        .map_err(|e| Error::Usage(format!("{option}: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::IssuerAndHost => webpki,
        Check::Issuer | Check::Nothing => Arc::new(Lenient { webpki, check }),
    };
    let builder = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some(Identity { certs, key }) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| Error::Usage(format!("client certificate: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The levels below the full check: `Issuer` accepts a certificate whatever names it
/// carries once its issuer is trusted; `Nothing` accepts any certificate. Either way the
/// handshake's signatures are still checked, so the session is encrypted to whoever holds
/// the certificate's key.
#[derive(Debug)]
struct Lenient {
    webpki: Arc<WebPkiServerVerifier>,
    check: Check,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        // webpki checks the chain before the name: a name mismatch means the chain held.
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `e`'s chain. An `io::Error` hides the error it wraps from
/// `source()` (it returns that error's own source), so it is looked into by `get_ref`.
pub fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(found) = io.get_ref().and_then(|inner| rustls_error(inner)) {
                return Some(found);
            }
        }
        next = err.source();
    }
    None
}

/// What a failed handshake means and what to change, in the words of `settings` (the names
/// of the side's own options: CA file, mode for the issuer check, mode without host check).
pub struct Settings {
    pub ca: &'static str,
    pub verify_ca: &'static str,
}

pub fn explain(e: &rustls::Error, host: &str, settings: &Settings) -> String {
    let ca = settings.ca;
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "its TLS certificate is not signed by a CA this connection trusts: name the CA \
             that signed it with {ca}=FILE"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "its TLS certificate is not valid for the host name `{host}` ({e}): connect by a \
             name the certificate lists, or check only the issuer with {}",
            settings.verify_ca
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("its TLS certificate has expired ({e})"),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => format!("its TLS certificate is not valid yet ({e}): check both clocks"),
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({alert:?}): it may ask for a client \
             certificate this connection does not send, or refuse the one it sends"
        ),
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// Whether `host` is this machine: traffic to it never crosses a network.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Warns once per side and process that a connection to `host` is not encrypted, unless
/// `host` is this machine.
pub fn warn_unencrypted(side: Side, host: &str, how_to_encrypt: &str) {
    if is_loopback(host) {
        return;
    }
    let flag = match side {
        Side::Source => &WARNED_SOURCE,
        Side::Target => &WARNED_TARGET,
    };
    if !flag.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "The {} connection to {host} is not encrypted: password hashes and personal \
             records would cross the network in the clear. {how_to_encrypt}",
            side.name()
        );
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Source => "source (MySQL)",
            Side::Target => "target (Postgres)",
        }
    }
}

static WARNED_SOURCE: AtomicBool = AtomicBool::new(false);
static WARNED_TARGET: AtomicBool = AtomicBool::new(false);

/// The value of `key` in a URL's query string, percent-decoded, and the URL without it;
/// `aliases` are other spellings of the key (`ssl-mode` and `ssl_mode`).
pub fn take_query_param(url: &mut String, aliases: &[&str]) -> Option<String> {
    let (base, query) = url.split_once('?')?;
    let mut found = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if aliases.iter().any(|a| a.eq_ignore_ascii_case(key)) {
                found = Some(percent_decode(value));
                false
            } else {
                true
            }
        })
        .collect();
    let rebuilt = if kept.is_empty() || kept == [""] {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    *url = rebuilt;
    found
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok();
        match (bytes[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_taken_out_of_the_url() {
        let mut url =
            "mysql://u:p@h/db?ssl-mode=VERIFY_CA&prefer_socket=false&ssl_ca=%2Ftmp%2Fca.pem"
                .to_string();
        assert_eq!(
            take_query_param(&mut url, &["ssl-mode", "ssl_mode"]).as_deref(),
            Some("VERIFY_CA")
        );
        assert_eq!(
            take_query_param(&mut url, &["ssl-ca", "ssl_ca"]).as_deref(),
            Some("/tmp/ca.pem")
        );
        assert_eq!(url, "mysql://u:p@h/db?prefer_socket=false");
        assert_eq!(
            take_query_param(&mut url, &["prefer_socket"]).as_deref(),
            Some("false")
        );
        assert_eq!(url, "mysql://u:p@h/db");
        assert_eq!(take_query_param(&mut url, &["ssl-mode"]), None);
    }

    #[test]
    fn loopback_hosts_are_this_machine() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "db.example.com",
            "10.0.0.5",
            "192.168.1.1",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn a_rustls_error_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
        assert_eq!(rustls_error(&io), Some(&tls));
        let plain = std::io::Error::other("no");
        assert_eq!(rustls_error(&plain), None);
    }
}
