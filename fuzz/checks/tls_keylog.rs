//! TLS key-log text: any bytes, fed whole and fed in pieces cut at points the input chooses,
//! give the same store, the same counts and the same bad lines (a followed key log is read as
//! the application appends, so where a read stops must not change what is learnt); the store
//! stays within its bound, and nothing panics.

use idemwatch::tls::keylog::{KeyLog, KeyLogReader};

/// Client randoms the store may hold: small, so eviction runs.
const BOUND: usize = 4;

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let mut whole = KeyLog::new(BOUND);
    let bad_whole = whole.add_text(data);

    // Piece lengths from 1 to 16, taken from the input's own bytes, so the fuzzer steers the
    // cuts (CR and LF at a piece's end included).
    let mut pieces = KeyLog::new(BOUND);
    let mut reader = KeyLogReader::new();
    let mut bad_pieces = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let step = usize::from(data.get(i % data.len()).copied().unwrap_or(0) % 16) + 1;
        let (piece, tail) = rest.split_at(step.min(rest.len()));
        bad_pieces.extend(reader.feed(piece, &mut pieces));
        // An empty read (nothing appended yet) changes nothing.
        bad_pieces.extend(reader.feed(&[], &mut pieces));
        rest = tail;
        i += 1;
    }
    bad_pieces.extend(reader.finish(&mut pieces));

    assert_eq!(bad_whole, bad_pieces);
    assert_eq!(whole, pieces);
    let c = whole.counts();
    assert!(whole.len() <= BOUND);
    assert_eq!(c.bad_lines, bad_whole.len() as u64);
    assert_eq!(c.lines, reader.lines());
    assert!(c.secrets + c.bad_lines + c.ignored_labels <= c.lines);
    let mut line = 0;
    for b in &bad_whole {
        assert!(
            b.line > line && b.line <= c.lines,
            "bad lines numbered in order"
        );
        line = b.line;
    }
}
