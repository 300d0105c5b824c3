//! What the tests of the daemons (`live`, `mirror`) share: child processes that die with the
//! test, free loopback ports, polling. Each test file uses a part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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
