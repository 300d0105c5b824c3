//! The daemons' signals, registered in one place for `live` and `mirror`.
//!
//! Takes nothing; gives two flags that the run loops poll: `stop` (SIGTERM, SIGINT: finish what
//! is complete and exit) and `hup` (SIGHUP: reopen the output, reload what can be reloaded).
//! What a SIGHUP reloads is each loop's business.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Signals, as flags a loop polls between reads (a read returns within its timeout).
pub struct Signals {
    /// SIGTERM or SIGINT came.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP came (the loop clears it when it acts on it).
    pub hup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers; from then on these signals set the flags instead of ending the
    /// process.
    pub fn register() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGTERM, Arc::clone(&stop))?;
        signal_hook::flag::register(SIGINT, Arc::clone(&stop))?;
        signal_hook::flag::register(SIGHUP, Arc::clone(&hup))?;
        Ok(Signals { stop, hup })
    }
}
