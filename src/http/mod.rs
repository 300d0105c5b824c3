//! HTTP over reassembled streams: bytes to [`Transaction`]s.
//!
//! Takes each direction's ordered bytes and gaps from reassembly (or the mirror's plaintext);
//! gives transactions: a request and its response, paired in order (pipelining included), with
//! bodies measured and hashed as they pass, never kept whole. It reports what was on the wire
//! and judges nothing: whether a request is worth an alert is the tracker's business.
//!
//! HTTP/1.1 lives in `h1/`; HTTP/2 will sit beside it in `h2/`, handing the same
//! [`Transaction`]s to the same [`Sink`]. What both share stays here: body framing and hashing
//! (`body.rs`), canonical forms (`canon.rs`), targets (`target.rs`), the transaction types
//! (`transaction.rs`), the settings and the sink.

pub mod body;
pub mod canon;
pub mod conn;
pub mod h1;
pub mod h2;
pub mod settings;
pub mod sink;
pub mod target;
pub mod transaction;

pub use conn::HttpConn;
pub use h1::Session;
pub use settings::{
    DEFAULT_KEY_HEADERS, DEFAULT_REDACTED_PARAMS, Limits, SessionSettings, Settings,
};
pub use sink::Sink;
pub use transaction::{
    Body, Conn, HttpEvent, KeyHeader, Protocol, Request, Response, Transaction, TxId,
};
