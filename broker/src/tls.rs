//! TLS settings: the rustls server configuration built once at startup from
//! `--tls-cert`, `--tls-key`, `--tls-root-ca-file`, `--tls-client-auth-policy`
//! and `--tls-min-version`, shared (read-only, `Arc`) by every shard for the
//! in-band upgrade after IDENTIFY and for the HTTPS listener.
//!
//! Built on the main thread before any shard runs, so reading the files here
//! blocks no core. rustls offers TLS 1.2 and 1.3 only: a lower
//! `--tls-min-version` (nsqd's default is tls1.0) is accepted and logged, and
//! clients negotiate 1.2 or 1.3 as they do with nsqd built by a modern Go.

use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, ServerConnection,
    SignatureScheme,
};

use crate::config::{Options, TlsVersion};

/// What a negotiated TLS session looks like in `/stats` (nsqd's `tls_*`
/// client fields). Plain data: it moves with the connection.
#[derive(Clone, Debug, Default)]
pub struct TlsStats {
    /// `tls_version`, nsqd's spelling: `TLS1.2`, `TLS1.3`.
    pub version: String,
    /// `tls_cipher_suite`: nsqd's names (13 older suites by name, any other
    /// as `Unknown <id>`, e.g. `Unknown 4865` for TLS_AES_128_GCM_SHA256).
    pub cipher_suite: String,
    /// `tls_negotiated_protocol`: the ALPN protocol ("" when none).
    pub negotiated_protocol: String,
    /// `tls_negotiated_protocol_is_mutual`: Go always reports true.
    pub negotiated_protocol_is_mutual: bool,
    /// The client certificate's subject common name ("" without one): sent
    /// to the auth server as `common_name`.
    pub common_name: String,
}

/// The server configuration, or None when no certificate is configured
/// (then IDENTIFY answers `tls_v1: false`, as nsqd does).
pub fn server_config(opts: &Options) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    if opts.tls_cert.as_os_str().is_empty() || opts.tls_key.as_os_str().is_empty() {
        return Ok(None);
    }
    // ring: builds with only a C compiler (no cmake), which keeps CI and
    // packaging simple. Its provider is deprecated in rustls 0.23.48 for
    // lacking post-quantum key exchange, which nsqd v1.3 (Go) lacks too.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs(&opts.tls_cert)?;
    let key = PrivateKeyDer::from_pem_file(&opts.tls_key).with_context(|| {
        format!(
            "failed to build TLS config - cannot read a private key from {}",
            opts.tls_key.display()
        )
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.tls_min_version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        older => {
            crate::log_info!(
                "TLS: --tls-min-version={} accepted; TLS 1.2 and 1.3 are offered (older versions are not)",
                older.as_str()
            );
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        }
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("failed to build TLS config")?;
    let builder = match opts.tls_client_auth_policy.as_str() {
        "require" => builder.with_client_cert_verifier(Arc::new(AnyClientCert { provider })),
        "require-verify" => {
            if opts.tls_root_ca_file.as_os_str().is_empty() {
                bail!("failed to build TLS config - --tls-client-auth-policy=require-verify needs --tls-root-ca-file");
            }
            let mut roots = RootCertStore::empty();
            for cert in load_certs(&opts.tls_root_ca_file)? {
                roots.add(cert).with_context(|| {
                    format!(
                        "failed to build TLS config - bad CA certificate in {}",
                        opts.tls_root_ca_file.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("failed to build TLS config")?;
            builder.with_client_cert_verifier(verifier)
        }
        // nsqd: any other policy asks for no client certificate.
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .context("failed to build TLS config")?;
    Ok(Some(Arc::new(config)))
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "failed to build TLS config - cannot read certificates from {}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "failed to build TLS config - no certificate in {}",
            path.display()
        );
    }
    Ok(certs)
}

/// `--tls-client-auth-policy=require` (Go's `RequireAnyClientCert`): a client
/// must present a certificate and prove it holds its key, but the
/// certificate is not checked against a CA.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// The `/stats` view of a finished handshake.
pub fn session_stats(conn: &rustls::ServerConnection) -> TlsStats {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2",
        _ => "Unknown",
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| cipher_suite_name(u16::from(s.suite())))
        .unwrap_or_default();
    let negotiated_protocol = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let common_name = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| common_name(cert.as_ref()))
        .unwrap_or_default();
    TlsStats {
        version: version.to_string(),
        cipher_suite,
        negotiated_protocol,
        negotiated_protocol_is_mutual: true,
        common_name,
    }
}

/// nsqd's `GetCipherSuite`: names for the suites Go listed when it was
/// written (of those, rustls offers the two AES-128-GCM ones), `Unknown <id>`
/// for everything else. Kept as nsqd reports it: tools parse it.
fn cipher_suite_name(id: u16) -> String {
    let name = match id {
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        _ => return format!("Unknown {id}"),
    };
    name.to_string()
}

/// The subject common name of a DER certificate ("" if it has none or does
/// not parse: it only feeds the auth query).
pub fn common_name(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// nsqd's TLS handshake deadline.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Run the server side of a TLS handshake on `stream`, bounded by
/// [`HANDSHAKE_TIMEOUT`]. `pending`: bytes already read after IDENTIFY (the
/// start of the ClientHello, if the client did not wait). Nothing blocks the
/// core: reads and writes are the reactor's, with deadlines.
pub async fn handshake<S>(
    stream: &mut S,
    config: Arc<ServerConfig>,
    pending: BytesMut,
) -> io::Result<(Box<ServerConnection>, BytesMut)>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + nsq_io::net::Deadlines,
{
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut tls = Box::new(ServerConnection::new(config).map_err(io::Error::other)?);
    // Frames are encrypted as the writer hands them over; the writer bounds
    // what is queued, so rustls need not.
    tls.set_buffer_limit(None);
    let mut raw_in = pending;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        while !raw_in.is_empty() && tls.is_handshaking() {
            let mut raw = &raw_in[..];
            let taken = tls.read_tls(&mut raw)?;
            raw_in.advance(taken);
            let processed = tls.process_new_packets();
            if let Err(e) = processed {
                // Tell the client why (an alert), then give up.
                out.clear();
                while tls.wants_write() && tls.write_tls(&mut out).is_ok() {}
                let _ = stream.write_all(&out).await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            if taken == 0 {
                break;
            }
        }
        if tls.wants_write() {
            out.clear();
            while tls.wants_write() {
                tls.write_tls(&mut out)?;
            }
            let left = remaining(deadline)?;
            stream.write_deadline(Some(left))?;
            stream.write_all(&out).await?;
        }
        if !tls.is_handshaking() {
            let _ = stream.write_deadline(None);
            return Ok((tls, raw_in));
        }
        stream.read_deadline(Some(remaining(deadline)?))?;
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the TLS handshake",
            ));
        }
        raw_in.extend_from_slice(&chunk[..n]);
    }
}

fn remaining(deadline: std::time::Instant) -> io::Result<std::time::Duration> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        ));
    }
    Ok(left)
}
