//! TLS and compression for the tests: certificates made at test time
//! (rcgen: a CA, a server certificate for 127.0.0.1/localhost, a client
//! certificate), the client side of nsqd's connection upgrades on
//! [`RawClient`], and a rustls client config for real-client tests.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::{RawClient, TempDir};

/// PEM files in a temporary directory: `ca.pem`, `server.pem`,
/// `server.key`, `client.pem`, `client.key` (client CN: [`CLIENT_CN`]),
/// and `stranger.pem`/`stranger.key`, a client certificate signed by
/// another CA.
pub struct TestCerts {
    dir: TempDir,
}

/// The client certificate's subject common name.
pub const CLIENT_CN: &str = "nsq-test-client";

impl TestCerts {
    /// Make a fresh set.
    pub fn generate() -> Result<TestCerts> {
        let dir = TempDir::new("certs")?;
        let (ca, ca_key) = make_ca("nsq test CA")?;
        let (other_ca, other_key) = make_ca("some other CA")?;
        let write = |name: &str, text: String| -> Result<()> {
            std::fs::write(dir.path().join(name), text).with_context(|| format!("writing {name}"))
        };
        write("ca.pem", ca.pem())?;
        let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        server
            .distinguished_name
            .push(DnType::CommonName, "nsqd test server");
        let server_key = KeyPair::generate()?;
        let server = server.signed_by(&server_key, &ca, &ca_key)?;
        write("server.pem", server.pem())?;
        write("server.key", server_key.serialize_pem())?;
        for (name, signer, signer_key) in [
            ("client", &ca, &ca_key),
            ("stranger", &other_ca, &other_key),
        ] {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, CLIENT_CN);
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, signer, signer_key)?;
            write(&format!("{name}.pem"), cert.pem())?;
            write(&format!("{name}.key"), key.serialize_pem())?;
        }
        Ok(TestCerts { dir })
    }

    /// Path of one of the files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--tls-cert=… --tls-key=…` for nsqd (plus `extra`).
    pub fn nsqd_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            format!("--tls-cert={}", self.path("server.pem").display()),
            format!("--tls-key={}", self.path("server.key").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// A client config trusting the test CA; with `identity` ("client" or
    /// "stranger"), presenting that certificate.
    pub fn client_config(&self, identity: Option<&str>) -> Result<Arc<ClientConfig>> {
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path("ca.pem"))? {
            roots.add(cert?)?;
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let certs = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))?
                    .collect::<Result<Vec<_>, _>>()?;
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key")))?;
                builder.with_client_auth_cert(certs, key)?
            }
        };
        Ok(Arc::new(config))
    }
}

fn make_ca(name: &str) -> Result<(rcgen::Certificate, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
}

/// One TLS session used by both the reader and the writer side.
#[derive(Clone)]
struct SharedTls(Arc<Mutex<StreamOwned<ClientConnection, std::net::TcpStream>>>);

impl Read for SharedTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        s.read(buf)
    }
}

impl Write for SharedTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        s.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut s = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        s.flush()
    }
}

/// A deflate writer whose every flush is a sync flush (as Go's).
struct DeflateWriter(flate2::write::DeflateEncoder<Box<dyn Write + Send>>);

impl Write for DeflateWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl RawClient {
    /// Run the client side of the TLS upgrade (after an IDENTIFY response
    /// granting `tls_v1`), then read nsqd's `OK` over TLS.
    pub fn upgrade_tls(&mut self, config: Arc<ClientConfig>) -> Result<()> {
        self.start_tls(config)?;
        self.expect_ok().context("OK after the TLS upgrade")
    }

    /// The handshake only (no `OK` read): for tests of refused handshakes.
    pub fn start_tls(&mut self, config: Arc<ClientConfig>) -> Result<()> {
        if !self.rbuf.is_empty() {
            bail!("bytes after the IDENTIFY response before TLS");
        }
        let name = ServerName::try_from("127.0.0.1")?;
        let conn = ClientConnection::new(config, name)?;
        let mut tls = StreamOwned::new(conn, self.stream.try_clone()?);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .context("TLS handshake")?;
        }
        let shared = SharedTls(Arc::new(Mutex::new(tls)));
        self.reader = Box::new(shared.clone());
        self.writer = Box::new(shared);
        Ok(())
    }

    /// The reader with what was already read ahead put back in front: it
    /// belongs to the layer being added.
    fn take_reader(&mut self) -> Box<dyn Read + Send> {
        let ahead = io::Cursor::new(self.rbuf.split().to_vec());
        let reader = std::mem::replace(&mut self.reader, Box::new(io::empty()));
        Box::new(ahead.chain(reader))
    }

    /// Switch both directions to the snappy framing format and read `OK`.
    pub fn upgrade_snappy(&mut self) -> Result<()> {
        let reader = self.take_reader();
        let writer = std::mem::replace(&mut self.writer, Box::new(io::sink()));
        self.reader = Box::new(snap::read::FrameDecoder::new(reader));
        self.writer = Box::new(snap::write::FrameEncoder::new(writer));
        self.expect_ok().context("OK after the snappy upgrade")
    }

    /// Switch both directions to raw deflate and read `OK`.
    pub fn upgrade_deflate(&mut self, level: u32) -> Result<()> {
        let reader = self.take_reader();
        let writer = std::mem::replace(&mut self.writer, Box::new(io::sink()));
        self.reader = Box::new(flate2::read::DeflateDecoder::new(reader));
        self.writer = Box::new(DeflateWriter(flate2::write::DeflateEncoder::new(
            writer,
            flate2::Compression::new(level),
        )));
        self.expect_ok().context("OK after the deflate upgrade")
    }

    /// Everything the server sends until it closes, read from the socket
    /// under any layers; fails if it is still open after `timeout`.
    pub fn read_raw_until_closed(&mut self, timeout: std::time::Duration) -> Result<Vec<u8>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut all = self.rbuf.split().to_vec();
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                bail!("connection still open after {timeout:?}");
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(all),
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(all),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bytes straight to the socket, under any layers (for corrupt-stream
    /// tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }
}

/// Is `path` a readable file (for skipping with a clear message)?
pub fn exists(path: &Path) -> bool {
    path.is_file()
}
