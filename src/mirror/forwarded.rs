//! The client behind a trusted proxy: what `X-Forwarded-For`, `X-Real-IP` and `Forwarded`
//! (RFC 7239) say, believed only from the peers `--trusted-proxies` names.
//!
//! Takes the peer's address and the header values the HTTP session collected; gives the client
//! they name, or nothing. It leaves out the headers' collection (`http`) and where the client
//! goes (the session puts it in the connection its events carry, port 0).

use std::net::IpAddr;

use crate::http::settings::ForwardedClient;
use crate::ts::Timestamp;

/// A gateway time further than this from when the request reached us is not believed (a
/// gateway whose clock is off, or a header the gateway passed on from a client): an hour.
const MAX_CLOCK_SKEW_NS: i64 = 3_600_000_000_000;

/// Peers whose forwarding headers name the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl ForwardedClient for TrustedProxies {
    /// The right-most address of the most trusted header that is not itself a trusted proxy
    /// (the left-most when all are). None when the peer is not trusted.
    fn client(&self, peer: IpAddr, values: &[(u8, String)]) -> Option<IpAddr> {
        if self.0.is_empty() || !self.trusts(&peer) {
            return None;
        }
        let mut best: Option<(u8, Vec<IpAddr>)> = None;
        for (rank, v) in values {
            let addrs: Vec<IpAddr> = v.split(',').filter_map(address).collect();
            if !addrs.is_empty() && best.as_ref().is_none_or(|(r, _)| rank < r) {
                best = Some((*rank, addrs));
            }
        }
        let (_, addrs) = best?;
        addrs
            .iter()
            .rev()
            .find(|a| !self.trusts(a))
            .or(addrs.first())
            .copied()
    }

    /// `X-Request-Start` from a trusted peer: `t=` (optional) and the time since the epoch in
    /// seconds (with a fraction, as nginx's `${msec}`), milliseconds, microseconds or
    /// nanoseconds, told apart by magnitude (the convention APM agents read).
    fn request_start(&self, peer: IpAddr, value: &str, arrival: Timestamp) -> Option<Timestamp> {
        if self.0.is_empty() || !self.trusts(&peer) {
            return None;
        }
        let t = parse_request_start(value)?;
        (t.0.saturating_sub(arrival.0).abs() <= MAX_CLOCK_SKEW_NS).then_some(t)
    }
}

/// The time an `X-Request-Start` value gives, if it is one.
fn parse_request_start(value: &str) -> Option<Timestamp> {
    let v = value.trim();
    let v = v.strip_prefix("t=").unwrap_or(v);
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if int.is_empty()
        || int.len() > 19
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n: i64 = int.parse().ok()?;
    // Seconds since 2001 have 10 digits until 2286; each unit adds three.
    let ns = match int.len() {
        0..=11 => {
            let digits = frac.get(..frac.len().min(9)).unwrap_or("");
            let f: i64 = if digits.is_empty() {
                0
            } else {
                format!("{digits:0<9}").parse().ok()?
            };
            n.checked_mul(1_000_000_000)?.checked_add(f)?
        }
        12..=14 => n.checked_mul(1_000_000)?,
        15..=17 => n.checked_mul(1_000)?,
        _ => n,
    };
    Some(Timestamp(ns))
}

/// One element of a header's list: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]:8080`, or
/// Forwarded's `for=192.0.2.1;proto=https` (quoted or not).
fn address(part: &str) -> Option<IpAddr> {
    let p = part.trim();
    // Forwarded: for=192.0.2.1 or for="[2001:db8::1]:8080"; the rest as is.
    let p = p
        .split(';')
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.eq_ignore_ascii_case("for").then_some(v)
        })
        .unwrap_or(p);
    let p = p.trim_matches('"');
    let p = p
        .strip_prefix('[')
        .map_or(p, |r| r.split(']').next().unwrap_or(r));
    p.parse()
        .ok()
        .or_else(|| p.rsplit_once(':').and_then(|(a, _)| a.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> TrustedProxies {
        TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_names_no_client() {
        let v = [(0, "192.0.2.1".to_string())];
        assert_eq!(proxies().client(ip("192.0.2.9"), &v), None);
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &v), None);
    }

    #[test]
    fn the_right_most_untrusted_address_of_the_most_trusted_header_is_the_client() {
        let v = [
            (2, "for=198.51.100.7".to_string()),
            (0, "192.0.2.1, 192.0.2.2, 10.1.1.1".to_string()),
        ];
        assert_eq!(proxies().client(ip("10.0.0.1"), &v), Some(ip("192.0.2.2")));
    }

    #[test]
    fn forwarded_elements_with_ports_brackets_and_quotes_are_read() {
        let v = [(2, "for=\"[2001:db8::1]:8080\";proto=https".to_string())];
        assert_eq!(
            proxies().client(ip("10.0.0.1"), &v),
            Some(ip("2001:db8::1"))
        );
        let v = [(0, "192.0.2.1:4711".to_string())];
        assert_eq!(proxies().client(ip("10.0.0.1"), &v), Some(ip("192.0.2.1")));
    }

    #[test]
    fn when_every_address_is_a_proxy_the_left_most_is_the_client() {
        let v = [(0, "10.2.2.2, 10.3.3.3".to_string())];
        assert_eq!(proxies().client(ip("10.0.0.1"), &v), Some(ip("10.2.2.2")));
    }

    #[test]
    fn a_trusted_gateways_request_start_is_read_in_any_unit() {
        let arrival = Timestamp(1_796_620_824_800_000_000);
        let p = proxies();
        let want = Some(Timestamp(1_796_620_824_795_000_000));
        for v in [
            "t=1796620824.795",
            "1796620824.795",
            "t=1796620824795",
            "t=1796620824795000",
            "t=1796620824795000000",
            " t=1796620824.795000 ",
        ] {
            assert_eq!(p.request_start(ip("10.0.0.1"), v, arrival), want, "{v}");
        }
        assert_eq!(
            p.request_start(ip("10.0.0.1"), "t=1796620824.7951234567", arrival),
            Some(Timestamp(1_796_620_824_795_123_456)),
            "nanoseconds at most"
        );
    }

    #[test]
    fn a_request_start_is_not_believed_from_an_untrusted_peer_nor_far_off_nor_garbled() {
        let arrival = Timestamp(1_796_620_824_800_000_000);
        let p = proxies();
        let v = "t=1796620824.795";
        assert_eq!(p.request_start(ip("192.0.2.9"), v, arrival), None);
        assert_eq!(
            TrustedProxies::default().request_start(ip("10.0.0.1"), v, arrival),
            None
        );
        for bad in [
            "t=1796610000.000",
            "t=",
            "t=abc",
            "t=-1796620824.795",
            "t=1.2.3",
            "t=99999999999999999999999",
        ] {
            assert_eq!(p.request_start(ip("10.0.0.1"), bad, arrival), None, "{bad}");
        }
    }
}
