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

mod resumption {
    //! TLS 1.2 resumption with a key log of full handshakes only, through the session cache
    //! the reading thread fills.

    use super::*;
    use crate::tls::sessions::{Endpoint, SessionCache};
    use crate::tls::testing::{Resume, exchange_resumed, randoms};
    use crate::ts::Timestamp;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            port,
        }
    }

    /// Shows the cache one connection's writes as the reading thread would, each write one
    /// segment; `tamper` may change the copy it sees.
    fn observe(cache: &SessionCache, w: &Wire, client_port: u16, tamper: impl Fn(&mut Vec<u8>)) {
        for (i, (from_client, bytes)) in w.transcript.iter().enumerate() {
            let mut b = bytes.clone();
            tamper(&mut b);
            let ts = Timestamp::from_parts(1_700_000_000, i as i64);
            let (src, dst) = if *from_client {
                (ep(client_port), ep(443))
            } else {
                (ep(443), ep(client_port))
            };
            cache.observe(ts, src, dst, &b);
        }
    }

    fn decrypt(w: &Wire, keys: &KeyLog, cache: Option<Arc<SessionCache>>) -> Vec<TlsEvent> {
        let mut conn = TlsConn::with_sessions(cache);
        let mut out = Vec::new();
        for (from_client, bytes) in &w.transcript {
            conn.on_data(*from_client, bytes, keys, &mut out);
        }
        conn.finish(&mut out);
        out
    }

    /// The first connection's lines only, as a server-side or older NSS writer logs.
    fn full_only(first: &Wire) -> KeyLog {
        let mut k = KeyLog::new(16);
        let (random, _) = randoms(first);
        assert!(k.add_text(&first.log.keylog_text_of(&random)).is_empty());
        assert_eq!(k.counts().secrets, 1);
        k
    }

    fn suite() -> rustls::SupportedCipherSuite {
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    }

    fn no_secret(events: &[TlsEvent]) -> bool {
        let (c, s, other) = plaintext(events);
        c.is_empty()
            && s.is_empty()
            && other.contains(&TlsEvent::Lost {
                from_client: true,
                why: Undecrypted::NoSecret,
            })
    }

    #[test]
    fn resumed_by_session_id_or_ticket_decrypts_with_the_full_handshakes_secret() {
        for resume in [Resume::Tls12Id, Resume::Tls12Ticket] {
            let (first, second) = exchange_resumed(suite(), resume);
            let keys = full_only(&first);
            let cache = Arc::new(SessionCache::default());
            observe(&cache, &first, 50001, |_| {});
            observe(&cache, &second, 50002, |_| {});
            let (c, s, other) = plaintext(&decrypt(&second, &keys, Some(cache.clone())));
            assert_eq!(
                (c.as_slice(), s.as_slice()),
                (REQUEST, RESPONSE),
                "{resume:?}"
            );
            assert!(!other.iter().any(|e| matches!(e, TlsEvent::Lost { .. })));
            assert_eq!(cache.counts().resumed_found, 1, "{resume:?}");
            // The full handshake itself decrypts from its own line, without the cache.
            let (c, _, _) = plaintext(&decrypt(&first, &keys, Some(cache)));
            assert_eq!(c, REQUEST);
            // Near miss: without the cache the resumed connection has no secret.
            assert!(no_secret(&decrypt(&second, &keys, None)), "{resume:?}");
        }
    }

    #[test]
    fn the_resumed_connections_own_line_is_used_first() {
        let (first, second) = exchange_resumed(suite(), Resume::Tls12Ticket);
        let cache = Arc::new(SessionCache::default());
        observe(&cache, &second, 50002, |_| {});
        let (c, _, _) = plaintext(&decrypt(&second, &keylog(&second), Some(cache.clone())));
        assert_eq!(c, REQUEST);
        assert_eq!(cache.counts().resumed_found, 0);
        drop(first);
    }

    #[test]
    fn an_unknown_session_id_or_ticket_or_a_key_log_without_either_gives_no_secret() {
        // The session ID the cache saw differs from the one resumed (its first byte changed
        // in the full handshake's ServerHello: record 5, handshake 4, version 2, random 32,
        // length 1).
        let (first, second) = exchange_resumed(suite(), Resume::Tls12Id);
        let cache = Arc::new(SessionCache::default());
        observe(&cache, &first, 50001, |b| {
            if b.get(5) == Some(&2) {
                b[44] ^= 0xff;
            }
        });
        observe(&cache, &second, 50002, |_| {});
        assert!(no_secret(&decrypt(
            &second,
            &full_only(&first),
            Some(cache)
        )));

        // The ticket the cache saw differs from the one offered (a byte of the
        // NewSessionTicket's ticket changed: record 5, handshake 4, lifetime 4, length 2).
        let (first, second) = exchange_resumed(suite(), Resume::Tls12Ticket);
        let cache = Arc::new(SessionCache::default());
        observe(&cache, &first, 50001, |b| {
            if b.get(5) == Some(&4) {
                b[16] ^= 0xff;
            }
        });
        observe(&cache, &second, 50002, |_| {});
        assert!(no_secret(&decrypt(
            &second,
            &full_only(&first),
            Some(cache.clone())
        )));
        assert_eq!(cache.counts().resumed_found, 0);

        // The cache knows the session, the key log has neither connection's line.
        let cache = Arc::new(SessionCache::default());
        observe(&cache, &first, 50001, |_| {});
        observe(&cache, &second, 50002, |_| {});
        assert!(no_secret(&decrypt(
            &second,
            &KeyLog::new(16),
            Some(cache.clone())
        )));
        assert_eq!(cache.counts().resumed_found, 0, "found, but not used");

        // The resumption seen before its full handshake (a capture fed out of order) is not
        // one: the cache is filled in capture order only.
        let cache = Arc::new(SessionCache::default());
        observe(&cache, &second, 50002, |_| {});
        observe(&cache, &first, 50001, |_| {});
        assert!(no_secret(&decrypt(
            &second,
            &full_only(&first),
            Some(cache)
        )));
    }
}

mod early_data {
    //! TLS 1.3 0-RTT: the client's early data, decrypted with CLIENT_EARLY_TRAFFIC_SECRET, is
    //! its first plaintext when the server takes it, and is not handed on when it refuses it.

    use super::*;
    use crate::tls::testing::{Resume, exchange_resumed};

    fn suite() -> rustls::SupportedCipherSuite {
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256
    }

    /// Feeds the transcript in pieces; `client_first`: all the client's writes before the
    /// server's (its records wait for the server's hello, then open in one go).
    fn run_conn(w: &Wire, keys: &KeyLog, piece: usize, client_first: bool) -> (Vec<TlsEvent>, u64) {
        let mut conn = TlsConn::new();
        let mut out = Vec::new();
        let order: Vec<&(bool, Vec<u8>)> = if client_first {
            let (c, s): (Vec<_>, Vec<_>) = w.transcript.iter().partition(|(fc, _)| *fc);
            c.into_iter().chain(s).collect()
        } else {
            w.transcript.iter().collect()
        };
        for (from_client, bytes) in order {
            for p in bytes.chunks(piece) {
                conn.on_data(*from_client, p, keys, &mut out);
            }
        }
        conn.finish(&mut out);
        (out, conn.early_skipped)
    }

    fn without_early_secret(w: &Wire) -> KeyLog {
        let text = String::from_utf8(w.log.keylog_text()).expect("text");
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("CLIENT_EARLY_TRAFFIC_SECRET"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut k = KeyLog::new(16);
        assert!(k.add_text(kept.as_bytes()).is_empty());
        k
    }

    #[test]
    fn accepted_early_data_is_the_clients_first_plaintext_in_any_pieces_and_order() {
        let (_, second) = exchange_resumed(suite(), Resume::Tls13EarlyData { accept: true });
        let text = String::from_utf8(second.log.keylog_text()).expect("text");
        assert!(
            text.contains("CLIENT_EARLY_TRAFFIC_SECRET"),
            "rustls logs it"
        );
        let keys = keylog(&second);
        for piece in [usize::MAX, 1, 7] {
            for client_first in [false, true] {
                let (events, skipped) = run_conn(&second, &keys, piece, client_first);
                let (c, s, other) = plaintext(&events);
                let at = format!("{piece}-byte pieces, client first {client_first}");
                // Sent once, as early data: handed on once.
                assert_eq!(c, REQUEST, "{at}");
                assert_eq!(s, RESPONSE, "{at}");
                assert_eq!(skipped, 0, "{at}");
                assert!(
                    !other.iter().any(|e| matches!(e, TlsEvent::Lost { .. })),
                    "{at}: {other:?}"
                );
            }
        }
    }

    #[test]
    fn without_its_secret_early_data_is_skipped_and_the_rest_decrypted() {
        let (_, second) = exchange_resumed(suite(), Resume::Tls13EarlyData { accept: true });
        let (events, skipped) =
            run_conn(&second, &without_early_secret(&second), usize::MAX, false);
        let (c, s, other) = plaintext(&events);
        assert!(c.is_empty(), "the request was early data only");
        assert_eq!(s, RESPONSE);
        // The early data record and EndOfEarlyData.
        assert!(skipped >= 2, "{skipped}");
        assert!(
            !other.iter().any(|e| matches!(e, TlsEvent::Lost { .. })),
            "{other:?}"
        );
    }

    #[test]
    fn refused_early_data_is_not_handed_on_and_the_request_sent_again_is() {
        let (_, second) = exchange_resumed(suite(), Resume::Tls13EarlyData { accept: false });
        for keys in [keylog(&second), without_early_secret(&second)] {
            for (piece, client_first) in [(usize::MAX, false), (1, false), (usize::MAX, true)] {
                // Client first: the request sent again waits behind the refused early data.
                let (events, skipped) = run_conn(&second, &keys, piece, client_first);
                let (c, s, other) = plaintext(&events);
                // Once: the copy sent after the handshake, not the refused one too.
                assert_eq!(c, REQUEST);
                assert_eq!(s, RESPONSE);
                assert!(skipped >= 1, "{skipped}");
                assert!(
                    !other.iter().any(|e| matches!(e, TlsEvent::Lost { .. })),
                    "{other:?}"
                );
            }
        }
    }
}

#[test]
fn a_hello_retry_request_and_key_updates_on_both_sides_still_decrypt_everything() {
    use crate::tls::testing::exchange_hrr_key_update;
    use provider::cipher_suite::*;
    for (rs, id) in [
        (TLS13_AES_128_GCM_SHA256, 0x1301),
        (TLS13_AES_256_GCM_SHA384, 0x1302),
        (TLS13_CHACHA20_POLY1305_SHA256, 0x1303),
    ] {
        let w = exchange_hrr_key_update(rs);
        // The server's first hello on the wire is the HelloRetryRequest (its fixed random).
        let first_server_hello = crate::tls::testing::records(&w.to_client)
            .into_iter()
            .find(|r| r.0 == 22)
            .expect("a server hello");
        let hrr_random = crate::tls::record::HELLO_RETRY_REQUEST_RANDOM;
        assert_eq!(
            first_server_hello.2.get(6..38),
            Some(&hrr_random[..]),
            "{id:#x}: the exchange has a HelloRetryRequest"
        );
        let keys = keylog(&w);
        for piece in [usize::MAX, 1, 300] {
            let (c, s, other) = plaintext(&run(&w, &keys, piece));
            assert_eq!(c, [REQUEST, REQUEST].concat(), "{id:#x} piece {piece}");
            assert_eq!(s, [RESPONSE, RESPONSE].concat(), "{id:#x} piece {piece}");
            assert!(
                !other
                    .iter()
                    .any(|e| matches!(e, TlsEvent::Lost { .. } | TlsEvent::Failed { .. })),
                "{id:#x}: {other:?}"
            );
        }
        // Near miss: without the traffic secrets the records after each update cannot open
        // either; nothing is guessed.
        let mut partial = KeyLog::new(16);
        let text = String::from_utf8(w.log.keylog_text()).expect("text");
        let hs: String = text
            .lines()
            .filter(|l| l.contains("HANDSHAKE"))
            .map(|l| format!("{l}\n"))
            .collect();
        partial.add_text(hs.as_bytes());
        let (c, s, _) = plaintext(&run(&w, &partial, usize::MAX));
        assert!(c.is_empty() && s.is_empty(), "{id:#x}");
    }
}
