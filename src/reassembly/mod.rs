//! TCP reassembly: segments to ordered byte streams, one per direction of a connection.
//!
//! Takes [`Segment`](crate::decode::Segment)s; gives each direction's bytes in order, exactly
//! once, to a [`StreamSink`] (the HTTP session), with holes marked as gaps. Retransmissions and
//! overlaps are delivered once (first copy wins); a hole is declared when the peer acknowledged
//! bytes that were never captured, when the out-of-order buffer hits its limit, or when the
//! flow ends. It leaves out everything above TCP.

pub mod flow;
pub mod seq;
pub mod stream;
pub mod table;

pub use flow::{Endpoint, FlowInfo, FlowKey, Side};
pub use stream::{Chunk, EndReason, StreamSink};
pub use table::{FlowTable, Settings};
