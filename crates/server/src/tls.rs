//! HTTPS: the server's certificate and key, and a listener that hands axum decrypted connections.
//!
//! Handshakes run in tasks of their own, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that
//! stalls mid-handshake holds up nobody else; the listener yields connections as their handshakes
//! finish. A failed handshake (a client that distrusts the certificate, a port scanner) is logged
//! at debug level and costs only its own connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose handshake finished but that axum has not taken yet.
const READY_CONNECTIONS: usize = 64;

/// Why the certificate or key cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("--tls-cert {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    /// The key file is unreadable or holds no PEM private key.
    #[error("--tls-key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// The key does not belong to the certificate, or rustls refuses the pair.
    #[error("--tls-cert {} and --tls-key {}: {reason}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// A certificate chain and its private key, ready to serve.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1), and checks that the key is the certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|error| TlsError::Certificate {
                path: cert.to_path_buf(),
                reason: pem_reason(&error, "certificate"),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificate {
                path: cert.to_path_buf(),
                reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            });
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::Key {
            path: key.to_path_buf(),
            reason: pem_reason(&error, "private key"),
        })?;
        let pair = |reason: String| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| pair(error.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|error| pair(error.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// Accepts TLS connections on `listener`.
    pub fn listen(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (ready, connections) = mpsc::channel(READY_CONNECTIONS);
        let acceptor = TlsAcceptor::from(Arc::clone(&self.config));
        let accepting = tokio::spawn(accept(listener, acceptor, ready));
        Ok(TlsListener {
            connections,
            local,
            accepting,
        })
    }
}

/// What went wrong reading a PEM file, in words.
fn pem_reason(error: &rustls::pki_types::pem::Error, what: &str) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(error) => error.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => format!("holds no PEM {what}"),
        other => format!("is not a PEM {what} ({other})"),
    }
}

/// Takes TCP connections and runs each one's handshake in a task of its own.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: the next accept may succeed, as in axum.
                tracing::warn!(%error, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Connections whose handshake finished, for [`axum::serve`].
pub struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task holds the sender until it is aborted with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
