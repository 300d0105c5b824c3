//! A whole connection through [`TlsConn`]: the bytes rustls put on the wire, fed as a capture
//! would give them, come out as the plaintext the two sides exchanged.

use super::*;
use crate::tls::testing::{REQUEST, RESPONSE, Wire, exchange, provider};

fn all_suites() -> Vec<(rustls::SupportedCipherSuite, u16)> {
    use provider::cipher_suite::*;
    vec![
        (TLS13_AES_128_GCM_SHA256, 0x1301),
        (TLS13_AES_256_GCM_SHA384, 0x1302),
        (TLS13_CHACHA20_POLY1305_SHA256, 0x1303),
        (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0xC02B),
        (TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0xC02C),
        (TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0xCCA9),
    ]
}

fn keylog(w: &Wire) -> KeyLog {
    let mut k = KeyLog::new(16);
    assert!(k.add_text(&w.log.keylog_text()).is_empty());
    k
}

/// What each side's plaintext was, and the other events.
fn plaintext(events: &[TlsEvent]) -> (Vec<u8>, Vec<u8>, Vec<TlsEvent>) {
    let (mut c, mut s, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for e in events {
        match e {
            TlsEvent::Data {
                from_client: true,
                bytes,
            } => c.extend_from_slice(bytes),
            TlsEvent::Data { bytes, .. } => s.extend_from_slice(bytes),
            e => other.push(e.clone()),
        }
    }
    (c, s, other)
}

/// Feeds the transcript in `piece`-byte pieces.
fn run(w: &Wire, keys: &KeyLog, piece: usize) -> Vec<TlsEvent> {
    let mut conn = TlsConn::new();
    let mut out = Vec::new();
    for (from_client, bytes) in &w.transcript {
        for p in bytes.chunks(piece.max(1)) {
            conn.on_data(*from_client, p, keys, &mut out);
        }
    }
    conn.finish(&mut out);
    out
}

#[test]
fn every_suite_of_both_versions_decrypts_to_what_the_sides_sent_in_any_pieces() {
    for (rs, id) in all_suites() {
        let w = exchange(rs);
        let keys = keylog(&w);
        for piece in [usize::MAX, 1, 7, 1000] {
            let (c, s, other) = plaintext(&run(&w, &keys, piece));
            assert_eq!(c, REQUEST, "{id:#x} in {piece}-byte pieces");
            assert_eq!(s, RESPONSE, "{id:#x} in {piece}-byte pieces");
            let version = if (0x1301..=0x1303).contains(&id) {
                0x0304
            } else {
                0x0303
            };
            assert_eq!(
                other.first(),
                Some(&TlsEvent::Hello {
                    version,
                    suite: id,
                    sni: Some("localhost".into()),
                    alpn: None,
                }),
                "{id:#x}"
            );
            assert!(
                !other.iter().any(|e| matches!(e, TlsEvent::Lost { .. })),
                "{id:#x}: {other:?}"
            );
        }
    }
}

#[test]
fn a_side_fed_before_the_other_sides_hello_waits_for_it() {
    for (rs, id) in all_suites() {
        let w = exchange(rs);
        let keys = keylog(&w);
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        conn.on_data(true, &w.to_server, &keys, &mut out);
        assert!(
            plaintext(&out).0.is_empty(),
            "{id:#x}: nothing before the server's hello"
        );
        conn.on_data(false, &w.to_client, &keys, &mut out);
        let (c, s, _) = plaintext(&out);
        assert_eq!((c.as_slice(), s.as_slice()), (REQUEST, RESPONSE), "{id:#x}");
    }
}

#[test]
fn records_wait_for_a_secret_written_late_and_open_when_it_comes() {
    for (rs, id) in all_suites() {
        let w = exchange(rs);
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        let empty = KeyLog::new(16);
        for (from_client, bytes) in &w.transcript {
            conn.on_data(*from_client, bytes, &empty, &mut out);
        }
        assert!(conn.waits_for_secrets(), "{id:#x}");
        assert!(plaintext(&out).0.is_empty(), "{id:#x}");
        // The application writes its key-log line after its first records.
        conn.retry(&keylog(&w), &mut out);
        let (c, s, _) = plaintext(&out);
        assert_eq!((c.as_slice(), s.as_slice()), (REQUEST, RESPONSE), "{id:#x}");
        // Near miss: it never comes; the end says so.
        let mut never = TlsConn::new();
        let mut out = Vec::new();
        for (from_client, bytes) in &w.transcript {
            never.on_data(*from_client, bytes, &empty, &mut out);
        }
        never.finish(&mut out);
        assert!(
            out.contains(&TlsEvent::Lost {
                from_client: true,
                why: Undecrypted::NoSecret
            }),
            "{id:#x}: {out:?}"
        );
    }
}

#[test]
fn a_wrong_secret_loses_the_direction_and_guesses_nothing() {
    let w = exchange(provider::cipher_suite::TLS13_AES_128_GCM_SHA256);
    let text = String::from_utf8(w.log.keylog_text()).expect("text");
    // Every secret's first hex digit changed.
    let wrong: String = text
        .lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(str::to_string).collect();
            if let Some(s) = parts.get_mut(2) {
                let flipped = if s.starts_with('0') { "1" } else { "0" };
                s.replace_range(0..1, flipped);
            }
            parts.join(" ") + "\n"
        })
        .collect();
    let mut keys = KeyLog::new(16);
    keys.add_text(wrong.as_bytes());
    let events = run(&w, &keys, usize::MAX);
    let (c, s, other) = plaintext(&events);
    assert!(c.is_empty() && s.is_empty());
    assert!(
        other.contains(&TlsEvent::Lost {
            from_client: false,
            why: Undecrypted::Authentication
        }),
        "{other:?}"
    );
}

#[test]
fn after_a_gap_the_next_record_opens_at_a_later_sequence_number() {
    for (rs, id) in all_suites() {
        let w = exchange(rs);
        let keys = keylog(&w);
        // The server's records: drop the second to last (its session ticket or Finished
        // area is before the data; the data record is last).
        let recs = crate::tls::testing::records(&w.to_client);
        let last = recs.len() - 1;
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        for (from_client, bytes) in &w.transcript {
            if *from_client {
                conn.on_data(true, bytes, &keys, &mut out);
            }
        }
        let frame = |(t, v, f): &(u8, u16, Vec<u8>)| {
            let mut b = vec![*t];
            b.extend_from_slice(&v.to_be_bytes());
            b.extend_from_slice(&u16::try_from(f.len()).expect("fits").to_be_bytes());
            b.extend_from_slice(f);
            b
        };
        let n = recs.len();
        let mut dropped = 0;
        for (i, r) in recs.iter().enumerate() {
            if i + 2 == n && r.0 == 23 {
                conn.on_gap(false);
                dropped += 1;
                continue;
            }
            conn.on_data(false, &frame(r), &keys, &mut out);
        }
        let (_, s, other) = plaintext(&out);
        assert!(
            !other.iter().any(|e| matches!(
                e,
                TlsEvent::Lost {
                    from_client: false,
                    ..
                }
            )),
            "{id:#x}: {other:?}"
        );
        assert_eq!(
            s, RESPONSE,
            "{id:#x}: the record after the gap ({last}) opened"
        );
        // TLS 1.3 servers send session tickets before the data: one of them is lost. (A TLS
        // 1.2 server's last records are its Finished and the data: nothing to drop there.)
        if id <= 0x1303 {
            assert_eq!(dropped, 1, "{id:#x}");
        }
    }
}

#[test]
fn bytes_that_are_not_tls_are_refused_and_the_first_bytes_tell() {
    assert!(TlsConn::looks_like_tls(&[22, 3, 1, 0, 200]));
    assert!(TlsConn::looks_like_tls(&[22]));
    assert!(!TlsConn::looks_like_tls(b"POST / HTTP/1.1"));
    assert!(!TlsConn::looks_like_tls(&[22, 4, 0]));
    let mut conn = TlsConn::new();
    let mut out = Vec::new();
    conn.on_data(true, b"GET / HTTP/1.1\r\n\r\n", &KeyLog::new(1), &mut out);
    assert_eq!(
        out,
        vec![TlsEvent::Lost {
            from_client: true,
            why: Undecrypted::NotTls
        }]
    );
}

#[test]
fn a_damaged_record_after_good_ones_is_a_gap_and_the_next_opens() {
    for (rs, id) in all_suites() {
        let w = exchange(rs);
        let keys = keylog(&w);
        let recs = crate::tls::testing::records(&w.to_client);
        let n = recs.len();
        let frame = |(t, v, f): &(u8, u16, Vec<u8>)| {
            let mut b = vec![*t];
            b.extend_from_slice(&v.to_be_bytes());
            b.extend_from_slice(&u16::try_from(f.len()).expect("fits").to_be_bytes());
            b.extend_from_slice(f);
            b
        };
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        for (from_client, bytes) in &w.transcript {
            if *from_client {
                conn.on_data(true, bytes, &keys, &mut out);
            }
        }
        // One bit of the server's second to last record flipped: in TLS 1.3 a session
        // ticket's record after the server's handshake records opened; in TLS 1.2 the
        // server's Finished, its first encrypted record.
        for (i, r) in recs.iter().enumerate() {
            let mut r = r.clone();
            if i + 2 == n
                && let Some(b) = r.2.get_mut(5)
            {
                *b ^= 0x10;
            }
            conn.on_data(false, &frame(&r), &keys, &mut out);
        }
        let (_, s, other) = plaintext(&out);
        let failed = other
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TlsEvent::Failed {
                        from_client: false,
                        ..
                    }
                )
            })
            .count();
        let lost = other.iter().find_map(|e| match e {
            TlsEvent::Lost {
                from_client: false,
                why,
            } => Some(*why),
            _ => None,
        });
        if id <= 0x1303 {
            assert_eq!((failed, lost), (1, None), "{id:#x}: {other:?}");
            assert_eq!(
                s, RESPONSE,
                "{id:#x}: the record after the damaged one opened"
            );
        } else {
            // The first encrypted record failing says the keys are wrong: nothing is guessed.
            assert_eq!(
                (failed, lost),
                (0, Some(Undecrypted::Authentication)),
                "{id:#x}: {other:?}"
            );
            assert!(s.is_empty(), "{id:#x}");
        }
    }
}
