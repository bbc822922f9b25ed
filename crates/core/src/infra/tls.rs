//! The process's TLS crypto provider. Every rustls user in the tree (MongoDB, Redis, reqwest)
//! runs on ring; reqwest 0.13 is built without a provider of its own (`rustls-no-provider`, so
//! no second crypto library is compiled) and takes the process default, which
//! [`install_crypto_provider`] sets. Build HTTP clients with [`http_client`]: it installs the
//! provider first, so no client can be built without one (reqwest would panic).

use std::sync::Once;

/// Installs ring as the process's rustls provider (once; a provider installed before is kept).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only when another provider was installed first: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A `reqwest` client builder, with the crypto provider installed.
pub fn http_client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_build_with_the_installed_provider() {
        super::http_client().build().expect("a client builds");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
