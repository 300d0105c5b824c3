//! Arbitrary bytes as the body of a state file (behind a valid header and checksum, which the
//! fuzzer could not forge): decoded and loaded into a tracker with small limits, then the
//! tracker is used and saved. Errors are fine; panics and unbounded loading are not.

use idemwatch::tracker::persist::fuzz_load;
use idemwatch::tracker::{Tracker, TrackerConfig};

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let cfg = TrackerConfig {
        max_keys: 64,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg);
    if fuzz_load(&mut t, data) {
        assert!(t.tracked_keys() <= 64, "loaded past --max-keys");
        let dir = std::env::temp_dir().join(format!("idemwatch-fuzz-state-{}", std::process::id()));
        let _ = idemwatch::tracker::persist::save(&t, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
