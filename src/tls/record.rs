//! The TLS record layer on one reassembled direction, and the plaintext handshake messages the
//! decryptor needs (RFC 8446 sections 4 and 5, RFC 5246 section 6.2).
//!
//! - [`RecordReader`]: byte chunks in as reassembly delivers them (records split across chunks,
//!   several in one), whole records out. At most one record is buffered; a header that is not
//!   TLS or announces more than [`MAX_RECORD_LEN`] gives up the direction. After a capture gap
//!   ([`RecordReader::gap`]) it looks, over at most [`MAX_RESYNC_SCAN`] bytes, for the next
//!   plausible record header.
//! - [`HandshakeReader`]: handshake record fragments in (plaintext, or decrypted by the caller),
//!   whole handshake messages out; a message over [`MAX_HANDSHAKE_LEN`] is skipped and counted.
//! - [`parse_client_hello`], [`parse_server_hello`], [`parse_new_session_ticket_tls12`],
//!   [`parse_encrypted_extensions`]: a message body in, a plain owned struct out.
//!
//! Left out: decryption (`crypto`), which records are encrypted (the caller knows from the
//! handshake), SSLv2-framed hellos (counted as not TLS), certificates.
//!
//! Own parsers rather than tls-parser: the framing has to be incremental with our bounds and gap
//! resynchronisation (tls-parser parses whole buffers), and the hello fields are a handful of
//! length-prefixed reads; the crate would add nom 7, nom-derive and phf for them.
//! Every read goes through `Cursor`, which returns `None` instead of indexing past the end.

/// The largest record fragment accepted: 2^14 plaintext plus the 2048 bytes of expansion
/// TLS 1.2 allows a protected record (RFC 5246 section 6.2.3; TLS 1.3 allows 256).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// The record header: type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;

/// How many bytes after a gap are searched for the next record header: enough to cross the
/// rest of a record of the largest size twice over.
pub const MAX_RESYNC_SCAN: usize = 64 * 1024;

/// The largest handshake message reassembled (a certificate chain fits; more is not needed
/// from a passive reader).
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;

/// Record content types (RFC 8446 appendix B.1, RFC 6520 for heartbeat).
pub mod content_type {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
pub mod handshake_type {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const END_OF_EARLY_DATA: u8 = 5;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
    pub const KEY_UPDATE: u8 = 24;
}

/// Protocol version numbers as they appear on the wire.
pub mod version {
    pub const TLS10: u16 = 0x0301;
    pub const TLS11: u16 = 0x0302;
    pub const TLS12: u16 = 0x0303;
    pub const TLS13: u16 = 0x0304;
}

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 section 4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// One whole record, borrowed from the chunk or from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub content_type: u8,
    /// `legacy_record_version`: 0x0303 in TLS 1.2 and 1.3, 0x0301 in many first ClientHellos.
    pub version: u16,
    pub fragment: &'a [u8],
}

/// Why a direction stopped being read as TLS. Each is a stable snake_case counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSkip {
    /// A header with a content type outside 20..=24 or a version outside 0x0300..=0x03ff.
    NotTls,
    /// A header announcing more than [`MAX_RECORD_LEN`] bytes.
    RecordTooLong,
    /// No plausible header within [`MAX_RESYNC_SCAN`] bytes after a gap.
    ResyncFailed,
}

impl RecordSkip {
    pub fn name(self) -> &'static str {
        match self {
            RecordSkip::NotTls => "tls_not_tls",
            RecordSkip::RecordTooLong => "tls_record_too_long",
            RecordSkip::ResyncFailed => "tls_resync_failed",
        }
    }
}

/// What one [`RecordReader`] saw, for the caller to add to its stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub records: u64,
    pub gaps: u64,
    /// Gaps after which a plausible header was found.
    pub resyncs: u64,
    /// Bytes dropped: partial records at a gap, bytes searched past, bytes after giving up.
    pub bytes_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    /// `buf` holds the start of the next record (possibly empty).
    Framing,
    /// After a gap: `buf` holds the last up to 4 bytes searched, `scanned` bytes were passed.
    Resync {
        scanned: usize,
    },
    Failed(RecordSkip),
}

/// The record framing of one direction.
#[derive(Debug)]
pub struct RecordReader {
    state: ReaderState,
    /// The partial record (header and the fragment so far); never more than one record.
    buf: Vec<u8>,
    /// Set from a resynchronisation until the header after the found record checks too.
    probation: Option<Probation>,
    counts: RecordCounts,
}

/// A header found by searching ciphertext may be a false one: until the next header confirms
/// it, a bad header sends the reader back to searching instead of giving up.
#[derive(Debug, Clone, Copy)]
struct Probation {
    /// Bytes searched since the gap.
    scanned: usize,
    /// The record of the found header was read.
    read: bool,
}

impl Default for RecordReader {
    fn default() -> Self {
        RecordReader::new()
    }
}

/// A header's fields, or why it is refused.
fn check_header(h: [u8; RECORD_HEADER_LEN]) -> Result<(u8, u16, usize), RecordSkip> {
    let [ct, major, minor, len_hi, len_lo] = h;
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if !(content_type::CHANGE_CIPHER_SPEC..=content_type::HEARTBEAT).contains(&ct) || major != 3 {
        return Err(RecordSkip::NotTls);
    }
    if len > MAX_RECORD_LEN {
        return Err(RecordSkip::RecordTooLong);
    }
    Ok((ct, u16::from_be_bytes([major, minor]), len))
}

/// A header worth resynchronising on: stricter than [`check_header`] on the version, as the
/// search runs through ciphertext.
fn plausible_header(h: [u8; RECORD_HEADER_LEN]) -> bool {
    match check_header(h) {
        Ok((_, v, _)) => (version::TLS10..=version::TLS13).contains(&v),
        Err(_) => false,
    }
}

impl RecordReader {
    pub fn new() -> Self {
        RecordReader {
            state: ReaderState::Framing,
            buf: Vec::new(),
            probation: None,
            counts: RecordCounts::default(),
        }
    }

    pub fn counts(&self) -> &RecordCounts {
        &self.counts
    }

    /// Why this direction is no longer read, once it is not.
    pub fn failed(&self) -> Option<RecordSkip> {
        match self.state {
            ReaderState::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the reader is searching for a header after a gap.
    pub fn resyncing(&self) -> bool {
        matches!(self.state, ReaderState::Resync { .. })
    }

    /// The next bytes of the direction. Calls `on_record` for every record they complete, in
    /// order. Once the direction is given up ([`RecordReader::failed`]) bytes are only counted.
    pub fn push(&mut self, chunk: &[u8], mut on_record: impl FnMut(Record<'_>)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match self.state {
                ReaderState::Failed(_) => {
                    self.counts.bytes_dropped += rest.len() as u64;
                    return;
                }
                ReaderState::Resync { scanned } => rest = self.scan(rest, scanned),
                ReaderState::Framing => rest = self.frame(rest, &mut on_record),
            }
        }
    }

    /// Bytes are missing before the next chunk: the partial record is dropped and the next
    /// plausible header is searched for.
    pub fn gap(&mut self) {
        self.counts.gaps += 1;
        if let ReaderState::Failed(_) = self.state {
            return;
        }
        self.counts.bytes_dropped += self.buf.len() as u64;
        self.buf.clear();
        self.probation = None;
        self.state = ReaderState::Resync { scanned: 0 };
    }

    fn header_ok(&mut self) {
        if self.probation.is_some_and(|p| p.read) {
            self.probation = None;
        }
    }

    fn record_read(&mut self) {
        self.counts.records += 1;
        if let Some(p) = &mut self.probation {
            p.read = true;
        }
    }

    /// A bad header: the end of the direction, or, on probation, of a false resynchronisation.
    /// `in_buf`: the header is the first 5 bytes of `buf`, else of `rest`.
    fn refuse<'a>(&mut self, why: RecordSkip, rest: &'a [u8], in_buf: bool) -> &'a [u8] {
        let Some(p) = self.probation.take() else {
            return self.fail(why, rest);
        };
        // Search on from the byte after the bad header's first.
        self.counts.bytes_dropped += 1;
        self.state = ReaderState::Resync {
            scanned: p.scanned + 1,
        };
        if in_buf {
            self.buf.remove(0);
            rest
        } else {
            rest.get(1..).unwrap_or_default()
        }
    }

    /// Frames records from `rest`; returns what is left when the state changed.
    fn frame<'a>(
        &mut self,
        mut rest: &'a [u8],
        on_record: &mut impl FnMut(Record<'_>),
    ) -> &'a [u8] {
        // Whole records straight from the chunk, without a copy.
        while self.buf.is_empty() {
            let Some((h, _)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
                break;
            };
            let (ct, v, len) = match check_header(*h) {
                Ok(x) => x,
                Err(why) => return self.refuse(why, rest, false),
            };
            self.header_ok();
            let Some(fragment) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
                break;
            };
            self.record_read();
            on_record(Record {
                content_type: ct,
                version: v,
                fragment,
            });
            rest = rest.get(RECORD_HEADER_LEN + len..).unwrap_or_default();
        }
        if rest.is_empty() {
            return rest;
        }
        // A record begun in an earlier chunk, or one this chunk ends before completing.
        if self.buf.len() < RECORD_HEADER_LEN {
            let take = (RECORD_HEADER_LEN - self.buf.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.buf.extend_from_slice(head);
            rest = tail;
            let Some(h) = self.buf.first_chunk::<RECORD_HEADER_LEN>() else {
                return rest;
            };
            if let Err(why) = check_header(*h) {
                return self.refuse(why, rest, true);
            }
        }
        let Some(h) = self.buf.first_chunk::<RECORD_HEADER_LEN>() else {
            return rest;
        };
        let Ok((ct, v, len)) = check_header(*h) else {
            return rest;
        };
        self.header_ok();
        let want = RECORD_HEADER_LEN + len - self.buf.len();
        let (head, tail) = rest.split_at(want.min(rest.len()));
        self.buf.extend_from_slice(head);
        if self.buf.len() == RECORD_HEADER_LEN + len {
            self.record_read();
            on_record(Record {
                content_type: ct,
                version: v,
                fragment: self.buf.get(RECORD_HEADER_LEN..).unwrap_or_default(),
            });
            self.buf.clear();
        }
        tail
    }

    /// Searches `rest` for a plausible header, one byte at a time (rare, and bounded).
    fn scan<'a>(&mut self, rest: &'a [u8], mut scanned: usize) -> &'a [u8] {
        let mut i = 0;
        while let Some(&b) = rest.get(i) {
            i += 1;
            self.buf.push(b);
            let Some(h) = self.buf.first_chunk::<RECORD_HEADER_LEN>() else {
                continue;
            };
            if plausible_header(*h) {
                // The header stays in `buf`: framing goes on from there.
                self.counts.resyncs += 1;
                self.state = ReaderState::Framing;
                self.probation = Some(Probation {
                    scanned,
                    read: false,
                });
                return rest.get(i..).unwrap_or_default();
            }
            self.buf.remove(0);
            scanned += 1;
            self.counts.bytes_dropped += 1;
            if scanned >= MAX_RESYNC_SCAN {
                return self.fail(RecordSkip::ResyncFailed, rest.get(i..).unwrap_or_default());
            }
        }
        self.state = ReaderState::Resync { scanned };
        &[]
    }

    fn fail<'a>(&mut self, why: RecordSkip, rest: &'a [u8]) -> &'a [u8] {
        self.counts.bytes_dropped += (self.buf.len() + rest.len()) as u64;
        self.buf = Vec::new();
        self.state = ReaderState::Failed(why);
        &[]
    }
}

/// One whole handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeMessage<'a> {
    pub msg_type: u8,
    pub body: &'a [u8],
}

/// What one [`HandshakeReader`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeCounts {
    pub messages: u64,
    /// Messages over [`MAX_HANDSHAKE_LEN`], skipped (counter `tls_handshake_too_long`).
    pub too_long: u64,
    /// Partial messages dropped by [`HandshakeReader::reset`].
    pub dropped: u64,
}

/// Handshake message reassembly over the fragments of handshake records of one direction.
#[derive(Debug, Default)]
pub struct HandshakeReader {
    /// The partial message: its 4-byte header and the body so far.
    buf: Vec<u8>,
    /// Body bytes still to skip of a message over the bound.
    skip: usize,
    counts: HandshakeCounts,
}

const HANDSHAKE_HEADER_LEN: usize = 4;

impl HandshakeReader {
    pub fn new() -> Self {
        HandshakeReader::default()
    }

    pub fn counts(&self) -> &HandshakeCounts {
        &self.counts
    }

    /// Whether a message is partly read (a key change in TLS 1.3 must not fall inside one).
    pub fn in_message(&self) -> bool {
        !self.buf.is_empty() || self.skip > 0
    }

    /// Drops a partial message (a gap, or the record layer's keys changed).
    pub fn reset(&mut self) {
        if self.in_message() {
            self.counts.dropped += 1;
        }
        self.buf.clear();
        self.skip = 0;
    }

    /// The fragment of one handshake record. Calls `on_message` for every message completed.
    pub fn push(&mut self, fragment: &[u8], mut on_message: impl FnMut(HandshakeMessage<'_>)) {
        let mut rest = fragment;
        while !rest.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                self.skip -= n;
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
            // Whole messages straight from the fragment.
            if self.buf.is_empty()
                && let Some((&[t, a, b, c], body)) = rest.split_first_chunk::<4>()
            {
                let len = u32::from_be_bytes([0, a, b, c]) as usize;
                if len > MAX_HANDSHAKE_LEN {
                    self.counts.too_long += 1;
                    self.skip = len;
                    rest = body;
                    continue;
                }
                if let Some((msg, tail)) = body.split_at_checked(len) {
                    self.counts.messages += 1;
                    on_message(HandshakeMessage {
                        msg_type: t,
                        body: msg,
                    });
                    rest = tail;
                    continue;
                }
            }
            // The rest goes to the buffer.
            if self.buf.len() < HANDSHAKE_HEADER_LEN {
                let take = (HANDSHAKE_HEADER_LEN - self.buf.len()).min(rest.len());
                let (head, tail) = rest.split_at(take);
                self.buf.extend_from_slice(head);
                rest = tail;
            }
            let Some(&[t, a, b, c]) = self.buf.first_chunk::<4>() else {
                continue;
            };
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            if len > MAX_HANDSHAKE_LEN {
                self.counts.too_long += 1;
                self.buf.clear();
                self.skip = len;
                continue;
            }
            let want = HANDSHAKE_HEADER_LEN + len - self.buf.len();
            let (head, tail) = rest.split_at(want.min(rest.len()));
            self.buf.extend_from_slice(head);
            rest = tail;
            if self.buf.len() == HANDSHAKE_HEADER_LEN + len {
                self.counts.messages += 1;
                on_message(HandshakeMessage {
                    msg_type: t,
                    body: self.buf.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default(),
                });
                self.buf.clear();
            }
        }
    }
}

/// Why a handshake message body could not be read. Each is a stable snake_case counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// A length runs past the end of its enclosing field.
    Malformed,
}

impl HelloError {
    pub fn name(self) -> &'static str {
        match self {
            HelloError::Malformed => "tls_handshake_malformed",
        }
    }
}

/// Extension types (IANA TLS ExtensionType registry).
mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
    pub const ENCRYPT_THEN_MAC: u16 = 22;
    pub const EXTENDED_MASTER_SECRET: u16 = 23;
    pub const SESSION_TICKET: u16 = 35;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const EARLY_DATA: u16 = 42;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// What the decryptor needs from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    /// The first `host_name` of server_name (RFC 6066 section 3), lossily as UTF-8.
    pub server_name: Option<String>,
    /// The ALPN protocol names offered, in order (RFC 7301).
    pub alpn: Vec<Vec<u8>>,
    /// supported_versions (RFC 8446 section 4.2.1), empty when absent.
    pub supported_versions: Vec<u16>,
    pub encrypt_then_mac: bool,
    pub extended_master_secret: bool,
    pub pre_shared_key: bool,
    pub early_data: bool,
    /// encrypted_client_hello (0xfe0d): the real hello is encrypted, this one is the outer.
    pub encrypted_client_hello: bool,
    /// The session_ticket extension's content (RFC 5077): `Some(empty)` asks for a ticket,
    /// `Some(ticket)` resumes with one.
    pub session_ticket: Option<Vec<u8>>,
}

/// What the decryptor needs from a ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: u16,
    /// supported_versions' selected version when present (TLS 1.3), else `legacy_version`.
    pub version: u16,
    /// The random is [`HELLO_RETRY_REQUEST_RANDOM`]: a second ClientHello follows.
    pub hello_retry_request: bool,
    pub encrypt_then_mac: bool,
    pub extended_master_secret: bool,
    /// The server accepted a PSK (TLS 1.3 resumption).
    pub pre_shared_key: bool,
    /// The server will send a NewSessionTicket (TLS 1.2, RFC 5077).
    pub session_ticket: bool,
    /// The protocol the server chose (TLS 1.2; TLS 1.3 puts it in EncryptedExtensions).
    pub alpn: Option<Vec<u8>>,
}

/// A TLS 1.2 NewSessionTicket (RFC 5077 section 3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSessionTicket12 {
    pub lifetime_hint: u32,
    pub ticket: Vec<u8>,
}

/// What the decryptor needs from TLS 1.3 EncryptedExtensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptedExtensions {
    pub alpn: Option<Vec<u8>>,
    /// The server accepted 0-RTT data.
    pub early_data: bool,
}

/// Reads a ClientHello body (RFC 8446 section 4.1.2; extensions optional before TLS 1.3).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut c = Cursor(body);
    let mut hello = ClientHello {
        legacy_version: c.u16()?,
        random: c.array()?,
        session_id: c.vec8()?.to_vec(),
        ..ClientHello::default()
    };
    let mut suites = Cursor(c.vec16()?);
    while !suites.0.is_empty() {
        hello.cipher_suites.push(suites.u16()?);
    }
    c.vec8()?; // compression methods
    for (typ, mut data) in extensions(&mut c)? {
        match typ {
            ext::SERVER_NAME if hello.server_name.is_none() => {
                let mut list = Cursor(data.vec16()?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type == 0 && hello.server_name.is_none() {
                        hello.server_name = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            ext::ALPN => hello.alpn = alpn_list(&mut data)?,
            ext::SUPPORTED_VERSIONS => {
                let mut list = Cursor(data.vec8()?);
                hello.supported_versions.clear();
                while !list.0.is_empty() {
                    hello.supported_versions.push(list.u16()?);
                }
            }
            ext::ENCRYPT_THEN_MAC => hello.encrypt_then_mac = true,
            ext::EXTENDED_MASTER_SECRET => hello.extended_master_secret = true,
            ext::PRE_SHARED_KEY => hello.pre_shared_key = true,
            ext::EARLY_DATA => hello.early_data = true,
            ext::ENCRYPTED_CLIENT_HELLO => hello.encrypted_client_hello = true,
            ext::SESSION_TICKET => hello.session_ticket = Some(data.0.to_vec()),
            _ => {}
        }
    }
    Ok(hello)
}

/// Reads a ServerHello body (RFC 8446 section 4.1.3, RFC 5246 section 7.4.1.3).
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, HelloError> {
    let mut c = Cursor(body);
    let legacy_version = c.u16()?;
    let random: [u8; 32] = c.array()?;
    let mut hello = ServerHello {
        legacy_version,
        random,
        session_id: c.vec8()?.to_vec(),
        cipher_suite: c.u16()?,
        version: legacy_version,
        hello_retry_request: random == HELLO_RETRY_REQUEST_RANDOM,
        ..ServerHello::default()
    };
    c.u8()?; // compression method
    for (typ, mut data) in extensions(&mut c)? {
        match typ {
            ext::SUPPORTED_VERSIONS => hello.version = data.u16()?,
            ext::ALPN => hello.alpn = alpn_list(&mut data)?.into_iter().next(),
            ext::ENCRYPT_THEN_MAC => hello.encrypt_then_mac = true,
            ext::EXTENDED_MASTER_SECRET => hello.extended_master_secret = true,
            ext::PRE_SHARED_KEY => hello.pre_shared_key = true,
            ext::SESSION_TICKET => hello.session_ticket = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// Reads a TLS 1.2 NewSessionTicket body (RFC 5077 section 3.3).
pub fn parse_new_session_ticket_tls12(body: &[u8]) -> Result<NewSessionTicket12, HelloError> {
    let mut c = Cursor(body);
    Ok(NewSessionTicket12 {
        lifetime_hint: c.u32()?,
        ticket: c.vec16()?.to_vec(),
    })
}

/// Reads a decrypted TLS 1.3 EncryptedExtensions body (RFC 8446 section 4.3.1).
pub fn parse_encrypted_extensions(body: &[u8]) -> Result<EncryptedExtensions, HelloError> {
    let mut c = Cursor(body);
    let mut out = EncryptedExtensions::default();
    let list = c.vec16()?;
    for (typ, mut data) in extension_list(list)? {
        match typ {
            ext::ALPN => out.alpn = alpn_list(&mut data)?.into_iter().next(),
            ext::EARLY_DATA => out.early_data = true,
            _ => {}
        }
    }
    Ok(out)
}

/// The extensions block that ends a hello, if any: absent is an empty list (TLS 1.0 to 1.2).
fn extensions<'a>(c: &mut Cursor<'a>) -> Result<Vec<(u16, Cursor<'a>)>, HelloError> {
    if c.0.is_empty() {
        return Ok(Vec::new());
    }
    extension_list(c.vec16()?)
}

fn extension_list(list: &[u8]) -> Result<Vec<(u16, Cursor<'_>)>, HelloError> {
    let mut c = Cursor(list);
    let mut out = Vec::new();
    while !c.0.is_empty() {
        let typ = c.u16()?;
        out.push((typ, Cursor(c.vec16()?)));
    }
    Ok(out)
}

/// An ALPN extension body: `ProtocolName protocol_name_list<2..2^16-1>`.
fn alpn_list(data: &mut Cursor<'_>) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut list = Cursor(data.vec16()?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        out.push(list.vec8()?.to_vec());
    }
    Ok(out)
}

/// Big-endian reads off the front of a slice; running out is [`HelloError::Malformed`].
#[derive(Debug, Clone, Copy)]
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(HelloError::Malformed)?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HelloError> {
        let (head, tail) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(HelloError::Malformed)?;
        self.0 = tail;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, HelloError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, HelloError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn vec8(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::sync::{Arc, Mutex};

    type Owned = (u8, u16, Vec<u8>);

    fn read_records(chunks: &[&[u8]]) -> (Vec<Owned>, RecordReader) {
        let mut r = RecordReader::new();
        let mut out = Vec::new();
        for c in chunks {
            r.push(c, |rec| {
                out.push((rec.content_type, rec.version, rec.fragment.to_vec()))
            });
        }
        (out, r)
    }

    fn record(ct: u8, version: u16, fragment: &[u8]) -> Vec<u8> {
        let mut v = vec![ct];
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        v.extend_from_slice(fragment);
        v
    }

    /// The handshake messages of the plaintext handshake records before the first
    /// ChangeCipherSpec or application data (what follows is encrypted).
    fn plaintext_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let (records, _) = read_records(&[bytes]);
        let mut hs = HandshakeReader::new();
        let mut out = Vec::new();
        for (ct, _, fragment) in records {
            if ct != content_type::HANDSHAKE {
                break;
            }
            hs.push(&fragment, |m| out.push((m.msg_type, m.body.to_vec())));
        }
        out
    }

    fn message(msgs: &[(u8, Vec<u8>)], t: u8) -> Vec<u8> {
        msgs.iter()
            .find(|m| m.0 == t)
            .map(|m| m.1.clone())
            .unwrap_or_else(|| panic!("no handshake message of type {t}"))
    }

    /// Client randoms as rustls logs them.
    #[derive(Debug, Default)]
    struct Randoms(Mutex<Vec<Vec<u8>>>);

    impl rustls::KeyLog for Randoms {
        fn log(&self, _label: &str, client_random: &[u8], _secret: &[u8]) {
            if let Ok(mut v) = self.0.lock() {
                v.push(client_random.to_vec());
            }
        }
    }

    struct Peers {
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        randoms: Arc<Randoms>,
    }

    /// A client and a server of `versions`, the server with a throwaway certificate for
    /// api.example.com, session tickets, and only `server_groups` for key exchange.
    fn peers(
        versions: &[&'static rustls::SupportedProtocolVersion],
        server_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    ) -> Peers {
        let cert = rcgen::generate_simple_self_signed(vec!["api.example.com".to_string()])
            .expect("certificate");
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let mut roots = RootCertStore::empty();
        roots.add(der.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let randoms = Arc::new(Randoms::default());
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        client.key_log = randoms.clone();
        let mut server_provider = rustls::crypto::ring::default_provider();
        if let Some(groups) = server_groups {
            server_provider.kx_groups = groups;
        }
        let mut server = ServerConfig::builder_with_provider(Arc::new(server_provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("server config");
        server.alpn_protocols = vec![b"h2".to_vec()];
        server.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
        Peers {
            client: Arc::new(client),
            server: Arc::new(server),
            randoms,
        }
    }

    /// Runs one connection in memory; returns the bytes each side sent.
    fn connect(p: &Peers) -> (Vec<u8>, Vec<u8>) {
        let name = ServerName::try_from("api.example.com").expect("name");
        let mut client = ClientConnection::new(p.client.clone(), name).expect("client");
        let mut server = ServerConnection::new(p.server.clone()).expect("server");
        let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
        for _ in 0..16 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).expect("client write");
            }
            c2s.extend_from_slice(&buf);
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("server read");
                server.process_new_packets().expect("server process");
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).expect("server write");
            }
            s2c.extend_from_slice(&buf);
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("client read");
                client.process_new_packets().expect("client process");
            }
            if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
                break;
            }
        }
        (c2s, s2c)
    }

    fn tls12() -> Peers {
        peers(&[&rustls::version::TLS12], None)
    }

    fn tls13() -> Peers {
        peers(&[&rustls::version::TLS13], None)
    }

    #[test]
    fn client_hello_from_rustls_gives_sni_alpn_suites_and_the_logged_random() {
        let p = tls13();
        let (c2s, _) = connect(&p);
        let ch = parse_client_hello(&message(&plaintext_messages(&c2s), 1)).expect("hello");
        assert_eq!(ch.server_name.as_deref(), Some("api.example.com"));
        assert_eq!(ch.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(
            ch.cipher_suites.contains(&0x1301),
            "{:x?}",
            ch.cipher_suites
        );
        assert_eq!(ch.supported_versions, vec![version::TLS13]);
        assert_eq!(ch.legacy_version, version::TLS12);
        let logged = p.randoms.0.lock().expect("lock").clone();
        assert!(!logged.is_empty());
        assert!(
            logged.iter().all(|r| r == &ch.random),
            "random differs from the key log"
        );
        assert!(!ch.encrypted_client_hello && !ch.pre_shared_key && !ch.early_data);
    }

    #[test]
    fn server_hello_tls13_selects_1_3_from_supported_versions() {
        let p = tls13();
        let (c2s, s2c) = connect(&p);
        let ch = parse_client_hello(&message(&plaintext_messages(&c2s), 1)).expect("hello");
        let sh = parse_server_hello(&message(&plaintext_messages(&s2c), 2)).expect("hello");
        assert_eq!(sh.version, version::TLS13);
        assert_eq!(sh.legacy_version, version::TLS12);
        assert!((0x1301..=0x1303).contains(&sh.cipher_suite));
        assert!(!sh.hello_retry_request);
        // TLS 1.3 echoes the session id and puts ALPN in EncryptedExtensions.
        assert_eq!(sh.session_id, ch.session_id);
        assert_eq!(sh.alpn, None);
        // Everything after the ServerHello is encrypted: one plaintext handshake message.
        assert_eq!(plaintext_messages(&s2c).len(), 1);
    }

    #[test]
    fn server_hello_tls12_carries_alpn_ems_and_the_ticket_follows() {
        let p = tls12();
        let (c2s, s2c) = connect(&p);
        let ch = parse_client_hello(&message(&plaintext_messages(&c2s), 1)).expect("hello");
        assert!(ch.extended_master_secret);
        assert_eq!(ch.session_ticket, Some(Vec::new()), "asks for a ticket");
        let msgs = plaintext_messages(&s2c);
        let sh = parse_server_hello(&message(&msgs, 2)).expect("hello");
        assert_eq!(sh.version, version::TLS12);
        assert_eq!(sh.alpn.as_deref(), Some(&b"h2"[..]));
        assert!(sh.extended_master_secret && sh.session_ticket && !sh.hello_retry_request);
        assert!(ch.cipher_suites.contains(&sh.cipher_suite));
        let types: Vec<u8> = msgs.iter().map(|m| m.0).collect();
        // Hello, certificate, key exchange, done; then, after the client's flight, the ticket
        // in clear before the server's ChangeCipherSpec.
        assert_eq!(types, [2, 11, 12, 14, 4]);
        let ticket = parse_new_session_ticket_tls12(&message(&msgs, 4)).expect("ticket");
        // It comes back in the next ClientHello.
        assert!(!ticket.ticket.is_empty());
        let (c2s, _) = connect(&p);
        let again = parse_client_hello(&message(&plaintext_messages(&c2s), 1)).expect("hello");
        assert_eq!(again.session_ticket.as_ref(), Some(&ticket.ticket));
    }

    #[test]
    fn hello_retry_request_is_detected_by_its_random() {
        // The client's first key share (X25519) is one the server does not take.
        let p = peers(
            &[&rustls::version::TLS13],
            Some(vec![rustls::crypto::ring::kx_group::SECP256R1]),
        );
        let (_, s2c) = connect(&p);
        let hellos: Vec<ServerHello> = plaintext_messages(&s2c)
            .iter()
            .filter(|m| m.0 == handshake_type::SERVER_HELLO)
            .map(|m| parse_server_hello(&m.1).expect("hello"))
            .collect();
        assert!(hellos[0].hello_retry_request);
        assert_eq!(hellos[0].random, HELLO_RETRY_REQUEST_RANDOM);
        assert_eq!(hellos[0].version, version::TLS13);
        // The ServerHello after the second ClientHello is an ordinary one.
        let (records, _) = read_records(&[&s2c]);
        let mut hs = HandshakeReader::new();
        let mut second = None;
        let mut hellos_seen = 0;
        for (_, _, fragment) in records.iter().filter(|r| r.0 == content_type::HANDSHAKE) {
            hs.push(fragment, |m| {
                if m.msg_type == handshake_type::SERVER_HELLO {
                    hellos_seen += 1;
                    if hellos_seen == 2 {
                        second = parse_server_hello(m.body).ok();
                    }
                }
            });
            if second.is_some() {
                break;
            }
        }
        let second = second.expect("a second ServerHello");
        assert!(!second.hello_retry_request);
        assert_eq!(second.version, version::TLS13);
    }

    #[test]
    fn records_split_at_every_byte_give_the_same_records() {
        let p = tls12();
        let (c2s, s2c) = connect(&p);
        for bytes in [&c2s, &s2c] {
            let (whole, r) = read_records(&[bytes]);
            assert!(whole.len() >= 3, "{} records", whole.len());
            assert_eq!(r.failed(), None);
            for i in 0..=bytes.len() {
                let (a, b) = bytes.split_at(i);
                assert_eq!(read_records(&[a, b]).0, whole, "split at {i}");
            }
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(read_records(&bytewise).0, whole);
        }
    }

    #[test]
    fn several_messages_in_one_record_and_one_message_over_several() {
        let msgs: Vec<u8> = [(1u8, &b"abc"[..]), (2, b""), (11, &[7u8; 300][..])]
            .iter()
            .flat_map(|(t, body)| {
                let mut m = vec![*t, 0, 0, 0];
                m[2..].copy_from_slice(&(body.len() as u16).to_be_bytes());
                m.extend_from_slice(body);
                m
            })
            .collect();
        let mut bytes = record(22, 0x0303, &msgs[..100]);
        bytes.extend(record(22, 0x0303, &msgs[100..101]));
        bytes.extend(record(22, 0x0303, &msgs[101..]));
        let got = plaintext_messages(&bytes);
        let want = vec![(1, b"abc".to_vec()), (2, Vec::new()), (11, vec![7u8; 300])];
        assert_eq!(got, want);
    }

    #[test]
    fn record_over_the_bound_gives_up_the_direction() {
        let mut bytes = vec![23, 3, 3];
        bytes.extend_from_slice(&((MAX_RECORD_LEN + 1) as u16).to_be_bytes());
        bytes.extend(record(23, 0x0303, b"later"));
        let (recs, r) = read_records(&[&bytes]);
        assert!(recs.is_empty());
        assert_eq!(r.failed(), Some(RecordSkip::RecordTooLong));
        assert_eq!(
            r.failed().map(RecordSkip::name),
            Some("tls_record_too_long")
        );
        assert_eq!(r.counts().bytes_dropped, bytes.len() as u64);
    }

    #[test]
    fn record_of_exactly_the_bound_is_read() {
        let big = vec![1u8; MAX_RECORD_LEN];
        let bytes = record(23, 0x0303, &big);
        let (a, b) = bytes.split_at(7);
        let (recs, r) = read_records(&[a, b]);
        assert_eq!(recs, vec![(23, 0x0303, big)]);
        assert_eq!(r.failed(), None);
    }

    #[test]
    fn bytes_that_are_not_tls_give_up_the_direction() {
        let (recs, r) = read_records(&[b"GET / HTTP/1.1\r\n\r\n"]);
        assert!(recs.is_empty());
        assert_eq!(r.failed(), Some(RecordSkip::NotTls));
        // An SSLv2-framed hello too.
        let (_, r) = read_records(&[&[0x80, 0x2e, 0x01, 0x03, 0x01]]);
        assert_eq!(r.failed(), Some(RecordSkip::NotTls));
    }

    #[test]
    fn gap_resyncs_on_the_next_record_header() {
        let first = record(23, 0x0303, &[0xaa; 40]);
        let second = record(23, 0x0303, &[0xbb; 30]);
        let third = record(21, 0x0303, &[2, 0]);
        let mut r = RecordReader::new();
        let mut got = Vec::new();
        // The first record's start arrives, then a gap swallows its end and some of it is
        // delivered after the gap, followed by whole records.
        r.push(&first[..10], |rec| got.push(rec.fragment.to_vec()));
        r.gap();
        assert!(r.resyncing());
        let mut after = first[20..].to_vec();
        after.extend_from_slice(&second);
        after.extend_from_slice(&third);
        for c in after.chunks(3) {
            r.push(c, |rec| got.push(rec.fragment.to_vec()));
        }
        assert_eq!(got, vec![vec![0xbb; 30], vec![2, 0]]);
        assert_eq!(r.failed(), None);
        assert_eq!(r.counts().gaps, 1);
        assert_eq!(r.counts().resyncs, 1);
        assert_eq!(r.counts().bytes_dropped, 10 + 25);
    }

    #[test]
    fn false_header_found_after_a_gap_is_given_up_for_the_next_one() {
        // After the gap: a plausible header inside ciphertext (type 23, 0x0303, length 2), a
        // byte that cannot start a header, then real records.
        let mut after = vec![0x17, 3, 3, 0, 2, 0xff, 0xff, 0x00, 0x99];
        after.extend(record(23, 0x0303, b"real"));
        after.extend(record(23, 0x0303, b"next"));
        for split in 0..=after.len() {
            let mut r = RecordReader::new();
            r.gap();
            let mut got = Vec::new();
            let (a, b) = after.split_at(split);
            for c in [a, b] {
                r.push(c, |rec| got.push(rec.fragment.to_vec()));
            }
            let want = [b"\xff\xff".to_vec(), b"real".to_vec(), b"next".to_vec()];
            assert_eq!(got, want, "split at {split}");
            assert_eq!(r.failed(), None);
            // Once two headers followed each other, a bad one ends the direction again.
            r.push(&[0x00, 3, 3, 0, 0], |_| panic!("no record"));
            assert_eq!(r.failed(), Some(RecordSkip::NotTls));
        }
        // Without a gap the first header is trusted: the byte after its record is not TLS.
        let (recs, r) = read_records(&[&after]);
        assert_eq!(recs, vec![(23, 0x0303, vec![0xff, 0xff])]);
        assert_eq!(r.failed(), Some(RecordSkip::NotTls));
    }

    #[test]
    fn gap_into_bytes_without_a_header_gives_up_after_the_bound() {
        let mut r = RecordReader::new();
        r.gap();
        let noise = vec![0u8; MAX_RESYNC_SCAN - 1];
        r.push(&noise, |_| panic!("no record"));
        assert!(r.resyncing(), "still searching one byte short of the bound");
        r.push(&[0, 0, 0, 0, 0], |_| panic!("no record"));
        assert_eq!(r.failed(), Some(RecordSkip::ResyncFailed));
    }

    #[test]
    fn handshake_message_over_the_bound_is_skipped_and_the_next_read() {
        let len = MAX_HANDSHAKE_LEN + 1;
        let mut bytes = vec![11, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        bytes.extend(vec![0u8; len]);
        bytes.extend([20, 0, 0, 2, 9, 9]);
        let mut hs = HandshakeReader::new();
        let mut got = Vec::new();
        for c in bytes.chunks(1000) {
            hs.push(c, |m| got.push((m.msg_type, m.body.to_vec())));
        }
        assert_eq!(got, vec![(20, vec![9, 9])]);
        assert_eq!(hs.counts().too_long, 1);
        assert!(!hs.in_message());
        // A message of exactly the bound is read.
        let mut bytes = vec![11, (MAX_HANDSHAKE_LEN >> 16) as u8, 0, 0];
        bytes.extend(vec![5u8; MAX_HANDSHAKE_LEN]);
        let mut hs = HandshakeReader::new();
        let mut n = 0;
        hs.push(&bytes, |m| n += m.body.len());
        assert_eq!(n, MAX_HANDSHAKE_LEN);
    }

    #[test]
    fn truncated_hellos_are_malformed_never_a_panic() {
        let p = tls12();
        let (c2s, s2c) = connect(&p);
        let ch = message(&plaintext_messages(&c2s), 1);
        let sh = message(&plaintext_messages(&s2c), 2);
        for i in 0..ch.len() {
            let _ = parse_client_hello(&ch[..i]);
        }
        for i in 0..sh.len() {
            let _ = parse_server_hello(&sh[..i]);
        }
        // Cut inside the extensions: an error, not a hello without them.
        assert_eq!(
            parse_client_hello(&ch[..ch.len() - 1]),
            Err(HelloError::Malformed)
        );
        assert_eq!(
            parse_server_hello(&sh[..sh.len() - 1]),
            Err(HelloError::Malformed)
        );
    }

    #[test]
    fn encrypted_extensions_give_alpn_and_early_data() {
        // alpn ["h2"], early_data, an unknown extension.
        let body = [
            0, 19, 0, 16, 0, 5, 0, 3, 2, b'h', b'2', 0, 42, 0, 0, 0xaa, 0xaa, 0, 2, 1, 2,
        ];
        let ee = parse_encrypted_extensions(&body).expect("extensions");
        assert_eq!(ee.alpn.as_deref(), Some(&b"h2"[..]));
        assert!(ee.early_data);
        let ee = parse_encrypted_extensions(&[0, 0]).expect("extensions");
        assert_eq!(ee, EncryptedExtensions::default());
        assert_eq!(
            parse_encrypted_extensions(&body[..10]),
            Err(HelloError::Malformed)
        );
    }

    #[test]
    fn client_hello_flags_ech_psk_and_early_data() {
        // A hand-made hello: no session id, one suite, null compression, and the extensions
        // encrypted_client_hello, early_data, encrypt_then_mac and pre_shared_key (last).
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let exts = [
            0xfe, 0x0d, 0, 1, 0, 0, 42, 0, 0, 0, 22, 0, 0, 0, 41, 0, 2, 0, 0,
        ];
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let ch = parse_client_hello(&body).expect("hello");
        assert!(ch.encrypted_client_hello && ch.early_data && ch.encrypt_then_mac);
        assert!(ch.pre_shared_key && !ch.extended_master_secret);
        assert_eq!(ch.random, [7; 32]);
        assert_eq!(ch.cipher_suites, vec![0x1301]);
        assert_eq!(ch.server_name, None);
        // Without extensions (TLS 1.0 style): a hello with none of them.
        let ch = parse_client_hello(&body[..body.len() - exts.len() - 2]).expect("hello");
        assert!(!ch.encrypted_client_hello && ch.session_ticket.is_none());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_records(
            recs in proptest::collection::vec((20u8..=24, proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let bytes: Vec<u8> = recs.iter().flat_map(|(t, f)| record(*t, 0x0303, f)).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for a in at {
                chunks.push(&bytes[from..a]);
                from = a;
            }
            chunks.push(&bytes[from..]);
            let want: Vec<Owned> = recs.into_iter().map(|(t, f)| (t, 0x0303, f)).collect();
            prop_assert_eq!(read_records(&chunks).0, want);
        }

        #[test]
        fn handshake_messages_survive_any_record_boundaries(
            msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..6),
            sizes in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let bytes: Vec<u8> = msgs.iter().flat_map(|(t, b)| {
                let mut m = vec![*t, 0, 0, 0];
                m[2..].copy_from_slice(&(b.len() as u16).to_be_bytes());
                m.extend_from_slice(b);
                m
            }).collect();
            let mut hs = HandshakeReader::new();
            let mut got = Vec::new();
            let mut rest = &bytes[..];
            let mut i = 0;
            while !rest.is_empty() {
                let (a, b) = rest.split_at(sizes[i % sizes.len()].min(rest.len()));
                hs.push(a, |m| got.push((m.msg_type, m.body.to_vec())));
                rest = b;
                i += 1;
            }
            prop_assert_eq!(got, msgs);
            prop_assert!(!hs.in_message());
        }
    }
}
