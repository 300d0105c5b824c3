//! The TLS 1.2 session cache of a `read`: which earlier connection a resumed connection took
//! its master secret from, for key logs that hold only full handshakes (server-side logs, older
//! NSS), as Wireshark's session cache does.
//!
//! Takes the TCP payloads of every segment in capture order, from the one thread that reads and
//! decodes (before any flow worker sees them), and looks only at those that begin with a TLS
//! handshake record: ClientHello (the connection's client random and what it offers),
//! ServerHello (the session ID, and whether it resumes an ID or a ticket) and the TLS 1.2
//! NewSessionTicket sent in clear (RFC 5077 section 3.3). Gives, for a resumed connection's
//! client random, the client random of the full handshake whose master secret it uses; the
//! key log is then asked for that one. It holds client randoms, session IDs and hashes of
//! tickets, never a secret.
//!
//! Why here and not in the flow workers: flows are sharded by their addresses, so a full
//! handshake and its resumption usually run on different workers, and a cache they filled
//! would depend on how far each had got. This thread sees every packet before the workers,
//! and the full handshake precedes its resumption on the wire, so the answer a worker gets is
//! the same whatever the number of workers. Entries go after 24 hours of capture time
//! (RFC 5246 appendix F.1.4's bound on a session's lifetime) or when a map is over
//! [`MAX_ENTRIES`] (oldest first, counted). The one edge left: this thread runs ahead of the
//! workers by at most their queues (64 batches of 256 segments each), so a resumed
//! connection's entry could be dropped by the count bound before its worker asks for it only
//! if [`MAX_ENTRIES`] resumptions were seen within that lead, or by age only if capture time
//! jumped 24 hours within it.
//!
//! Left out: a hello or ticket that does not start its segment, a ServerHello captured before
//! its ClientHello, a ClientHello whose session_ticket extension is not in its first segment
//! (only its session ID is read then);
//! TLS 1.3 (whose key logs hold every connection's secrets).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::record::content_type::HANDSHAKE;
use super::record::handshake_type::{CLIENT_HELLO, NEW_SESSION_TICKET, SERVER_HELLO};
use super::record::{
    RECORD_HEADER_LEN, parse_client_hello, parse_new_session_ticket_tls12, parse_server_hello,
    version,
};
use crate::ts::Timestamp;

/// Entries each map holds at most (connections, session IDs, tickets, resumptions).
pub const MAX_ENTRIES: usize = 1 << 16;
/// How long an entry is kept, in capture time: RFC 5246's upper bound on a session ID's life.
pub const MAX_AGE_NS: u64 = 24 * 3600 * 1_000_000_000;

type Random = [u8; 32];
/// Client address and port, server address and port.
type FlowTuple = (IpAddr, u16, IpAddr, u16);

/// One endpoint of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// What one connection's ClientHello offered, and what its ServerHello said.
#[derive(Debug, Clone)]
struct Conn {
    random: Random,
    offered_id: Vec<u8>,
    /// SHA-256 of the session_ticket extension's ticket, when one was offered.
    offered_ticket: Option<Random>,
    /// A TLS 1.2 ServerHello was read: the client random whose master secret it uses.
    origin: Option<Random>,
    server_hello: bool,
}

/// The cache; shared by the reading thread, which fills it, and the flow workers.
#[derive(Debug)]
pub struct SessionCache {
    inner: Mutex<Inner>,
    resumed_found: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    conns: Bounded<FlowTuple, Conn>,
    by_id: Bounded<Vec<u8>, Random>,
    by_ticket: Bounded<Random, Random>,
    resumed: Bounded<Random, Random>,
    now: Timestamp,
}

/// What the cache did, for the run's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub evicted: u64,
    pub resumed_found: u64,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache::new(MAX_ENTRIES)
    }
}

impl SessionCache {
    pub fn new(max_entries: usize) -> SessionCache {
        SessionCache {
            inner: Mutex::new(Inner {
                conns: Bounded::new(max_entries),
                by_id: Bounded::new(max_entries),
                by_ticket: Bounded::new(max_entries),
                resumed: Bounded::new(max_entries),
                now: Timestamp::default(),
            }),
            resumed_found: AtomicU64::new(0),
        }
    }

    /// One TCP payload, in capture order. Cheap unless it begins with a handshake record.
    pub fn observe(&self, ts: Timestamp, src: Endpoint, dst: Endpoint, payload: &[u8]) {
        if !matches!(payload, [HANDSHAKE, 3, ..]) {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.expire(ts);
        for (kind, body, whole) in messages(payload) {
            match kind {
                CLIENT_HELLO => {
                    inner.client_hello(ts, (src.ip, src.port, dst.ip, dst.port), body, whole)
                }
                SERVER_HELLO if whole => {
                    inner.server_hello(ts, (dst.ip, dst.port, src.ip, src.port), body)
                }
                NEW_SESSION_TICKET if whole => {
                    inner.ticket(ts, (dst.ip, dst.port, src.ip, src.port), body)
                }
                _ => {}
            }
        }
    }

    /// The client random of the full handshake whose session this connection resumed, when it
    /// resumed one seen earlier in the capture.
    pub fn resumed_from(&self, client_random: &Random) -> Option<Random> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.resumed.get(client_random).copied())
    }

    /// A connection was keyed with the secret of the session it resumed.
    pub fn count_resumed(&self) {
        self.resumed_found.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> SessionCounts {
        let evicted = self.inner.lock().map_or(0, |i| {
            i.conns.evicted + i.by_id.evicted + i.by_ticket.evicted + i.resumed.evicted
        });
        SessionCounts {
            evicted,
            resumed_found: self.resumed_found.load(Ordering::Relaxed),
        }
    }

    /// The cache's counters, into the run's.
    pub fn add_counters(&self, st: &mut crate::stats::Stats) {
        let c = self.counts();
        st.tls_session_cache_evicted += c.evicted;
        st.tls_sessions_resumed_by_cache += c.resumed_found;
    }
}

impl Inner {
    fn expire(&mut self, ts: Timestamp) {
        // Capture time only moves on: a packet stamped earlier does not bring entries back.
        self.now = self.now.max(ts);
        let Some(before) = self.now.0.checked_sub(MAX_AGE_NS as i64) else {
            return;
        };
        let before = Timestamp(before);
        self.conns.expire(before);
        self.by_id.expire(before);
        self.by_ticket.expire(before);
        self.resumed.expire(before);
    }

    fn client_hello(&mut self, ts: Timestamp, flow: FlowTuple, body: &[u8], whole: bool) {
        let conn = if whole {
            let Ok(h) = parse_client_hello(body) else {
                return;
            };
            Conn {
                random: h.random,
                offered_id: h.session_id,
                offered_ticket: h
                    .session_ticket
                    .filter(|t| !t.is_empty())
                    .map(|t| Sha256::digest(&t).into()),
                origin: None,
                server_hello: false,
            }
        } else {
            // Its first segment: the random and session ID come first.
            let Some((random, offered_id)) = hello_start(body) else {
                return;
            };
            Conn {
                random,
                offered_id,
                offered_ticket: None,
                origin: None,
                server_hello: false,
            }
        };
        // A retransmission (or TLS 1.3's second hello) keeps what was read; another random on
        // the same addresses and ports is a new connection.
        if self
            .conns
            .get(&flow)
            .is_some_and(|c| c.random == conn.random)
        {
            return;
        }
        self.conns.insert(flow, conn, ts);
    }

    fn server_hello(&mut self, ts: Timestamp, flow: FlowTuple, body: &[u8]) {
        let Some(conn) = self.conns.get(&flow) else {
            return;
        };
        if conn.server_hello {
            return;
        }
        let Ok(sh) = parse_server_hello(body) else {
            return;
        };
        if sh.hello_retry_request {
            return;
        }
        // TLS 1.3 echoes the client's legacy session ID whatever happens: not a resumption.
        let tls12 = sh.version == version::TLS12;
        let ticket = conn.offered_ticket;
        let random = conn.random;
        // RFC 5246 section 7.4.1.3: the server resumes an ID by echoing it; RFC 5077 section
        // 3.4: it echoes a non-empty ID when it takes the ticket too, and with an empty one
        // only what follows would tell, so the ticket is taken at its word.
        let echoed = !sh.session_id.is_empty() && sh.session_id == conn.offered_id;
        let resumed = if !tls12 {
            None
        } else if echoed {
            self.by_id
                .get(&sh.session_id)
                .copied()
                .or_else(|| ticket.and_then(|t| self.by_ticket.get(&t).copied()))
        } else if conn.offered_id.is_empty() {
            ticket.and_then(|t| self.by_ticket.get(&t).copied())
        } else {
            None
        };
        let origin = resumed.unwrap_or(random);
        if let Some(c) = self.conns.get_mut(&flow) {
            c.server_hello = true;
            c.origin = tls12.then_some(origin);
        }
        if !tls12 {
            return;
        }
        if resumed.is_some() && origin != random {
            self.resumed.insert(random, origin, ts);
        }
        // A session keeps the lifetime of its full handshake: a resumption does not renew it.
        if !sh.session_id.is_empty() && self.by_id.get(&sh.session_id).is_none() {
            self.by_id.insert(sh.session_id, origin, ts);
        }
    }

    fn ticket(&mut self, ts: Timestamp, flow: FlowTuple, body: &[u8]) {
        let Some(origin) = self.conns.get(&flow).and_then(|c| c.origin) else {
            return;
        };
        let Ok(t) = parse_new_session_ticket_tls12(body) else {
            return;
        };
        // Exactly the message: lifetime, length, ticket (an encrypted Finished rarely is).
        if t.ticket.is_empty() || body.len() != 6 + t.ticket.len() {
            return;
        }
        let hash: Random = Sha256::digest(&t.ticket).into();
        if self.by_ticket.get(&hash).is_none() {
            self.by_ticket.insert(hash, origin, ts);
        }
    }
}

/// The handshake messages in clear at the start of a payload: (type, body, whole). Stops at
/// the first record that is not a handshake record (after a ChangeCipherSpec what looks like
/// one is encrypted) and at the end of the payload (a message cut there is given as it is,
/// not whole).
fn messages(payload: &[u8]) -> Vec<(u8, &[u8], bool)> {
    let mut out = Vec::new();
    let mut rest = payload;
    while let Some(([ct, major, _, hi, lo], after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>()
    {
        if *ct != HANDSHAKE || *major != 3 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (fragment, next, cut) = match after.split_at_checked(len) {
            Some((f, n)) => (f, n, false),
            None => (after, &[][..], true),
        };
        let mut msgs = fragment;
        while let Some(([t, a, b, c], body)) = msgs.split_first_chunk::<4>() {
            let mlen = u32::from_be_bytes([0, *a, *b, *c]) as usize;
            match body.split_at_checked(mlen) {
                Some((m, tail)) => {
                    out.push((*t, m, true));
                    msgs = tail;
                }
                None => {
                    // A message over several records is not read (a hello's start still is).
                    out.push((*t, body, false));
                    return out;
                }
            }
        }
        if cut || !msgs.is_empty() {
            break;
        }
        rest = next;
    }
    out
}

/// A ClientHello's random and session ID from the start of its body.
fn hello_start(body: &[u8]) -> Option<(Random, Vec<u8>)> {
    let (_version, rest) = body.split_first_chunk::<2>()?;
    let (random, rest) = rest.split_first_chunk::<32>()?;
    let (&len, rest) = rest.split_first()?;
    let id = rest.get(..usize::from(len)).filter(|_| len <= 32)?;
    Some((*random, id.to_vec()))
}

/// A map bounded in count and in capture-time age, oldest out first.
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, (V, u64)>,
    /// Insertion order: key, generation, time. A key inserted again leaves a stale entry.
    order: VecDeque<(K, u64, Timestamp)>,
    max: usize,
    generation: u64,
    /// Entries dropped by the count bound.
    evicted: u64,
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    fn new(max: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            generation: 0,
            evicted: 0,
        }
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    fn insert(&mut self, k: K, v: V, ts: Timestamp) {
        self.generation += 1;
        self.map.insert(k.clone(), (v, self.generation));
        self.order.push_back((k, self.generation, ts));
        while self.map.len() > self.max {
            if self.pop_oldest() {
                self.evicted += 1;
            }
        }
        // Stale entries of keys inserted again cannot pile up.
        if self.order.len() > 2 * self.max {
            let map = &self.map;
            self.order
                .retain(|(k, g, _)| map.get(k).is_some_and(|(_, live)| live == g));
        }
    }

    /// Drops the oldest entry; whether it was live.
    fn pop_oldest(&mut self) -> bool {
        let Some((k, g, _)) = self.order.pop_front() else {
            return false;
        };
        if self.map.get(&k).is_some_and(|(_, live)| *live == g) {
            self.map.remove(&k);
            return true;
        }
        false
    }

    /// Drops what was inserted before `before`.
    fn expire(&mut self, before: Timestamp) {
        while self.order.front().is_some_and(|(_, _, ts)| *ts < before) {
            self.pop_oldest();
        }
    }
}

#[cfg(test)]
mod tests;
