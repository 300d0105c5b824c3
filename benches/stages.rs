//! Throughput of each stage on our bulk capture (captures/bulk.pcap, 2100 transactions held in
//! memory): decoding, decoding + reassembly + HTTP, the tracker on ready-made events, and the
//! formatting of alerts. `cargo bench --bench stages`; the end-to-end figure against the libpcap
//! floor comes from scripts/bench.sh.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idemwatch::config::Config;
use idemwatch::decode::{Decoded, Decoder, LinkType};
use idemwatch::http::HttpEvent;
use idemwatch::output::AlertEvent;
use idemwatch::pipeline::FlowWorker;
use idemwatch::stats::Stats;
use idemwatch::tracker::{Alert, Tracker};
use idemwatch::ts::Timestamp;

struct Frame {
    ts: Timestamp,
    data: Vec<u8>,
    wire_len: u32,
}

fn frames() -> Vec<Frame> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/bulk.pcap");
    let mut cap = pcap::Capture::from_file(&path).expect("captures/bulk.pcap");
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        out.push(Frame {
            ts: Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec * 1000),
            data: p.data.to_vec(),
            wire_len: p.header.len,
        });
    }
    out
}

fn http_events(config: &Config, frames: &[Frame]) -> Vec<HttpEvent> {
    let mut decoder = Decoder::new(&config.limits.decode);
    let mut worker = FlowWorker::new(config, 1);
    let mut stats = Stats::default();
    for (i, f) in frames.iter().enumerate() {
        if let Decoded::Segment(seg) =
            decoder.decode(f.ts, LinkType::Ethernet, &f.data, f.wire_len, &mut stats)
        {
            worker.segment(&seg, i as u64, 0);
        }
    }
    worker.finish(frames.last().map_or(Timestamp(0), |f| f.ts));
    worker.drain().into_iter().map(|(_, e)| e).collect()
}

fn event_time(e: &HttpEvent) -> Timestamp {
    match e {
        HttpEvent::Request { request, .. } => request.ts_end,
        HttpEvent::Transaction(t) => t.ts_done,
    }
}

fn stages(c: &mut Criterion) {
    let config = Config::default();
    let frames = frames();
    let bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);

    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(&config.limits.decode);
            let mut stats = Stats::default();
            for f in &frames {
                let _ = black_box(decoder.decode(
                    f.ts,
                    LinkType::Ethernet,
                    &f.data,
                    f.wire_len,
                    &mut stats,
                ));
            }
            stats.packets
        })
    });

    g.bench_function("decode_reassembly_http", |b| {
        b.iter(|| black_box(http_events(&config, &frames).len()))
    });

    let events = http_events(&config, &frames);
    g.bench_function("tracker", |b| {
        b.iter(|| {
            let mut t = Tracker::new(config.tracker.clone());
            let mut stats = Stats::default();
            let mut alerts: Vec<Alert> = Vec::new();
            for e in &events {
                t.on_event(e, event_time(e), &mut stats, &mut alerts);
            }
            black_box(alerts.len())
        })
    });

    let mut t = Tracker::new(config.tracker.clone());
    let mut stats = Stats::default();
    let mut alerts: Vec<Alert> = Vec::new();
    for e in &events {
        t.on_event(e, event_time(e), &mut stats, &mut alerts);
    }
    let names = vec!["captures/bulk.pcap".to_string()];
    g.bench_function("output_alerts", |b| {
        b.iter(|| {
            let mut buf = Vec::with_capacity(1 << 20);
            for a in &alerts {
                serde_json::to_writer(&mut buf, &AlertEvent::new(a, &names, false)).unwrap();
                buf.push(b'\n');
            }
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
