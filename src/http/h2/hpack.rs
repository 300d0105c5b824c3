//! HPACK (RFC 7541): one direction's header blocks to header lists.
//!
//! Takes the header blocks of one direction of one connection, in order, each whole (HEADERS
//! plus its CONTINUATIONs, padding and priority already removed); gives each block's header
//! fields, in order, as borrowed name and value bytes with a flag for never-indexed fields
//! (section 6.2.3: the sender marked them sensitive). It keeps that direction's dynamic table
//! (section 2.3.2), bounded by the SETTINGS_HEADER_TABLE_SIZE the decoder is given and by
//! [`MAX_TABLE_SIZE`] whatever the peer says, and bounds each decoded list by the caller's
//! budget (RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE counting), so that a small block of indexed
//! references (an HPACK bomb) is cut off after at most that many bytes of output.
//!
//! Any error leaves the decoder broken: the encoder's table and ours may differ from then on,
//! so every later block is refused without decoding rather than read against a wrong table (a
//! key read from a broken table must never be used; SPEC "HTTP/2"). It leaves out the encoder
//! side and any HTTP/2 rule above HPACK (pseudo-header order, lowercase names, connection
//! headers): those belong to whoever reads the list.
//!
//! Our own decoder rather than a crate: `hpack` 0.3 is unmaintained and has a panic advisory,
//! `fluke-hpack` and `httlib-hpack` panic on the byte 0x3f, `loona-hpack` is research-grade,
//! and the `h2` crate keeps its decoder private.

// Every byte here comes from the peer: no indexing, unwrap or expect outside the tests.
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

use std::collections::VecDeque;

/// Ceiling of the dynamic table, whatever SETTINGS_HEADER_TABLE_SIZE allows (SPEC "HTTP/2":
/// the table is at most its SETTINGS value and 64 KiB).
pub const MAX_TABLE_SIZE: usize = 64 * 1024;

/// SETTINGS_HEADER_TABLE_SIZE until the peer's SETTINGS say otherwise (RFC 9113 section 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Per-entry overhead counted in table sizes and header list sizes (RFC 7541 section 4.1,
/// RFC 9113 section 6.5.2).
pub const ENTRY_OVERHEAD: usize = 32;

/// Why a header block could not be decoded. Each name is a stable counter name; the caller
/// may fold them all into `http2_headers_undecodable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// An earlier block failed: the table state is unknown, nothing more is decoded.
    Broken,
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than five continuation bytes or above `u32::MAX` (section 5.1).
    IntegerOverflow,
    /// Index 0, or an index past the static and dynamic tables (section 2.3.3).
    BadIndex,
    /// A dynamic table size update after the first field of a block (section 4.2).
    SizeUpdateNotAtStart,
    /// A dynamic table size update above the SETTINGS limit (section 6.3).
    SizeUpdateTooLarge,
    /// A Huffman string containing EOS (section 5.2).
    HuffmanEos,
    /// Huffman padding longer than 7 bits or not all ones (section 5.2).
    HuffmanPadding,
    /// The decoded list would exceed the caller's budget.
    ListTooLarge,
}

impl HpackError {
    pub fn name(self) -> &'static str {
        match self {
            HpackError::Broken => "hpack_broken",
            HpackError::Truncated => "hpack_truncated",
            HpackError::IntegerOverflow => "hpack_integer_overflow",
            HpackError::BadIndex => "hpack_bad_index",
            HpackError::SizeUpdateNotAtStart => "hpack_size_update_not_at_start",
            HpackError::SizeUpdateTooLarge => "hpack_size_update_too_large",
            HpackError::HuffmanEos => "hpack_huffman_eos",
            HpackError::HuffmanPadding => "hpack_huffman_padding",
            HpackError::ListTooLarge => "hpack_list_too_large",
        }
    }
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for HpackError {}

/// The HPACK decoding state of one direction of one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: Table,
    /// SETTINGS_HEADER_TABLE_SIZE as the decoder's side announced it, capped at
    /// [`MAX_TABLE_SIZE`]: the most a size update may ask for.
    limit: usize,
    broken: bool,
    /// Scratch for literal names and values, kept to spare an allocation per field.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of a connection: empty table, default size and limit.
    pub fn new() -> Decoder {
        Decoder {
            table: Table::new(DEFAULT_TABLE_SIZE),
            limit: DEFAULT_TABLE_SIZE,
            broken: false,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Records SETTINGS_HEADER_TABLE_SIZE (once acknowledged) as the bound of later size
    /// updates, capped at [`MAX_TABLE_SIZE`]. The table itself keeps its size until the
    /// encoder sends an update (section 4.2); that the encoder does so after a lowered limit
    /// is not checked, since a passive observer may misjudge when the setting took effect,
    /// and the table stays within [`MAX_TABLE_SIZE`] either way.
    pub fn set_max_size_limit(&mut self, n: u32) {
        self.limit = usize::try_from(n)
            .unwrap_or(MAX_TABLE_SIZE)
            .min(MAX_TABLE_SIZE);
    }

    /// Whether an error has left the table state unknown: every later block is refused.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes the dynamic table holds, counted as in section 4.1.
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    /// The dynamic table's current maximum size (the last size update, or the default).
    pub fn max_table_size(&self) -> usize {
        self.table.max_size
    }

    /// Decodes one whole header block, calling `out(name, value, sensitive)` for each field in
    /// order, `sensitive` for never-indexed fields. Returns the list's size (name + value + 32
    /// per field), at most `max_list_bytes`.
    ///
    /// On an error the fields already given belong to a block that failed and should be
    /// dropped; the decoder is broken from then on.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_bytes: usize,
        mut out: impl FnMut(&[u8], &[u8], bool),
    ) -> Result<usize, HpackError> {
        if self.broken {
            return Err(HpackError::Broken);
        }
        let result = self.decode_block(block, max_list_bytes, &mut out);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn decode_block(
        &mut self,
        mut rest: &[u8],
        max_list_bytes: usize,
        out: &mut impl FnMut(&[u8], &[u8], bool),
    ) -> Result<usize, HpackError> {
        let mut used: usize = 0;
        let mut at_start = true;
        while let Some(&first) = rest.first() {
            if first & 0x80 != 0 {
                // Indexed header field (section 6.1).
                let index = integer(&mut rest, 7)?;
                let (name, value) = self.table.lookup(index)?;
                used = charge(used, name, value, max_list_bytes)?;
                out(name, value, false);
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (section 6.3): only before the first field.
                if !at_start {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let size = integer(&mut rest, 5)?;
                if size > self.limit {
                    return Err(HpackError::SizeUpdateTooLarge);
                }
                self.table.resize(size);
                continue;
            } else {
                // Literal header field: with incremental indexing (01, 6-bit prefix, section
                // 6.2.1), without indexing (0000, section 6.2.2) or never indexed (0001,
                // section 6.2.3), the last two with a 4-bit prefix.
                let (prefix, indexing, sensitive) = if first & 0xc0 == 0x40 {
                    (6, true, false)
                } else {
                    (4, false, first & 0x10 != 0)
                };
                let index = integer(&mut rest, prefix)?;
                // Room left in the budget for this field's name and value, so that no
                // literal is copied or Huffman-decoded far past it.
                let room = max_list_bytes
                    .saturating_sub(used)
                    .saturating_sub(ENTRY_OVERHEAD);
                self.name.clear();
                if index == 0 {
                    string(&mut rest, &mut self.name, room)?;
                } else {
                    let (name, _) = self.table.lookup(index)?;
                    self.name.extend_from_slice(name);
                }
                self.value.clear();
                string(
                    &mut rest,
                    &mut self.value,
                    room.saturating_sub(self.name.len()),
                )?;
                used = charge(used, &self.name, &self.value, max_list_bytes)?;
                out(&self.name, &self.value, sensitive);
                if indexing {
                    self.table.insert(&self.name, &self.value);
                }
            }
            at_start = false;
        }
        Ok(used)
    }

    #[cfg(test)]
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table
            .entries
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }
}

/// Adds one field to the list size, refusing it past the budget before any copy is made.
fn charge(used: usize, name: &[u8], value: &[u8], max: usize) -> Result<usize, HpackError> {
    used.checked_add(name.len())
        .and_then(|n| n.checked_add(value.len()))
        .and_then(|n| n.checked_add(ENTRY_OVERHEAD))
        .filter(|&n| n <= max)
        .ok_or(HpackError::ListTooLarge)
}

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The dynamic table (section 2.3.2): newest entry first, evicted from the back.
#[derive(Debug, Clone)]
struct Table {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl Table {
    fn new(max_size: usize) -> Table {
        Table {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The field at `index` in the joint address space (section 2.3.3): static entries first,
    /// then the dynamic table, newest first.
    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index.checked_sub(STATIC_TABLE.len() + 1) {
            None => STATIC_TABLE
                .get(index.wrapping_sub(1))
                .map(|&(n, v)| (n, v))
                .ok_or(HpackError::BadIndex),
            Some(i) => self
                .entries
                .get(i)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(HpackError::BadIndex),
        }
    }

    fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    /// Section 4.4: evict until the entry fits; an entry larger than the whole table empties
    /// it and is not added, which is not an error.
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let entry = name.len() + value.len() + ENTRY_OVERHEAD;
        if entry > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - entry);
        self.entries.push_front((name.into(), value.into()));
        self.size += entry;
    }
}

/// Reads an integer with an `prefix`-bit prefix (section 5.1) from the front of `rest`,
/// advancing it. The first byte's upper bits are the caller's. At most five continuation
/// bytes and `u32::MAX`: anything larger is no real length, index or size.
fn integer(rest: &mut &[u8], prefix: u8) -> Result<usize, HpackError> {
    let (&first, mut tail) = rest.split_first().ok_or(HpackError::Truncated)?;
    let mask = u8::MAX >> (8 - prefix);
    let mut value = u64::from(first & mask);
    if value == u64::from(mask) {
        let mut shift = 0u32;
        loop {
            let (&byte, t) = tail.split_first().ok_or(HpackError::Truncated)?;
            tail = t;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
            value += u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *rest = tail;
    u32::try_from(value)
        .ok()
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(HpackError::IntegerOverflow)
}

/// Reads a string literal (section 5.2) from the front of `rest` into `out`, refusing one
/// that decodes to more than `room` bytes.
fn string(rest: &mut &[u8], out: &mut Vec<u8>, room: usize) -> Result<(), HpackError> {
    let huffman = rest.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(rest, 7)?;
    let (bytes, tail) = rest.split_at_checked(len).ok_or(HpackError::Truncated)?;
    *rest = tail;
    if huffman {
        huffman_decode(bytes, out, room)
    } else if len > room {
        Err(HpackError::ListTooLarge)
    } else {
        out.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes Huffman-coded bytes (section 5.2, Appendix B) onto `out`, a bit at a time through
/// the canonical code: at each length, the codes of that length are one run of numbers.
/// More than `room` bytes of output is [`HpackError::ListTooLarge`].
fn huffman_decode(bytes: &[u8], out: &mut Vec<u8>, room: usize) -> Result<(), HpackError> {
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            let first = HUFFMAN.first.get(len).copied().unwrap_or(0);
            let count = HUFFMAN.count.get(len).copied().unwrap_or(0);
            let offset = code.wrapping_sub(first);
            if code >= first && offset < count {
                let at = HUFFMAN.start.get(len).copied().unwrap_or(0) + offset as usize;
                let symbol = HUFFMAN.symbols.get(at).copied().unwrap_or(EOS);
                let byte = u8::try_from(symbol).map_err(|_| HpackError::HuffmanEos)?;
                if out.len() >= room {
                    return Err(HpackError::ListTooLarge);
                }
                out.push(byte);
                code = 0;
                len = 0;
            } else if len >= MAX_CODE_LEN {
                // Unreachable with a complete code; a guard all the same.
                return Err(HpackError::HuffmanEos);
            }
        }
    }
    // What is left must be a prefix of EOS: at most 7 bits, all ones.
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::HuffmanPadding);
    }
    Ok(())
}

/// The static table (Appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The end-of-string symbol (Appendix B): its 30 ones never appear inside a string.
const EOS: u16 = 256;

const MAX_CODE_LEN: usize = 30;

/// Code lengths of symbols 0 to 256 (Appendix B). The code is canonical (shorter codes first,
/// equal lengths in symbol order), so the lengths alone give every code.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47 ' '..'/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63 '0'..'?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79 '@'..'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95 'P'..'_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111 '`'..'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127 'p'..DEL
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
    30, // EOS
];

/// The canonical code laid out for decoding: per length, the first code, how many codes have
/// that length, and where their symbols start in `symbols` (sorted by length, then symbol).
struct Canonical {
    first: [u32; MAX_CODE_LEN + 1],
    count: [u32; MAX_CODE_LEN + 1],
    start: [usize; MAX_CODE_LEN + 1],
    symbols: [u16; 257],
    /// Each symbol's code, right-aligned (for the tests' encoder and checks).
    #[cfg_attr(not(test), allow(dead_code))]
    codes: [u32; 257],
}

static HUFFMAN: Canonical = canonical();

// Runs at compile time on the constant table: an index out of range would fail the build.
#[allow(clippy::indexing_slicing)]
const fn canonical() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_CODE_LEN + 1],
        count: [0; MAX_CODE_LEN + 1],
        start: [0; MAX_CODE_LEN + 1],
        symbols: [0; 257],
        codes: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code: u32 = 0;
    let mut at = 0;
    let mut len = 1;
    while len <= MAX_CODE_LEN {
        c.first[len] = code;
        c.start[len] = at;
        let mut s = 0;
        while s < 257 {
            if HUFFMAN_LENGTHS[s] as usize == len {
                c.symbols[at] = s as u16;
                c.codes[s] = code;
                code += 1;
                at += 1;
            }
            s += 1;
        }
        code <<= 1;
        len += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Field = (Vec<u8>, Vec<u8>, bool);

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<Field>, HpackError> {
        decode_bounded(d, block, usize::MAX)
    }

    fn decode_bounded(d: &mut Decoder, block: &[u8], max: usize) -> Result<Vec<Field>, HpackError> {
        let mut fields = Vec::new();
        d.decode(block, max, |n, v, s| {
            fields.push((n.to_vec(), v.to_vec(), s))
        })?;
        Ok(fields)
    }

    fn plain(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec(), false))
            .collect()
    }

    fn table(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    // --- a small encoder, for the tests only, from the same tables ---

    fn enc_integer(out: &mut Vec<u8>, high: u8, prefix: u8, mut value: usize) {
        let mask = (1usize << prefix) - 1;
        if value < mask {
            out.push(high | value as u8);
            return;
        }
        out.push(high | mask as u8);
        value -= mask;
        while value >= 128 {
            out.push((value % 128) as u8 | 0x80);
            value /= 128;
        }
        out.push(value as u8);
    }

    fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        for &b in bytes {
            let len = u32::from(HUFFMAN_LENGTHS[usize::from(b)]);
            acc = (acc << len) | u64::from(HUFFMAN.codes[usize::from(b)]);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            // Pad with the most significant bits of EOS: ones.
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    fn enc_string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
        if huffman {
            let h = huffman_encode(s);
            enc_integer(out, 0x80, 7, h.len());
            out.extend_from_slice(&h);
        } else {
            enc_integer(out, 0, 7, s.len());
            out.extend_from_slice(s);
        }
    }

    /// How the test encoder writes one field.
    #[derive(Debug, Clone, Copy)]
    enum Repr {
        /// Indexed when the whole field is in a table, else a literal with indexing.
        Indexed,
        Incremental,
        WithoutIndexing,
        NeverIndexed,
    }

    /// The encoder's own model of the dynamic table, kept apart from [`Table`].
    #[derive(Default)]
    struct Encoder {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        max: usize,
    }

    impl Encoder {
        fn new() -> Encoder {
            Encoder {
                entries: Vec::new(),
                max: DEFAULT_TABLE_SIZE,
            }
        }

        fn size(&self) -> usize {
            self.entries
                .iter()
                .map(|(n, v)| n.len() + v.len() + 32)
                .sum()
        }

        fn shrink(&mut self) {
            while self.size() > self.max {
                self.entries.pop();
            }
        }

        fn find(&self, name: &[u8], value: Option<&[u8]>) -> Option<usize> {
            let hit = |n: &[u8], v: &[u8]| n == name && value.is_none_or(|want| want == v);
            STATIC_TABLE
                .iter()
                .position(|(n, v)| hit(n, v))
                .map(|i| i + 1)
                .or_else(|| {
                    self.entries
                        .iter()
                        .position(|(n, v)| hit(n, v))
                        .map(|i| i + 62)
                })
        }

        fn size_update(&mut self, out: &mut Vec<u8>, size: usize) {
            enc_integer(out, 0x20, 5, size);
            self.max = size;
            self.shrink();
        }

        fn field(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8], repr: Repr, huff: bool) {
            if let Repr::Indexed = repr
                && let Some(i) = self.find(name, Some(value))
            {
                enc_integer(out, 0x80, 7, i);
                return;
            }
            let (high, prefix) = match repr {
                Repr::Indexed | Repr::Incremental => (0x40, 6),
                Repr::WithoutIndexing => (0x00, 4),
                Repr::NeverIndexed => (0x10, 4),
            };
            match self.find(name, None) {
                Some(i) => enc_integer(out, high, prefix, i),
                None => {
                    enc_integer(out, high, prefix, 0);
                    enc_string(out, name, huff);
                }
            }
            enc_string(out, value, huff);
            if high == 0x40 {
                self.entries.insert(0, (name.to_vec(), value.to_vec()));
                if name.len() + value.len() + 32 > self.max {
                    self.entries.clear();
                }
                self.shrink();
            }
        }
    }

    // --- Appendix C ---

    #[test]
    fn c1_integers_decode_as_in_the_rfc() {
        // C.1.1: 10 on a 5-bit prefix; C.1.2: 1337 on a 5-bit prefix; C.1.3: 42 on 8 bits.
        let mut b: &[u8] = &[0b111_01010];
        assert_eq!(integer(&mut b, 5), Ok(10));
        assert!(b.is_empty());
        let mut b: &[u8] = &[0b000_11111, 0b1001_1010, 0b0000_1010, 0xaa];
        assert_eq!(integer(&mut b, 5), Ok(1337));
        assert_eq!(b, &[0xaa]);
        let mut b: &[u8] = &[42];
        assert_eq!(integer(&mut b, 8), Ok(42));
    }

    #[test]
    fn integers_past_u32_or_five_continuations_are_refused_not_wrapped() {
        // u32::MAX itself is fine: 31 + continuation bytes.
        let mut max = Vec::new();
        enc_integer(&mut max, 0, 5, u32::MAX as usize);
        assert_eq!(integer(&mut &max[..], 5), Ok(u32::MAX as usize));
        let mut over = Vec::new();
        enc_integer(&mut over, 0, 5, u32::MAX as usize + 1);
        assert_eq!(integer(&mut &over[..], 5), Err(HpackError::IntegerOverflow));
        // Zero continuations padding a small number: six of them is too many.
        let padded = [0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            integer(&mut &padded[..], 5),
            Err(HpackError::IntegerOverflow)
        );
        let long = [
            0x1fu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(integer(&mut &long[..], 5), Err(HpackError::IntegerOverflow));
        // Ends while a continuation is announced.
        assert_eq!(
            integer(&mut &[0x1f, 0x80][..], 5),
            Err(HpackError::Truncated)
        );
        assert_eq!(integer(&mut &[][..], 5), Err(HpackError::Truncated));
    }

    #[test]
    fn c2_single_representations() {
        let mut d = Decoder::new();
        let f = decode(
            &mut d,
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        )
        .unwrap();
        assert_eq!(f, plain(&[("custom-key", "custom-header")]));
        assert_eq!(d.entries(), table(&[("custom-key", "custom-header")]));
        assert_eq!(d.table_size(), 55);

        let mut d = Decoder::new();
        let f = decode(&mut d, &hex("040c 2f73 616d 706c 652f 7061 7468")).unwrap();
        assert_eq!(f, plain(&[(":path", "/sample/path")]));
        assert!(d.entries().is_empty());

        let mut d = Decoder::new();
        let f = decode(&mut d, &hex("1008 7061 7373 776f 7264 0673 6563 7265 74")).unwrap();
        assert_eq!(f, vec![(b"password".to_vec(), b"secret".to_vec(), true)]);
        assert!(d.entries().is_empty());

        let mut d = Decoder::new();
        assert_eq!(
            decode(&mut d, &hex("82")).unwrap(),
            plain(&[(":method", "GET")])
        );
        assert!(d.entries().is_empty());
    }

    const REQUESTS: [&[(&str, &str)]; 3] = [
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ],
    ];

    const REQUEST_TABLES: [(&[(&str, &str)], usize); 3] = [
        (&[(":authority", "www.example.com")], 57),
        (
            &[
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ],
            110,
        ),
        (
            &[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ],
            164,
        ),
    ];

    fn run_requests(blocks: [&str; 3]) {
        let mut d = Decoder::new();
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(
                decode(&mut d, &hex(block)).unwrap(),
                plain(REQUESTS[i]),
                "request {i}"
            );
            assert_eq!(d.entries(), table(REQUEST_TABLES[i].0), "request {i}");
            assert_eq!(d.table_size(), REQUEST_TABLES[i].1, "request {i}");
        }
    }

    #[test]
    fn c3_requests_without_huffman() {
        run_requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn c4_requests_with_huffman() {
        run_requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    const RESPONSES: [&[(&str, &str)]; 3] = [
        &[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ],
        &[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ],
        &[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ],
    ];

    const RESPONSE_TABLES: [(&[(&str, &str)], usize); 3] = [
        (
            &[
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
                (":status", "302"),
            ],
            222,
        ),
        (
            &[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private"),
            ],
            222,
        ),
        (
            &[
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
                ("content-encoding", "gzip"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ],
            215,
        ),
    ];

    fn run_responses(blocks: [&str; 3]) {
        // Appendix C.5 and C.6 use a 256-byte table, so eviction runs.
        let mut d = Decoder::new();
        d.table.resize(256);
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(
                decode(&mut d, &hex(block)).unwrap(),
                plain(RESPONSES[i]),
                "response {i}"
            );
            assert_eq!(d.entries(), table(RESPONSE_TABLES[i].0), "response {i}");
            assert_eq!(d.table_size(), RESPONSE_TABLES[i].1, "response {i}");
        }
    }

    #[test]
    fn c5_responses_without_huffman_evict_the_oldest() {
        run_responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
             3d31",
        ]);
    }

    #[test]
    fn c6_responses_with_huffman_evict_the_oldest() {
        run_responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn blocks_from_nghttp2_decode_with_the_key() {
        // Two requests from node's http2 client (nghttp2's encoder) to a plain TCP listener,
        // HEADERS payloads as sent: Huffman names and values, then dynamic table references.
        let mut d = Decoder::new();
        let first = hex(
            "83048863b85824e3b262a3418b089d5c0b8170dc65d038ef86408b3485a6b3a4b513d2dd4beb036b2d31",
        );
        let second = hex("83048863b85824e3b262a3bf867e036b2d32");
        let mut want = plain(&[
            (":method", "POST"),
            (":path", "/v1/charges"),
            (":authority", "127.0.0.1:37067"),
            (":scheme", "http"),
            ("idempotency-key", "k-1"),
        ]);
        assert_eq!(decode(&mut d, &first).unwrap(), want);
        want[4].1 = b"k-2".to_vec();
        assert_eq!(decode(&mut d, &second).unwrap(), want);
        assert_eq!(d.entries().len(), 3);
    }

    // --- Huffman ---

    #[test]
    fn huffman_codes_match_appendix_b_samples() {
        let samples: [(usize, u32); 12] = [
            (0, 0x1ff8),
            (1, 0x7fffd8),
            (9, 0xffffea),
            (b' ' as usize, 0x14),
            (b'/' as usize, 0x18),
            (b'0' as usize, 0x0),
            (b'\\' as usize, 0x7fff0),
            (b'~' as usize, 0x1ffd),
            (128, 0xfffe6),
            (199, 0x1ffffec),
            (255, 0x3ffffee),
            (256, 0x3fffffff),
        ];
        for (sym, code) in samples {
            assert_eq!(HUFFMAN.codes[sym], code, "symbol {sym}");
        }
        // A complete prefix code: the Kraft sum is exactly one.
        let kraft: u64 = HUFFMAN_LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
    }

    #[test]
    fn every_byte_round_trips_through_huffman() {
        for b in 0..=255u8 {
            for s in [vec![b], vec![b, b, b], vec![b'a', b, 0xff, b]] {
                let mut out = Vec::new();
                huffman_decode(&huffman_encode(&s), &mut out, usize::MAX).unwrap();
                assert_eq!(out, s, "byte {b}");
            }
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        huffman_decode(&huffman_encode(&all), &mut out, usize::MAX).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn huffman_padding_must_be_short_and_all_ones() {
        let mut out = Vec::new();
        // 'a' is 00011 (5 bits): padded with 111 is fine, with 110 is not.
        assert_eq!(huffman_decode(&[0b0001_1111], &mut out, usize::MAX), Ok(()));
        assert_eq!(out, b"a");
        assert_eq!(
            huffman_decode(&[0b0001_1110], &mut out, usize::MAX),
            Err(HpackError::HuffmanPadding)
        );
        // A whole byte of ones after a full symbol is 8 bits of padding: too long.
        assert_eq!(
            huffman_decode(&[0b0001_1111, 0xff], &mut out, usize::MAX),
            Err(HpackError::HuffmanPadding)
        );
        // '0' is 00000: three zero bits left over are not a prefix of EOS.
        assert_eq!(
            huffman_decode(&[0x00], &mut out, usize::MAX),
            Err(HpackError::HuffmanPadding)
        );
        // An empty string is fine.
        assert_eq!(huffman_decode(&[], &mut out, usize::MAX), Ok(()));
    }

    #[test]
    fn huffman_eos_inside_a_string_is_refused() {
        let mut out = Vec::new();
        // EOS is 30 ones, followed by 2 ones of padding.
        assert_eq!(
            huffman_decode(&[0xff; 4], &mut out, usize::MAX),
            Err(HpackError::HuffmanEos)
        );
        // 'a' then EOS then padding.
        let mut bits: u64 = 0b00011;
        bits = (bits << 30) | 0x3fff_ffff;
        bits = (bits << 5) | 0b11111; // 40 bits
        let bytes: Vec<u8> = (0..5).rev().map(|i| (bits >> (8 * i)) as u8).collect();
        assert_eq!(
            huffman_decode(&bytes, &mut Vec::new(), usize::MAX),
            Err(HpackError::HuffmanEos)
        );
    }

    #[test]
    fn byte_0x3f_alone_is_an_error_not_a_panic() {
        // A size update announcing a continuation that never comes.
        let mut d = Decoder::new();
        assert_eq!(decode(&mut d, &[0x3f]), Err(HpackError::Truncated));
        assert!(d.is_broken());
        // And as a literal's name length prefix's start.
        let mut d = Decoder::new();
        assert_eq!(decode(&mut d, &[0x40, 0x3f]), Err(HpackError::Truncated));
    }

    // --- table size updates and eviction ---

    #[test]
    fn size_update_after_a_field_breaks_the_decoder() {
        let mut d = Decoder::new();
        assert_eq!(
            decode(&mut d, &[0x82, 0x20]),
            Err(HpackError::SizeUpdateNotAtStart)
        );
        assert!(d.is_broken());
        // Broken for good: even a valid block is refused, without output.
        let mut called = false;
        assert_eq!(
            d.decode(&[0x82], 1000, |_, _, _| called = true),
            Err(HpackError::Broken)
        );
        assert!(!called);
    }

    #[test]
    fn size_updates_at_the_start_are_fine_and_may_repeat() {
        let mut d = Decoder::new();
        // To 0 then to 4096 (section 4.2: the smallest, then the final), then a field.
        let mut block = vec![0x20];
        enc_integer(&mut block, 0x20, 5, 4096);
        block.push(0x82);
        assert_eq!(
            decode(&mut d, &block).unwrap(),
            plain(&[(":method", "GET")])
        );
        assert_eq!(d.max_table_size(), 4096);
        // A block of nothing but an update is a valid, empty list.
        assert_eq!(decode(&mut d, &[0x20]).unwrap(), vec![]);
        assert_eq!(d.max_table_size(), 0);
    }

    #[test]
    fn size_update_above_the_settings_limit_breaks_the_decoder() {
        let mut d = Decoder::new();
        let mut block = Vec::new();
        enc_integer(&mut block, 0x20, 5, 4097);
        assert_eq!(decode(&mut d, &block), Err(HpackError::SizeUpdateTooLarge));

        // A larger limit allows it; the limit stops at 64 KiB whatever SETTINGS say.
        let mut d = Decoder::new();
        d.set_max_size_limit(8192);
        assert_eq!(decode(&mut d, &block), Ok(vec![]));
        assert_eq!(d.max_table_size(), 4097);
        d.set_max_size_limit(u32::MAX);
        let mut block = Vec::new();
        enc_integer(&mut block, 0x20, 5, MAX_TABLE_SIZE);
        assert_eq!(decode(&mut d, &block), Ok(vec![]));
        let mut block = Vec::new();
        enc_integer(&mut block, 0x20, 5, MAX_TABLE_SIZE + 1);
        assert_eq!(decode(&mut d, &block), Err(HpackError::SizeUpdateTooLarge));
    }

    #[test]
    fn eviction_drops_the_oldest_entries_first() {
        let mut d = Decoder::new();
        let mut e = Encoder::new();
        let mut block = Vec::new();
        // Each entry is 1 + 1 + 32 = 34 bytes; a 100-byte table holds two.
        e.size_update(&mut block, 100);
        for name in [b"a", b"b", b"c"] {
            e.field(&mut block, name, b"1", Repr::Incremental, false);
        }
        decode(&mut d, &block).unwrap();
        assert_eq!(d.entries(), table(&[("c", "1"), ("b", "1")]));
        assert_eq!(d.table_size(), 68);
        // Shrinking the table evicts from the old end too.
        assert_eq!(decode(&mut d, &[0x20 | 30]), Ok(vec![]));
        assert!(d.entries().is_empty());
        assert_eq!(decode(&mut d, &[0x3f, 0x25]), Ok(vec![])); // back to 31 + 37 = 68
        assert_eq!(d.max_table_size(), 68);
        decode(&mut d, &[0x40, 1, b'x', 1, b'1', 0x40, 1, b'y', 1, b'1']).unwrap();
        assert_eq!(d.entries(), table(&[("y", "1"), ("x", "1")]));
        // 62 is the newest, 63 the one before; 64 is past the end.
        assert_eq!(
            decode(&mut d, &[0xbe, 0xbf]).unwrap(),
            plain(&[("y", "1"), ("x", "1")])
        );
        assert_eq!(decode(&mut d, &[0xc0]), Err(HpackError::BadIndex));
    }

    #[test]
    fn entry_larger_than_the_table_empties_it_without_error() {
        let mut d = Decoder::new();
        decode(&mut d, &[0x20 | 20, 0x40, 1, b'a', 1, b'b']).unwrap();
        assert!(d.entries().is_empty());
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn literal_may_name_an_entry_that_its_own_insertion_evicts() {
        // Section 4.4: the name is read before the eviction.
        let mut d = Decoder::new();
        decode(
            &mut d,
            &[0x20 | 30, 0x3f, 0x05, 0x40, 2, b'a', b'b', 1, b'1'],
        )
        .unwrap(); // 36
        decode(&mut d, &[0x7e, 1, b'2']).unwrap(); // name from index 62
        assert_eq!(d.entries(), table(&[("ab", "2")]));
    }

    #[test]
    fn index_zero_and_past_the_tables_are_refused() {
        assert_eq!(
            decode(&mut Decoder::new(), &[0x80]),
            Err(HpackError::BadIndex)
        );
        assert_eq!(
            decode(&mut Decoder::new(), &[0xbe]),
            Err(HpackError::BadIndex)
        );
        assert_eq!(
            decode(&mut Decoder::new(), &[0x7e, 0]),
            Err(HpackError::BadIndex)
        );
        assert_eq!(
            decode(&mut Decoder::new(), &[0xbd]).unwrap(),
            plain(&[("www-authenticate", "")])
        );
    }

    #[test]
    fn string_longer_than_the_block_is_truncated() {
        assert_eq!(
            decode(&mut Decoder::new(), &[0x00, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            decode(&mut Decoder::new(), &[0x04]),
            Err(HpackError::Truncated)
        );
    }

    // --- the list bound ---

    #[test]
    fn hpack_bomb_is_cut_off_at_the_list_bound() {
        // One 4000-byte entry, then 10 000 one-byte references to it: 40 MB if expanded.
        let mut d = Decoder::new();
        let mut block = Vec::new();
        let mut e = Encoder::new();
        e.field(&mut block, b"x", &[b'y'; 4000], Repr::Incremental, false);
        block.extend(std::iter::repeat_n(0xbe, 10_000));
        let mut given = 0;
        let r = d.decode(&block, 16 * 1024, |n, v, _| given += n.len() + v.len() + 32);
        assert_eq!(r, Err(HpackError::ListTooLarge));
        assert!(given <= 16 * 1024);
        assert!(d.is_broken());
    }

    #[test]
    fn long_literal_past_the_bound_is_refused_before_it_is_copied() {
        for huffman in [false, true] {
            let mut d = Decoder::new();
            let mut block = vec![0x00];
            enc_string(&mut block, b"k", false);
            enc_string(&mut block, &[b'a'; 100_000], huffman);
            assert_eq!(
                decode_bounded(&mut d, &block, 1000),
                Err(HpackError::ListTooLarge)
            );
            assert!(d.value.capacity() <= 2048, "{}", d.value.capacity());
        }
    }

    #[test]
    fn list_exactly_at_the_bound_passes() {
        // ":method: GET" is 7 + 3 + 32 = 42 bytes.
        assert_eq!(
            Decoder::new().decode(&[0x82, 0x82], 84, |_, _, _| {}),
            Ok(84)
        );
        assert_eq!(
            Decoder::new().decode(&[0x82, 0x82], 83, |_, _, _| {}),
            Err(HpackError::ListTooLarge)
        );
    }

    // --- properties ---

    fn field_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, u8, bool)> {
        let name = prop_oneof![
            prop::sample::select(
                STATIC_TABLE
                    .iter()
                    .map(|(n, _)| n.to_vec())
                    .collect::<Vec<_>>()
            ),
            prop::collection::vec(any::<u8>(), 0..12),
            prop::sample::select(vec![b"idempotency-key".to_vec(), b"x".to_vec()]),
        ];
        let value = prop_oneof![
            Just(Vec::new()),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::sample::select(vec![b"GET".to_vec(), b"/".to_vec(), b"200".to_vec()]),
        ];
        (name, value, 0u8..4, any::<bool>())
    }

    proptest! {
        #[test]
        fn encoded_lists_decode_to_themselves(
            blocks in prop::collection::vec(
                (proptest::option::of(0usize..600), prop::collection::vec(field_strategy(), 0..12)),
                1..8,
            )
        ) {
            let mut d = Decoder::new();
            let mut e = Encoder::new();
            for (update, fields) in blocks {
                let mut block = Vec::new();
                if let Some(size) = update {
                    e.size_update(&mut block, size);
                }
                let mut want = Vec::new();
                for (name, value, repr, huff) in fields {
                    let repr = [Repr::Indexed, Repr::Incremental, Repr::WithoutIndexing, Repr::NeverIndexed][usize::from(repr)];
                    e.field(&mut block, &name, &value, repr, huff);
                    want.push((name, value, matches!(repr, Repr::NeverIndexed)));
                }
                prop_assert_eq!(decode(&mut d, &block).unwrap(), want);
                prop_assert_eq!(d.entries(), e.entries.clone());
                prop_assert_eq!(d.table_size(), e.size());
            }
        }

        #[test]
        fn random_bytes_never_panic_and_stay_in_bound(
            blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..6),
            max in 0usize..400,
        ) {
            let mut d = Decoder::new();
            let mut failed = false;
            for block in blocks {
                let mut given = 0;
                let r = d.decode(&block, max, |n, v, _| given += n.len() + v.len() + 32);
                prop_assert!(given <= max);
                match r {
                    Ok(used) => {
                        prop_assert!(!failed);
                        prop_assert_eq!(used, given);
                    }
                    Err(e) => {
                        prop_assert!(!failed || e == HpackError::Broken);
                        prop_assert!(!failed || given == 0);
                        failed = true;
                    }
                }
                prop_assert_eq!(d.is_broken(), failed);
                prop_assert!(d.table_size() <= d.max_table_size());
                prop_assert!(d.max_table_size() <= DEFAULT_TABLE_SIZE);
            }
        }
    }
}
