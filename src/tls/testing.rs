//! A real TLS connection for the tests of the TLS modules: rustls (its `ring` provider) runs a
//! client and a server in memory with one suite forced, logs its secrets as `SSLKEYLOGFILE`
//! would, and gives what each side put on the wire, in the order it was written.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

pub use rustls::crypto::ring as provider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A logged secret: label, client random, secret.
type Logged = (String, Vec<u8>, Vec<u8>);

/// The secrets rustls logs.
#[derive(Debug, Default)]
pub struct Collector(Mutex<Vec<Logged>>);

impl rustls::KeyLog for Collector {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut v) = self.0.lock() {
            v.push((label.to_string(), client_random.to_vec(), secret.to_vec()));
        }
    }
}

impl Collector {
    /// The key log with only the lines of this client random (a writer that logs full
    /// handshakes only).
    pub fn keylog_text_of(&self, random: &[u8; 32]) -> Vec<u8> {
        let text = String::from_utf8(self.keylog_text()).expect("text");
        let hex: String = random.iter().map(|x| format!("{x:02x}")).collect();
        text.lines()
            .filter(|l| l.split(' ').nth(1) == Some(hex.as_str()))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    }

    pub fn secret(&self, label: &str) -> Vec<u8> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_else(|| panic!("{label} not logged"))
    }
}

/// What one connection put on the wire, each direction's bytes, and its secrets.
pub struct Wire {
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
    /// Each write on the wire in order: (from the client, bytes).
    pub transcript: Vec<(bool, Vec<u8>)>,
    pub log: Arc<Collector>,
}

pub const REQUEST: &[u8] = b"POST /v1/charges HTTP/1.1\r\nHost: api.example.com\r\n\
Idempotency-Key: 5f1c0c3e\r\nContent-Length: 13\r\n\r\n{\"amount\":42}";
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"id\":\"ch_3Nv1\"}";

/// A handshake and one exchange between a rustls client and server with only `suite`.
pub fn exchange(suite: rustls::SupportedCipherSuite) -> Wire {
    let (server_cfg, client_cfg, log) = configs(suite);
    connect(&Arc::new(server_cfg), &Arc::new(client_cfg), log, false)
}

/// How the second connection of [`exchange_resumed`] resumes the first's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// TLS 1.2 by session ID (the server keeps sessions, issues no tickets).
    Tls12Id,
    /// TLS 1.2 by ticket (RFC 5077).
    Tls12Ticket,
    /// TLS 1.3 PSK with the request as 0-RTT early data, which the server takes or refuses
    /// (the client then sends it again after the handshake, as clients do).
    Tls13EarlyData { accept: bool },
}

/// Two connections between the same client and server: a full handshake, then one that
/// resumes its session. Both log into the one key log.
pub fn exchange_resumed(suite: rustls::SupportedCipherSuite, resume: Resume) -> (Wire, Wire) {
    let (mut server_cfg, mut client_cfg, log) = configs(suite);
    match resume {
        Resume::Tls12Id => {}
        Resume::Tls12Ticket => {
            server_cfg.ticketer = provider::Ticketer::new().expect("ticketer");
        }
        Resume::Tls13EarlyData { .. } => {
            server_cfg.max_early_data_size = 16 * 1024;
            client_cfg.enable_early_data = true;
        }
    }
    let client_cfg = Arc::new(client_cfg);
    let first_server = Arc::new(server_cfg.clone());
    let first = connect(&first_server, &client_cfg, log.clone(), false);
    // The same session store; a server that refuses early data takes none.
    if resume == (Resume::Tls13EarlyData { accept: false }) {
        server_cfg.max_early_data_size = 0;
    }
    let early = matches!(resume, Resume::Tls13EarlyData { .. });
    let second = connect(&Arc::new(server_cfg), &client_cfg, log, early);
    (first, second)
}

/// A TLS 1.3 connection with a HelloRetryRequest (the client's first key share is X25519, the
/// server takes only P-256), one exchange, then a KeyUpdate from each side (each asking the
/// other to update too) and the same exchange again.
pub fn exchange_hrr_key_update(suite: rustls::SupportedCipherSuite) -> Wire {
    use provider::kx_group::{SECP256R1, X25519};
    let (server_cfg, client_cfg, log) =
        configs_with(suite, vec![X25519, SECP256R1], vec![SECP256R1]);
    let mut client =
        rustls::ClientConnection::new(Arc::new(client_cfg), "localhost".try_into().expect("name"))
            .expect("client");
    let mut server = rustls::ServerConnection::new(Arc::new(server_cfg)).expect("server");
    let mut w = Wire {
        to_server: Vec::new(),
        to_client: Vec::new(),
        transcript: Vec::new(),
        log,
    };
    client.writer().write_all(REQUEST).expect("request");
    pump(&mut client, &mut server, &mut w);
    client.refresh_traffic_keys().expect("client key update");
    server.refresh_traffic_keys().expect("server key update");
    client.writer().write_all(REQUEST).expect("request again");
    pump(&mut client, &mut server, &mut w);
    w
}

impl Wire {
    /// Moves what `from` has to send to `to` (which processes it), recording it as sent by
    /// the client or not.
    fn carry<A, B>(
        &mut self,
        from: &mut rustls::ConnectionCommon<A>,
        to: &mut rustls::ConnectionCommon<B>,
        from_client: bool,
    ) {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).expect("writes");
        }
        if !buf.is_empty() {
            let dir = if from_client {
                &mut self.to_server
            } else {
                &mut self.to_client
            };
            dir.extend_from_slice(&buf);
            self.transcript.push((from_client, buf.clone()));
        }
        to.read_tls(&mut &buf[..]).expect("reads");
        to.process_new_packets().expect("processes");
    }
}

/// Moves bytes both ways until the server has answered one [`REQUEST`] and nothing is left.
fn pump(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
    w: &mut Wire,
) {
    let mut answered = false;
    for _ in 0..20 {
        w.carry(client, server, true);
        let mut got = Vec::new();
        let _ = server.reader().read_to_end(&mut got);
        if !got.is_empty() {
            assert_eq!(got, REQUEST);
            server.writer().write_all(RESPONSE).expect("response");
            answered = true;
        }
        w.carry(server, client, false);
        let mut sink = Vec::new();
        let _ = client.reader().read_to_end(&mut sink);
        if answered && !client.wants_write() && !server.wants_write() {
            return;
        }
    }
    panic!("the exchange did not happen");
}

/// A server and a client config with only `suite`, the client logging its secrets.
fn configs(
    suite: rustls::SupportedCipherSuite,
) -> (rustls::ServerConfig, rustls::ClientConfig, Arc<Collector>) {
    let groups = provider::default_provider().kx_groups;
    configs_with(suite, groups.clone(), groups)
}

/// [`configs`] with the key-exchange groups of each side.
fn configs_with(
    suite: rustls::SupportedCipherSuite,
    client_groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    server_groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> (rustls::ServerConfig, rustls::ClientConfig, Arc<Collector>) {
    let version = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
    };
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        kx_groups: client_groups,
        ..provider::default_provider()
    });
    let server_provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        kx_groups: server_groups,
        ..provider::default_provider()
    });
    let server_cfg = rustls::ServerConfig::builder_with_provider(server_provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let mut client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let log = Arc::new(Collector::default());
    client_cfg.key_log = log.clone();
    (server_cfg, client_cfg, log)
}

/// One connection: the client sends [`REQUEST`] (as early data when `early` and the session
/// allows it, again after the handshake if the server refused it), the server answers.
fn connect(
    server_cfg: &Arc<rustls::ServerConfig>,
    client_cfg: &Arc<rustls::ClientConfig>,
    log: Arc<Collector>,
    early: bool,
) -> Wire {
    let mut client =
        rustls::ClientConnection::new(client_cfg.clone(), "localhost".try_into().expect("name"))
            .expect("client");
    let mut server = rustls::ServerConnection::new(server_cfg.clone()).expect("server");
    let mut sent_early = false;
    if early {
        let mut e = client.early_data().expect("the session allows early data");
        e.write_all(REQUEST).expect("early request");
        sent_early = true;
    } else {
        client.writer().write_all(REQUEST).expect("request");
    }
    let mut w = Wire {
        to_server: Vec::new(),
        to_client: Vec::new(),
        transcript: Vec::new(),
        log,
    };
    let mut answered = false;
    let mut resent = false;
    for _ in 0..20 {
        w.carry(&mut client, &mut server, true);
        let mut got = Vec::new();
        if let Some(mut e) = server.early_data() {
            let _ = e.read_to_end(&mut got);
        }
        let _ = server.reader().read_to_end(&mut got);
        if !got.is_empty() && !answered {
            assert_eq!(got, REQUEST);
            server.writer().write_all(RESPONSE).expect("response");
            answered = true;
        }
        w.carry(&mut server, &mut client, false);
        // Refused early data is sent again once the handshake is done.
        if sent_early && !resent && !client.is_handshaking() && !client.is_early_data_accepted() {
            client.writer().write_all(REQUEST).expect("request again");
            resent = true;
        }
        if answered && !client.wants_write() && !server.wants_write() {
            break;
        }
    }
    assert!(answered, "the exchange did not happen");
    w
}

/// The records of one direction: (type, version, fragment).
pub fn records(mut b: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        out.push((
            b[0],
            u16::from_be_bytes([b[1], b[2]]),
            b[5..5 + len].to_vec(),
        ));
        b = &b[5 + len..];
    }
    out
}

/// The client and server randoms, from the plaintext hellos (type 22, first message).
pub fn randoms(w: &Wire) -> ([u8; 32], [u8; 32]) {
    let hello_random = |recs: Vec<(u8, u16, Vec<u8>)>| -> [u8; 32] {
        let (_, _, f) = recs.into_iter().find(|r| r.0 == 22).expect("a hello");
        // Handshake header (4), legacy version (2), then the random.
        f[6..38].try_into().expect("32 bytes")
    };
    (
        hello_random(records(&w.to_server)),
        hello_random(records(&w.to_client)),
    )
}

impl Collector {
    /// The secrets as a key-log file holds them.
    pub fn keylog_text(&self) -> Vec<u8> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut out = String::new();
        for (label, random, secret) in self.0.lock().expect("lock").iter() {
            out.push_str(&format!("{label} {} {}\n", hex(random), hex(secret)));
        }
        out.into_bytes()
    }
}
