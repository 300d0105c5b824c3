//! HTTP/2 (RFC 9113) on reassembled streams, passively.
//!
//! - `frame`: one direction's bytes in (the client's connection preface included), frames out as
//!   events, header blocks assembled from HEADERS or PUSH_PROMISE and their CONTINUATIONs, with
//!   every buffer bounded. A gap or a malformed frame loses the direction.
//! - `hpack`: one direction's header blocks to header lists (RFC 7541) against that direction's
//!   dynamic table, bounded; broken for good after any error.
//!
//! Left out so far: streams and their transactions, the wiring into the pipeline, h2c upgrade.
//! Nothing here decides what is worth an alert.

pub mod frame;
pub mod hpack;
