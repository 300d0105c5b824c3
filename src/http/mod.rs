//! HTTP/1.1 over reassembled streams: bytes to [`Transaction`]s.
//!
//! Takes each direction's ordered bytes and gaps from reassembly (or the mirror's plaintext);
//! gives transactions: a request and its response, paired in order (pipelining included), with
//! bodies measured and hashed as they pass, never kept whole. It reports what was on the wire
//! and judges nothing: whether a request is worth an alert is the tracker's business.

pub mod body;
pub mod canon;
pub mod session;
pub mod settings;
pub mod target;
pub mod transaction;

pub use session::{Emitter, Session};
pub use settings::{DEFAULT_KEY_HEADERS, DEFAULT_REDACTED_PARAMS, Limits, Settings};
pub use transaction::{Body, Conn, HttpEvent, KeyHeader, Request, Response, Transaction, TxId};
