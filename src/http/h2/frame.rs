//! HTTP/2 framing on one reassembled direction (RFC 9113 sections 3.4, 4 and 6).
//!
//! [`FrameReader`] takes the direction's bytes in whatever pieces reassembly delivers (frames
//! split across chunks, several in one) and hands out [`Event`]s: DATA with its padding removed,
//! header blocks assembled from HEADERS or PUSH_PROMISE and their CONTINUATION frames, SETTINGS,
//! RST_STREAM, GOAWAY, and the small control frames. On the client's side it first consumes the
//! connection preface; [`is_preface_start`] tells cleartext prior-knowledge HTTP/2 from the
//! first bytes of a connection.
//!
//! Bounded: at most one frame is buffered, and a frame announcing more than the reader's
//! maximum frame size loses the direction before any of it is kept; an assembled header block
//! stops at its own limit, so a CONTINUATION flood is cut off, not buffered.
//!
//! Lost for good, reported once as [`Event::Error`] and then by [`FrameReader::failed`]: a
//! malformed frame (framing cannot be trusted past it) and a capture gap. HTTP/2 has no way to
//! find the next frame header in the middle of a stream (a header is nine arbitrary bytes), and
//! even if one were found the HPACK dynamic table would be wrong from the lost HEADERS on, so a
//! key read after a gap could be a wrong one (RFC 9113 section 4.3, RFC 7541 section 2.3.2).
//!
//! Left out: HPACK decoding, stream states, flow control, applying SETTINGS (the caller sets
//! the peer's SETTINGS_MAX_FRAME_SIZE with [`FrameReader::set_max_frame_size`]). Nothing here
//! judges the traffic beyond what framing needs.

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The frame header: length (24 bits), type, flags, stream id (RFC 9113 section 4.1).
pub const FRAME_HEADER_LEN: usize = 9;

/// SETTINGS_MAX_FRAME_SIZE's initial value, and the least it may be (RFC 9113 section 6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;

/// The largest SETTINGS_MAX_FRAME_SIZE allowed: 2^24 - 1.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The most CONTINUATION frames one header block may have. Empty ones cost no memory but
/// cost work; real senders need a handful (a block over the frame size, split once or twice).
pub const MAX_CONTINUATIONS: u32 = 256;

/// Frame types (RFC 9113 section 6).
pub mod frame_type {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 section 6); ACK shares END_STREAM's bit on SETTINGS and PING.
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Appends one frame to `out` (RFC 9113 section 4.1): for what writes HTTP/2 (the mirror's
/// answers, tests, generators). The payload is at most [`MAX_MAX_FRAME_SIZE`] bytes (the caller
/// keeps to its peer's maximum frame size); the stream id's reserved bit is written clear.
pub fn write(out: &mut Vec<u8>, frame_type: u8, flags: u8, stream: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_MAX_FRAME_SIZE as usize);
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[frame_type, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Whether a connection's first bytes are, or could still become, the client preface: the
/// whole preface at the start, or a non-empty prefix of it when fewer bytes came.
pub fn is_preface_start(bytes: &[u8]) -> bool {
    !bytes.is_empty() && (PREFACE.starts_with(bytes) || bytes.starts_with(PREFACE))
}

/// Which end sent the direction: only the client's starts with the preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// What framing found, in order. Payloads and blocks are borrowed from the chunk or from the
/// reader's buffers, valid for the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// DATA, padding removed.
    Data {
        stream: u32,
        payload: &'a [u8],
        end_stream: bool,
    },
    /// A whole header block: HEADERS and its CONTINUATIONs, padding and priority removed.
    HeaderBlock {
        stream: u32,
        block: &'a [u8],
        end_stream: bool,
    },
    /// A whole PUSH_PROMISE header block, assembled as for HEADERS.
    PushPromise {
        stream: u32,
        promised: u32,
        block: &'a [u8],
    },
    /// SETTINGS as sent: (identifier, value) pairs, empty for an acknowledgement.
    Settings {
        ack: bool,
        settings: Vec<(u16, u32)>,
    },
    RstStream {
        stream: u32,
        error_code: u32,
    },
    /// GOAWAY; its debug data is ignored. The last stream id is a 31-bit field after the
    /// reserved bit, and the error code follows it: Suricata read these wrongly until 2025.
    GoAway {
        last_stream_id: u32,
        error_code: u32,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    /// PING, with its opaque data (an endpoint answers with the same bytes).
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    Priority {
        stream: u32,
    },
    /// The direction is lost from here on; nothing follows.
    Error(FrameError),
}

/// Why a direction stopped being read as HTTP/2. Each is a stable snake_case counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A client direction that does not start with the connection preface.
    BadPreface,
    /// A frame longer than the maximum frame size (RFC 9113 section 4.2).
    FrameTooLarge,
    /// A fixed-length frame of the wrong length, or one too short for its fields.
    BadLength,
    /// Padding at least as long as what it pads (RFC 9113 sections 6.1, 6.2, 6.6).
    BadPadding,
    /// A frame that belongs to a stream on stream 0.
    StreamIdZero,
    /// A connection frame (SETTINGS, PING, GOAWAY) on a stream.
    StreamIdNotZero,
    /// A header block still open and another frame, or a frame on another stream, came
    /// (RFC 9113 section 6.10).
    ContinuationExpected,
    /// CONTINUATION with no header block open.
    UnexpectedContinuation,
    /// A header block over the reader's limit: a CONTINUATION flood, cut off.
    HeaderBlockTooLong,
    /// More than [`MAX_CONTINUATIONS`] CONTINUATION frames in one block (small or empty ones).
    TooManyContinuations,
    /// Bytes were lost in capture (see the module documentation for why this is the end).
    Gap,
}

impl FrameError {
    pub fn name(self) -> &'static str {
        match self {
            FrameError::BadPreface => "http2_bad_preface",
            FrameError::FrameTooLarge => "http2_frame_too_large",
            FrameError::BadLength => "http2_bad_frame_length",
            FrameError::BadPadding => "http2_bad_padding",
            FrameError::StreamIdZero => "http2_stream_id_zero",
            FrameError::StreamIdNotZero => "http2_stream_id_not_zero",
            FrameError::ContinuationExpected => "http2_continuation_expected",
            FrameError::UnexpectedContinuation => "http2_unexpected_continuation",
            FrameError::HeaderBlockTooLong => "http2_header_block_too_long",
            FrameError::TooManyContinuations => "http2_too_many_continuations",
            FrameError::Gap => "http2_gap",
        }
    }
}

/// What one [`FrameReader`] saw, for the caller to add to its stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Whole frames read, unknown ones included.
    pub frames: u64,
    /// Frames of unknown type, skipped (RFC 9113 section 5.5).
    pub unknown: u64,
    /// Bytes never framed: partial frames at the end, bytes after the direction was lost.
    pub bytes_dropped: u64,
    /// DATA payloads, padding included: what flow control counts (RFC 9113 section 6.9.1).
    pub data_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of the preface were seen.
    Preface(usize),
    Framing,
    Lost(FrameError),
}

/// A frame header's fields.
#[derive(Debug, Clone, Copy)]
struct Header {
    len: usize,
    frame_type: u8,
    flags: u8,
    stream: u32,
}

/// Masks the reserved bit off a 31-bit stream id.
fn stream_id(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b) & 0x7fff_ffff
}

fn parse_header(h: [u8; FRAME_HEADER_LEN]) -> Header {
    let [l0, l1, l2, frame_type, flags, s0, s1, s2, s3] = h;
    Header {
        len: usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2),
        frame_type,
        flags,
        stream: stream_id([s0, s1, s2, s3]),
    }
}

/// The header block being assembled: from a HEADERS or PUSH_PROMISE without END_HEADERS.
#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    stream: u32,
    kind: BlockKind,
    continuations: u32,
}

#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Headers { end_stream: bool },
    PushPromise { promised: u32 },
}

/// The framing of one direction.
#[derive(Debug)]
pub struct FrameReader {
    state: State,
    max_frame_size: usize,
    max_header_block: usize,
    /// The partial frame (header and payload so far); never more than one frame.
    buf: Vec<u8>,
    open: Option<OpenBlock>,
    /// The header block fragments so far, while `open`; at most `max_header_block` bytes.
    block: Vec<u8>,
    counts: FrameCounts,
}

impl FrameReader {
    /// A reader for the direction sent by `side` with the default maximum frame size, header
    /// blocks up to `max_header_block` bytes.
    pub fn new(side: Side, max_header_block: usize) -> Self {
        FrameReader {
            state: match side {
                Side::Client => State::Preface(0),
                Side::Server => State::Framing,
            },
            max_frame_size: DEFAULT_MAX_FRAME_SIZE as usize,
            max_header_block,
            buf: Vec::new(),
            open: None,
            block: Vec::new(),
            counts: FrameCounts::default(),
        }
    }

    /// A client direction whose preface was already consumed elsewhere (after `Upgrade: h2c`
    /// the preface follows the 101, and the caller may have matched it itself).
    pub fn after_preface(max_header_block: usize) -> Self {
        FrameReader::new(Side::Server, max_header_block)
    }

    /// The largest frame this direction may send: the receiver's SETTINGS_MAX_FRAME_SIZE,
    /// clamped to what RFC 9113 section 6.5.2 allows. A passive reader applies it when seen,
    /// not when acknowledged: a sender keeping to the old value keeps to the new one too.
    pub fn set_max_frame_size(&mut self, size: u32) {
        self.max_frame_size = size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE) as usize;
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    pub fn counts(&self) -> &FrameCounts {
        &self.counts
    }

    /// Why this direction is no longer read, once it is not.
    pub fn failed(&self) -> Option<FrameError> {
        match self.state {
            State::Lost(why) => Some(why),
            _ => None,
        }
    }

    /// Bytes held now: the partial frame and the header block so far. Never more than
    /// [`FrameReader::bound`].
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.block.len()
    }

    /// The most this reader ever holds.
    pub fn bound(&self) -> usize {
        (FRAME_HEADER_LEN + self.max_frame_size).saturating_add(self.max_header_block)
    }

    /// The next bytes of the direction. Calls `on_event` for everything they complete, in
    /// order. Once the direction is lost bytes are only counted.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match self.state {
                State::Lost(_) => {
                    self.counts.bytes_dropped += rest.len() as u64;
                    return;
                }
                State::Preface(seen) => rest = self.preface(rest, seen, &mut on_event),
                State::Framing => rest = self.frame(rest, &mut on_event),
            }
        }
    }

    /// Bytes are missing before the next chunk: the direction is lost (see the module
    /// documentation). A direction already lost keeps its first reason.
    pub fn gap(&mut self) {
        if let State::Lost(_) = self.state {
            return;
        }
        self.lose(FrameError::Gap, &[]);
    }

    fn preface<'a>(
        &mut self,
        rest: &'a [u8],
        seen: usize,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> &'a [u8] {
        let want = PREFACE.get(seen..).unwrap_or_default();
        let n = want.len().min(rest.len());
        let (head, tail) = rest.split_at(n);
        if want.get(..n) != Some(head) {
            // The part that matched in earlier chunks is dropped too, however the bytes came.
            self.counts.bytes_dropped += seen as u64;
            return self.fail(FrameError::BadPreface, rest, on_event);
        }
        self.state = if seen + n == PREFACE.len() {
            State::Framing
        } else {
            State::Preface(seen + n)
        };
        tail
    }

    fn check_header(&self, h: [u8; FRAME_HEADER_LEN]) -> Result<Header, FrameError> {
        let header = parse_header(h);
        if header.len > self.max_frame_size {
            return Err(FrameError::FrameTooLarge);
        }
        Ok(header)
    }

    /// Frames from `rest`; returns what is left when the state changed.
    fn frame<'a>(&mut self, mut rest: &'a [u8], on_event: &mut impl FnMut(Event<'_>)) -> &'a [u8] {
        // Whole frames straight from the chunk, without a copy.
        while self.buf.is_empty() {
            let Some((h, _)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
                break;
            };
            let header = match self.check_header(*h) {
                Ok(x) => x,
                Err(why) => return self.fail(why, rest, on_event),
            };
            let end = FRAME_HEADER_LEN + header.len;
            let Some(payload) = rest.get(FRAME_HEADER_LEN..end) else {
                break;
            };
            rest = rest.get(end..).unwrap_or_default();
            if let Err(why) = self.handle(header, payload, on_event) {
                return self.fail(why, rest, on_event);
            }
        }
        if rest.is_empty() {
            return rest;
        }
        // A frame begun in an earlier chunk, or one this chunk ends before completing.
        if self.buf.len() < FRAME_HEADER_LEN {
            let take = (FRAME_HEADER_LEN - self.buf.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.buf.extend_from_slice(head);
            rest = tail;
        }
        let Some(h) = self.buf.first_chunk::<FRAME_HEADER_LEN>() else {
            return rest;
        };
        let header = match self.check_header(*h) {
            Ok(x) => x,
            Err(why) => return self.fail(why, rest, on_event),
        };
        let want = (FRAME_HEADER_LEN + header.len).saturating_sub(self.buf.len());
        let (head, tail) = rest.split_at(want.min(rest.len()));
        self.buf.extend_from_slice(head);
        if self.buf.len() == FRAME_HEADER_LEN + header.len {
            // Taken out while handled, so the payload can be borrowed beside `&mut self`.
            let mut frame = std::mem::take(&mut self.buf);
            let result = self.handle(
                header,
                frame.get(FRAME_HEADER_LEN..).unwrap_or_default(),
                on_event,
            );
            frame.clear();
            self.buf = frame;
            if let Err(why) = result {
                return self.fail(why, tail, on_event);
            }
        }
        tail
    }

    /// One whole frame.
    fn handle(
        &mut self,
        h: Header,
        payload: &[u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(), FrameError> {
        self.counts.frames += 1;
        if let Some(open) = self.open
            && (h.frame_type != frame_type::CONTINUATION || h.stream != open.stream)
        {
            return Err(FrameError::ContinuationExpected);
        }
        let on_stream = || {
            if h.stream == 0 {
                Err(FrameError::StreamIdZero)
            } else {
                Ok(())
            }
        };
        let on_connection = || {
            if h.stream != 0 {
                Err(FrameError::StreamIdNotZero)
            } else {
                Ok(())
            }
        };
        let has = |flag: u8| h.flags & flag != 0;
        match h.frame_type {
            frame_type::DATA => {
                on_stream()?;
                self.counts.data_bytes += payload.len() as u64;
                on_event(Event::Data {
                    stream: h.stream,
                    payload: unpad(has(flags::PADDED), payload)?,
                    end_stream: has(flags::END_STREAM),
                });
            }
            frame_type::HEADERS => {
                on_stream()?;
                let mut fragment = unpad(has(flags::PADDED), payload)?;
                if has(flags::PRIORITY) {
                    // Exclusive bit, stream dependency and weight: priority is not our business.
                    fragment = fragment.get(5..).ok_or(FrameError::BadLength)?;
                }
                let kind = BlockKind::Headers {
                    end_stream: has(flags::END_STREAM),
                };
                self.begin(h, kind, fragment, on_event)?;
            }
            frame_type::PRIORITY => {
                on_stream()?;
                fixed::<5>(payload)?;
                on_event(Event::Priority { stream: h.stream });
            }
            frame_type::RST_STREAM => {
                on_stream()?;
                on_event(Event::RstStream {
                    stream: h.stream,
                    error_code: u32::from_be_bytes(fixed::<4>(payload)?),
                });
            }
            frame_type::SETTINGS => {
                on_connection()?;
                let ack = has(flags::ACK);
                if (ack && !payload.is_empty()) || !payload.len().is_multiple_of(6) {
                    return Err(FrameError::BadLength);
                }
                let settings = payload
                    .chunks_exact(6)
                    .map(|s| match s {
                        [i0, i1, v0, v1, v2, v3] => (
                            u16::from_be_bytes([*i0, *i1]),
                            u32::from_be_bytes([*v0, *v1, *v2, *v3]),
                        ),
                        _ => (0, 0),
                    })
                    .collect();
                on_event(Event::Settings { ack, settings });
            }
            frame_type::PUSH_PROMISE => {
                on_stream()?;
                let unpadded = unpad(has(flags::PADDED), payload)?;
                let (promised, fragment) = unpadded
                    .split_first_chunk::<4>()
                    .ok_or(FrameError::BadLength)?;
                let kind = BlockKind::PushPromise {
                    promised: stream_id(*promised),
                };
                self.begin(h, kind, fragment, on_event)?;
            }
            frame_type::PING => {
                on_connection()?;
                let data = fixed::<8>(payload)?;
                on_event(Event::Ping {
                    ack: has(flags::ACK),
                    data,
                });
            }
            frame_type::GOAWAY => {
                on_connection()?;
                let (ids, _debug_data) = payload
                    .split_first_chunk::<8>()
                    .ok_or(FrameError::BadLength)?;
                let [s0, s1, s2, s3, e0, e1, e2, e3] = *ids;
                on_event(Event::GoAway {
                    last_stream_id: stream_id([s0, s1, s2, s3]),
                    error_code: u32::from_be_bytes([e0, e1, e2, e3]),
                });
            }
            frame_type::WINDOW_UPDATE => {
                // On stream 0 for the connection, on a stream for that stream.
                on_event(Event::WindowUpdate {
                    stream: h.stream,
                    increment: stream_id(fixed::<4>(payload)?),
                });
            }
            frame_type::CONTINUATION => {
                on_stream()?;
                let mut open = self.open.ok_or(FrameError::UnexpectedContinuation)?;
                open.continuations += 1;
                if open.continuations > MAX_CONTINUATIONS {
                    return Err(FrameError::TooManyContinuations);
                }
                self.open = Some(open);
                if self.block.len() + payload.len() > self.max_header_block {
                    return Err(FrameError::HeaderBlockTooLong);
                }
                self.block.extend_from_slice(payload);
                if has(flags::END_HEADERS) {
                    on_event(block_event(open.stream, open.kind, &self.block));
                    self.block.clear();
                    self.open = None;
                }
            }
            // Unknown types are ignored (RFC 9113 section 5.5).
            _ => self.counts.unknown += 1,
        }
        Ok(())
    }

    /// The first fragment of a header block: whole with END_HEADERS, else kept for the
    /// CONTINUATIONs.
    fn begin(
        &mut self,
        h: Header,
        kind: BlockKind,
        fragment: &[u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(), FrameError> {
        if fragment.len() > self.max_header_block {
            return Err(FrameError::HeaderBlockTooLong);
        }
        if h.flags & flags::END_HEADERS != 0 {
            on_event(block_event(h.stream, kind, fragment));
        } else {
            self.block.extend_from_slice(fragment);
            self.open = Some(OpenBlock {
                stream: h.stream,
                kind,
                continuations: 0,
            });
        }
        Ok(())
    }

    /// Reports `why` and loses the direction; `rest` was not framed.
    fn fail<'a>(
        &mut self,
        why: FrameError,
        rest: &[u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> &'a [u8] {
        self.lose(why, rest);
        on_event(Event::Error(why));
        &[]
    }

    fn lose(&mut self, why: FrameError, rest: &[u8]) {
        self.counts.bytes_dropped += (self.buf.len() + self.block.len() + rest.len()) as u64;
        self.buf = Vec::new();
        self.block = Vec::new();
        self.open = None;
        self.state = State::Lost(why);
    }
}

fn block_event(stream: u32, kind: BlockKind, block: &[u8]) -> Event<'_> {
    match kind {
        BlockKind::Headers { end_stream } => Event::HeaderBlock {
            stream,
            block,
            end_stream,
        },
        BlockKind::PushPromise { promised } => Event::PushPromise {
            stream,
            promised,
            block,
        },
    }
}

/// A payload of exactly `N` bytes.
fn fixed<const N: usize>(payload: &[u8]) -> Result<[u8; N], FrameError> {
    <[u8; N]>::try_from(payload).map_err(|_| FrameError::BadLength)
}

/// The payload without its pad length byte and padding, when PADDED is set. Padding as long
/// as the frame's payload or longer is an error (RFC 9113 section 6.1).
fn unpad(padded: bool, payload: &[u8]) -> Result<&[u8], FrameError> {
    if !padded {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::BadPadding)?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(FrameError::BadPadding)?;
    rest.get(..keep).ok_or(FrameError::BadPadding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BLOCK_LIMIT: usize = 1024;

    fn frame(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write(&mut v, ty, fl, stream, payload);
        v
    }

    /// Events as their `Debug` text: owned, comparable, and shown plainly on failure.
    fn read_with(mut r: FrameReader, chunks: &[&[u8]]) -> (Vec<String>, FrameReader) {
        let mut out = Vec::new();
        for c in chunks {
            r.push(c, |e| out.push(format!("{e:?}")));
        }
        (out, r)
    }

    fn server(bytes: &[u8]) -> Vec<String> {
        read_with(FrameReader::new(Side::Server, BLOCK_LIMIT), &[bytes]).0
    }

    fn ev(e: Event<'_>) -> String {
        format!("{e:?}")
    }

    fn err(why: FrameError) -> String {
        ev(Event::Error(why))
    }

    #[test]
    fn client_preface_is_consumed_before_frames() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(frame_type::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let (whole, r) = read_with(FrameReader::new(Side::Client, BLOCK_LIMIT), &[&bytes]);
        let settings = ev(Event::Settings {
            ack: false,
            settings: vec![(3, 100)],
        });
        assert_eq!(whole, vec![settings.clone()]);
        assert_eq!(r.failed(), None);
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        let (split, _) = read_with(FrameReader::new(Side::Client, BLOCK_LIMIT), &ones);
        assert_eq!(split, vec![settings]);
    }

    #[test]
    fn client_without_preface_is_lost() {
        let bytes = b"PRI * HTTP/1.1\r\n\r\n";
        let (out, r) = read_with(
            FrameReader::new(Side::Client, BLOCK_LIMIT),
            &[&bytes[..5], &bytes[5..]],
        );
        assert_eq!(out, vec![err(FrameError::BadPreface)]);
        assert_eq!(r.failed(), Some(FrameError::BadPreface));
        assert_eq!(r.counts().bytes_dropped, bytes.len() as u64);
        assert_eq!(FrameError::BadPreface.name(), "http2_bad_preface");
    }

    #[test]
    fn preface_start_is_recognised_from_its_first_bytes() {
        assert!(is_preface_start(b"P"));
        assert!(is_preface_start(b"PRI * HTTP/2"));
        assert!(is_preface_start(PREFACE));
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&[0, 0, 0, 4]);
        assert!(is_preface_start(&more));
        assert!(!is_preface_start(b""));
        assert!(!is_preface_start(b"POST / HTTP/1.1\r\n"));
        assert!(!is_preface_start(b"PRI * HTTP/1.1"));
    }

    #[test]
    fn data_padding_is_removed() {
        let mut p = vec![3];
        p.extend_from_slice(b"body");
        p.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            server(&frame(
                frame_type::DATA,
                flags::PADDED | flags::END_STREAM,
                1,
                &p
            )),
            vec![ev(Event::Data {
                stream: 1,
                payload: b"body",
                end_stream: true
            })]
        );
    }

    #[test]
    fn padding_filling_the_whole_payload_leaves_empty_data() {
        assert_eq!(
            server(&frame(frame_type::DATA, flags::PADDED, 3, &[2, 0, 0])),
            vec![ev(Event::Data {
                stream: 3,
                payload: b"",
                end_stream: false
            })]
        );
    }

    #[test]
    fn padding_longer_than_the_payload_is_an_error() {
        assert_eq!(
            server(&frame(frame_type::DATA, flags::PADDED, 1, &[3, 0, 0])),
            vec![err(FrameError::BadPadding)]
        );
        assert_eq!(
            server(&frame(frame_type::DATA, flags::PADDED, 1, &[])),
            vec![err(FrameError::BadPadding)]
        );
    }

    #[test]
    fn data_on_stream_zero_is_an_error_and_nothing_follows() {
        let mut bytes = frame(frame_type::DATA, 0, 0, b"x");
        bytes.extend(frame(frame_type::DATA, 0, 1, b"y"));
        let (out, r) = read_with(FrameReader::new(Side::Server, BLOCK_LIMIT), &[&bytes]);
        assert_eq!(out, vec![err(FrameError::StreamIdZero)]);
        assert_eq!(r.counts().bytes_dropped, 10);
    }

    #[test]
    fn headers_with_padding_and_priority_give_the_bare_block() {
        let mut p = vec![2];
        p.extend_from_slice(&[0x80, 0, 0, 1, 15]);
        p.extend_from_slice(b"\x82\x84");
        p.extend_from_slice(&[0, 0]);
        let fl = flags::PADDED | flags::PRIORITY | flags::END_HEADERS | flags::END_STREAM;
        assert_eq!(
            server(&frame(frame_type::HEADERS, fl, 5, &p)),
            vec![ev(Event::HeaderBlock {
                stream: 5,
                block: b"\x82\x84",
                end_stream: true
            })]
        );
    }

    #[test]
    fn headers_too_short_for_priority_is_an_error() {
        assert_eq!(
            server(&frame(
                frame_type::HEADERS,
                flags::PRIORITY | flags::END_HEADERS,
                1,
                &[0, 0, 0]
            )),
            vec![err(FrameError::BadLength)]
        );
    }

    #[test]
    fn stream_id_reserved_bit_is_ignored() {
        assert_eq!(
            server(&frame(frame_type::DATA, 0, 0x8000_0007, b"a")),
            vec![ev(Event::Data {
                stream: 7,
                payload: b"a",
                end_stream: false
            })]
        );
    }

    #[test]
    fn continuation_frames_assemble_one_block() {
        let mut bytes = frame(frame_type::HEADERS, flags::END_STREAM, 1, b"ab");
        bytes.extend(frame(frame_type::CONTINUATION, 0, 1, b"cd"));
        bytes.extend(frame(
            frame_type::CONTINUATION,
            flags::END_HEADERS,
            1,
            b"ef",
        ));
        bytes.extend(frame(frame_type::DATA, 0, 1, b"z"));
        assert_eq!(
            server(&bytes),
            vec![
                ev(Event::HeaderBlock {
                    stream: 1,
                    block: b"abcdef",
                    end_stream: true
                }),
                ev(Event::Data {
                    stream: 1,
                    payload: b"z",
                    end_stream: false
                })
            ]
        );
    }

    #[test]
    fn frame_between_headers_and_continuation_is_an_error() {
        let mut bytes = frame(frame_type::HEADERS, 0, 1, b"ab");
        bytes.extend(frame(frame_type::PING, 0, 0, &[0; 8]));
        bytes.extend(frame(
            frame_type::CONTINUATION,
            flags::END_HEADERS,
            1,
            b"cd",
        ));
        assert_eq!(server(&bytes), vec![err(FrameError::ContinuationExpected)]);
    }

    #[test]
    fn unknown_frame_between_headers_and_continuation_is_an_error() {
        let mut bytes = frame(frame_type::HEADERS, 0, 1, b"ab");
        bytes.extend(frame(0xfa, 0, 1, b""));
        assert_eq!(server(&bytes), vec![err(FrameError::ContinuationExpected)]);
    }

    #[test]
    fn continuation_on_another_stream_is_an_error() {
        let mut bytes = frame(frame_type::HEADERS, 0, 1, b"ab");
        bytes.extend(frame(
            frame_type::CONTINUATION,
            flags::END_HEADERS,
            3,
            b"cd",
        ));
        assert_eq!(server(&bytes), vec![err(FrameError::ContinuationExpected)]);
    }

    #[test]
    fn continuation_without_headers_is_an_error() {
        assert_eq!(
            server(&frame(
                frame_type::CONTINUATION,
                flags::END_HEADERS,
                1,
                b"cd"
            )),
            vec![err(FrameError::UnexpectedContinuation)]
        );
    }

    #[test]
    fn continuation_flood_is_cut_off_at_the_block_limit() {
        let mut r = FrameReader::new(Side::Server, BLOCK_LIMIT);
        let mut out = Vec::new();
        r.push(&frame(frame_type::HEADERS, 0, 1, b""), |e| {
            out.push(format!("{e:?}"))
        });
        let piece = frame(frame_type::CONTINUATION, 0, 1, &[0; 100]);
        for _ in 0..1000 {
            r.push(&piece, |e| out.push(format!("{e:?}")));
            assert!(r.buffered() <= BLOCK_LIMIT);
        }
        assert_eq!(out, vec![err(FrameError::HeaderBlockTooLong)]);
        assert_eq!(r.failed(), Some(FrameError::HeaderBlockTooLong));
        assert_eq!(r.buffered(), 0);
        // Ten continuations of 100 fitted; the eleventh went over.
        assert_eq!(r.counts().frames, 12);
    }

    #[test]
    fn empty_continuation_flood_is_cut_off_by_count() {
        let mut bytes = frame(frame_type::HEADERS, 0, 1, b"ab");
        for _ in 0..MAX_CONTINUATIONS {
            bytes.extend(frame(frame_type::CONTINUATION, 0, 1, b""));
        }
        let (out, r) = read_with(FrameReader::new(Side::Server, BLOCK_LIMIT), &[&bytes]);
        assert_eq!(out, Vec::<String>::new());
        assert_eq!(r.failed(), None);
        let (out, _) = read_with(r, &[&frame(frame_type::CONTINUATION, 0, 1, b"")]);
        assert_eq!(out, vec![err(FrameError::TooManyContinuations)]);
    }

    #[test]
    fn block_exactly_at_the_limit_is_kept() {
        let mut bytes = frame(frame_type::HEADERS, 0, 1, &[1; BLOCK_LIMIT - 1]);
        bytes.extend(frame(frame_type::CONTINUATION, flags::END_HEADERS, 1, &[2]));
        let out = server(&bytes);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("HeaderBlock"), "{out:?}");
    }

    #[test]
    fn push_promise_is_assembled_with_its_promised_stream() {
        let mut p = vec![1];
        p.extend_from_slice(&0x8000_0002u32.to_be_bytes());
        p.extend_from_slice(b"ab");
        p.push(0);
        let mut bytes = frame(frame_type::PUSH_PROMISE, flags::PADDED, 1, &p);
        bytes.extend(frame(
            frame_type::CONTINUATION,
            flags::END_HEADERS,
            1,
            b"cd",
        ));
        assert_eq!(
            server(&bytes),
            vec![ev(Event::PushPromise {
                stream: 1,
                promised: 2,
                block: b"abcd"
            })]
        );
        assert_eq!(
            server(&frame(
                frame_type::PUSH_PROMISE,
                flags::END_HEADERS,
                1,
                &[0, 0]
            )),
            vec![err(FrameError::BadLength)]
        );
    }

    #[test]
    fn settings_are_listed_and_checked() {
        let mut p = vec![0, 1, 0, 0, 0x10, 0];
        p.extend_from_slice(&[0, 5, 0, 0, 0x40, 0]);
        assert_eq!(
            server(&frame(frame_type::SETTINGS, 0, 0, &p)),
            vec![ev(Event::Settings {
                ack: false,
                settings: vec![(1, 4096), (5, 16384)]
            })]
        );
        assert_eq!(
            server(&frame(frame_type::SETTINGS, flags::ACK, 0, &[])),
            vec![ev(Event::Settings {
                ack: true,
                settings: vec![]
            })]
        );
        assert_eq!(
            server(&frame(frame_type::SETTINGS, 0, 0, &[0; 7])),
            vec![err(FrameError::BadLength)]
        );
        assert_eq!(
            server(&frame(frame_type::SETTINGS, flags::ACK, 0, &[0; 6])),
            vec![err(FrameError::BadLength)]
        );
        assert_eq!(
            server(&frame(frame_type::SETTINGS, 0, 1, &[])),
            vec![err(FrameError::StreamIdNotZero)]
        );
    }

    #[test]
    fn rst_stream_gives_its_error_code() {
        assert_eq!(
            server(&frame(frame_type::RST_STREAM, 0, 3, &7u32.to_be_bytes())),
            vec![ev(Event::RstStream {
                stream: 3,
                error_code: 7
            })]
        );
        assert_eq!(
            server(&frame(frame_type::RST_STREAM, 0, 3, &[0; 5])),
            vec![err(FrameError::BadLength)]
        );
        assert_eq!(
            server(&frame(frame_type::RST_STREAM, 0, 0, &[0; 4])),
            vec![err(FrameError::StreamIdZero)]
        );
    }

    #[test]
    fn goaway_reads_last_stream_then_error_code_and_ignores_debug_data() {
        let mut p = 0x8000_0009u32.to_be_bytes().to_vec();
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(b"debug text");
        assert_eq!(
            server(&frame(frame_type::GOAWAY, 0, 0, &p)),
            vec![ev(Event::GoAway {
                last_stream_id: 9,
                error_code: 2
            })]
        );
        assert_eq!(
            server(&frame(frame_type::GOAWAY, 0, 0, &[0; 7])),
            vec![err(FrameError::BadLength)]
        );
        assert_eq!(
            server(&frame(frame_type::GOAWAY, 0, 1, &[0; 8])),
            vec![err(FrameError::StreamIdNotZero)]
        );
    }

    #[test]
    fn small_control_frames_are_checked_for_length() {
        assert_eq!(
            server(&frame(
                frame_type::WINDOW_UPDATE,
                0,
                0,
                &0x8000_0100u32.to_be_bytes()
            )),
            vec![ev(Event::WindowUpdate {
                stream: 0,
                increment: 256
            })]
        );
        assert_eq!(
            server(&frame(frame_type::PING, flags::ACK, 0, &[1; 8])),
            vec![ev(Event::Ping {
                ack: true,
                data: [1; 8]
            })]
        );
        assert_eq!(
            server(&frame(frame_type::PRIORITY, 0, 1, &[0; 5])),
            vec![ev(Event::Priority { stream: 1 })]
        );
        for (ty, len, stream) in [
            (frame_type::WINDOW_UPDATE, 3, 1),
            (frame_type::PING, 9, 0),
            (frame_type::PRIORITY, 4, 1),
        ] {
            assert_eq!(
                server(&frame(ty, 0, stream, &vec![0; len])),
                vec![err(FrameError::BadLength)],
                "type {ty}"
            );
        }
        assert_eq!(
            server(&frame(frame_type::PING, 0, 1, &[0; 8])),
            vec![err(FrameError::StreamIdNotZero)]
        );
        assert_eq!(
            server(&frame(frame_type::PRIORITY, 0, 0, &[0; 5])),
            vec![err(FrameError::StreamIdZero)]
        );
    }

    #[test]
    fn unknown_frame_types_are_skipped() {
        let mut bytes = frame(0xfa, 0xff, 0, b"whatever");
        bytes.extend(frame(frame_type::DATA, 0, 1, b"x"));
        let (out, r) = read_with(FrameReader::new(Side::Server, BLOCK_LIMIT), &[&bytes]);
        assert_eq!(
            out,
            vec![ev(Event::Data {
                stream: 1,
                payload: b"x",
                end_stream: false
            })]
        );
        assert_eq!(r.counts().unknown, 1);
        assert_eq!(r.counts().frames, 2);
    }

    #[test]
    fn frame_over_the_max_size_is_refused_from_its_header() {
        let big = vec![0; DEFAULT_MAX_FRAME_SIZE as usize + 1];
        let bytes = frame(frame_type::DATA, 0, 1, &big);
        // Only the header came: refused before the payload is buffered.
        let (out, r) = read_with(FrameReader::new(Side::Server, BLOCK_LIMIT), &[&bytes[..9]]);
        assert_eq!(out, vec![err(FrameError::FrameTooLarge)]);
        assert_eq!(r.buffered(), 0);
        // A frame of exactly the maximum is read.
        let at_max = frame(frame_type::DATA, 0, 1, &big[1..]);
        assert!(server(&at_max)[0].starts_with("Data"));
    }

    #[test]
    fn max_frame_size_follows_settings_within_the_rfc_range() {
        let mut r = FrameReader::new(Side::Server, BLOCK_LIMIT);
        r.set_max_frame_size(1 << 20);
        let bytes = frame(frame_type::DATA, 0, 1, &vec![0; 100_000]);
        let (out, r) = read_with(r, &[&bytes[..50_000], &bytes[50_000..]]);
        assert_eq!(out.len(), 1);
        assert_eq!(r.failed(), None);
        let mut r = FrameReader::new(Side::Server, BLOCK_LIMIT);
        r.set_max_frame_size(1);
        assert_eq!(r.max_frame_size(), DEFAULT_MAX_FRAME_SIZE as usize);
        r.set_max_frame_size(u32::MAX);
        assert_eq!(r.max_frame_size(), MAX_MAX_FRAME_SIZE as usize);
    }

    #[test]
    fn gap_loses_the_direction() {
        let bytes = frame(frame_type::DATA, 0, 1, b"hello");
        let mut r = FrameReader::new(Side::Server, BLOCK_LIMIT);
        r.push(&bytes[..7], |_| panic!("nothing is whole yet"));
        r.gap();
        assert_eq!(r.failed(), Some(FrameError::Gap));
        assert_eq!(r.buffered(), 0);
        r.push(&bytes, |_| panic!("nothing after a gap"));
        assert_eq!(r.counts().bytes_dropped, 7 + bytes.len() as u64);
        // A later gap keeps the first reason.
        let (_, mut r) = read_with(
            FrameReader::new(Side::Server, BLOCK_LIMIT),
            &[&frame(frame_type::DATA, 0, 0, b"")],
        );
        r.gap();
        assert_eq!(r.failed(), Some(FrameError::StreamIdZero));
    }

    #[test]
    fn reason_names_are_distinct_counter_names() {
        let all = [
            FrameError::BadPreface,
            FrameError::FrameTooLarge,
            FrameError::BadLength,
            FrameError::BadPadding,
            FrameError::StreamIdZero,
            FrameError::StreamIdNotZero,
            FrameError::ContinuationExpected,
            FrameError::UnexpectedContinuation,
            FrameError::HeaderBlockTooLong,
            FrameError::TooManyContinuations,
            FrameError::Gap,
        ];
        let mut names: Vec<&str> = all.iter().map(|e| e.name()).collect();
        assert!(names.iter().all(|n| {
            n.starts_with("http2_")
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        }));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    /// A valid frame, or a header block split into HEADERS and CONTINUATIONs.
    fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
        let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
        let stream = 1u32..1000;
        prop_oneof![
            (stream.clone(), bytes(300), any::<bool>(), 0u8..20).prop_map(|(s, d, end, pad)| {
                if pad == 0 {
                    frame(frame_type::DATA, u8::from(end), s, &d)
                } else {
                    let mut p = vec![pad];
                    p.extend_from_slice(&d);
                    p.extend(std::iter::repeat_n(0, usize::from(pad)));
                    frame(frame_type::DATA, flags::PADDED | u8::from(end), s, &p)
                }
            }),
            (
                stream.clone(),
                proptest::collection::vec(bytes(100), 1..4),
                any::<bool>()
            )
                .prop_map(|(s, parts, prio)| {
                    let last = parts.len() - 1;
                    let mut out = Vec::new();
                    for (i, part) in parts.iter().enumerate() {
                        let end = if i == last { flags::END_HEADERS } else { 0 };
                        if i == 0 {
                            let mut p = Vec::new();
                            let mut fl = end;
                            if prio {
                                p.extend_from_slice(&[0, 0, 0, 3, 16]);
                                fl |= flags::PRIORITY;
                            }
                            p.extend_from_slice(part);
                            out.extend(frame(frame_type::HEADERS, fl, s, &p));
                        } else {
                            out.extend(frame(frame_type::CONTINUATION, end, s, part));
                        }
                    }
                    out
                }),
            proptest::collection::vec((any::<u16>(), any::<u32>()), 0..5).prop_map(|l| {
                let p: Vec<u8> = l
                    .iter()
                    .flat_map(|(i, v)| i.to_be_bytes().into_iter().chain(v.to_be_bytes()))
                    .collect();
                frame(frame_type::SETTINGS, 0, 0, &p)
            }),
            (stream.clone(), any::<u32>()).prop_map(|(s, c)| frame(
                frame_type::RST_STREAM,
                0,
                s,
                &c.to_be_bytes()
            )),
            (any::<u32>(), any::<u32>(), bytes(20)).prop_map(|(l, c, d)| {
                let mut p = l.to_be_bytes().to_vec();
                p.extend_from_slice(&c.to_be_bytes());
                p.extend_from_slice(&d);
                frame(frame_type::GOAWAY, 0, 0, &p)
            }),
            (0u32..10, any::<u32>()).prop_map(|(s, i)| frame(
                frame_type::WINDOW_UPDATE,
                0,
                s,
                &i.to_be_bytes()
            )),
            any::<[u8; 8]>().prop_map(|o| frame(frame_type::PING, 0, 0, &o)),
            (10u8..=255, bytes(50)).prop_map(|(t, d)| frame(t, 0, 0, &d)),
        ]
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(
            frames in proptest::collection::vec(valid_frame(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let mut bytes = PREFACE.to_vec();
            bytes.extend(frames.concat());
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for a in at {
                chunks.push(&bytes[from..a]);
                from = a;
            }
            chunks.push(&bytes[from..]);
            let (whole, r1) = read_with(FrameReader::new(Side::Client, BLOCK_LIMIT), &[&bytes]);
            let (split, r2) = read_with(FrameReader::new(Side::Client, BLOCK_LIMIT), &chunks);
            prop_assert_eq!(r1.failed(), None);
            prop_assert_eq!(r2.failed(), None);
            prop_assert!(whole.iter().all(|e| !e.starts_with("Error")));
            prop_assert_eq!(whole, split);
            prop_assert_eq!(r1.counts(), r2.counts());
            prop_assert_eq!(r2.buffered(), 0);
        }

        #[test]
        fn random_bytes_never_panic_stay_bounded_and_split_alike(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            size in 1usize..40,
            client in any::<bool>(),
        ) {
            let side = if client { Side::Client } else { Side::Server };
            let mut r = FrameReader::new(side, 64);
            let mut errors = 0;
            for piece in data.chunks(size) {
                r.push(piece, |e| {
                    if matches!(e, Event::Error(_)) {
                        errors += 1;
                    }
                });
                prop_assert!(r.buffered() <= r.bound());
            }
            prop_assert!(errors <= 1);
            prop_assert_eq!(errors == 1, r.failed().is_some());
            let chunks: Vec<&[u8]> = data.chunks(size).collect();
            let (whole, w) = read_with(FrameReader::new(side, 64), &[&data]);
            let (split, _) = read_with(FrameReader::new(side, 64), &chunks);
            prop_assert_eq!(whole, split);
            prop_assert_eq!(w.counts(), r.counts());
        }
    }
}
