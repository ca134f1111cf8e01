//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` URL parameters ask for it.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` and encrypts without checking the
//! server's certificate; it refuses `verify-ca`, `verify-full` and `sslrootcert`. This module
//! takes those parameters off the URL, tells tokio-postgres to require TLS where they ask for
//! it, and does the checking in the rustls connector (tokio-postgres-rustls) it is given.

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, less `allow` (plain first, then TLS), which tokio-postgres cannot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, plain otherwise; the certificate is not checked. libpq's
    /// default, and warroom's.
    Prefer,
    /// TLS or no connection; the certificate is checked only if `sslrootcert` is given (then
    /// as by `verify-ca`, as libpq does).
    Require,
    /// TLS, with a certificate signed by the root in `sslrootcert` (a file: required).
    VerifyCa,
    /// TLS, with a certificate signed by a trusted root (`sslrootcert`, or the system's CAs)
    /// that names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(
                "sslmode=allow (plain first, then TLS) is not supported; use prefer, require, verify-ca or verify-full"
                    .into(),
            ),
            other => Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    /// What tokio-postgres is told: it only decides whether TLS is tried and required.
    fn for_tokio_postgres(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
        }
    }
}

/// Where the trusted roots of the checking modes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The system's CA certificates (`verify-full` with `sslrootcert=system` or none).
    System,
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
}

/// The TLS settings of a PostgreSQL URL, and the URL for tokio-postgres without them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `Some` when the certificate is checked.
    pub roots: Option<Roots>,
    /// The URL with `sslmode` rewritten for tokio-postgres and `sslrootcert` taken off. It
    /// may hold a password: never log it.
    pub url: String,
}

/// Read `sslmode` and `sslrootcert` off a `postgres://` URL. The errors never repeat the URL
/// or any part of it but the names of these parameters (it may hold a password).
pub fn parse(url: &str) -> Result<PgTls, String> {
    // The query starts at the first `?` after the credentials, which end at the first `@`
    // (as tokio-postgres reads a URL): a raw `?` in a password is not the query.
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let after_credentials = url[after_scheme..]
        .find('@')
        .map_or(after_scheme, |at| after_scheme + at + 1);
    let (base, query) = match url[after_credentials..].find('?') {
        Some(at) => (
            &url[..after_credentials + at],
            &url[after_credentials + at + 1..],
        ),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // tokio-postgres decodes names too: `ssl%6Dode` is sslmode.
        let key = percent_decode_str(key).decode_utf8_lossy();
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("the database URL's {key} is not UTF-8 once decoded"))
        };
        match key.as_ref() {
            "sslmode" => mode = Some(SslMode::parse(&decoded()?)?),
            "sslrootcert" => {
                let path = decoded()?;
                if path.is_empty() {
                    return Err("the database URL's sslrootcert is empty".into());
                }
                root = Some(path.into_owned());
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" | "sslsni"
            | "sslnegotiation" => {
                return Err(format!(
                    "the database URL's {key} is not supported (warroom checks the server with sslmode and sslrootcert, negotiates TLS the usual way and has no client certificate)"
                ));
            }
            _ => kept.push(pair),
        }
    }
    // As libpq 16: `sslrootcert=system` without a mode means verify-full, and the system's
    // CAs are trusted only with verify-full (any public CA signs certificates for anyone's
    // host names, so a check of the chain alone would prove nothing).
    let mode = match (mode, root.as_deref()) {
        (None, Some("system")) => SslMode::VerifyFull,
        (mode, _) => mode.unwrap_or(SslMode::Prefer),
    };
    let roots = match (mode, root) {
        (SslMode::VerifyFull, None) => Some(Roots::System),
        (SslMode::VerifyFull, Some(root)) if root == "system" => Some(Roots::System),
        (SslMode::VerifyCa | SslMode::Require, Some(root)) if root == "system" => {
            return Err(
                "the database URL gives sslrootcert=system with a mode that does not check the host name; the system's CAs are trusted only with sslmode=verify-full"
                    .into(),
            );
        }
        (SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Require, Some(root)) => {
            Some(Roots::File(root.into()))
        }
        (SslMode::VerifyCa, None) => {
            return Err(
                "sslmode=verify-ca needs sslrootcert=FILE, the CA that signs the server's certificate"
                    .into(),
            );
        }
        (SslMode::Disable | SslMode::Prefer, Some(_)) => {
            return Err(format!(
                "the database URL gives sslrootcert with sslmode={}, which does not check the server's certificate; use verify-ca or verify-full",
                if mode == SslMode::Disable {
                    "disable"
                } else {
                    "prefer (the default)"
                }
            ));
        }
        (_, None) => None,
    };
    kept.push(match mode.for_tokio_postgres() {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok(PgTls {
        mode,
        roots,
        url: format!("{base}?{}", kept.join("&")),
    })
}

impl PgTls {
    /// The URL's settings for tokio-postgres and the connector to use them with.
    pub fn config(&self) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
        let config = self
            .url
            .parse()
            .map_err(|e| format!("the database URL is not valid: {e}"))?;
        Ok((config, self.connector()?))
    }

    /// The connector for tokio-postgres: it encrypts with rustls and checks the server's
    /// certificate as the mode asks. Reads the roots (the `sslrootcert` file, or the system's).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = match &self.roots {
            None => None,
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(root_store(roots)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("the PostgreSQL TLS roots cannot be used: {e}"))?,
            ),
        };
        let verifier = Arc::new(Checks {
            chain,
            name: self.mode == SslMode::VerifyFull,
            provider: provider.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {shown} holds no PEM certificate"));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no system CA certificates were found to check PostgreSQL's certificate{why}; give sslrootcert=FILE"
                ));
            }
        }
    }
    Ok(store)
}

/// What is checked of the server's certificate, as libpq's modes say. The handshake's
/// signatures are always checked.
#[derive(Debug)]
struct Checks {
    /// The chain must lead to one of these roots (`verify-ca`, `verify-full`, `require` with
    /// `sslrootcert`); `None`: the certificate is not checked (`prefer`, `require`).
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The certificate must also name the host (`verify-full`).
    name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Checks {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain first and the name last: a name error means the chain is
        // good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "postgres://warroom:s3cret@db.internal:5432/warroom";

    #[test]
    fn no_sslmode_is_prefer_without_checks() {
        let tls = parse(BASE).unwrap();
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.roots, None);
        assert_eq!(tls.url, format!("{BASE}?sslmode=prefer"));
    }

    #[test]
    fn each_mode_tells_tokio_postgres_whether_tls_is_required() {
        for (given, mode, told, roots) in [
            ("disable", SslMode::Disable, "disable", None),
            ("prefer", SslMode::Prefer, "prefer", None),
            ("require", SslMode::Require, "require", None),
            (
                "verify-ca&sslrootcert=/ca.pem",
                SslMode::VerifyCa,
                "require",
                Some(Roots::File("/ca.pem".into())),
            ),
            (
                "verify-full",
                SslMode::VerifyFull,
                "require",
                Some(Roots::System),
            ),
        ] {
            let tls = parse(&format!("{BASE}?application_name=w&sslmode={given}")).unwrap();
            assert_eq!(tls.mode, mode, "{given}");
            assert_eq!(tls.roots, roots, "{given}");
            assert_eq!(
                tls.url,
                format!("{BASE}?application_name=w&sslmode={told}"),
                "{given}"
            );
            // What is left is a URL tokio-postgres takes.
            assert!(tls.url.parse::<tokio_postgres::Config>().is_ok(), "{given}");
        }
    }

    #[test]
    fn sslrootcert_is_taken_off_and_decoded() {
        let tls = parse(&format!(
            "{BASE}?sslrootcert=%2Fetc%2Fwarroom%2Fdb%20ca.pem&sslmode=verify-full&connect_timeout=3"
        ))
        .unwrap();
        assert_eq!(
            tls.roots,
            Some(Roots::File("/etc/warroom/db ca.pem".into()))
        );
        assert_eq!(tls.url, format!("{BASE}?connect_timeout=3&sslmode=require"));
        // require with a root file checks the chain, as libpq does.
        let tls = parse(&format!("{BASE}?sslmode=require&sslrootcert=/ca.pem")).unwrap();
        assert_eq!(tls.roots, Some(Roots::File("/ca.pem".into())));
        // The system's CAs: with verify-full only, which `system` alone means (libpq 16).
        for query in [
            "sslmode=verify-full&sslrootcert=system",
            "sslrootcert=system",
        ] {
            let tls = parse(&format!("{BASE}?{query}")).unwrap();
            assert_eq!(
                (tls.mode, tls.roots),
                (SslMode::VerifyFull, Some(Roots::System)),
                "{query}"
            );
        }
    }

    #[test]
    fn the_query_starts_after_the_credentials() {
        // A raw `?` in a password is part of the password, as tokio-postgres reads it.
        let url = "postgres://warroom:s3?cr&et@db.internal:5432/warroom";
        let tls = parse(&format!("{url}?sslmode=verify-full&sslrootcert=/ca.pem")).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.roots, Some(Roots::File("/ca.pem".into())));
        assert_eq!(tls.url, format!("{url}?sslmode=require"));
        let config: tokio_postgres::Config = tls.url.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"s3?cr&et"[..]));
        assert_eq!(config.get_dbname(), Some("warroom"));
        let plain = parse(url).unwrap();
        assert_eq!(plain.url, format!("{url}?sslmode=prefer"));
        // Names are decoded as tokio-postgres decodes them.
        let tls = parse(&format!("{BASE}?ssl%6Dode=verify-full")).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
    }

    #[test]
    fn what_cannot_be_done_is_refused_without_repeating_the_url() {
        for query in [
            "sslmode=allow",
            "sslmode=verify",
            "sslmode=prefer&sslrootcert=/ca.pem",
            "sslrootcert=/ca.pem",
            "sslmode=disable&sslrootcert=/ca.pem",
            "sslmode=verify-full&sslrootcert=",
            "sslcert=/client.pem&sslmode=require",
            "sslkey=/client.key",
            "sslrootcert=%FF",
            "sslmode=verify-ca",
            "sslmode=verify-ca&sslrootcert=system",
            "sslmode=require&sslrootcert=system",
            "sslnegotiation=direct",
        ] {
            let error = parse(&format!("{BASE}?{query}")).unwrap_err();
            assert!(!error.contains("s3cret"), "{query}: {error}");
            assert!(!error.contains("db.internal"), "{query}: {error}");
        }
    }

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let tls = parse(&format!(
            "{BASE}?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ))
        .unwrap();
        let error = tls.connector().err().expect("a missing file is refused");
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let tls = parse(&format!(
            "{BASE}?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap();
        let error = tls
            .connector()
            .err()
            .expect("a file of no certificate is refused");
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
