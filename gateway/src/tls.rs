//! HTTPS on the proxy and API ports (`serve.{proxy,api}.tls.{cert,key}.{path,base64}`).
//!
//! Both listeners use OpenSSL, as Pingora does, with Mozilla's intermediate settings and the
//! certificate chain and key held in memory (read or decoded when the configuration is loaded).
//! The API port (axum) gets a listener that runs TLS handshakes in their own tasks, so a slow
//! or stalled client cannot hold up the accept loop.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::tls::pkey::PKey;
use pingora::tls::ssl::{Ssl, SslAcceptor, SslAcceptorBuilder, SslMethod};
use pingora::tls::tokio_ssl::SslStream;
use pingora::tls::x509::X509;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::config::TlsPem;

/// Longest a client may take to complete the TLS handshake on the API port.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An OpenSSL acceptor for `pem`, checking that the key belongs to the certificate. Errors never
/// contain key material.
pub fn acceptor_builder(pem: &TlsPem) -> Result<SslAcceptorBuilder, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut chain = X509::stack_from_pem(&pem.cert)
        .map_err(|_| "the certificate is not a PEM certificate chain".to_owned())?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or("the certificate file holds no PEM certificate")?;
    builder
        .set_certificate(&leaf)
        .map_err(|e| format!("the certificate cannot be used: {e}"))?;
    for intermediate in chain {
        builder
            .add_extra_chain_cert(intermediate)
            .map_err(|e| format!("an intermediate certificate cannot be used: {e}"))?;
    }
    let key = PKey::private_key_from_pem(&pem.key)
        .map_err(|_| "the key is not a PEM private key".to_owned())?;
    let matches = leaf
        .public_key()
        .map(|public| key.public_eq(&public))
        .unwrap_or(false);
    if !matches {
        return Err("the private key does not match the certificate".to_owned());
    }
    builder
        .set_private_key(&key)
        .map_err(|_| "the private key cannot be used".to_owned())?;
    builder
        .check_private_key()
        .map_err(|_| "the private key does not match the certificate".to_owned())?;
    Ok(builder)
}

/// An axum listener that accepts TCP connections and hands over the ones whose TLS handshake
/// completed.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` (inside a Tokio runtime).
    pub fn new(listener: TcpListener, acceptor: SslAcceptor) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    return;
                }
                let sender = sender.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&acceptor, tcp).await {
                        let _ = sender.send((stream, peer)).await;
                    }
                });
            }
        });
        Ok(Self { local_addr, ready })
    }
}

async fn handshake(acceptor: &SslAcceptor, tcp: TcpStream) -> Option<SslStream<TcpStream>> {
    let ssl = Ssl::new(acceptor.context()).ok()?;
    let mut stream = SslStream::new(ssl, tcp).ok()?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, std::pin::Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "API TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
