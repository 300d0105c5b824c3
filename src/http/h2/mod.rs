//! HTTP/2 (RFC 9113) on reassembled streams, passively.
//!
//! - `frame`: one direction's bytes in (the client's connection preface included), frames out as
//!   events, header blocks assembled from HEADERS or PUSH_PROMISE and their CONTINUATIONs, with
//!   every buffer bounded. A gap or a malformed frame loses the direction.
//!
//! Left out so far: HPACK decoding, streams and their transactions, h2c upgrade.

pub mod frame;
