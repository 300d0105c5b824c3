//! HTTP/1.1 (RFC 9112): one connection's message state machine (`session.rs`), its heads
//! (`heads.rs`), and the server bytes held back for the client's (`hold.rs`).
//!
//! Takes ordered bytes and gaps per direction; gives requests and transactions to the
//! protocol-neutral [`Sink`](super::Sink). Bodies, targets and canonical forms are shared with
//! the protocols beside it, one level up.

mod heads;
mod hold;
mod session;

pub(crate) use heads::{Heads, credential_identity, json_id};
pub use session::Session;
