//! HTTPS for the CDN leg (CloudFront requires an HTTPS origin): rustls with ALPN `h2` and
//! `http/1.1`, and a certificate that can be replaced while the server runs. On reload (SIGHUP)
//! new handshakes use the new certificate; connections already open keep theirs, so nothing
//! is dropped. A certificate that fails to load is refused and the old one stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The certificate in use, swappable.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_pem: PathBuf,
    key_pem: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    fn load(cert_pem: &Path, key_pem: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
        let certs = CertificateDer::pem_file_iter(cert_pem)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", cert_pem.display()));
        }
        // The error names the file only: never key material.
        let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| format!("{}: {e}", key_pem.display()))?;
        let signing_key =
            provider.key_provider.load_private_key(key).map_err(|e| format!("{}: {e}", key_pem.display()))?;
        let certified = CertifiedKey::new(certs, signing_key);
        certified
            .keys_match()
            .map_err(|e| format!("{} does not match {}: {e}", key_pem.display(), cert_pem.display()))?;
        Ok(Arc::new(certified))
    }

    /// Re-reads the PEM files; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Self::load(&self.cert_pem, &self.key_pem, &self.provider)?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// A TLS acceptor for `config` and the handle that reloads its certificate.
pub fn acceptor(config: &TlsConfig) -> Result<(TlsAcceptor, Arc<ReloadableCert>), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let current = ReloadableCert::load(&config.cert_pem, &config.key_pem, &provider)?;
    let cert = Arc::new(ReloadableCert {
        cert_pem: config.cert_pem.clone(),
        key_pem: config.key_pem.clone(),
        provider: provider.clone(),
        current: RwLock::new(current),
    });
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(server)), cert))
}
