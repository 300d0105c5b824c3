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
/// The longest line read (an alert is a few KB): a longer one is counted malformed, skipped.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Distinct values each top list ranks; a value first seen when it is full is not ranked (its
/// alerts still count everywhere else).
pub const MAX_DISTINCT: usize = 100_000;
/// Distinct time buckets kept while reading; past it every bucket widens (minute, hour, day,
/// week), so a span of years stays bounded.
pub const MAX_TIME_KEYS: usize = 100_000;
const GRANULARITIES: [i64; 4] = [1, 60, 1440, 10_080];

/// What [`Input::read_events`] found in the input. Memory stays bounded whatever its size:
/// every alert is counted in `tally`, and only the first `keep` in time order are kept whole.
#[derive(Debug)]
pub struct Input {
    /// The alerts to list in detail: after each source is read, the first `keep` in time order
    /// (undated last, input order among equals).
    pub alerts: Vec<Value>,
    /// The counts over every alert read.
    pub tally: Tally,
    /// JSON objects that are not alerts (`stats`, `http` from --log-requests).
    pub skipped_events: u64,
    /// Lines that are not JSON objects (or longer than [`MAX_LINE_BYTES`]).
    pub malformed: u64,
    /// The first [`MAX_MALFORMED_KEPT`] malformed lines: (source name, line number, why).
    pub malformed_lines: Vec<(String, u64, String)>,
    keep: usize,
}

impl Default for Input {
    /// Keeps every alert (for tests and small inputs).
    fn default() -> Self {
        Input::new(usize::MAX)
    }
}

impl Input {
    /// An input that keeps whole the first `keep` alerts in time order.
    pub fn new(keep: usize) -> Input {
        Input {
            alerts: Vec::new(),
            tally: Tally::default(),
            skipped_events: 0,
            malformed: 0,
            malformed_lines: Vec::new(),
            keep,
        }
    }

    /// An input holding these alerts, counted (tests and callers that parsed them already).
    pub fn from_alerts(alerts: Vec<Value>) -> Input {
        let mut input = Input::default();
        for a in &alerts {
            input.tally.add(a);
        }
        input.alerts = alerts;
        input.trim();
        input
    }

    /// Reads JSON lines from `reader` (named `source` in messages). Blank lines are ignored; a
    /// line that is not a JSON object is counted, never fatal. An I/O error ends the reading of
    /// this source and is returned.
    pub fn read_events(&mut self, source: &str, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            number = number.saturating_add(1);
            if line.len() > MAX_LINE_BYTES && line.last() != Some(&b'\n') {
                // The rest of the line is skipped unread, a bounded chunk at a time.
                loop {
                    let buf = reader.fill_buf()?;
                    if buf.is_empty() {
                        break;
                    }
                    match buf.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            reader.consume(i + 1);
                            break;
                        }
                        None => {
                            let len = buf.len();
                            reader.consume(len);
                        }
                    }
                }
                self.malformed(
                    source,
                    number,
                    format!("longer than {MAX_LINE_BYTES} bytes"),
                );
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(v) if v.is_object() => {
                    if v.get("event_type").and_then(Value::as_str) == Some("alert") {
                        self.tally.add(&v);
                        self.alerts.push(v);
                        if self.alerts.len() >= self.keep.saturating_mul(2).max(2) {
                            self.trim();
                        }
                    } else {
                        self.skipped_events += 1;
                    }
                }
                Ok(_) => self.malformed(source, number, "not a JSON object".to_string()),
                Err(e) => self.malformed(source, number, e.to_string()),
            }
        }
        self.trim();
        Ok(())
    }

    /// Keeps the first `keep` alerts in time order.
    fn trim(&mut self) {
        sort_by_time(&mut self.alerts);
        self.alerts.truncate(self.keep);
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

/// Counts taken one alert at a time, in bounded memory (see [`MAX_DISTINCT`],
/// [`MAX_TIME_KEYS`]).
#[derive(Debug, Default)]
pub struct Tally {
    total: u64,
    by_kind: BTreeMap<String, u64>,
    by_severity: BTreeMap<String, u64>,
    endpoints: HashMap<String, u64>,
    clients: HashMap<String, u64>,
    scopes: HashMap<String, u64>,
    /// Alerts per time bucket (start, in minutes since the epoch) and kind.
    times: BTreeMap<i64, BTreeMap<String, u64>>,
    /// Index in [`GRANULARITIES`] of the bucket width of `times`.
    granularity: usize,
    undated: u64,
}

impl Tally {
    pub fn add(&mut self, a: &Value) {
        self.total += 1;
        let kind = field(a, &["kind"]).unwrap_or("unknown");
        *self.by_kind.entry(kind.to_string()).or_default() += 1;
        let sev = field(a, &["severity"]).unwrap_or("unknown");
        *self.by_severity.entry(sev.to_string()).or_default() += 1;
        count_bounded(&mut self.endpoints, endpoint(a));
        if let Some(ip) = field(a, &["request", "src_ip"]) {
            count_bounded(&mut self.clients, ip.to_string());
        }
        if let Some(scope) = field(a, &["scope"]) {
            count_bounded(&mut self.scopes, scope.to_string());
        }
        match alert_time(a).and_then(minute_of) {
            Some(m) => {
                let w = GRANULARITIES[self.granularity];
                let slot = m - m.rem_euclid(w);
                *self
                    .times
                    .entry(slot)
                    .or_default()
                    .entry(kind.to_string())
                    .or_default() += 1;
                if self.times.len() > MAX_TIME_KEYS && self.granularity + 1 < GRANULARITIES.len() {
                    self.widen();
                }
            }
            None => self.undated += 1,
        }
    }

    /// Every time bucket becomes one of the next width.
    fn widen(&mut self) {
        self.granularity += 1;
        let w = GRANULARITIES[self.granularity];
        let old = std::mem::take(&mut self.times);
        for (m, kinds) in old {
            let b = self.times.entry(m - m.rem_euclid(w)).or_default();
            for (k, c) in kinds {
                *b.entry(k).or_default() += c;
            }
        }
    }

    /// The counts as the page shows them.
    pub fn summary(&self) -> Summary {
        let mut timeline = timeline(&self.times, GRANULARITIES[self.granularity]);
        timeline.undated = self.undated;
        Summary {
            total: self.total,
            by_kind: self.by_kind.clone(),
            by_severity: self.by_severity.clone(),
            timeline,
            top_endpoints: top(&self.endpoints),
            top_clients: top(&self.clients),
            top_scopes: top(&self.scopes),
        }
    }
}

fn count_bounded(counts: &mut HashMap<String, u64>, key: String) {
    if let Some(c) = counts.get_mut(&key) {
        *c += 1;
    } else if counts.len() < MAX_DISTINCT {
        counts.insert(key, 1);
    }
}

/// Counts everything: kinds, severities, the timeline, the top lists.
pub fn summarize(alerts: &[Value]) -> Summary {
    let mut t = Tally::default();
    for a in alerts {
        t.add(a);
    }
    t.summary()
}

/// The `TOP_N` largest counts, ties by name so that the page is the same on every run.
fn top(counts: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter()
        .take(TOP_N)
        .map(|(k, c)| (k.clone(), *c))
        .collect()
}

/// The buckets to draw from counts kept at `granularity` minutes.
fn timeline(times: &BTreeMap<i64, BTreeMap<String, u64>>, granularity: i64) -> Timeline {
    let (Some(first), Some(last)) = (times.keys().next().copied(), times.keys().last().copied())
    else {
        return Timeline::default();
    };
    // At least 1, and far from overflow: minutes since the epoch of a 4-digit year.
    let span = last.saturating_sub(first).saturating_add(granularity);
    let bucket_minutes = [1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080]
        .into_iter()
        .filter(|w| w % granularity == 0)
        .find(|w| (span + w - 1) / w <= MAX_BUCKETS)
        // Beyond a week per bucket: whatever multiple of the kept width bounds the count.
        .unwrap_or_else(|| {
            let w = ((span + MAX_BUCKETS - 1) / MAX_BUCKETS).max(1);
            (w + granularity - 1) / granularity * granularity
        });
    let start = first - first.rem_euclid(bucket_minutes);
    let n = usize::try_from((last - start) / bucket_minutes + 1).unwrap_or(1);
    let mut counts = vec![BTreeMap::new(); n];
    for (m, kinds) in times {
        let i = usize::try_from((m - start) / bucket_minutes).unwrap_or(0);
        if let Some(b) = counts.get_mut(i) {
            for (k, c) in kinds {
                *b.entry(k.clone()).or_default() += c;
            }
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
    if h > 23 || mi > 59 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let days =
        i64::from(date.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day());
    Some(days * 1440 + h * 60 + mi)
}

/// "YYYY-MM-DD HH:MM" of minutes since the epoch (the inverse of [`minute_of`]).
pub fn format_minute(m: i64) -> String {
    const MINUTE: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(m.saturating_mul(60))
        .ok()
        .and_then(|t| t.format(MINUTE).ok())
        .unwrap_or_else(|| format!("minute {m}"))
}

/// Sorts alerts in time order, undated last, input order kept among equals (stable). Alerts
/// write RFC 3339 UTC with a fixed width, so text order is time order.
fn sort_by_time(v: &mut [Value]) {
    v.sort_by(by_time);
}

/// Time order, undated last.
fn by_time(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (alert_time(a), alert_time(b)) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// The alerts to list in detail: the first `max` in time order (undated ones last, input order
/// kept among equals).
pub fn listed(alerts: &[Value], max: usize) -> Vec<&Value> {
    let mut v: Vec<&Value> = alerts.iter().collect();
    v.sort_by(|a, b| by_time(a, b));
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
            "2026-02-30T00:00",
            "２０２６-11-28T08:00",
        ] {
            assert_eq!(minute_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn reading_keeps_the_first_alerts_in_time_order_and_counts_them_all() {
        let mut input = Input::new(3);
        let mut text = String::new();
        // 50 alerts, latest first: the three kept must be the earliest.
        for i in (0..50).rev() {
            let ts = format!("2026-11-28T09:{:02}:00.000000Z", i % 60);
            text.push_str(&alert("key_conflict", "high", &ts, "10.0.0.1", "/v1/x").to_string());
            text.push('\n');
        }
        input.read_events("a", text.as_bytes()).unwrap();
        assert_eq!(input.tally.summary().total, 50);
        let times: Vec<&str> = input.alerts.iter().filter_map(alert_time).collect();
        assert_eq!(
            times,
            [
                "2026-11-28T09:00:00.000000Z",
                "2026-11-28T09:01:00.000000Z",
                "2026-11-28T09:02:00.000000Z"
            ]
        );
    }

    #[test]
    fn a_line_too_long_is_skipped_and_the_next_one_read() {
        let mut input = Input::default();
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(
            alert(
                "missing_key",
                "low",
                "2026-11-28T09:29:46.5Z",
                "10.0.0.1",
                "/v1/x",
            )
            .to_string()
            .as_bytes(),
        );
        text.push(b'\n');
        input.read_events("a", &text[..]).unwrap();
        assert_eq!((input.malformed, input.alerts.len()), (1, 1));
        assert_eq!(input.malformed_lines[0].1, 1);
    }

    #[test]
    fn top_lists_and_time_buckets_stay_bounded() {
        let mut t = Tally::default();
        // More distinct paths than ranked, over more minutes than kept one by one.
        for i in 0..(MAX_TIME_KEYS as i64 + 10) {
            let start = minute_of("2026-01-01T00:00Z").unwrap_or_default();
            let ts = format_minute(start + i).replacen(' ', "T", 1) + ":00Z";
            t.add(&alert(
                "key_conflict",
                "high",
                &ts,
                "10.0.0.1",
                &format!("/p/{i}"),
            ));
        }
        assert!(t.endpoints.len() <= MAX_DISTINCT);
        assert!(t.times.len() <= MAX_TIME_KEYS);
        assert_eq!(t.granularity, 1, "widened to hours");
        let s = t.summary();
        assert_eq!(s.total, MAX_TIME_KEYS as u64 + 10);
        let drawn: u64 = s.timeline.counts.iter().flat_map(|b| b.values()).sum();
        assert_eq!(drawn, s.total, "every dated alert is in a bucket");
        assert!(s.timeline.counts.len() as i64 <= MAX_BUCKETS);
        assert_eq!(s.timeline.bucket_minutes % 60, 0);
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
