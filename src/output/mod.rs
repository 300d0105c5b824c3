//! Output: the JSON lines of the alert contract (SPEC.md), their text view for a terminal, and
//! where they go.
//!
//! Formats what the stages found and never decides anything.

pub mod alert;
pub mod event;
pub mod metrics;
pub mod text;
pub mod writer;

pub use alert::AlertEvent;
pub use event::{HttpEvent, RequestObj, ResponseObj, StatsEvent};
pub use writer::{Format, Output, WriteOutcome};
