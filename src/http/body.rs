//! Message bodies: framing (Content-Length, chunked, until close), SHA-256 in passing, and
//! bounded content decoding.
//!
//! Bytes are hashed as they arrive and never kept, except a bounded prefix of the decoded body
//! when the canonical form or a response's JSON `id` needs it. A gap makes the body incomplete:
//! its hashes are dropped and the bytes lost are counted.

use std::io::Write;

use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};
use sha2::{Digest, Sha256};

/// How the end of a body is found (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A content coding we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    /// A coding we do not decode (br, zstd, ...): the decoded form is unknown.
    Other,
}

impl Coding {
    /// The coding of a Content-Encoding value (the last coding applied is last in the list;
    /// more than one real coding is treated as not decodable).
    pub fn from_header(v: Option<&str>) -> Coding {
        let Some(v) = v else {
            return Coding::Identity;
        };
        let codings: Vec<String> = v
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        match codings.as_slice() {
            [] => Coding::Identity,
            [c] if c == "gzip" || c == "x-gzip" => Coding::Gzip,
            [c] if c == "deflate" => Coding::Deflate,
            _ => Coding::Other,
        }
    }
}

/// What a gap did to the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEffect {
    /// The gap lies inside the body; reading goes on after it.
    Inside,
    /// The body ended inside the gap; the last `rest` bytes of the gap belong to what follows.
    Ended { rest: u64 },
    /// The framing was lost (a chunk header fell in the gap): the body ends here, incomplete.
    FramingLost,
}

/// Result of feeding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input that belong to the body (framing included).
    pub used: usize,
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    /// After a chunk's data: the CRLF.
    DataEnd,
    Trailer,
    Done,
}

/// Collects decoded bytes: hashes them all, keeps a bounded prefix, refuses past a cap.
struct Sink {
    hasher: Sha256,
    kept: Vec<u8>,
    keep_max: usize,
    total: u64,
    cap: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total = self.total.saturating_add(buf.len() as u64);
        if self.total > self.cap {
            return Err(std::io::Error::other("decoded body over the limit"));
        }
        self.hasher.update(buf);
        let room = self.keep_max.saturating_sub(self.kept.len());
        if room > 0 {
            self.kept
                .extend_from_slice(buf.get(..room.min(buf.len())).unwrap_or(&[]));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Gzip(GzDecoder<Sink>),
    Zlib(ZlibDecoder<Sink>),
    Raw(DeflateDecoder<Sink>),
    /// Deflate, before its first byte tells zlib from raw deflate.
    DeflateUndecided(Sink),
}

/// What the body reader was asked to keep and decode.
#[derive(Debug, Clone, Copy)]
pub struct BodyOptions {
    pub coding: Coding,
    /// Keep up to this many decoded bytes (0: none).
    pub keep: usize,
    /// Stop decoding past this many decoded bytes.
    pub decode_cap: u64,
    /// Hash the body (bodies nobody can compare are only measured).
    pub hash: bool,
}

/// The body of a message, read incrementally.
pub struct BodyReader {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
    line: Vec<u8>,
    len: u64,
    raw_hasher: Option<Sha256>,
    /// Bytes were lost or the framing broke.
    broken: bool,
    /// Raw bytes kept when there is no coding.
    kept_raw: Vec<u8>,
    keep: usize,
    coding: Coding,
    decoder: Option<Decoder>,
    decode_failed: bool,
    decode_truncated: bool,
    missing: u64,
    done: bool,
    /// Length announced by Content-Length, for incomplete bodies.
    declared: Option<u64>,
}

/// A finished body.
#[derive(Debug, Clone)]
pub struct BodyResult {
    pub len: u64,
    pub sha256: Option<[u8; 32]>,
    pub decoded_sha256: Option<[u8; 32]>,
    /// The decoded bytes when all of them were kept (at most `keep`).
    pub decoded_whole: Option<Vec<u8>>,
    pub complete: bool,
    pub missing: u64,
    pub decode_failed: bool,
    pub decode_truncated: bool,
}

/// Chunk-size and trailer lines longer than this are not HTTP.
const MAX_LINE: usize = 4096;

impl BodyReader {
    pub fn new(framing: Framing, opts: BodyOptions) -> BodyReader {
        let sink = || Sink {
            hasher: Sha256::new(),
            kept: Vec::new(),
            keep_max: opts.keep,
            total: 0,
            cap: opts.decode_cap,
        };
        let decoder = match if opts.hash {
            opts.coding
        } else {
            Coding::Identity
        } {
            Coding::Gzip => Some(Decoder::Gzip(GzDecoder::new(sink()))),
            Coding::Deflate => Some(Decoder::DeflateUndecided(sink())),
            Coding::Identity | Coding::Other => None,
        };
        let (remaining, declared) = match framing {
            Framing::Length(n) => (n, Some(n)),
            _ => (0, None),
        };
        // One allocation of the right size when the length is known.
        let keep_raw = if opts.hash && opts.coding == Coding::Identity {
            usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(opts.keep)
        } else {
            0
        };
        BodyReader {
            framing,
            remaining,
            chunk: Chunk::Size,
            line: Vec::new(),
            len: 0,
            raw_hasher: opts.hash.then(Sha256::new),
            broken: false,
            kept_raw: Vec::with_capacity(keep_raw),
            keep: if opts.hash { opts.keep } else { 0 },
            coding: if opts.hash {
                opts.coding
            } else {
                Coding::Identity
            },
            decoder,
            decode_failed: false,
            decode_truncated: false,
            missing: 0,
            done: matches!(framing, Framing::Length(0)),
            declared,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds bytes; returns how many belong to this body and whether it ended.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        if self.done {
            return Fed {
                used: 0,
                done: true,
            };
        }
        match self.framing {
            Framing::Length(_) => {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let (data, _) = input.split_at(n);
                self.content(data);
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.done = true;
                }
                Fed {
                    used: n,
                    done: self.done,
                }
            }
            Framing::UntilClose => {
                self.content(input);
                Fed {
                    used: input.len(),
                    done: false,
                }
            }
            Framing::Chunked => self.feed_chunked(input),
        }
    }

    fn feed_chunked(&mut self, input: &[u8]) -> Fed {
        let mut pos = 0usize;
        while pos < input.len() && !self.done {
            let rest = input.get(pos..).unwrap_or(&[]);
            match self.chunk {
                Chunk::Size | Chunk::Trailer | Chunk::DataEnd => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        if self.line.len() + rest.len() > MAX_LINE {
                            return self.framing_error(pos + rest.len());
                        }
                        self.line.extend_from_slice(rest);
                        pos += rest.len();
                        continue;
                    };
                    let (part, _) = rest.split_at(nl + 1);
                    if self.line.len() + part.len() > MAX_LINE {
                        return self.framing_error(pos + part.len());
                    }
                    self.line.extend_from_slice(part);
                    pos += part.len();
                    let line = std::mem::take(&mut self.line);
                    match self.chunk {
                        Chunk::DataEnd => {
                            if line != b"\r\n" && line != b"\n" {
                                return self.framing_error(pos);
                            }
                            self.chunk = Chunk::Size;
                        }
                        Chunk::Size => match httparse::parse_chunk_size(&line) {
                            Ok(httparse::Status::Complete((_, 0))) => self.chunk = Chunk::Trailer,
                            Ok(httparse::Status::Complete((_, n))) => self.chunk = Chunk::Data(n),
                            _ => return self.framing_error(pos),
                        },
                        _ => {
                            // Trailer section: header lines until an empty line.
                            if line == b"\r\n" || line == b"\n" {
                                self.chunk = Chunk::Done;
                                self.done = true;
                            }
                        }
                    }
                }
                Chunk::Data(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                    let (data, _) = rest.split_at(take);
                    self.content(data);
                    pos += take;
                    let left = n - take as u64;
                    self.chunk = if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    };
                }
                Chunk::Done => self.done = true,
            }
        }
        Fed {
            used: pos,
            done: self.done,
        }
    }

    /// Bad chunk framing: the body ends here, incomplete, and the bytes are not consumed
    /// further (the session resynchronises).
    fn framing_error(&mut self, used: usize) -> Fed {
        self.raw_hasher = None;
        self.broken = true;
        self.done = true;
        self.missing = self.missing.max(1);
        Fed { used, done: true }
    }

    /// Body content after framing.
    fn content(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len() as u64;
        if let Some(h) = self.raw_hasher.as_mut() {
            h.update(data);
        }
        if self.decoder.is_none() && self.coding == Coding::Identity {
            let room = self.keep.saturating_sub(self.kept_raw.len());
            if room > 0 {
                self.kept_raw
                    .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&[]));
            }
            return;
        }
        if self.decode_failed || self.decode_truncated {
            return;
        }
        if let Some(Decoder::DeflateUndecided(_)) = self.decoder {
            // RFC 9110 says "deflate" is zlib-wrapped; some servers send raw deflate.
            let zlib = data.first().is_some_and(|cmf| cmf & 0x0f == 8)
                && data
                    .get(..2)
                    .is_some_and(|h| (u16::from(h[0]) * 256 + u16::from(h[1])) % 31 == 0);
            if let Some(Decoder::DeflateUndecided(sink)) = self.decoder.take() {
                self.decoder = Some(if zlib {
                    Decoder::Zlib(ZlibDecoder::new(sink))
                } else {
                    Decoder::Raw(DeflateDecoder::new(sink))
                });
            }
        }
        let res = match self.decoder.as_mut() {
            Some(Decoder::Gzip(d)) => d.write_all(data),
            Some(Decoder::Zlib(d)) => d.write_all(data),
            Some(Decoder::Raw(d)) => d.write_all(data),
            _ => Ok(()),
        };
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::Other && self.sink_total() > self.sink_cap() {
                self.decode_truncated = true;
            } else {
                self.decode_failed = true;
            }
        }
    }

    fn sink(&self) -> Option<&Sink> {
        match self.decoder.as_ref()? {
            Decoder::Gzip(d) => Some(d.get_ref()),
            Decoder::Zlib(d) => Some(d.get_ref()),
            Decoder::Raw(d) => Some(d.get_ref()),
            Decoder::DeflateUndecided(s) => Some(s),
        }
    }

    fn sink_total(&self) -> u64 {
        self.sink().map_or(0, |s| s.total)
    }

    fn sink_cap(&self) -> u64 {
        self.sink().map_or(u64::MAX, |s| s.cap)
    }

    /// `len` bytes of the stream were lost here.
    pub fn gap(&mut self, len: u64) -> GapEffect {
        self.raw_hasher = None;
        self.broken = true;
        match self.framing {
            Framing::Length(_) => {
                let inside = len.min(self.remaining);
                self.missing += inside;
                self.remaining -= inside;
                if self.remaining == 0 {
                    self.done = true;
                    GapEffect::Ended { rest: len - inside }
                } else {
                    GapEffect::Inside
                }
            }
            Framing::UntilClose => {
                self.missing += len;
                GapEffect::Inside
            }
            Framing::Chunked => match self.chunk {
                Chunk::Data(n) if len < n => {
                    self.missing += len;
                    self.chunk = Chunk::Data(n - len);
                    GapEffect::Inside
                }
                _ => {
                    self.missing += len;
                    self.done = true;
                    GapEffect::FramingLost
                }
            },
        }
    }

    /// The stream ended: a body delimited by close is complete; any other unfinished body is
    /// incomplete.
    pub fn end_of_stream(&mut self) {
        if self.done {
            return;
        }
        match self.framing {
            Framing::UntilClose => {}
            Framing::Length(_) => {
                self.missing += self.remaining;
                self.remaining = 0;
                self.raw_hasher = None;
                self.broken = true;
            }
            Framing::Chunked => {
                self.missing = self.missing.max(1);
                self.raw_hasher = None;
                self.broken = true;
            }
        }
        self.done = true;
    }

    /// The body stopped before its end without bytes lost in capture (an HTTP/2 stream
    /// reset): incomplete, its length as far as it was seen.
    pub fn cut(&mut self) {
        self.raw_hasher = None;
        self.broken = true;
        self.done = true;
    }

    /// Finishes decoding and returns the measurements.
    pub fn finish(mut self) -> BodyResult {
        let complete = self.missing == 0 && !self.broken;
        let sha256 = if complete {
            self.raw_hasher.take().map(|h| h.finalize().into())
        } else {
            None
        };
        let len = match (complete, self.declared) {
            (false, Some(d)) => d,
            (false, None) => self.len + self.missing,
            (true, _) => self.len,
        };
        let (decoded_sha256, decoded_whole) = if !complete {
            (None, None)
        } else if self.coding == Coding::Identity {
            let whole = (self.len as usize <= self.keep && self.keep > 0)
                .then(|| std::mem::take(&mut self.kept_raw));
            (sha256, whole)
        } else if self.coding == Coding::Other {
            (None, None)
        } else {
            let sink = match self.decoder.take() {
                Some(Decoder::Gzip(d)) => d.finish().map_err(|_| ()),
                Some(Decoder::Zlib(d)) => d.finish().map_err(|_| ()),
                Some(Decoder::Raw(d)) => d.finish().map_err(|_| ()),
                Some(Decoder::DeflateUndecided(s)) => Ok(s),
                None => Err(()),
            };
            match sink {
                Ok(s) if !self.decode_failed && !self.decode_truncated => {
                    let whole = (s.total as usize <= self.keep && self.keep > 0).then_some(s.kept);
                    (Some(s.hasher.finalize().into()), whole)
                }
                Ok(_) => (None, None),
                Err(()) => {
                    self.decode_failed = true;
                    (None, None)
                }
            }
        };
        BodyResult {
            len,
            sha256,
            decoded_sha256,
            decoded_whole,
            complete,
            missing: self.missing,
            decode_failed: self.decode_failed,
            decode_truncated: self.decode_truncated,
        }
    }
}

impl BodyResult {
    /// Counts what went wrong with the body (incomplete, decoding cut short or failed).
    pub fn count(&self, stats: &mut crate::stats::Stats) {
        if !self.complete {
            stats.http_incomplete_bodies += 1;
        }
        if self.decode_truncated {
            stats.http_decode_truncated += 1;
        }
        if self.decode_failed {
            stats.http_decode_errors += 1;
        }
    }

    /// A response's body as transactions carry it.
    pub fn response_body(&self) -> crate::http::Body {
        self.request_body_with(None)
    }

    /// A request's body as transactions carry it: with its canonical hash (`canon.rs`) when
    /// complete; over the bound, or in a coding not decoded, the hash of the decoded bytes,
    /// else of the bytes as sent.
    pub fn request_body(&self, content_type: Option<&str>) -> crate::http::Body {
        let canon = if !self.complete {
            None
        } else if let Some(whole) = self.decoded_whole.as_deref() {
            Some(crate::http::canon::canonical_sha256(
                content_type,
                whole,
                self.decoded_sha256,
            ))
        } else {
            self.decoded_sha256.or(self.sha256)
        };
        self.request_body_with(canon)
    }

    fn request_body_with(&self, canon: Option<[u8; 32]>) -> crate::http::Body {
        crate::http::Body {
            len: self.len,
            sha256: self.sha256,
            decoded_sha256: self.decoded_sha256,
            canon_sha256: canon,
            complete: self.complete,
            missing: self.missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BodyOptions {
        BodyOptions {
            coding: Coding::Identity,
            keep: 1024,
            decode_cap: 1 << 20,
            hash: true,
        }
    }

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn chunked_body_split_anywhere_gives_the_same_hash() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut r = BodyReader::new(Framing::Chunked, opts());
            let (a, b) = wire.split_at(split);
            let f1 = r.feed(a);
            let used2 = if f1.done { 0 } else { r.feed(b).used };
            assert_eq!(f1.used + used2, wire.len() - 4, "split {split}");
            let res = r.finish();
            assert_eq!(res.len, 11);
            assert_eq!(res.sha256, Some(sha(b"hello world")));
        }
    }

    #[test]
    fn content_length_body_stops_at_its_length() {
        let mut r = BodyReader::new(Framing::Length(3), opts());
        assert_eq!(
            r.feed(b"abcGET"),
            Fed {
                used: 3,
                done: true
            }
        );
        assert_eq!(r.finish().sha256, Some(sha(b"abc")));
    }

    #[test]
    fn gap_inside_body_makes_it_incomplete_with_declared_length() {
        let mut r = BodyReader::new(Framing::Length(10), opts());
        r.feed(b"abc");
        assert_eq!(r.gap(4), GapEffect::Inside);
        assert_eq!(r.feed(b"xyzNEXT").used, 3);
        let res = r.finish();
        assert!(!res.complete);
        assert_eq!(res.len, 10);
        assert_eq!(res.missing, 4);
        assert_eq!(res.sha256, None);
    }

    #[test]
    fn gap_past_body_end_reports_the_rest() {
        let mut r = BodyReader::new(Framing::Length(5), opts());
        r.feed(b"ab");
        assert_eq!(r.gap(10), GapEffect::Ended { rest: 7 });
    }

    #[test]
    fn bad_chunk_size_ends_the_body_incomplete() {
        let mut r = BodyReader::new(Framing::Chunked, opts());
        assert!(r.feed(b"zz\r\n").done);
        assert!(!r.finish().complete);
    }

    #[test]
    fn gzip_body_hashes_raw_and_decoded_bytes() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"{\"a\":1}").unwrap();
        let gz = enc.finish().unwrap();
        let mut r = BodyReader::new(
            Framing::Length(gz.len() as u64),
            BodyOptions {
                coding: Coding::Gzip,
                ..opts()
            },
        );
        r.feed(&gz);
        let res = r.finish();
        assert_eq!(res.sha256, Some(sha(&gz)));
        assert_eq!(res.decoded_sha256, Some(sha(b"{\"a\":1}")));
        assert_eq!(res.decoded_whole.as_deref(), Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn decompression_bomb_is_cut_at_the_cap() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let mut r = BodyReader::new(
            Framing::Length(gz.len() as u64),
            BodyOptions {
                coding: Coding::Gzip,
                keep: 16,
                decode_cap: 1000,
                hash: true,
            },
        );
        r.feed(&gz);
        let res = r.finish();
        assert!(res.decode_truncated);
        assert_eq!(res.decoded_sha256, None);
        assert!(res.complete);
    }
}
