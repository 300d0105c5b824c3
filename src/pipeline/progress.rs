//! `read`'s progress bar on stderr: bytes read of the total (files) or bytes alone (stdin),
//! the rate, the time left, and alerts so far by severity. Only on a terminal and without
//! `-q`; it never writes to stdout.
//!
//! Bytes are counted as the capture reader hands out records (record header and captured
//! bytes, see `CaptureSet::bytes_read`), so a pcapng's other blocks make the count run a
//! little short of the file size; the bar ends when the input does, whatever the count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::tracker::{Alert, Severity};

/// The bar and the alert counts it shows, shared by the reading thread and the judge.
#[derive(Debug)]
pub struct ReadProgress {
    bar: ProgressBar,
    /// Critical, high, medium, low.
    alerts: [AtomicU64; 4],
}

impl ReadProgress {
    /// A bar on stderr; `total`: the bytes of every file, `None` when one is stdin.
    pub fn new(total: Option<u64>) -> Arc<ReadProgress> {
        let target = ProgressDrawTarget::stderr_with_hz(8);
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), target).with_style(
                ProgressStyle::with_template(
                    "{bar:20} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(250));
        Arc::new(ReadProgress {
            bar,
            alerts: Default::default(),
        })
    }

    /// The bar, for the output to draw its lines around it on a shared terminal.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Bytes read so far.
    pub fn read(&self, bytes: u64) {
        self.bar.set_position(bytes);
        self.bar.set_message(self.message());
    }

    /// Counts the alerts just judged.
    pub fn alerted(&self, alerts: &[Alert]) {
        for a in alerts {
            let i = match a.kind.severity() {
                Severity::Critical => 0,
                Severity::High => 1,
                Severity::Medium => 2,
                Severity::Low => 3,
            };
            if let Some(n) = self.alerts.get(i) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn message(&self) -> String {
        let [c, h, m, l] = &self.alerts;
        format!(
            "alerts: {} crit, {} high, {} med, {} low",
            c.load(Ordering::Relaxed),
            h.load(Ordering::Relaxed),
            m.load(Ordering::Relaxed),
            l.load(Ordering::Relaxed)
        )
    }

    /// Takes the bar off the terminal (before the summary).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for ReadProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
