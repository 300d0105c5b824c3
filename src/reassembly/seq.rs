//! TCP sequence numbers: 32-bit, wrapping, compared by signed distance (RFC 9293 section 3.4).
//!
//! The sender picks these numbers, so nothing here may panic on any value.

/// A TCP sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    pub fn plus(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }

    /// Signed distance from `base` to `self`: positive when `self` is ahead.
    pub fn distance_from(self, base: SeqNum) -> i64 {
        i64::from(self.0.wrapping_sub(base.0) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_crosses_the_wrap() {
        assert_eq!(SeqNum(5).distance_from(SeqNum(u32::MAX - 4)), 10);
        assert_eq!(SeqNum(u32::MAX - 4).distance_from(SeqNum(5)), -10);
        assert_eq!(SeqNum(0).plus(u32::MAX).plus(2), SeqNum(1));
    }
}
