//! The HTTP/2 frame reader on one direction's bytes. The first input byte picks the side and
//! the piece sizes (1 to 16 bytes); the rest is the stream. On the client's side the check
//! puts the connection preface in front unless the byte asks for the input's own (to reach the
//! frames behind it without the fuzzer having to find 24 fixed bytes first). Fed whole or in pieces, it gives the same events and counts; the reader never holds
//! more than its bound, an error comes at most once and last, and nothing panics.

use idemwatch::http::h2::frame::{Event, FrameReader, PREFACE, Side};

/// A small header block limit, so the CONTINUATION bound is reached.
const BLOCK_LIMIT: usize = 512;

fn feed(stream: &[u8], side: Side, piece: impl Fn(usize) -> usize) -> (Vec<String>, FrameReader) {
    let mut r = FrameReader::new(side, BLOCK_LIMIT);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let (a, b) = rest.split_at(piece(i).clamp(1, rest.len()));
        r.push(a, |e| {
            if let Event::HeaderBlock { block, .. } | Event::PushPromise { block, .. } = &e {
                assert!(block.len() <= BLOCK_LIMIT);
            }
            events.push(format!("{e:?}"));
        });
        // An empty read changes nothing.
        r.push(&[], |e| panic!("an empty chunk gave {e:?}"));
        assert!(r.buffered() <= r.bound(), "over the bound");
        rest = b;
        i += 1;
    }
    (events, r)
}

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let mut owned = Vec::new();
    let (side, stream) = match (mode & 0x80 != 0, mode & 0x40 != 0) {
        (false, _) => (Side::Server, stream),
        (true, true) => (Side::Client, stream),
        (true, false) => {
            owned.extend_from_slice(PREFACE);
            owned.extend_from_slice(stream);
            (Side::Client, owned.as_slice())
        }
    };
    let (whole, r1) = feed(stream, side, |_| usize::MAX);
    let seed = usize::from(mode & 0x3f);
    let (pieces, r2) = feed(stream, side, |i| (seed + i * 7) % 16 + 1);
    assert_eq!(whole, pieces, "whole and in pieces differ");
    assert_eq!(r1.failed(), r2.failed());
    assert_eq!(r1.counts(), r2.counts());
    let errors = whole.iter().filter(|e| e.starts_with("Error")).count();
    assert_eq!(errors, usize::from(r1.failed().is_some()));
    if errors == 1 {
        assert!(
            whole.last().is_some_and(|e| e.starts_with("Error")),
            "an error is last"
        );
    }
    assert!(r1.counts().bytes_dropped <= stream.len() as u64);
}
