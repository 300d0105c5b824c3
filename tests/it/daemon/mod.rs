//! What the tests of the daemons (`live`, `mirror`) share: child processes that die with the
//! test, free loopback ports, polling. Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) use crate::schema;

/// A child process killed when dropped, so that a failing test leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free a moment ago (another test may take it: callers retry).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Sends `sig` (`-TERM`, `-HUP`, ...) to the process.
pub fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.0.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} failed");
}

/// Waits for exit within `limit`; the status code.
pub fn wait_exit(p: &mut Proc, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = p.0.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Spawns `cmd` (output discarded) and waits up to 10 s for it to accept on loopback `port`.
pub fn spawn_listening(cmd: &mut Command, port: u16, what: &str) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let p = Proc(child);
    assert!(
        wait_for(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "{what} did not listen on port {port}"
    );
    p
}

/// The fake payment API of `captures/server.py`, on a free loopback port, logging to
/// `dir/api.log`.
pub struct Api {
    _proc: Proc,
    pub port: u16,
}

pub fn start_api(dir: &Path) -> Api {
    let port = free_port();
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(server)
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--log"])
        .arg(dir.join("api.log"));
    Api {
        _proc: spawn_listening(&mut cmd, port, "python3 captures/server.py"),
        port,
    }
}

/// The kinds of the alert events, sorted.
pub fn alert_kinds(events: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect();
    k.sort();
    k
}

/// Starts the mirror on a free port: (the process, its port). A port another test took
/// between our choosing it and the mirror binding it makes the mirror exit: then another port.
pub fn start_mirror(dir: &Path, extra: &[&str]) -> (Proc, u16) {
    for _ in 0..5 {
        let port = free_port();
        let err = std::fs::File::create(dir.join("err")).expect("stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_idemwatch"))
            .args([
                "-v",
                "mirror",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "-o",
            ])
            .arg(dir.join("out.json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("idemwatch starts");
        let mut p = Proc(child);
        let start = Instant::now();
        loop {
            // Logged once the socket is bound, so it is this mirror that listens.
            let text = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
            if text.contains("mirror listening") {
                return (p, port);
            }
            if matches!(p.0.try_wait(), Ok(Some(_))) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mirror did not listen: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "mirror could not listen: {}",
        std::fs::read_to_string(dir.join("err")).unwrap_or_default()
    );
}

/// Stops the mirror (SIGTERM) and returns its events and its stderr.
pub fn stop_mirror(mut p: Proc, dir: &Path) -> (Vec<Value>, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(s)) = p.0.try_wait() {
            assert!(s.success(), "mirror exited with {s}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = std::fs::read_to_string(dir.join("out.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .inspect(schema::check)
        .collect();
    (
        events,
        std::fs::read_to_string(dir.join("err")).unwrap_or_default(),
    )
}

/// curl POST; returns the HTTP status curl saw (0 when it failed).
pub fn curl(url: &str, key: Option<&str>, body: &str, tls: &[&str]) -> u16 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        url,
    ])
    .args([
        "-H",
        "Host: api.example.com",
        "-H",
        "Authorization: Bearer sk_test_m",
    ])
    .args(["-H", "Content-Type: application/json", "--data", body])
    .args(tls);
    if let Some(k) = key {
        c.args(["-H", &format!("Idempotency-Key: {k}")]);
    }
    let out = c.output().expect("curl runs (install curl)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// curl, as the keyed JSON POSTs of [`curl`], over one connection (`--next`): each request's status and HTTP version (`204 2`); `reqs` are
/// (key, body) pairs sent in order with `--next`.
pub fn curl_on_one_connection(
    url: &str,
    opts: &[&str],
    reqs: &[(Option<&str>, &str)],
) -> Vec<String> {
    let mut c = Command::new("curl");
    c.arg("-s");
    for (i, (key, body)) in reqs.iter().enumerate() {
        if i > 0 {
            c.arg("--next");
        }
        c.args(opts)
            .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}\\n"])
            .args(["-H", "Host: api.example.com"])
            .args(["-H", "Authorization: Bearer sk_test_m"])
            .args(["-H", "Content-Type: application/json", "--data", body]);
        if let Some(k) = key {
            c.args(["-H", &format!("Idempotency-Key: {k}")]);
        }
        c.arg(url);
    }
    let out = c.output().expect("curl runs (install curl)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
pub fn make_certs(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Distinct names: a leaf whose subject equals its issuer's looks self-signed.
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "idemwatch test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
    write("ca.pem", ca.pem());
    for name in ["server", "client"] {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        if name == "server" {
            // nginx checks proxy_ssl_name against DNS names only; curl goes by the address.
            params.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into().expect("name")),
                SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params.subject_alt_names = vec![SanType::DnsName("gateway".try_into().expect("name"))];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &issuer).expect("sign");
        write(&format!("{name}.pem"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
}

/// A `redis-server` on a loopback port, without persistence, killed when dropped.
pub struct Redis {
    pub proc: Option<Proc>,
    pub port: u16,
}

pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            proc: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    /// On a free port with extra options (`--requirepass`, ...); waits until it accepts
    /// connections (a PING may be refused: it may need a password).
    pub fn start_with(options: &[&str]) -> Redis {
        let mut r = Redis {
            proc: None,
            port: free_port(),
        };
        let port = r.port.to_string();
        let mut args = vec!["--port", &port];
        args.extend_from_slice(options);
        r.spawn(&args);
        assert!(
            wait_for(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                r.port
            ))
            .is_ok()),
            "redis-server did not listen on port {}",
            r.port
        );
        r
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.spawn(&["--port", &self.port.to_string()]);
        assert!(
            wait_for(Duration::from_secs(10), || ping(self.port)),
            "redis-server did not answer on port {}",
            self.port
        );
    }

    /// TLS only, on a free port, with the certificates of [`make_certs`] in `dir`; clients
    /// must present a certificate signed by the same CA.
    pub fn start_tls(dir: &Path) -> Redis {
        let mut r = Redis {
            proc: None,
            port: free_port(),
        };
        let f = |n: &str| dir.join(n).to_string_lossy().into_owned();
        r.spawn(&[
            "--port",
            "0",
            "--tls-port",
            &r.port.to_string(),
            "--tls-cert-file",
            &f("server.pem"),
            "--tls-key-file",
            &f("server.key"),
            "--tls-ca-cert-file",
            &f("ca.pem"),
        ]);
        assert!(
            wait_for(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                r.port
            ))
            .is_ok()),
            "redis-server (TLS) did not listen"
        );
        r
    }

    pub fn spawn(&mut self, args: &[&str]) {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server; scripts/setup.sh does)");
        self.proc = Some(Proc(child));
    }

    pub fn kill(&mut self) {
        self.proc = None;
        assert!(
            wait_for(Duration::from_secs(5), || !ping(self.port)),
            "redis-server still answers"
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli` output for `args`.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Real nginx (Debian's package) in front of the fake API of `captures/server.py`, mirroring
/// every request to idemwatch over mutual TLS, as docs/MIRROR.md configures it.
pub struct Nginx {
    _proc: Proc,
    pub port: u16,
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers (a SIGKILL would leave them running).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self._proc.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if matches!(self._proc.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn start_nginx(dir: &Path, api: u16, mirror: u16) -> Nginx {
    let d = |f: &str| dir.join(f).display().to_string();
    let server = format!(
        "             location / {{\n      mirror /idemwatch-mirror;\n      mirror_request_body on;\n\
               proxy_pass http://127.0.0.1:{api};\n      proxy_set_header Host $host;\n    }}\n\
             location = /idemwatch-mirror {{\n      internal;\n\
               proxy_pass https://127.0.0.1:{mirror}$request_uri;\n\
               proxy_set_header Host $host;\n\
               proxy_set_header X-Forwarded-For $remote_addr;\n\
               proxy_set_header X-Request-Start \"t=${{msec}}\";\n\
               proxy_ssl_trusted_certificate {ca};\n      proxy_ssl_verify on;\n\
               proxy_ssl_name localhost;\n\
               proxy_ssl_certificate {cert};\n      proxy_ssl_certificate_key {key};\n\
               proxy_connect_timeout 200ms;\n      proxy_send_timeout 500ms;\n\
               proxy_read_timeout 500ms;\n    }}\n",
        ca = d("ca.pem"),
        cert = d("client.pem"),
        key = d("client.key"),
    );
    run_nginx(dir, "", &server)
}

/// nginx on a free loopback port (`listen 127.0.0.1:PORT LISTEN;`) with `server` inside its
/// server block, its files in `dir`.
pub fn run_nginx(dir: &Path, listen: &str, server: &str) -> Nginx {
    let port = free_port();
    let d = |f: &str| dir.join(f).display().to_string();
    let conf = format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {pid};\nerror_log {err} warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n\
           fastcgi_temp_path {tmp}/fcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} {listen};\n{server}  }}\n}}\n",
        pid = d("nginx.pid"),
        err = d("nginx.err"),
        tmp = d("ngx"),
    );
    std::fs::create_dir_all(dir.join("ngx")).expect("temp dir");
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    // Debian puts it in /usr/sbin, which a user's PATH may lack.
    let nginx = if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let child = Command::new(nginx)
        .args(["-p", &d("ngx"), "-c", &d("nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs (install Debian's nginx package)");
    let p = Proc(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("nginx.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { _proc: p, port }
}

/// A request through nginx: (status, seconds it took).
pub fn via_nginx(port: u16, key: Option<&str>, body: &str) -> (u16, f64) {
    let t = Instant::now();
    let status = curl(
        &format!("http://127.0.0.1:{port}/v1/charges"),
        key,
        body,
        &[],
    );
    (status, t.elapsed().as_secs_f64())
}

/// A Redis Cluster on loopback (Debian's `redis-server` and `redis-cli --cluster create`):
/// three primaries, each with `replicas` replicas, failing over after `node_timeout_ms`.
/// Returns once every node sees `cluster_state:ok` and every node of the cluster, with the
/// nodes (process and port).
pub fn redis_cluster(dir: &Path, replicas: usize, node_timeout_ms: u64) -> Vec<(Proc, u16)> {
    let count = 3 * (1 + replicas);
    let nodes: Vec<(Proc, u16)> = (0..count)
        .map(|i| {
            let port = free_port();
            let d = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&d).expect("node dir");
            let child = Command::new("redis-server")
                .current_dir(&d)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs");
            let p = Proc(child);
            assert!(wait_for(Duration::from_secs(10), || ping(port)));
            (p, port)
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|(_, p)| format!("127.0.0.1:{p}"))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    // Every node must see the cluster whole (each learns the others' slots in turn).
    let known = format!("cluster_known_nodes:{count}");
    let whole = || {
        nodes.iter().all(|(_, port)| {
            Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .map(|o| {
                    let info = String::from_utf8_lossy(&o.stdout);
                    info.contains("cluster_state:ok") && info.contains(&known)
                })
                .unwrap_or(false)
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), whole),
        "cluster not ready"
    );
    nodes
}
