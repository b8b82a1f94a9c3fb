//! The TLS client configuration: built once from `--tls-ca`, `--tls-cert`
//! and `--tls-key` and shared by every connection.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::args::Security;

/// The client configuration for `sec`: the server certificate is verified
/// against `--tls-ca`, or not at all without it (as go-nsq's
/// `tls_insecure_skip_verify`); a client certificate is offered when
/// `--tls-cert`/`--tls-key` are given.
pub fn client_config(sec: &Security) -> Result<Arc<ClientConfig>> {
    // ring, as the broker: its provider is deprecated in rustls 0.23.48 for
    // lacking post-quantum key exchange, which nsqd v1.3 (Go) lacks too.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &sec.tls_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path).context("--tls-ca")? {
                roots
                    .add(cert)
                    .with_context(|| format!("--tls-ca {}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
    };
    let config = match (&sec.tls_cert, &sec.tls_key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert).context("--tls-cert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("--tls-key {}: no usable private key", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .context("--tls-cert/--tls-key")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file at `path` (at least one).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

/// `name` as a TLS server name: an IP address (checked against the
/// certificate's IP SANs, no SNI sent) or a DNS name.
pub fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .with_context(|| format!("{name:?} is not a valid TLS server name"))
}

/// Accepts any server certificate (no `--tls-ca`): the handshake still
/// checks that the server holds the certificate's key.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
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
