//! What a client needs to trust and authenticate to the server: a CA and a serving
//! certificate made at start (`rcgen`), a random bearer token, and a kubeconfig naming them
//! (context `reconcile-engine`).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;

/// Errors while preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot make the serving certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The system's random source failed.
    #[error("cannot draw a random token")]
    Random,
}

/// The server's credentials for one run.
pub struct Credentials {
    /// PEM of the CA certificate clients trust.
    pub ca_pem: String,
    /// The rustls configuration serving the certificate.
    pub server: Arc<rustls::ServerConfig>,
    /// The bearer token.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never appears in output.
        f.write_str("Credentials(..)")
    }
}

/// A random token: 32 bytes from the system's source, hex.
pub fn random_token() -> Result<String, TlsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes a CA, a certificate for `localhost`, `127.0.0.1` and the listen address signed by
/// it, and a token.
pub fn credentials(listen: &SocketAddr) -> Result<Credentials, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "reconcile-engine-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "reconcile-engine");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        params
            .subject_alt_names
            .push(SanType::IpAddress(listen.ip()));
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    // ring rather than aws-lc-rs: no C toolchain beyond what ring needs to build.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
        token: random_token()?,
    })
}

/// A kubeconfig for `server` (`https://host:port`) with the CA and the token, context and
/// cluster `reconcile-engine`.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: reconcile-engine
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: reconcile-engine
  user:
    token: {token}
contexts:
- name: reconcile-engine
  context:
    cluster: reconcile-engine
    user: reconcile-engine
    namespace: default
current-context: reconcile-engine
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_credentials_build() {
        let a = random_token().expect("token");
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token().expect("token"));
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let creds = credentials(&listen).expect("credentials");
        assert!(creds.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{creds:?}").contains(&creds.token));
        let config = kubeconfig("https://127.0.0.1:6443", &creds.ca_pem, "t0k");
        assert!(config.contains("current-context: reconcile-engine"));
        assert!(config.contains("token: t0k"));
    }
}
