//! HTTP/2 (RFC 9113) over reassembled streams: header blocks to header lists, for now.
//!
//! `hpack` decodes one direction's header blocks (RFC 7541) against that direction's dynamic
//! table. Framing, streams and their wiring to [`Transaction`](super::Transaction)s come beside
//! it; nothing here decides what is worth an alert.

pub mod hpack;
