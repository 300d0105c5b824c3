//! What opening a TLS record costs, per AEAD, with ring (what idemwatch uses, through
//! `tls::crypto`) and with RustCrypto's `aes-gcm` and `chacha20poly1305`: the evidence behind
//! the choice (docs/TLS.md). Full 16 KiB records, as bulk transfers send.
//! `cargo bench --bench tls_open`.

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idemwatch::tls::crypto::{DirectionKeys, Suite};
use ring::aead;

const RECORD: usize = 16 * 1024;

/// A TLS 1.3 record of `suite` sealed with ring, sequence number 0: the traffic secret, the
/// fragment, and the key and IV derived from the secret.
fn sealed(suite: u16, alg: &'static aead::Algorithm) -> (Vec<u8>, Vec<u8>, Vec<u8>, [u8; 12]) {
    let secret = vec![0x42u8; if suite == 0x1302 { 48 } else { 32 }];
    let hash = if suite == 0x1302 {
        idemwatch::tls::crypto::Hash::Sha384
    } else {
        idemwatch::tls::crypto::Hash::Sha256
    };
    let key = idemwatch::tls::crypto::hkdf_expand_label(hash, &secret, b"key", b"", alg.key_len())
        .expect("key");
    let iv: [u8; 12] = idemwatch::tls::crypto::hkdf_expand_label(hash, &secret, b"iv", b"", 12)
        .expect("iv")
        .try_into()
        .expect("12");
    let mut body = vec![0x61u8; RECORD];
    body.push(23); // TLS 1.3 inner content type
    let len = u16::try_from(body.len() + 16).expect("fits");
    let mut aad = vec![23, 3, 3];
    aad.extend_from_slice(&len.to_be_bytes());
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &key).expect("key"));
    k.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(iv),
        aead::Aad::from(&aad[..]),
        &mut body,
    )
    .expect("seal");
    (secret, body, key, iv)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("open a 16 KiB TLS 1.3 record");
    g.throughput(Throughput::Bytes(RECORD as u64));
    for (suite, alg, name) in [
        (0x1301, &aead::AES_128_GCM, "AES-128-GCM"),
        (0x1302, &aead::AES_256_GCM, "AES-256-GCM"),
        (0x1303, &aead::CHACHA20_POLY1305, "ChaCha20-Poly1305"),
    ] {
        let (secret, fragment, key, iv) = sealed(suite, alg);
        let keys = DirectionKeys::tls13(Suite::of(suite).expect("suite"), &secret).expect("keys");
        g.bench_function(format!("ring {name}"), |b| {
            b.iter(|| black_box(keys.open_at(0, 23, 0x0303, black_box(&fragment))).is_ok())
        });
        let len = u16::try_from(fragment.len()).expect("fits");
        let mut aad = vec![23, 3, 3];
        aad.extend_from_slice(&len.to_be_bytes());
        let (ct, tag) = fragment.split_at(fragment.len() - 16);
        let open = |buf: &mut Vec<u8>| -> bool {
            buf.clear();
            buf.extend_from_slice(ct);
            let nonce = aes_gcm::Nonce::from_slice(&iv);
            let tag = aes_gcm::Tag::from_slice(tag);
            match suite {
                0x1301 => aes_gcm::Aes128Gcm::new_from_slice(&key)
                    .expect("key")
                    .decrypt_in_place_detached(nonce, &aad, buf, tag)
                    .is_ok(),
                0x1302 => aes_gcm::Aes256Gcm::new_from_slice(&key)
                    .expect("key")
                    .decrypt_in_place_detached(nonce, &aad, buf, tag)
                    .is_ok(),
                _ => chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key)
                    .expect("key")
                    .decrypt_in_place_detached(nonce, &aad, buf, tag)
                    .is_ok(),
            }
        };
        let mut buf = Vec::with_capacity(fragment.len());
        assert!(open(&mut buf), "RustCrypto opens what ring sealed");
        g.bench_function(format!("RustCrypto {name}"), |b| {
            b.iter(|| black_box(open(&mut buf)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
