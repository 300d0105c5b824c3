//! Capture time: nanoseconds since the Unix epoch, as read from the capture.

use std::fmt;

/// A packet timestamp in nanoseconds since the Unix epoch (capture time, never wall clock for
/// files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock: a live capture's packets are stamped by it, so it stands in for
    /// capture time when none arrive.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_parts(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_nanos()),
        )
    }

    pub fn from_parts(secs: i64, nanos: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// Nanoseconds since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// This time plus `nanos`, which may be negative (another clock's offset).
    pub fn shifted(self, nanos: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }

    pub fn add_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(nanos).unwrap_or(i64::MAX)),
        )
    }
}

/// RFC 3339 in UTC with microseconds, as the alert contract writes times:
/// `2026-11-28T08:00:01.123456Z`.
const RFC3339_MICROS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        match t.format(RFC3339_MICROS) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc_micros() {
        let t = Timestamp::from_parts(1_795_852_801, 123_456_789);
        assert_eq!(t.to_string(), "2026-11-28T08:00:01.123456Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }
}
