//! The rustls configuration for talking to Nomad, built the way Nomad's Go client interprets its
//! settings: `NOMAD_CACERT`/`NOMAD_CAPATH` replace the system roots, a client certificate is
//! presented when given, `NOMAD_TLS_SERVER_NAME` is the name the server certificate is checked
//! against (agent certificates carry `server.<region>.nomad`, not `127.0.0.1`), and
//! `NOMAD_SKIP_VERIFY` accepts any certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where TLS material comes from; all paths are PEM files (or a directory of them for `ca_path`).
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub server_name: Option<String>,
    pub skip_verify: bool,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path} holds no usable PEM data: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_owned(),
            reason: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

fn root_store(settings: &TlsSettings) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut add = |what: &'static str, path: &Path| -> Result<(), TlsError> {
        for cert in certificates(what, path)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                what,
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    };
    if let Some(ca) = &settings.ca_cert {
        add("CA certificate (--ca-cert)", ca)?;
    }
    if let Some(dir) = &settings.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|source| TlsError::Read {
            what: "CA directory (--ca-path)",
            path: dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            add("CA certificate in --ca-path", &file)?;
        }
    }
    if settings.ca_cert.is_none() && settings.ca_path.is_none() {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // Unparseable system certificates are skipped, as Go's x509.SystemCertPool does.
            let _ = roots.add(cert);
        }
    }
    Ok(roots)
}

/// Builds the client configuration. Plain-HTTP addresses get one too (never used for a
/// handshake), so the HTTP client never falls back to a provider it was not built with.
pub fn client_config(
    settings: &TlsSettings,
    https: bool,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.skip_verify {
        Arc::new(AcceptAnyCertificate(provider.clone()))
    } else {
        let roots = if https {
            root_store(settings)?
        } else {
            RootCertStore::empty()
        };
        if https && roots.is_empty() {
            return Err(TlsError::Invalid(
                "no CA certificates to verify Nomad's certificate: set --ca-cert (NOMAD_CACERT) or install system CA certificates".to_owned(),
            ));
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Invalid(e.to_string()))?,
            )
        };
        match (webpki, &settings.server_name) {
            (Some(inner), Some(name)) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    TlsError::Invalid(format!(
                        "--tls-server-name {name:?} is not a valid DNS name or IP address"
                    ))
                })?;
                Arc::new(FixedServerName { inner, name })
            }
            (Some(inner), None) => inner,
            (None, _) => Arc::new(AcceptAnyCertificate(provider.clone())),
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("client certificate (--client-cert)", cert)?;
            let key_pem = read("client key (--client-key)", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
                what: "client key (--client-key)",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                TlsError::Invalid(format!("client certificate and key do not match: {e}"))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Invalid(
                "--client-cert and --client-key must be given together".to_owned(),
            ));
        }
    };
    Ok(config)
}

/// Verifies the server's certificate against a fixed name instead of the URL's host.
#[derive(Debug)]
struct FixedServerName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--tls-skip-verify`: any certificate is accepted (the handshake signatures are still checked,
/// so the session is encrypted, but the peer is not authenticated).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_flag_and_path() {
        let settings = TlsSettings {
            ca_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..TlsSettings::default()
        };
        let err = client_config(&settings, true).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("--ca-cert") && text.contains("/nonexistent/ca.pem"),
            "{text}"
        );
    }

    #[test]
    fn a_client_cert_without_a_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = TlsSettings {
            client_cert: Some(dir.path().join("cert.pem")),
            skip_verify: true,
            ..TlsSettings::default()
        };
        let err = client_config(&settings, true).expect_err("must fail");
        assert!(err.to_string().contains("together"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let settings = TlsSettings {
            ca_cert: Some(path),
            ..TlsSettings::default()
        };
        let err = client_config(&settings, true).expect_err("must fail");
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }
}
