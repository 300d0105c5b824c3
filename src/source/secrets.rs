//! TLS secrets a pcapng file carries in Decryption Secrets Blocks (`editcap --inject-secrets
//! tls,FILE`), which libpcap does not hand out: the key-log lines, as a key-log file holds
//! them.
//!
//! Takes the file's bytes from its start; gives the lines of every TLS key-log block before
//! the first packet block. The format says secrets SHOULD come before the packets that need
//! them and lets readers go no further (draft-ietf-opsawg-pcapng, "Decryption Secrets
//! Block"), so reading stops there: one pass over the file's head, not over the whole file.
//! A classic pcap has no such block. What the lines say is the key log's (`tls::keylog`).

use std::io::Read;

use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader, traits::PcapReaderIterator};

/// Secrets kept from one file at most; past it the rest is dropped and said.
pub const MAX_SECRETS_BYTES: usize = 16 << 20;

/// The largest block read: a Decryption Secrets Block over it is skipped (counted).
const BUFFER: usize = 4 << 20;

/// What a file's head held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileSecrets {
    /// The TLS key-log lines, each block's ending in a newline. A credential: never logged.
    pub keylog: Vec<u8>,
    /// TLS key-log blocks read.
    pub blocks: usize,
    /// Blocks or bytes left out: past [`MAX_SECRETS_BYTES`], or a block too large to read.
    pub dropped: usize,
}

/// The TLS secrets in the head of a pcapng stream (none for anything else).
pub fn tls_secrets(reader: impl Read) -> FileSecrets {
    let mut out = FileSecrets::default();
    let Ok(mut r) = PcapNGReader::new(BUFFER, reader) else {
        return out;
    };
    loop {
        let step = match r.next() {
            Ok((offset, block)) => {
                let stop = match block {
                    PcapBlockOwned::NG(Block::DecryptionSecrets(d))
                        if d.secrets_type == SecretsType::TlsKeyLog =>
                    {
                        // The data is padded to 32 bits: its declared length is the key log.
                        let n = usize::try_from(d.secrets_len)
                            .unwrap_or(usize::MAX)
                            .min(d.data.len());
                        if out.keylog.len() + n + 1 > MAX_SECRETS_BYTES {
                            out.dropped += 1;
                        } else {
                            out.keylog.extend_from_slice(&d.data[..n]);
                            if !out.keylog.ends_with(b"\n") {
                                out.keylog.push(b'\n');
                            }
                            out.blocks += 1;
                        }
                        false
                    }
                    PcapBlockOwned::NG(b) => b.is_data_block(),
                    _ => true,
                };
                Some((offset, stop))
            }
            Err(PcapError::Incomplete(_)) => None,
            Err(PcapError::BufferTooSmall) => {
                out.dropped += 1;
                break;
            }
            Err(_) => break,
        };
        match step {
            Some((offset, stop)) => {
                r.consume(offset);
                if stop {
                    break;
                }
            }
            None => {
                if r.refill().is_err() {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian pcapng block: type, total length, body padded to 32 bits, length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let total = u32::try_from(12 + padded).expect("small");
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        b.extend_from_slice(&total.to_le_bytes());
        b
    }

    fn shb() -> Vec<u8> {
        let mut body = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        block(0x0A0D_0D0A, &body)
    }

    fn idb() -> Vec<u8> {
        let mut body = 1u16.to_le_bytes().to_vec();
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&65535u32.to_le_bytes());
        block(1, &body)
    }

    fn dsb(kind: u32, secrets: &[u8]) -> Vec<u8> {
        let mut body = kind.to_le_bytes().to_vec();
        body.extend_from_slice(&u32::try_from(secrets.len()).expect("small").to_le_bytes());
        body.extend_from_slice(secrets);
        body.resize(8 + secrets.len().div_ceil(4) * 4, 0);
        block(0x0A, &body)
    }

    fn epb() -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 4]);
        block(6, &body)
    }

    const LINE: &[u8] = b"CLIENT_RANDOM 00 11";

    #[test]
    fn key_log_blocks_before_the_packets_are_read_without_their_padding() {
        let file = [shb(), idb(), dsb(0x544c_534b, LINE), epb()].concat();
        let s = tls_secrets(&file[..]);
        assert_eq!(
            s.keylog,
            [LINE, b"\n"].concat(),
            "19 bytes, padded to 20 in the block"
        );
        assert_eq!((s.blocks, s.dropped), (1, 0));
        // Two blocks: each ends its lines.
        let two = [
            shb(),
            dsb(0x544c_534b, LINE),
            dsb(0x544c_534b, b"x\n"),
            epb(),
        ]
        .concat();
        assert_eq!(tls_secrets(&two[..]).keylog, b"CLIENT_RANDOM 00 11\nx\n");
    }

    #[test]
    fn other_secrets_blocks_after_the_first_packet_and_other_files_give_nothing() {
        let wireguard = [shb(), dsb(0x5747_4b4c, LINE), epb()].concat();
        assert_eq!(tls_secrets(&wireguard[..]), FileSecrets::default());
        let late = [shb(), idb(), epb(), dsb(0x544c_534b, LINE)].concat();
        assert_eq!(tls_secrets(&late[..]), FileSecrets::default());
        // A classic pcap, garbage, nothing, a block cut short.
        let pcap = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        assert_eq!(tls_secrets(&pcap[..]), FileSecrets::default());
        assert_eq!(tls_secrets(&b"not a capture"[..]), FileSecrets::default());
        assert_eq!(tls_secrets(&b""[..]), FileSecrets::default());
        let cut = [shb(), dsb(0x544c_534b, LINE)].concat();
        assert_eq!(tls_secrets(&cut[..cut.len() - 3]).blocks, 0);
    }
}
