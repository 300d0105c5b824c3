//! The cache on hand-made hellos: what it remembers, for how long, and what it refuses.

use super::*;

fn ep(port: u16) -> Endpoint {
    Endpoint {
        ip: IpAddr::from([10, 0, 0, 1]),
        port,
    }
}

fn record(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m[2..].copy_from_slice(&u16::try_from(body.len()).expect("fits").to_be_bytes());
    m.extend_from_slice(body);
    let mut r = vec![HANDSHAKE, 3, 3];
    r.extend_from_slice(&u16::try_from(m.len()).expect("fits").to_be_bytes());
    r.extend(m);
    r
}

fn client_hello(random: u8, id: &[u8]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([random; 32]);
    b.push(u8::try_from(id.len()).expect("fits"));
    b.extend_from_slice(id);
    b.extend([0, 2, 0xc0, 0x2f, 1, 0]);
    record(CLIENT_HELLO, &b)
}

fn server_hello(id: &[u8], tls13: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([0x55; 32]);
    b.push(u8::try_from(id.len()).expect("fits"));
    b.extend_from_slice(id);
    b.extend([0xc0, 0x2f, 0]);
    if tls13 {
        b.extend([0, 6, 0, 43, 0, 2, 3, 4]);
    }
    record(SERVER_HELLO, &b)
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_parts(1_700_000_000 + secs, 0)
}

/// A connection on `port`: its ClientHello (random, offered ID), the ServerHello's ID.
fn conn(c: &SessionCache, t: i64, port: u16, random: u8, offered: &[u8], id: &[u8]) {
    c.observe(at(t), ep(port), ep(443), &client_hello(random, offered));
    c.observe(at(t), ep(443), ep(port), &server_hello(id, false));
}

#[test]
fn an_echoed_session_id_points_to_the_full_handshake_and_chains_resolve_to_it() {
    let c = SessionCache::default();
    conn(&c, 0, 1000, 1, b"", &[9; 32]);
    conn(&c, 1, 1001, 2, &[9; 32], &[9; 32]);
    assert_eq!(c.resumed_from(&[2; 32]), Some([1; 32]));
    assert_eq!(c.resumed_from(&[1; 32]), None, "a full handshake");
    // A server that gives a new ID instead of the one offered made a full handshake.
    conn(&c, 2, 1002, 3, &[9; 32], &[8; 32]);
    assert_eq!(c.resumed_from(&[3; 32]), None);
    // Resuming that one's ID goes to it.
    conn(&c, 3, 1003, 4, &[8; 32], &[8; 32]);
    assert_eq!(c.resumed_from(&[4; 32]), Some([3; 32]));
}

#[test]
fn tls13_echoing_the_legacy_session_id_is_not_a_resumption() {
    let c = SessionCache::default();
    conn(&c, 0, 1000, 1, b"", &[9; 32]);
    c.observe(at(1), ep(1001), ep(443), &client_hello(2, &[9; 32]));
    c.observe(at(1), ep(443), ep(1001), &server_hello(&[9; 32], true));
    assert_eq!(c.resumed_from(&[2; 32]), None);
}

#[test]
fn a_ticket_is_remembered_only_after_a_tls12_server_hello_and_exactly() {
    let ticket = |t: &[u8]| {
        let mut b = vec![0, 0, 0x1c, 0x20];
        b.extend_from_slice(&u16::try_from(t.len()).expect("fits").to_be_bytes());
        b.extend_from_slice(t);
        record(NEW_SESSION_TICKET, &b)
    };
    let c = SessionCache::default();
    // A ticket on a connection whose hellos were not seen: ignored.
    c.observe(at(0), ep(443), ep(999), &ticket(b"orphan"));
    assert!(c.inner.lock().expect("lock").by_ticket.map.is_empty());
    conn(&c, 0, 1000, 1, b"", b"");
    // With a byte too many (what an encrypted Finished would look like): ignored.
    let mut long = ticket(b"abc");
    long[4] += 1;
    long[8] += 1;
    long.push(0);
    c.observe(at(1), ep(443), ep(1000), &long);
    assert!(c.inner.lock().expect("lock").by_ticket.map.is_empty());
    c.observe(at(1), ep(443), ep(1000), &ticket(b"abc"));
    assert_eq!(c.inner.lock().expect("lock").by_ticket.map.len(), 1);
}

#[test]
fn entries_go_after_24_hours_of_capture_time_and_past_the_count_bound_counted() {
    let c = SessionCache::default();
    conn(&c, 0, 1000, 1, b"", &[9; 32]);
    // Just under a day later the session is still there.
    conn(&c, 86_399, 1001, 2, &[9; 32], &[9; 32]);
    assert_eq!(c.resumed_from(&[2; 32]), Some([1; 32]));
    // A day and a second after the full handshake it is gone, not refreshed by the resumption.
    conn(&c, 86_401, 1002, 3, &[9; 32], &[9; 32]);
    assert_eq!(c.resumed_from(&[3; 32]), None);
    assert_eq!(c.counts().evicted, 0, "age is not the count bound");

    let c = SessionCache::new(2);
    conn(&c, 0, 1000, 1, b"", &[7; 32]);
    conn(&c, 1, 1001, 2, b"", &[8; 32]);
    conn(&c, 2, 1002, 3, b"", &[6; 32]);
    assert!(c.counts().evicted >= 2);
    // The oldest session ID went first.
    conn(&c, 3, 1003, 4, &[7; 32], &[7; 32]);
    assert_eq!(c.resumed_from(&[4; 32]), None);
    conn(&c, 4, 1004, 5, &[6; 32], &[6; 32]);
    assert_eq!(c.resumed_from(&[5; 32]), Some([3; 32]));
}

#[test]
fn a_client_hello_cut_by_its_segment_still_gives_its_random_and_id() {
    let c = SessionCache::default();
    conn(&c, 0, 1000, 1, b"", &[9; 32]);
    let hello = client_hello(2, &[9; 32]);
    c.observe(at(1), ep(1001), ep(443), &hello[..80]);
    c.observe(at(1), ep(443), ep(1001), &server_hello(&[9; 32], false));
    assert_eq!(c.resumed_from(&[2; 32]), Some([1; 32]));
}

#[test]
fn payloads_that_are_not_handshakes_or_are_malformed_are_ignored() {
    let c = SessionCache::default();
    for p in [
        &b"GET / HTTP/1.1\r\n"[..],
        &[22, 3],
        &[22, 3, 3, 0xff, 0xff, 1],
        &[22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff],
        &[23, 3, 3, 0, 1, 0],
    ] {
        c.observe(at(0), ep(1), ep(2), p);
    }
    assert!(c.inner.lock().expect("lock").conns.map.is_empty());
}
