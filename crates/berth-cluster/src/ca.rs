//! The swarm's certificate authority and join tokens. `swarm init` makes a CA (ECDSA P-256);
//! the master's certificate and every node's are issued by it at join, and master and
//! agents then talk over mutual TLS. A join token is `SWMTKN-1-<sha256 of the CA
//! certificate>-<secret>`: the joiner pins the CA by its digest before it trusts the master,
//! and the master checks the secret (one per role) before it issues a certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The name every master certificate carries and every agent expects, whatever the address.
pub const MANAGER_NAME: &str = "swarm-manager";
const CA_NAME: &str = "swarm-ca";

fn tls_err(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

/// The CA's certificate and key (PEM).
#[derive(Clone)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate issued to a node, with its key (PEM).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn generate() -> Result<Ca> {
        let key = KeyPair::generate().map_err(|e| tls_err("CA key")(e.to_string()))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| tls_err("CA certificate")(e.to_string()))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for node `node_id`; a manager's also names [`MANAGER_NAME`].
    pub fn issue(&self, node_id: &str, manager: bool) -> Result<Issued> {
        let ca_key =
            KeyPair::from_pem(&self.key_pem).map_err(|e| tls_err("CA key")(e.to_string()))?;
        // The same name and key as the stored CA certificate: what it issues verifies
        // against that certificate.
        let ca_cert = ca_params()
            .self_signed(&ca_key)
            .map_err(|e| tls_err("CA certificate")(e.to_string()))?;
        let key = KeyPair::generate().map_err(|e| tls_err("node key")(e.to_string()))?;
        let mut names = vec![node_id.to_string()];
        if manager {
            names.push(MANAGER_NAME.to_string());
        }
        let mut params = CertificateParams::new(names)
            .map_err(|e| tls_err("node certificate")(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        dn.push(
            DnType::OrganizationalUnitName,
            if manager {
                "swarm-manager"
            } else {
                "swarm-worker"
            },
        );
        params.distinguished_name = dn;
        params
            .subject_alt_names
            .retain(|s| matches!(s, SanType::DnsName(_)));
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| tls_err("node certificate")(e.to_string()))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The hex sha256 of the CA certificate (DER): the first half of a join token.
    pub fn digest(&self) -> Result<String> {
        ca_digest(&self.cert_pem)
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    params
}

pub fn ca_digest(cert_pem: &str) -> Result<String> {
    let der = certs(cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Tls("no CA certificate".into()))?;
    Ok(hex(&Sha256::digest(der.as_ref())))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh random secret, hex.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    crate::fill_random(&mut b)?;
    Ok(hex(&b))
}

/// `SWMTKN-1-<ca digest>-<secret>`.
pub fn make_token(ca_digest: &str, secret: &str) -> String {
    format!("SWMTKN-1-{ca_digest}-{secret}")
}

/// Splits a join token into (CA digest, secret).
pub fn parse_token(token: &str) -> Result<(String, String)> {
    let bad = || Error::InvalidArgument("invalid join token".into());
    let rest = token.trim().strip_prefix("SWMTKN-1-").ok_or_else(bad)?;
    let (digest, secret) = rest.split_once('-').ok_or_else(bad)?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
        return Err(bad());
    }
    Ok((digest.to_string(), secret.to_string()))
}

pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("certificate PEM: {e}")))
}

pub fn key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| Error::Tls(format!("key PEM: {e}")))?
        .ok_or_else(|| Error::Tls("no private key in PEM".into()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots
            .add(c)
            .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The master's listener: its own certificate; client certificates from the CA are
/// verified, and optional (a joining node has none yet).
pub fn server_config(ca_pem: &str, me: &Issued) -> Result<rustls::ServerConfig> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut chain = certs(&me.cert_pem)?;
    chain.extend(certs(ca_pem)?);
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(&me.key_pem)?)
        .map_err(|e| Error::Tls(format!("server certificate: {e}")))
}

/// An agent's connection to the master, once it has its certificate.
pub fn client_config(ca_pem: &str, me: &Issued) -> Result<rustls::ClientConfig> {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs(&me.cert_pem)?, key(&me.key_pem)?)
        .map_err(|e| Error::Tls(format!("client certificate: {e}")))
}

/// A joining node's connection: the master is trusted when the CA at the end of the chain
/// it presents has the token's digest and its certificate verifies against that CA.
pub fn join_config(ca_digest: &str) -> Result<rustls::ClientConfig> {
    let verifier = Arc::new(PinnedCa {
        digest: ca_digest.to_ascii_lowercase(),
        provider: provider(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug)]
struct PinnedCa {
    digest: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| hex(&Sha256::digest(c.as_ref())) == self.digest)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the manager's CA does not match the join token (wrong token or wrong manager)"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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

/// The sha256 (hex) of a certificate: how the master knows which node is calling.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex(&Sha256::digest(cert.as_ref()))
}

pub fn fingerprint_pem(pem: &str) -> Result<String> {
    certs(pem)?
        .first()
        .map(fingerprint)
        .ok_or_else(|| Error::Tls("no certificate in PEM".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_junk() {
        let ca = Ca::generate().unwrap();
        let d = ca.digest().unwrap();
        let t = make_token(&d, "s3cret");
        assert_eq!(parse_token(&t).unwrap(), (d, "s3cret".to_string()));
        for bad in ["", "SWMTKN-1-abc-def", "TOKEN", "SWMTKN-1-"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issued_certificates_make_configs() {
        let ca = Ca::generate().unwrap();
        let m = ca.issue("node1", true).unwrap();
        let w = ca.issue("node2", false).unwrap();
        server_config(&ca.cert_pem, &m).unwrap();
        client_config(&ca.cert_pem, &w).unwrap();
        join_config(&ca.digest().unwrap()).unwrap();
        assert_ne!(
            fingerprint_pem(&m.cert_pem).unwrap(),
            fingerprint_pem(&w.cert_pem).unwrap()
        );
    }
}
