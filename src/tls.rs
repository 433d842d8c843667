//! TLS for the gateway listener (`[gateway] tls = { cert, key }`): loads a
//! PEM certificate chain and private key into a rustls server config that
//! offers HTTP/2 and HTTP/1.1 through ALPN. Not a pipeline phase: the
//! listener (`server/`) terminates TLS before any request exists. Loaded
//! while the config is validated, so a bad certificate is a config error at
//! the `tls` key's position, and a reload picks up renewed files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Certificate and key files, and the server config built from them.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_config: Arc<ServerConfig>,
}

/// Reads `cert` (PEM chain, leaf first) and `key` (PEM PKCS#8, PKCS#1 or
/// SEC1) and builds a server config with ALPN `h2`, `http/1.1`.
pub fn load(cert: &Path, key: &Path) -> Result<TlsSettings, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate file {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate file {} is not valid PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificate file {} holds no CERTIFICATE block",
            cert.display()
        ));
    }
    // The key's contents never go into a message.
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
        format!(
            "key file {} holds no readable PEM private key",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not form a usable pair: {e}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSettings {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        server_config: Arc::new(config),
    })
}
