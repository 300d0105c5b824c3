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
    Ping {
        ack: bool,
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
        FRAME_HEADER_LEN + self.max_frame_size + self.max_header_block
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
                if (ack && !payload.is_empty()) || payload.len() % 6 != 0 {
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
                fixed::<8>(payload)?;
                on_event(Event::Ping {
                    ack: has(flags::ACK),
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
                let open = self.open.ok_or(FrameError::UnexpectedContinuation)?;
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
