//! The terminal view: each event as one or two lines for a person, from the very structs the
//! JSON writer serializes, so it shows nothing the JSON does not (bodies only as lengths and
//! hashes compared, keys or their hashes exactly as the JSON has them).
//!
//! Times are UTC, `HH:MM:SS.mmm`. Text that came off the wire (keys, paths, resource ids) has
//! its control characters escaped, so a request cannot drive the terminal. Colour is plain ANSI
//! and only marks the severity.

use std::fmt::Write as _;

use super::alert::AlertEvent;
use super::event::{HttpEvent, RequestObj, ResponseObj, StatsEvent};
use crate::ts::Timestamp;

/// How text lines are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// ANSI colour for severities.
    pub color: bool,
}

impl Style {
    /// Colour unless `NO_COLOR` is set (to anything, no-color.org) or `TERM` is `dumb`.
    pub fn from_env(no_color: Option<&std::ffi::OsStr>, term: Option<&std::ffi::OsStr>) -> Style {
        Style {
            color: no_color.is_none() && term.is_none_or(|t| t != "dumb"),
        }
    }
}

/// An event with a text form: the lines, each ending in `\n`, appended to `out`.
pub trait TextForm {
    fn text(&self, style: Style, out: &mut String);
}

/// `HH:MM:SS.mmm` of a capture time, in UTC.
pub fn clock(ts: Timestamp) -> String {
    let ms_of_day = ts.0.div_euclid(1_000_000).rem_euclid(86_400_000);
    let (s, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
}

/// Wire text with control characters escaped (`\x1b` as `\u{1b}`).
fn clean(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(o, "\\u{{{:x}}}", u32::from(c));
        } else {
            o.push(c);
        }
    }
    o
}

/// A key as sent, unless it is too long to read (an invalid_key can carry hundreds of bytes):
/// then its head and its length.
fn short_key(k: &str) -> String {
    const KEEP: usize = 48;
    if k.chars().count() <= 64 {
        clean(k)
    } else {
        let head: String = k.chars().take(KEEP).collect();
        format!("{}… ({} bytes)", clean(&head), k.len())
    }
}

/// Long resource ids keep their head: enough to tell two apart at a glance.
fn short_id(id: &str) -> String {
    const KEEP: usize = 14;
    if id.chars().count() <= KEEP + 4 {
        clean(id)
    } else {
        let head: String = id.chars().take(KEEP).collect();
        format!("{}…", clean(&head))
    }
}

fn severity_label(severity: &str, style: Style) -> String {
    let word = format!("{:<8}", severity.to_uppercase());
    if !style.color {
        return word;
    }
    let code = match severity {
        "critical" => "1;31",
        "high" => "31",
        "medium" => "33",
        _ => "36",
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// `key K`, `key_sha256 H` or `no key`, as the JSON fields hold them.
fn key_text(key: Option<&Option<String>>, key_sha256: Option<&Option<String>>) -> String {
    match (key, key_sha256) {
        (Some(Some(k)), _) => format!("key {}", short_key(k)),
        (None, Some(Some(h))) => format!("key_sha256 {h}"),
        _ => "no key".into(),
    }
}

fn request_key(r: &RequestObj<'_>) -> String {
    key_text(
        r.idempotency_key.as_ref(),
        r.idempotency_key_sha256.as_ref(),
    )
}

fn endpoints(r: &RequestObj<'_>) -> String {
    let ep = |ip: std::net::IpAddr, port: u16| match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    format!(
        "{} → {}",
        ep(r.src_ip, r.src_port),
        ep(r.dest_ip, r.dest_port)
    )
}

/// `200 ch_3Nv…` (`replayed` when the server said so; the body's length where no id).
fn response_text(r: &ResponseObj<'_>) -> String {
    let mut s = r.status.to_string();
    match r.resource_id {
        Some(id) => {
            s.push(' ');
            s.push_str(&short_id(id));
        }
        None => {
            let _ = write!(s, " ({} B)", r.body_len);
        }
    }
    if r.replayed {
        s.push_str(" replayed");
    }
    if !r.body_complete {
        s.push_str(" incomplete");
    }
    s
}

/// How this request's body compares with the first one's.
fn bodies(first: &RequestObj<'_>, now: &RequestObj<'_>) -> String {
    let lens = format!("{} B vs {} B", first.body_len, now.body_len);
    if !first.body_complete || !now.body_complete {
        return format!("a body incomplete ({lens})");
    }
    if first.body_sha256 == now.body_sha256 {
        return format!("same body ({} B)", now.body_len);
    }
    if first.body_canon_sha256.is_some() && first.body_canon_sha256 == now.body_canon_sha256 {
        return format!("same content, bytes differ ({lens})");
    }
    format!("bodies differ ({lens})")
}

/// The second line: what differs from the first request, and what the server answered.
fn differences(a: &AlertEvent<'_>) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(o) = &a.original {
        let mut said = Vec::new();
        if (o.method, o.path) != (a.request.method, a.request.path) {
            said.push(format!("{} {}", clean(o.method), clean(o.path)));
        }
        let okey = request_key(o);
        if okey != request_key(&a.request) {
            said.push(okey);
        }
        if let Some(r) = &a.original_response {
            said.push(response_text(r));
        }
        let first = if said.is_empty() {
            format!("first at {}", clock(o.ts))
        } else {
            format!("first: {} at {}", said.join(", "), clock(o.ts))
        };
        parts.push(first);
        parts.push(bodies(o, &a.request));
    } else if !a.request.body_complete {
        parts.push(format!("body incomplete ({} B)", a.request.body_len));
    }
    if let Some(r) = &a.response {
        let word = if a.original.is_some() {
            "now"
        } else {
            "answered"
        };
        parts.push(format!("{word}: {}", response_text(r)));
    }
    parts
}

impl TextForm for AlertEvent<'_> {
    fn text(&self, style: Style, out: &mut String) {
        let r = &self.request;
        let _ = writeln!(
            out,
            "{} {} {} {}  {} {}  {}",
            clock(self.timestamp),
            severity_label(self.severity, style),
            self.kind.name(),
            key_text(self.key.as_ref(), self.key_sha256.as_ref()),
            clean(r.method),
            clean(r.path),
            endpoints(r),
        );
        let diff = differences(self);
        if !diff.is_empty() {
            let _ = writeln!(out, "    {}", diff.join("; "));
        }
    }
}

impl TextForm for HttpEvent<'_> {
    fn text(&self, _style: Style, out: &mut String) {
        let _ = write!(out, "{} {:<8}", clock(self.timestamp), "http");
        if let Some(r) = &self.request {
            let _ = write!(
                out,
                " {} {}  {}  {}  {} B",
                clean(r.method),
                clean(r.path),
                key_text(
                    self.idempotency_key.as_ref(),
                    self.idempotency_key_sha256.as_ref()
                ),
                endpoints(r),
                r.body_len,
            );
        }
        match &self.response {
            Some(resp) => {
                let _ = writeln!(out, "  → {}", response_text(resp));
            }
            None => out.push_str("  → no response\n"),
        }
    }
}

impl TextForm for StatsEvent<'_> {
    fn text(&self, _style: Style, out: &mut String) {
        let s = self.stats;
        let drops = s
            .capture_kernel_drops
            .saturating_add(s.capture_kernel_ifdrops);
        let _ = writeln!(
            out,
            "{} {:<8} {} packets, {} transactions, {} alerts, {} tcp gaps, {} kernel drops, {} keys tracked",
            clock(self.timestamp),
            "stats",
            s.packets,
            s.http_transactions,
            s.alerts,
            s.tcp_gaps,
            drops,
            s.tracker_keys_tracked,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::output::alert::EveAlert;
    use crate::tracker::AlertKind;

    const T0: i64 = 1_795_858_186_583_345_000; // 2026-11-28T09:29:46.583345Z

    fn req(ts: i64, key: Option<&str>, len: u64, sha: &str, canon: &str) -> RequestObj<'static> {
        RequestObj {
            ts: Timestamp(ts),
            flow_id: 1,
            community_id: "1:x",
            src_ip: IpAddr::from([10, 0, 0, 5]),
            src_port: 51544,
            dest_ip: IpAddr::from([10, 0, 0, 9]),
            dest_port: 80,
            vlan: None,
            method: "POST",
            host: Some("api.example.com"),
            path: "/v1/charges",
            protocol: "HTTP/1.1",
            idempotency_key: Some(key.map(str::to_string)),
            idempotency_key_sha256: None,
            body_len: len,
            body_sha256: Some(sha.into()),
            body_canon_sha256: Some(canon.into()),
            body_complete: true,
            body_missing_bytes: None,
            pcap_filename: None,
            observer: None,
            tls: None,
        }
    }

    fn resp(ts: i64, status: u16, id: Option<&'static str>) -> ResponseObj<'static> {
        ResponseObj {
            ts: Timestamp(ts),
            status,
            interim_statuses: &[],
            body_len: 288,
            body_sha256: Some("r".into()),
            body_complete: true,
            body_missing_bytes: None,
            resource_id: id,
            replayed: false,
            tls: None,
        }
    }

    fn alert(kind: AlertKind, request: RequestObj<'static>) -> AlertEvent<'static> {
        let key = request.idempotency_key.clone().unwrap_or(None);
        AlertEvent {
            timestamp: request.ts,
            event_type: "alert",
            kind,
            severity: kind.severity().name(),
            key: Some(key),
            key_sha256: None,
            all_keys: None,
            scope: "3f2a9c1e".into(),
            message: kind.message(),
            alert: EveAlert {
                signature_id: kind.signature_id(),
                signature: kind.message(),
                category: "idempotency",
                severity: kind.severity().eve(),
            },
            request,
            original: None,
            response: None,
            original_response: None,
        }
    }

    fn lines(ev: &impl TextForm, style: Style) -> String {
        let mut s = String::new();
        ev.text(style, &mut s);
        s
    }

    const PLAIN: Style = Style { color: false };

    #[test]
    fn conflict_shows_first_answer_bodies_and_now() {
        let mut a = alert(
            AlertKind::ConflictAccepted,
            req(T0 + 4_000_000, Some("K1"), 66, "b", "cb"),
        );
        a.original = Some(req(T0, Some("K1"), 65, "a", "ca"));
        a.original_response = Some(resp(T0 + 1_000_000, 200, Some("ch_3NvXYZ0123456789abcd")));
        a.response = Some(resp(T0 + 5_000_000, 200, Some("ch_3NxABC0123456789abcd")));
        assert_eq!(
            lines(&a, PLAIN),
            "09:29:46.587 CRITICAL conflict_accepted key K1  POST /v1/charges  \
             10.0.0.5:51544 → 10.0.0.9:80\n    first: 200 ch_3NvXYZ01234… at 09:29:46.583; \
             bodies differ (65 B vs 66 B); now: 200 ch_3NxABC01234…\n"
        );
    }

    #[test]
    fn missing_key_alone_is_one_line() {
        let a = alert(AlertKind::MissingKey, req(T0, None, 65, "a", "ca"));
        assert_eq!(
            lines(&a, PLAIN),
            "09:29:46.583 LOW      missing_key no key  POST /v1/charges  10.0.0.5:51544 → 10.0.0.9:80\n"
        );
    }

    #[test]
    fn key_churn_names_the_first_key() {
        let mut a = alert(
            AlertKind::KeyChurn,
            req(T0 + 2_000_000, Some("K2"), 65, "a", "ca"),
        );
        a.original = Some(req(T0, Some("K1"), 65, "a", "ca"));
        let s = lines(&a, PLAIN);
        assert!(
            s.starts_with("09:29:46.585 HIGH     key_churn key K2  POST"),
            "{s}"
        );
        assert!(
            s.ends_with("\n    first: key K1 at 09:29:46.583; same body (65 B)\n"),
            "{s}"
        );
    }

    #[test]
    fn keyless_duplicate_compares_two_keyless_requests() {
        let mut a = alert(
            AlertKind::KeylessDuplicate,
            req(T0 + 1_000_000, None, 65, "a", "ca"),
        );
        a.original = Some(req(T0, None, 65, "a", "ca"));
        a.response = Some(resp(T0 + 3_000_000, 201, None));
        let s = lines(&a, PLAIN);
        assert!(
            s.contains(" keyless_duplicate no key  POST /v1/charges"),
            "{s}"
        );
        assert!(
            s.ends_with("    first at 09:29:46.583; same body (65 B); now: 201 (288 B)\n"),
            "{s}"
        );
    }

    #[test]
    fn concurrent_reuse_and_reencoded_bodies() {
        let mut a = alert(
            AlertKind::ConcurrentReuse,
            req(T0 + 1_000_000, Some("K"), 65, "a", "ca"),
        );
        a.original = Some(req(T0, Some("K"), 65, "a", "ca"));
        a.response = Some(resp(T0 + 3_000_000, 409, None));
        let s = lines(&a, PLAIN);
        assert!(s.contains("MEDIUM   concurrent_reuse key K  "), "{s}");
        assert!(s.ends_with("same body (65 B); now: 409 (288 B)\n"), "{s}");
        a.request.body_sha256 = Some("other".into());
        assert!(lines(&a, PLAIN).contains("same content, bytes differ (65 B vs 65 B)"));
    }

    #[test]
    fn redacted_keys_show_the_hash_the_json_has() {
        let mut a = alert(AlertKind::MissingKey, req(T0, Some("K"), 1, "a", "ca"));
        a.key = None;
        a.key_sha256 = Some(Some("ab12".into()));
        assert!(lines(&a, PLAIN).contains(" key_sha256 ab12  "));
    }

    #[test]
    fn colour_marks_the_severity_unless_no_color_or_dumb() {
        let a = alert(AlertKind::KeyConflict, req(T0, Some("K"), 1, "a", "ca"));
        let on = Style::from_env(None, Some("xterm-256color".as_ref()));
        assert!(on.color);
        assert!(lines(&a, on).contains(" \x1b[31mHIGH    \x1b[0m key_conflict"));
        for style in [
            Style::from_env(Some("".as_ref()), Some("xterm".as_ref())),
            Style::from_env(Some("1".as_ref()), None),
            Style::from_env(None, Some("dumb".as_ref())),
        ] {
            assert!(!style.color);
            assert!(!lines(&a, style).contains('\x1b'));
        }
    }

    #[test]
    fn wire_text_cannot_drive_the_terminal() {
        let mut r = req(T0, Some("K\x1b[2J"), 1, "a", "ca");
        r.path = "/v1/\x1b]0;x\x07";
        let a = alert(AlertKind::InvalidKey, r);
        let s = lines(&a, PLAIN);
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
        assert!(s.contains("key K\\u{1b}[2J"), "{s}");
    }

    #[test]
    fn an_overlong_key_shows_its_head_and_length() {
        let long = "k".repeat(300);
        let a = alert(AlertKind::InvalidKey, req(T0, Some(&long), 1, "a", "ca"));
        let s = lines(&a, PLAIN);
        assert!(
            s.contains(&format!(" key {}… (300 bytes)  POST", "k".repeat(48))),
            "{s}"
        );
    }

    #[test]
    fn http_and_stats_events_are_one_line() {
        let r = req(T0, Some("K"), 65, "a", "ca");
        let ev = HttpEvent {
            timestamp: Timestamp(T0 + 1_000_000),
            event_type: "http",
            flow_id: 1,
            community_id: "1:x",
            idempotency_key: Some(Some("K".into())),
            idempotency_key_sha256: None,
            request: Some(r),
            response: Some(resp(T0 + 1_000_000, 200, Some("ch_1"))),
        };
        assert_eq!(
            lines(&ev, PLAIN),
            "09:29:46.584 http     POST /v1/charges  key K  10.0.0.5:51544 → 10.0.0.9:80  65 B  → 200 ch_1\n"
        );
        let stats = crate::stats::Stats {
            packets: 77,
            alerts: 9,
            ..crate::stats::Stats::default()
        };
        let ev = StatsEvent {
            timestamp: Timestamp(T0),
            event_type: "stats",
            stats: &stats,
        };
        let s = lines(&ev, PLAIN);
        assert!(
            s.starts_with("09:29:46.583 stats    77 packets, 0 transactions, 9 alerts"),
            "{s}"
        );
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn clock_is_utc_milliseconds() {
        assert_eq!(clock(Timestamp(T0)), "09:29:46.583");
        assert_eq!(clock(Timestamp(0)), "00:00:00.000");
        assert_eq!(clock(Timestamp(-1)), "23:59:59.999");
    }
}
