//! The key schedules and record opening against a real TLS implementation: rustls (its `ring`
//! provider) runs a client and a server in memory with each suite forced, logs its secrets as
//! `SSLKEYLOGFILE` would, and the records it wrote must open here to exactly what was sent.

use super::*;
use crate::tls::testing::{REQUEST, RESPONSE, exchange, provider, randoms, records};

/// Every encrypted record of a TLS 1.3 direction, opened: with the handshake keys until one
/// does not open, then with the application keys. Returns the (inner type, content) list.
fn open_tls13(
    suite: Suite,
    recs: &[(u8, u16, Vec<u8>)],
    hs: &[u8],
    app: &[u8],
) -> Vec<(u8, Vec<u8>)> {
    let mut keys = DirectionKeys::tls13(suite, hs).expect("handshake keys");
    let mut app_keys = Some(DirectionKeys::tls13(suite, app).expect("application keys"));
    let mut out = Vec::new();
    for (t, v, f) in recs.iter().filter(|r| r.0 == 23) {
        match keys.open(*t, *v, f) {
            Ok(p) => out.push(p),
            Err(OpenError::Authentication) if app_keys.is_some() => {
                keys = app_keys.take().expect("once");
                out.push(
                    keys.open(*t, *v, f)
                        .expect("opens with the application keys"),
                );
            }
            Err(e) => panic!("record {} did not open: {e:?}", keys.seq),
        }
    }
    out
}

#[test]
fn tls13_records_of_every_suite_open_to_what_was_sent() {
    for (rs, id) in [
        (provider::cipher_suite::TLS13_AES_128_GCM_SHA256, 0x1301),
        (provider::cipher_suite::TLS13_AES_256_GCM_SHA384, 0x1302),
        (
            provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            0x1303,
        ),
    ] {
        let w = exchange(rs);
        let suite = Suite::of(id).expect("supported");
        let sent = open_tls13(
            suite,
            &records(&w.to_server),
            &w.log.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
            &w.log.secret("CLIENT_TRAFFIC_SECRET_0"),
        );
        // The client's Finished (handshake), then the request.
        assert_eq!(sent.first().map(|p| p.0), Some(22), "{id:#x}");
        assert!(sent.contains(&(23, REQUEST.to_vec())), "{id:#x}: {sent:?}");
        let got = open_tls13(
            suite,
            &records(&w.to_client),
            &w.log.secret("SERVER_HANDSHAKE_TRAFFIC_SECRET"),
            &w.log.secret("SERVER_TRAFFIC_SECRET_0"),
        );
        // EncryptedExtensions is the first handshake message the server encrypts.
        assert_eq!(
            got.first().map(|p| (p.0, p.1.first().copied())),
            Some((22, Some(8)))
        );
        assert!(got.contains(&(23, RESPONSE.to_vec())), "{id:#x}");
    }
}

#[test]
fn tls12_records_of_every_aead_suite_open_to_what_was_sent() {
    for (rs, id) in [
        (
            provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            0xC02B,
        ),
        (
            provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            0xC02C,
        ),
        (
            provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            0xCCA9,
        ),
    ] {
        let w = exchange(rs);
        let suite = Suite::of(id).expect("supported");
        let (cr, sr) = randoms(&w);
        let master = w.log.secret("CLIENT_RANDOM");
        for (bytes, client_side, body) in [
            (&w.to_server, true, REQUEST),
            (&w.to_client, false, RESPONSE),
        ] {
            let (c, s) = DirectionKeys::tls12(suite, &master, &cr, &sr).expect("keys");
            let mut keys = if client_side { c } else { s };
            // Encrypted from the record after ChangeCipherSpec on, numbered from 0.
            let recs = records(bytes);
            let ccs = recs
                .iter()
                .position(|r| r.0 == 20)
                .expect("a ChangeCipherSpec");
            let opened: Vec<(u8, Vec<u8>)> = recs[ccs + 1..]
                .iter()
                .map(|(t, v, f)| keys.open(*t, *v, f).expect("opens"))
                .collect();
            // Finished (handshake type 20) first, then the data.
            assert_eq!(opened[0].0, 22, "{id:#x}");
            assert_eq!(opened[0].1.first(), Some(&20), "{id:#x}");
            assert!(opened.contains(&(23, body.to_vec())), "{id:#x}");
        }
    }
}

#[test]
fn a_record_opens_only_with_its_key_and_its_sequence_number() {
    let w = exchange(provider::cipher_suite::TLS13_AES_128_GCM_SHA256);
    let suite = Suite::of(0x1301).expect("supported");
    let recs: Vec<_> = records(&w.to_server)
        .into_iter()
        .filter(|r| r.0 == 23)
        .collect();
    let hs = DirectionKeys::tls13(suite, &w.log.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"))
        .expect("keys");
    let (t, v, f) = &recs[0];
    assert!(hs.open_at(0, *t, *v, f).is_ok());
    // Near misses: another sequence number, another key, one flipped bit, a cut record.
    assert_eq!(hs.open_at(1, *t, *v, f), Err(OpenError::Authentication));
    let app = DirectionKeys::tls13(suite, &w.log.secret("CLIENT_TRAFFIC_SECRET_0")).expect("keys");
    assert_eq!(app.open_at(0, *t, *v, f), Err(OpenError::Authentication));
    let mut flipped = f.clone();
    flipped[3] ^= 1;
    assert_eq!(
        hs.open_at(0, *t, *v, &flipped),
        Err(OpenError::Authentication)
    );
    assert_eq!(hs.open_at(0, *t, *v, &f[..10]), Err(OpenError::Malformed));
    // The header is authenticated too (TLS 1.3's AAD).
    assert_eq!(hs.open_at(0, *t, 0x0301, f), Err(OpenError::Authentication));
}

#[test]
fn key_update_gives_the_next_secret_and_wrong_lengths_give_nothing() {
    let suite = Suite::of(0x1301).expect("supported");
    let s0 = [7u8; 32];
    let s1 = DirectionKeys::tls13_next_secret(suite, &s0).expect("next");
    assert_eq!(s1.len(), 32);
    assert_ne!(s1, s0.to_vec());
    assert_eq!(
        hkdf_expand_label(Hash::Sha256, &s0, b"traffic upd", b"", 32),
        Some(s1)
    );
    // A 48-byte secret for a SHA-256 suite, a 47-byte master secret: refused, not guessed.
    assert!(DirectionKeys::tls13(suite, &[0u8; 48]).is_none());
    let tls12 = Suite::of(0xC02F).expect("supported");
    assert!(DirectionKeys::tls12(tls12, &[0u8; 47], &[0; 32], &[0; 32]).is_none());
    assert!(DirectionKeys::tls12(suite, &[0u8; 48], &[0; 32], &[0; 32]).is_none());
}

#[test]
fn cbc_and_unknown_suites_are_not_claimed() {
    for id in [0x002F, 0xC013, 0xC027, 0x1304, 0x1305, 0x0000, 0xFFFF] {
        assert_eq!(Suite::of(id), None, "{id:#x}");
    }
}

#[test]
fn keys_never_show_in_debug() {
    let suite = Suite::of(0x1301).expect("supported");
    let k = DirectionKeys::tls13(suite, &[0xab; 32]).expect("keys");
    let text = format!("{k:?}");
    assert!(!text.to_lowercase().contains("ab, ab"), "{text}");
    assert!(text.contains("0x1301"), "{text}");
}
