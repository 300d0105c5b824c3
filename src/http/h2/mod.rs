//! HTTP/2 (RFC 9113) on reassembled streams, passively.
//!
//! - `frame`: one direction's bytes in (the client's connection preface included), frames out as
//!   events, header blocks assembled from HEADERS or PUSH_PROMISE and their CONTINUATIONs, with
//!   every buffer bounded. A gap or a malformed frame loses the direction.
//! - `hpack`: one direction's header blocks to header lists (RFC 7541) against that direction's
//!   dynamic table, bounded; broken for good after any error.
//!
//! - `session`: one connection's streams, each a transaction for the same tracker as
//!   HTTP/1.1; SETTINGS applied; resets, refusals and GOAWAY recorded as they ended streams.
//!
//! Where HTTP/2 is found (prior knowledge, `Upgrade: h2c`, ALPN) is decided one level up
//! (`conn.rs`). Nothing here decides what is worth an alert.

pub mod frame;
pub mod hpack;
pub mod session;
