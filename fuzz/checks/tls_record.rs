//! The TLS record layer and handshake parsers on one direction's bytes. The first input byte
//! picks the piece sizes (1 to 16 bytes) and whether the direction starts after a gap; the rest
//! is the stream. Fed whole or in pieces, it gives the same records, the same handshake
//! messages and the same parsed hellos, tickets and extensions; after a gap, no panic and the
//! reader stays within its bounds.

use idemwatch::tls::record::{
    HandshakeReader, MAX_RECORD_LEN, RecordReader, content_type, handshake_type,
    parse_client_hello, parse_encrypted_extensions, parse_new_session_ticket_tls12,
    parse_server_hello,
};

/// What one feeding saw, compared between feedings.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    records: Vec<(u8, u16, Vec<u8>)>,
    /// Each handshake message as its type and the `Debug` of what the parsers made of it.
    messages: Vec<(u8, String)>,
}

fn parse(msg_type: u8, body: &[u8]) -> String {
    match msg_type {
        handshake_type::CLIENT_HELLO => format!("{:?}", parse_client_hello(body)),
        handshake_type::SERVER_HELLO => format!("{:?}", parse_server_hello(body)),
        handshake_type::NEW_SESSION_TICKET => {
            format!("{:?}", parse_new_session_ticket_tls12(body))
        }
        handshake_type::ENCRYPTED_EXTENSIONS => format!("{:?}", parse_encrypted_extensions(body)),
        _ => format!("{} bytes", body.len()),
    }
}

fn feed(stream: &[u8], piece: impl Fn(usize) -> usize, gap_first: bool) -> (Seen, RecordReader) {
    let mut r = RecordReader::new();
    if gap_first {
        r.gap();
    }
    let mut hs = HandshakeReader::new();
    let mut seen = Seen::default();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let (a, b) = rest.split_at(piece(i).clamp(1, rest.len()));
        r.push(a, |rec| {
            assert!(rec.fragment.len() <= MAX_RECORD_LEN);
            seen.records
                .push((rec.content_type, rec.version, rec.fragment.to_vec()));
            if rec.content_type == content_type::HANDSHAKE {
                hs.push(rec.fragment, |m| {
                    seen.messages.push((m.msg_type, parse(m.msg_type, m.body)));
                });
            }
        });
        rest = b;
        i += 1;
    }
    (seen, r)
}

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    // The parsers straight on the bytes too: most inputs never frame as a handshake.
    for t in [1, 2, 4, 8] {
        let _ = parse(t, stream);
    }
    let gap_first = mode & 0x80 != 0;
    let (whole, r1) = feed(stream, |_| usize::MAX, gap_first);
    let seed = usize::from(mode & 0x7f);
    let (pieces, r2) = feed(stream, |i| (seed + i * 7) % 16 + 1, gap_first);
    assert_eq!(whole, pieces, "whole and in pieces differ");
    assert_eq!(r1.failed(), r2.failed());
    assert_eq!(r1.counts().records, whole.records.len() as u64);
    let framed: usize = whole.records.iter().map(|r| r.2.len() + 5).sum();
    assert!(framed as u64 + r1.counts().bytes_dropped <= stream.len() as u64);
}
