//! Certificates made at test time (rcgen): a CA, and leaf certificates it signs, as PEM
//! files in a directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

/// A CA that can sign leaf certificates into a directory.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Ca { issuer, pem }
    }

    /// A leaf certificate with subject CN `cn` (and SAN DNS `cn`, IP 127.0.0.1); returns
    /// (cert, key) paths.
    pub fn leaf(&self, dir: &Path, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
        self.leaf_with(dir, cn, expired, true)
    }

    /// A leaf certificate whose only name is DNS `cn` (no address): a certificate shared
    /// by agents that are dialled by IP and checked for that name.
    pub fn leaf_dns_only(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        self.leaf_with(dir, cn, false, false)
    }

    /// A leaf certificate for CN `cn` with SAN DNS `cn` and IP `addr` (an agent dialled
    /// at that address).
    pub fn leaf_at(&self, dir: &Path, cn: &str, addr: std::net::IpAddr) -> (PathBuf, PathBuf) {
        self.leaf_full(dir, cn, false, Some(addr))
    }

    fn leaf_with(&self, dir: &Path, cn: &str, expired: bool, ip: bool) -> (PathBuf, PathBuf) {
        let ip = ip.then(|| "127.0.0.1".parse().unwrap());
        self.leaf_full(dir, cn, expired, ip)
    }

    fn leaf_full(
        &self,
        dir: &Path,
        cn: &str,
        expired: bool,
        ip: Option<std::net::IpAddr>,
    ) -> (PathBuf, PathBuf) {
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        if let Some(ip) = ip {
            p.subject_alt_names.push(SanType::IpAddress(ip));
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let tag = if expired { "-expired" } else { "" };
        let c = dir.join(format!("{cn}{tag}.pem"));
        let k = dir.join(format!("{cn}{tag}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// faultd.toml lines serving mutual TLS on 127.0.0.1:`port` with these files, and the
/// `[roles]` table's body (`operator = ["alice"]`).
pub fn tls_config(port: u16, cert: &Path, key: &Path, client_ca: &Path, roles: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n[roles]\n{roles}",
        cert.display(),
        key.display(),
        client_ca.display()
    )
}
