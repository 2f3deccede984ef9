//! How the binary reaches Nomad: TLS (CA, client certificates, server name), a unix socket, the
//! token file, basic auth and the region parameter.

use std::path::Path;

use fake_nomad::{FakeNomad, Listen};
use predicates::str::contains;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::util::{bin, bin_at, dump, fake_and_dir, rows_at, web_cluster};

/// A CA plus a server and a client certificate signed by it, as PEM files in a directory.
struct Pki {
    dir: tempfile::TempDir,
    server_cert: String,
    server_key: String,
    ca_cert: String,
}

impl Pki {
    /// `server_names` go into the server certificate's SANs (Nomad agents use
    /// `server.<region>.nomad`).
    fn new(server_names: &[&str]) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Nomad Agent CA");
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let server_key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(
            server_names
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
        let client_key = KeyPair::generate().expect("key");
        let client = CertificateParams::new(vec!["cli.global.nomad".to_owned()])
            .expect("params")
            .signed_by(&client_key, &ca)
            .expect("client cert");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), client.pem()).expect("write");
        std::fs::write(
            dir.path().join("client-key.pem"),
            client_key.serialize_pem(),
        )
        .expect("write");
        Pki {
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            ca_cert: ca.pem(),
            dir,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The fake serving the web cluster over HTTPS with the server certificate, requiring a
    /// client certificate from the CA if asked.
    fn serve(&self, require_client_cert: bool) -> FakeNomad {
        let (cluster, _) = web_cluster();
        let client_ca = require_client_cert.then_some(self.ca_cert.as_str());
        let config = fake_nomad::tls::server_config(&self.server_cert, &self.server_key, client_ca)
            .expect("tls config");
        FakeNomad::start_on(cluster, Listen::Tls(([127, 0, 0, 1], 0).into(), config))
            .expect("start")
    }
}

fn dump_ok(cmd: &mut assert_cmd::Command, out: &Path) -> usize {
    dump(cmd, out, &[]);
    rows_at(out).len()
}

#[test]
fn tls_with_a_ca_and_a_client_certificate() {
    let pki = Pki::new(&["127.0.0.1", "server.global.nomad"]);
    let fake = pki.serve(true);
    let out = pki.path("t.csv");
    let rows = dump_ok(
        bin_at(fake.address())
            .env("NOMAD_CACERT", pki.path("ca.pem"))
            .env("NOMAD_CLIENT_CERT", pki.path("client.pem"))
            .env("NOMAD_CLIENT_KEY", pki.path("client-key.pem")),
        &out,
    );
    assert_eq!(rows, 1);
    // The same agent refuses a client without a certificate.
    bin_at(fake.address())
        .env("NOMAD_CACERT", pki.path("ca.pem"))
        .args(["dump", "-o"])
        .arg(pki.path("u.csv"))
        .assert()
        .code(3);
}

#[test]
fn tls_server_name_verifies_an_agent_certificate_reached_by_ip() {
    // Like a real agent: the certificate names server.global.nomad, not 127.0.0.1.
    let pki = Pki::new(&["server.global.nomad"]);
    let fake = pki.serve(false);
    bin_at(fake.address())
        .args(["--ca-cert"])
        .arg(pki.path("ca.pem"))
        .args(["dump", "-o"])
        .arg(pki.path("a.csv"))
        .assert()
        .code(3)
        .stderr(contains("certificate"));
    let rows = dump_ok(
        bin_at(fake.address())
            .args(["--ca-cert"])
            .arg(pki.path("ca.pem"))
            .args(["--tls-server-name", "server.global.nomad"]),
        &pki.path("b.csv"),
    );
    assert_eq!(rows, 1);
}

#[test]
fn a_ca_directory_and_skip_verify_work_too() {
    let pki = Pki::new(&["server.global.nomad"]);
    let fake = pki.serve(false);
    let ca_dir = pki.path("cas");
    std::fs::create_dir(&ca_dir).expect("mkdir");
    std::fs::copy(pki.path("ca.pem"), ca_dir.join("nomad-ca.pem")).expect("copy");
    let rows = dump_ok(
        bin_at(fake.address())
            .env("NOMAD_CAPATH", &ca_dir)
            .env("NOMAD_TLS_SERVER_NAME", "server.global.nomad"),
        &pki.path("a.csv"),
    );
    assert_eq!(rows, 1);
    let rows = dump_ok(
        bin_at(fake.address()).env("NOMAD_SKIP_VERIFY", "true"),
        &pki.path("b.csv"),
    );
    assert_eq!(rows, 1);
}

#[test]
fn a_unix_socket_address_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("api.sock");
    let (cluster, _) = web_cluster();
    let fake = FakeNomad::start_on(cluster, Listen::Unix(socket.clone())).expect("start");
    assert!(fake.address().starts_with("unix://"));
    let rows = dump_ok(&mut bin_at(fake.address()), &dir.path().join("t.csv"));
    assert_eq!(rows, 1);
}

#[test]
fn a_unix_socket_that_is_missing_is_a_connection_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    bin()
        .env(
            "NOMAD_ADDR",
            format!("unix://{}", dir.path().join("none.sock").display()),
        )
        .args(["dump", "-o"])
        .arg(dir.path().join("t.csv"))
        .assert()
        .code(3)
        .stderr(contains("none.sock"));
}

#[test]
fn the_token_file_is_read_and_sent_in_preference_to_nomad_token() {
    let (mut cluster, _) = web_cluster();
    cluster.enable_acl();
    cluster.add_token("file-token", fake_nomad::Policy::alloc_table_reader());
    let (fake, dir) = fake_and_dir(cluster);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").expect("write");
    // A NOMAD_TOKEN left in the environment does not get in the way of the token file.
    let rows = dump_ok(
        bin_at(fake.address())
            .env("NOMAD_TOKEN", "stale-environment-token")
            .args(["--token-file"])
            .arg(&token_file),
        &dir.path().join("t.csv"),
    );
    assert_eq!(rows, 1);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.token.as_deref() == Some("file-token"))
    );
}

#[test]
fn basic_auth_and_region_are_sent() {
    let (cluster, _) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    dump_ok(
        bin_at(fake.address())
            .env("NOMAD_HTTP_AUTH", "ops:pa55")
            .env("NOMAD_REGION", "eu-west"),
        &dir.path().join("t.csv"),
    );
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for request in requests {
        // base64("ops:pa55")
        assert_eq!(request.authorization.as_deref(), Some("Basic b3BzOnBhNTU="));
        assert!(
            request.query.contains("region=eu-west"),
            "{}",
            request.query
        );
    }
}
