//! `idemwatch report`: alert JSON lines in, one self-contained HTML page out. This module reads
//! the lines (keeping the alerts, counting other events and malformed lines) and aggregates
//! them; [`html`] renders the page. Both are pure: no files, no clock, so the tests feed them
//! strings. It leaves out anything the alerts do not carry (bodies, credentials): the page shows
//! the alert JSON's own fields and nothing else.

pub mod html;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use serde_json::Value;

/// How many malformed lines are kept with their line number and error (the rest are counted).
pub const MAX_MALFORMED_KEPT: usize = 20;

/// What [`read_events`] found in the input.
#[derive(Debug, Default)]
pub struct Input {
    /// The alert objects, in input order.
    pub alerts: Vec<Value>,
    /// JSON objects that are not alerts (`stats`, `http` from --log-requests).
    pub skipped_events: u64,
    /// Lines that are not JSON objects.
    pub malformed: u64,
    /// The first [`MAX_MALFORMED_KEPT`] malformed lines: (source name, line number, why).
    pub malformed_lines: Vec<(String, u64, String)>,
}

impl Input {
    /// Reads JSON lines from `reader` (named `source` in messages). Blank lines are ignored; a
    /// line that is not a JSON object is counted, never fatal. An I/O error ends the reading of
    /// this source and is returned.
    pub fn read_events(&mut self, source: &str, reader: impl BufRead) -> std::io::Result<()> {
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            let number = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(v) if v.is_object() => {
                    if v.get("event_type").and_then(Value::as_str) == Some("alert") {
                        self.alerts.push(v);
                    } else {
                        self.skipped_events += 1;
                    }
                }
                Ok(_) => self.malformed(source, number, "not a JSON object".to_string()),
                Err(e) => self.malformed(source, number, e.to_string()),
            }
        }
        Ok(())
    }

    fn malformed(&mut self, source: &str, line: u64, why: String) {
        self.malformed += 1;
        if self.malformed_lines.len() < MAX_MALFORMED_KEPT {
            self.malformed_lines.push((source.to_string(), line, why));
        }
    }
}

/// The whole counts of a set of alerts.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub by_severity: BTreeMap<String, u64>,
    /// Alerts per time bucket and kind (see [`Timeline`]).
    pub timeline: Timeline,
    /// method host path, most alerts first (ties by name).
    pub top_endpoints: Vec<(String, u64)>,
    pub top_clients: Vec<(String, u64)>,
    pub top_scopes: Vec<(String, u64)>,
}

/// Alerts per bucket of `bucket_minutes`, from `start` (minutes since the Unix epoch);
/// `counts[i]` is the bucket starting at `start + i * bucket_minutes`, by kind. Alerts whose
/// timestamp cannot be read are counted in `undated`.
#[derive(Debug, Default, PartialEq)]
pub struct Timeline {
    pub start: i64,
    pub bucket_minutes: i64,
    pub counts: Vec<BTreeMap<String, u64>>,
    pub undated: u64,
}

/// The most buckets a timeline draws: a longer span takes wider buckets.
pub const MAX_BUCKETS: i64 = 360;
/// How many entries each top list keeps.
pub const TOP_N: usize = 10;

/// Severities from worst to least, the order the page lists them in.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// A string field of an alert (or of one of its objects), if present.
pub fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The alert's capture time: `timestamp`, else its request's `ts`.
pub fn alert_time(v: &Value) -> Option<&str> {
    field(v, &["timestamp"]).or_else(|| field(v, &["request", "ts"]))
}

/// "METHOD host path" of an alert's request.
pub fn endpoint(v: &Value) -> String {
    let method = field(v, &["request", "method"]).unwrap_or("?");
    let host = field(v, &["request", "host"]).unwrap_or("-");
    let path = field(v, &["request", "path"]).unwrap_or("?");
    format!("{method} {host} {path}")
}

/// Counts everything: kinds, severities, the timeline, the top lists.
pub fn summarize(alerts: &[Value]) -> Summary {
    let mut s = Summary {
        total: u64::try_from(alerts.len()).unwrap_or(u64::MAX),
        ..Summary::default()
    };
    let mut endpoints: HashMap<String, u64> = HashMap::new();
    let mut clients: HashMap<String, u64> = HashMap::new();
    let mut scopes: HashMap<String, u64> = HashMap::new();
    let mut dated: Vec<(i64, String)> = Vec::with_capacity(alerts.len());
    for a in alerts {
        let kind = field(a, &["kind"]).unwrap_or("unknown").to_string();
        *s.by_kind.entry(kind.clone()).or_default() += 1;
        let sev = field(a, &["severity"]).unwrap_or("unknown").to_string();
        *s.by_severity.entry(sev).or_default() += 1;
        *endpoints.entry(endpoint(a)).or_default() += 1;
        if let Some(ip) = field(a, &["request", "src_ip"]) {
            *clients.entry(ip.to_string()).or_default() += 1;
        }
        if let Some(scope) = field(a, &["scope"]) {
            *scopes.entry(scope.to_string()).or_default() += 1;
        }
        match alert_time(a).and_then(minute_of) {
            Some(m) => dated.push((m, kind)),
            None => s.timeline.undated += 1,
        }
    }
    s.top_endpoints = top(endpoints);
    s.top_clients = top(clients);
    s.top_scopes = top(scopes);
    let undated = s.timeline.undated;
    s.timeline = timeline(&dated);
    s.timeline.undated = undated;
    s
}

/// The `TOP_N` largest counts, ties by name so that the page is the same on every run.
fn top(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP_N);
    v
}

fn timeline(dated: &[(i64, String)]) -> Timeline {
    let (Some(first), Some(last)) = (
        dated.iter().map(|d| d.0).min(),
        dated.iter().map(|d| d.0).max(),
    ) else {
        return Timeline::default();
    };
    // At least 1, and far from overflow: minutes since the epoch of a 4-digit year.
    let span = last.saturating_sub(first).saturating_add(1);
    let bucket_minutes = [1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080]
        .into_iter()
        .find(|w| (span + w - 1) / w <= MAX_BUCKETS)
        // Beyond a week per bucket: whatever width keeps the count bounded.
        .unwrap_or_else(|| ((span + MAX_BUCKETS - 1) / MAX_BUCKETS).max(1));
    let start = first - first.rem_euclid(bucket_minutes);
    let n = usize::try_from((last - start) / bucket_minutes + 1).unwrap_or(1);
    let mut counts = vec![BTreeMap::new(); n];
    for (m, kind) in dated {
        let i = usize::try_from((m - start) / bucket_minutes).unwrap_or(0);
        if let Some(b) = counts.get_mut(i) {
            *b.entry(kind.clone()).or_default() += 1;
        }
    }
    Timeline {
        start,
        bucket_minutes,
        counts,
        undated: 0,
    }
}

/// Minutes since the Unix epoch of an RFC 3339 time "YYYY-MM-DDTHH:MM..." (UTC, as alerts
/// write it); None if it does not start that way.
pub fn minute_of(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = ts.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(13) != Some(&b':') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (y, mo, d, h, mi) = (num(0, 4)?, num(5, 2)?, num(8, 2)?, num(11, 2)?, num(14, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 1440 + h * 60 + mi)
}

/// "YYYY-MM-DD HH:MM" of minutes since the epoch (the inverse of [`minute_of`]).
pub fn format_minute(m: i64) -> String {
    let days = m.div_euclid(1440);
    let rest = m.rem_euclid(1440);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}", rest / 60, rest % 60)
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The alerts to list in detail: the first `max` in time order (undated ones last, input order
/// kept among equals).
pub fn listed(alerts: &[Value], max: usize) -> Vec<&Value> {
    let mut v: Vec<&Value> = alerts.iter().collect();
    // Alerts write RFC 3339 UTC with a fixed width, so text order is time order.
    v.sort_by(|a, b| match (alert_time(a), alert_time(b)) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    v.truncate(max);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(kind: &str, sev: &str, ts: &str, ip: &str, path: &str) -> Value {
        json!({"timestamp": ts, "event_type": "alert", "kind": kind, "severity": sev,
               "scope": "s1", "request": {"method": "POST", "host": "api", "path": path,
               "src_ip": ip}})
    }

    #[test]
    fn read_events_keeps_alerts_skips_other_events_and_counts_bad_lines() {
        let text = "{\"event_type\":\"alert\",\"kind\":\"missing_key\"}\n\
                    {\"event_type\":\"stats\"}\n\n\
                    not json\n[1,2]\n\
                    {\"event_type\":\"http\"}\n\
                    {\"event_type\":\"alert\",\"kind\":\"key_churn\"}";
        let mut input = Input::default();
        input.read_events("x", text.as_bytes()).unwrap();
        assert_eq!(input.alerts.len(), 2);
        assert_eq!(input.skipped_events, 2);
        assert_eq!(input.malformed, 2);
        let lines: Vec<u64> = input.malformed_lines.iter().map(|m| m.1).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn malformed_lines_are_all_counted_but_few_kept() {
        let text = "x\n".repeat(100);
        let mut input = Input::default();
        input.read_events("x", text.as_bytes()).unwrap();
        assert_eq!(input.malformed, 100);
        assert_eq!(input.malformed_lines.len(), MAX_MALFORMED_KEPT);
    }

    #[test]
    fn summarize_counts_kinds_severities_and_top_lists() {
        let alerts = [
            alert(
                "key_conflict",
                "high",
                "2026-11-28T08:00:01Z",
                "10.0.0.1",
                "/a",
            ),
            alert(
                "key_conflict",
                "high",
                "2026-11-28T08:00:59Z",
                "10.0.0.2",
                "/a",
            ),
            alert(
                "missing_key",
                "low",
                "2026-11-28T08:02:00Z",
                "10.0.0.1",
                "/b",
            ),
        ];
        let s = summarize(&alerts);
        assert_eq!(s.total, 3);
        assert_eq!(s.by_kind["key_conflict"], 2);
        assert_eq!(s.by_kind["missing_key"], 1);
        assert_eq!(s.by_severity["high"], 2);
        assert_eq!(s.top_endpoints[0], ("POST api /a".to_string(), 2));
        assert_eq!(s.top_clients[0], ("10.0.0.1".to_string(), 2));
        assert_eq!(s.top_clients[1], ("10.0.0.2".to_string(), 1));
        assert_eq!(s.top_scopes, [("s1".to_string(), 3)]);
    }

    #[test]
    fn timeline_buckets_per_minute_with_empty_minutes_between() {
        let alerts = [
            alert("key_conflict", "high", "2026-11-28T08:00:01Z", "a", "/"),
            alert("key_conflict", "high", "2026-11-28T08:00:59Z", "a", "/"),
            alert("missing_key", "low", "2026-11-28T08:02:00Z", "a", "/"),
            alert("missing_key", "low", "garbage", "a", "/"),
        ];
        let t = summarize(&alerts).timeline;
        assert_eq!(t.bucket_minutes, 1);
        assert_eq!(format_minute(t.start), "2026-11-28 08:00");
        assert_eq!(t.counts.len(), 3);
        assert_eq!(t.counts[0]["key_conflict"], 2);
        assert!(t.counts[1].is_empty());
        assert_eq!(t.counts[2]["missing_key"], 1);
        assert_eq!(t.undated, 1);
    }

    #[test]
    fn a_long_span_takes_wider_buckets_and_stays_bounded() {
        let alerts = [
            alert("k", "low", "2026-11-28T08:00:00Z", "a", "/"),
            alert("k", "low", "2026-12-05T08:00:00Z", "a", "/"),
        ];
        let t = summarize(&alerts).timeline;
        assert_eq!(
            t.bucket_minutes, 30,
            "a week in 30-minute buckets: 337 of them"
        );
        assert!(t.counts.len() as i64 <= MAX_BUCKETS);
        let total: u64 = t.counts.iter().flat_map(|b| b.values()).sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn minute_of_reads_rfc3339_and_refuses_the_rest() {
        assert_eq!(minute_of("1970-01-01T00:01:00Z"), Some(1));
        assert_eq!(
            format_minute(minute_of("2024-02-29T23:59:00Z").unwrap()),
            "2024-02-29 23:59"
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-13-01T00:00",
            "2026-11-28T24:00",
            "２０２６-11-28T08:00",
        ] {
            assert_eq!(minute_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn listed_is_in_time_order_and_capped() {
        let alerts = [
            alert("a", "low", "2026-11-28T08:00:03Z", "a", "/"),
            alert("b", "low", "2026-11-28T08:00:01Z", "a", "/"),
            alert("c", "low", "2026-11-28T08:00:02Z", "a", "/"),
        ];
        let l = listed(&alerts, 2);
        let kinds: Vec<&str> = l.iter().filter_map(|a| field(a, &["kind"])).collect();
        assert_eq!(kinds, ["b", "c"]);
    }
}
