//! Renders the report page: one HTML string with inline CSS, an inline SVG timeline and one
//! small inline script (it marks the page when a script error happens, so a browser test can
//! see it). Every string from the input goes through [`escape`]; a Content-Security-Policy
//! allows no script but that one (by hash), no fetch and no external asset, so the page opens
//! offline and an injected tag could not run even if escaping failed.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

use super::{Input, SEVERITIES, Summary, field, format_minute, listed};

/// What the page says about where its alerts came from.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Input names as given (`-` for stdin).
    pub sources: Vec<String>,
    /// At most this many alerts are listed in detail.
    pub max_listed: usize,
}

// Records a script error on the root element (the onerror handler is the first thing run), and
// marks that scripts ran at all, so a test can tell "no error" from "no script".
const SCRIPT: &str = "window.onerror=function(m){document.documentElement.setAttribute(\
'data-js-error',String(m));};\
document.addEventListener('DOMContentLoaded',function(){\
document.documentElement.setAttribute('data-js-ok','1');});";

// content-visibility: the browser lays out only the alerts on screen, which halves the load
// time of a page listing 1,000 alerts (3.5 -> 1.5 s in headless Chromium).
const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;\
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right}\
.mono,td.v{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}\
.tops{display:flex;gap:24px;flex-wrap:wrap}.tops>div{flex:1;min-width:280px}\
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;\
height:12px;margin-right:4px;vertical-align:middle}\
.alert{border:1px solid #ccc;border-left:6px solid #999;margin:12px 0;padding:6px 10px;\
content-visibility:auto;contain-intrinsic-size:auto 700px}\
.sev-critical{border-left-color:#8b0000}.sev-high{border-left-color:#d9480f}\
.sev-medium{border-left-color:#e8a317}.sev-low{border-left-color:#5c7cfa}\
td.diff{background:#ffe3e3;font-weight:bold}.null{color:#999}.note{color:#555}\
.pair{display:flex;gap:16px;flex-wrap:wrap}";

/// Kinds in the order of the contract, each with a fixed colour; others get grey shades.
const KIND_COLOURS: [(&str, &str); 12] = [
    ("conflict_accepted", "#8b0000"),
    ("replay_mismatch", "#c92a2a"),
    ("key_conflict", "#d9480f"),
    ("key_churn", "#f08c00"),
    ("keyless_duplicate", "#fab005"),
    ("late_retry", "#5f3dc4"),
    ("invalid_key", "#862e9c"),
    ("concurrent_reuse", "#1971c2"),
    ("conflict_replayed", "#0c8599"),
    ("missing_key", "#5c7cfa"),
    ("replay_drift", "#2b8a3e"),
    ("key_reencoded", "#66a80f"),
];

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn colour(kind: &str, i: usize) -> &'static str {
    const OTHERS: [&str; 4] = ["#495057", "#868e96", "#adb5bd", "#343a40"];
    KIND_COLOURS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, c)| *c)
        .unwrap_or(OTHERS[i % OTHERS.len()])
}

/// The whole page for `input`.
pub fn render(input: &Input, meta: &Meta) -> String {
    let summary = input.tally.summary();
    let listed = listed(&input.alerts, meta.max_listed);
    let script_hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
    let mut h = String::with_capacity(4096 + listed.len() * 3000);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'\">\
         <title>idemwatch report: {} alerts</title><script>{SCRIPT}</script>\
         <style>{STYLE}</style></head><body>\n",
        summary.total
    );
    let sources = if meta.sources.is_empty() {
        "-".to_string()
    } else {
        meta.sources.join(", ")
    };
    let _ = write!(
        h,
        "<h1>idemwatch report</h1>\n<p>Input: <span class=\"mono\">{}</span>. \
         <span id=\"total-alerts\" data-count=\"{t}\">{t}</span> alerts; \
         <span id=\"skipped-events\" data-count=\"{s}\">{s}</span> other events skipped \
         (stats, http); <span id=\"malformed-lines\" data-count=\"{m}\">{m}</span> \
         malformed lines.</p>\n",
        escape(&sources),
        t = summary.total,
        s = input.skipped_events,
        m = input.malformed,
    );
    counts(&mut h, &summary);
    timeline(&mut h, &summary);
    tops(&mut h, &summary);
    details(&mut h, &listed, summary.total);
    h.push_str("</body></html>\n");
    h
}

fn counts(h: &mut String, s: &Summary) {
    h.push_str(
        "<h2>Counts</h2>\n<div class=\"tops\"><div><table><tr><th>kind</th><th>alerts</th></tr>\n",
    );
    for (i, (kind, n)) in s.by_kind.iter().enumerate() {
        let k = escape(kind);
        let _ = writeln!(
            h,
            "<tr><td><span class=\"sw\" style=\"background:{}\"></span>{k}</td>\
             <td class=\"n\" data-kind=\"{k}\" data-count=\"{n}\">{n}</td></tr>",
            colour(kind, i)
        );
    }
    h.push_str("</table></div><div><table><tr><th>severity</th><th>alerts</th></tr>\n");
    let known = SEVERITIES.iter().map(|s| s.to_string());
    let others = s
        .by_severity
        .keys()
        .filter(|k| !SEVERITIES.contains(&k.as_str()))
        .cloned();
    for sev in known.chain(others) {
        let n = s.by_severity.get(&sev).copied().unwrap_or(0);
        let e = escape(&sev);
        let _ = writeln!(
            h,
            "<tr><td>{e}</td><td class=\"n\" data-severity=\"{e}\" data-count=\"{n}\">{n}</td></tr>"
        );
    }
    h.push_str("</table></div></div>\n");
}

fn timeline(h: &mut String, s: &Summary) {
    let t = &s.timeline;
    let _ = writeln!(
        h,
        "<h2>Timeline</h2>\n<p class=\"note\">Alerts per {} by kind (capture time, UTC){}.</p>",
        if t.bucket_minutes == 1 {
            "minute".to_string()
        } else {
            format!("{} minutes", t.bucket_minutes)
        },
        if t.undated > 0 {
            format!(
                "; {} alerts without a readable timestamp are left out",
                t.undated
            )
        } else {
            String::new()
        }
    );
    if t.counts.is_empty() {
        h.push_str("<p>No dated alerts.</p>\n");
        return;
    }
    let kinds: Vec<&String> = s.by_kind.keys().collect();
    let max = t
        .counts
        .iter()
        .map(|b| b.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, ph, left, top) = (1200.0_f64, 200.0_f64, 50.0_f64, 10.0_f64);
    let n = t.counts.len() as f64;
    let slot = (w - left - 10.0) / n;
    let bar = (slot * 0.8).clamp(1.0, 60.0);
    let _ = write!(
        h,
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" \
         role=\"img\" aria-label=\"alerts per bucket\">\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        ph + top + 30.0,
        ph + top,
        ph + top,
        w - 10.0,
        ph + top,
        left - 4.0,
        top + 10.0,
        left - 4.0,
        ph + top,
    );
    for (i, bucket) in t.counts.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = ph + top;
        let label = format_minute(t.start + t.bucket_minutes * i as i64);
        for (ki, kind) in kinds.iter().enumerate() {
            let Some(&c) = bucket.get(*kind) else {
                continue;
            };
            let bh = ph * c as f64 / max as f64;
            y -= bh;
            let _ = write!(
                h,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" \
                 fill=\"{}\"><title>{label} {}: {c}</title></rect>",
                colour(kind, ki),
                escape(kind)
            );
        }
    }
    let last = t.start + t.bucket_minutes * (t.counts.len() as i64 - 1);
    let _ = writeln!(
        h,
        "<text x=\"{left}\" y=\"{}\" font-size=\"11\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        ph + top + 18.0,
        format_minute(t.start),
        w - 10.0,
        ph + top + 18.0,
        format_minute(last),
    );
    h.push_str("<p class=\"legend\">");
    for (i, kind) in kinds.iter().enumerate() {
        let _ = write!(
            h,
            "<span><span class=\"sw\" style=\"background:{}\"></span>{}</span>",
            colour(kind, i),
            escape(kind)
        );
    }
    h.push_str("</p>\n");
}

fn tops(h: &mut String, s: &Summary) {
    h.push_str("<h2>Top endpoints, clients and scopes</h2>\n<div class=\"tops\">");
    for (id, title, list) in [
        (
            "top-endpoints",
            "endpoint (method host path)",
            &s.top_endpoints,
        ),
        ("top-clients", "client (src_ip)", &s.top_clients),
        ("top-scopes", "scope", &s.top_scopes),
    ] {
        let _ = write!(
            h,
            "<div><table id=\"{id}\"><tr><th>{title}</th><th>alerts</th></tr>"
        );
        for (name, n) in list {
            let _ = write!(
                h,
                "<tr><td class=\"v\">{}</td><td class=\"n\">{n}</td></tr>",
                escape(name)
            );
        }
        if list.is_empty() {
            h.push_str("<tr><td colspan=\"2\" class=\"null\">none</td></tr>");
        }
        h.push_str("</table></div>");
    }
    h.push_str("</div>\n");
}

const REQUEST_ORDER: [&str; 19] = [
    "ts",
    "method",
    "host",
    "path",
    "protocol",
    "idempotency_key",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "vlan",
    "body_len",
    "body_complete",
    "body_sha256",
    "body_canon_sha256",
    "flow_id",
    "community_id",
    "tls",
    "pcap_filename",
];
const RESPONSE_ORDER: [&str; 7] = [
    "ts",
    "status",
    "body_len",
    "body_complete",
    "body_sha256",
    "resource_id",
    "replayed",
];
/// Fields that differ between any two requests and say nothing about the alert.
const NOT_COMPARED: [&str; 1] = ["ts"];

fn details(h: &mut String, listed: &[&Value], total: u64) {
    let _ = writeln!(
        h,
        "<h2>Alerts</h2>\n<p>Listed in time order: <span id=\"listed-count\" \
         data-count=\"{l}\">{l}</span> of <span id=\"listed-total\" data-count=\"{total}\">\
         {total}</span> alerts (--max-listed). Differences from the earlier request or response \
         are highlighted.</p>",
        l = listed.len()
    );
    for (i, a) in listed.iter().enumerate() {
        let sev = field(a, &["severity"]).unwrap_or("unknown");
        let _ = write!(
            h,
            "<div class=\"alert sev-{}\" id=\"alert-{}\"><b>{}</b> {} <b>{}</b> \
             <span class=\"mono\">{}</span><br>{}",
            escape(sev),
            i + 1,
            escape(field(a, &["kind"]).unwrap_or("?")),
            escape(super::alert_time(a).unwrap_or("?")),
            escape(sev),
            escape(&super::endpoint(a)),
            escape(field(a, &["message"]).unwrap_or("")),
        );
        h.push_str("<table>");
        for name in ["key", "key_sha256", "all_keys", "scope"] {
            if let Some(v) = a.get(name) {
                let _ = write!(
                    h,
                    "<tr><th>{name}</th><td class=\"v\">{}</td></tr>",
                    cell(v)
                );
            }
        }
        h.push_str("</table><div class=\"pair\">");
        compare(h, a, ("request", "original"), &REQUEST_ORDER);
        if a.get("response").is_some() || a.get("original_response").is_some() {
            compare(h, a, ("response", "original_response"), &RESPONSE_ORDER);
        }
        h.push_str("</div></div>\n");
    }
}

/// A table of the fields of `a[new]` and `a[old]` side by side, the differing ones marked.
fn compare(h: &mut String, a: &Value, (new, old): (&str, &str), order: &[&str]) {
    let n = a.get(new).filter(|v| !v.is_null());
    let o = a.get(old).filter(|v| !v.is_null());
    let mut names: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let extra: BTreeSet<String> = [n, o]
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .filter(|k| !order.contains(&k.as_str()))
        .collect();
    names.extend(extra);
    let _ = write!(h, "<table class=\"cmp\"><tr><th></th><th>{new}</th>");
    if o.is_some() {
        let _ = write!(h, "<th>{old}</th>");
    }
    h.push_str("</tr>");
    if n.is_none() && o.is_none() {
        h.push_str("</table>");
        return;
    }
    for name in &names {
        let nv = n.and_then(|v| v.get(name));
        let ov = o.and_then(|v| v.get(name));
        if nv.is_none() && ov.is_none() {
            continue;
        }
        let differs = o.is_some() && nv != ov && !NOT_COMPARED.contains(&name.as_str());
        let class = if differs { "v diff" } else { "v" };
        let _ = write!(
            h,
            "<tr><th>{}</th><td class=\"{class}\">{}</td>",
            escape(name),
            nv.map_or_else(|| "<span class=\"null\">absent</span>".to_string(), cell)
        );
        if o.is_some() {
            let _ = write!(
                h,
                "<td class=\"{class}\">{}</td>",
                ov.map_or_else(|| "<span class=\"null\">absent</span>".to_string(), cell)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// One JSON value as escaped text: strings as they are, the rest as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s),
        Value::Null => "<span class=\"null\">null</span>".to_string(),
        other => escape(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(alerts: Vec<Value>) -> Input {
        Input::from_alerts(alerts)
    }

    fn meta(max: usize) -> Meta {
        Meta {
            sources: vec!["a.jsonl".into()],
            max_listed: max,
        }
    }

    fn conflict(ts: &str, path: &str) -> Value {
        json!({"timestamp": ts, "event_type": "alert", "kind": "key_conflict",
               "severity": "high", "key": "k1", "scope": "s1", "message": "reused",
               "request": {"ts": ts, "method": "POST", "host": "api", "path": path,
                           "src_ip": "10.0.0.5", "body_len": 31, "body_sha256": "aa"},
               "original": {"ts": ts, "method": "POST", "host": "api", "path": path,
                            "src_ip": "10.0.0.5", "body_len": 31, "body_sha256": "bb"},
               "response": {"status": 200, "body_len": 5},
               "original_response": {"status": 201, "body_len": 5}})
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        let evil = "/x\"><script>alert(1)</script>";
        let mut a = conflict("2026-11-28T08:00:00Z", evil);
        a["kind"] = json!("<img src=x onerror=alert(2)>");
        a["scope"] = json!("<b>s</b>");
        a["request"]["host"] = json!("h\"><svg onload=alert(3)>");
        a["request"]["<i>k</i>"] = json!("v");
        let page = render(&input(vec![a]), &meta(10));
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        for bad in ["<img", "<svg onload", "<b>s</b>", "<i>k</i>", "\"><script"] {
            assert!(!page.contains(bad), "{bad} unescaped");
        }
        assert!(page.contains("/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn counts_are_whole_while_the_listing_is_capped() {
        let alerts: Vec<Value> = (0..30)
            .map(|i| conflict(&format!("2026-11-28T08:{i:02}:00Z"), "/v1/charges"))
            .collect();
        let page = render(&input(alerts), &meta(7));
        assert!(page.contains("id=\"total-alerts\" data-count=\"30\""));
        assert!(page.contains("data-kind=\"key_conflict\" data-count=\"30\""));
        assert!(page.contains("id=\"listed-count\" data-count=\"7\""));
        assert!(page.contains("id=\"listed-total\" data-count=\"30\""));
        assert_eq!(page.matches("class=\"alert sev-high\"").count(), 7);
        // The first seven in time order.
        assert!(page.contains("2026-11-28T08:06:00Z"));
        assert!(!page.contains("2026-11-28T08:07:00Z"));
    }

    #[test]
    fn differing_fields_are_marked_and_equal_ones_are_not() {
        let page = render(
            &input(vec![conflict("2026-11-28T08:00:00Z", "/p")]),
            &meta(10),
        );
        assert!(page.contains(
            "<th>body_sha256</th><td class=\"v diff\">aa</td><td class=\"v diff\">bb</td>"
        ));
        assert!(
            page.contains(
                "<th>status</th><td class=\"v diff\">200</td><td class=\"v diff\">201</td>"
            )
        );
        assert!(page.contains("<th>body_len</th><td class=\"v\">31</td><td class=\"v\">31</td>"));
        assert!(
            page.contains("<th>ts</th><td class=\"v\">"),
            "ts is not compared"
        );
    }

    #[test]
    fn an_alert_without_original_shows_one_column() {
        let a = json!({"timestamp": "2026-11-28T08:00:00Z", "event_type": "alert",
                       "kind": "missing_key", "severity": "low", "key": null,
                       "request": {"method": "POST", "path": "/p", "body_len": 1}});
        let page = render(&input(vec![a]), &meta(10));
        assert!(page.contains("<th>request</th></tr>"));
        assert!(!page.contains("<th>original</th>"));
        assert!(!page.contains("diff\""));
    }

    #[test]
    fn the_timeline_draws_a_bar_per_kind_and_bucket_and_a_legend() {
        let mut b = conflict("2026-11-28T08:01:30Z", "/p");
        b["kind"] = json!("missing_key");
        let alerts = vec![conflict("2026-11-28T08:00:00Z", "/p"), b];
        let page = render(&input(alerts), &meta(10));
        assert_eq!(page.matches("<rect ").count(), 2);
        assert!(page.contains("<title>2026-11-28 08:01 missing_key: 1</title>"));
        assert!(page.contains("class=\"legend\""));
    }

    #[test]
    fn the_script_hash_in_the_policy_is_the_script_s() {
        let page = render(&Input::default(), &meta(10));
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
        assert!(page.contains(&format!("'sha256-{hash}'")));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains("No dated alerts."));
    }
}
