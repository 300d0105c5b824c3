//! Several flow workers: this thread reads and decodes, workers reassemble and parse the flows
//! of their shard, a merging thread puts the events back in capture order and runs the tracker
//! and the output.
//!
//! Order is kept without locks on the packet path: every event carries its [`OrderKey`], and
//! every worker reports a watermark, the lowest packet index it may still produce events for.
//! The merger writes an event only when no worker can produce an earlier one, so the output is
//! byte-identical to one worker's. Segments travel in batches (one copy of their payload);
//! sweeps are decided here, in capture time, and sent to every worker at the same packet.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::{FlowWorker, Front, Judge, OrderKey, RunEnd, Step};
use crate::config::Config;
use crate::decode::{Segment, TcpFlags, Vlans};
use crate::http::HttpEvent as HttpOut;
use crate::output::Output;
use crate::pipeline::RunError;
use crate::reassembly::{Endpoint, FlowKey};
use crate::source::CaptureSet;
use crate::stats::Stats;
use crate::tls::sessions::SessionCache;
use crate::ts::Timestamp;

/// Segments per batch, and payload bytes per batch, before it is sent.
const BATCH_SEGMENTS: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// Every this many packets, idle workers are told how far the input went.
const PROGRESS_EVERY: u64 = 4096;
/// Batches a worker has emptied wait here to be filled again (per worker): their buffers keep
/// their capacity, so the reading thread neither grows fresh vectors nor faults in fresh pages
/// for every batch.
const POOL_PER_WORKER: usize = 72;

/// A segment whose payload lives in its batch's buffer.
struct SegMeta {
    packet_no: u64,
    file_index: usize,
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: Range<usize>,
    missing_tail: u32,
    vlans: Vlans,
}

#[derive(Default)]
struct Batch {
    segs: Vec<SegMeta>,
    data: Vec<u8>,
}

enum Msg {
    Batch(Batch),
    /// A sweep at this packet.
    Tick(u64, Timestamp),
    /// Everything up to this packet was sent.
    Progress(u64),
    Finish(Timestamp),
}

/// What a worker hands to the merger.
struct Done {
    worker: usize,
    events: Vec<(OrderKey, HttpOut)>,
    /// The lowest packet index the worker may still produce events for.
    watermark: u64,
    /// The worker's counters, with its last message.
    stats: Option<Stats>,
}

pub(super) fn run(
    config: &Config,
    source: CaptureSet,
    names: &[String],
    judge: Judge,
    out: &mut Output,
    workers: usize,
    sessions: Option<Arc<SessionCache>>,
) -> Result<RunEnd, RunError> {
    let stop = AtomicBool::new(false);
    let mut front_stats = Stats::default();
    let mut front = Front::new(config, source, sessions.clone());
    let merged = std::thread::scope(|scope| {
        let (done_tx, done_rx) = bounded::<Done>(4 * workers);
        let (pool_tx, pool_rx) = bounded::<Batch>(POOL_PER_WORKER * workers);
        let mut to_workers: Vec<Sender<Msg>> = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Msg>(64);
            to_workers.push(tx);
            let done_tx = done_tx.clone();
            let sessions = sessions.clone();
            let pool = pool_tx.clone();
            scope.spawn(move || worker_loop(i, config, workers, rx, done_tx, pool, sessions));
        }
        drop(done_tx);
        drop(pool_tx);
        // An emptied batch to fill, or a new one.
        let refill = || pool_rx.try_recv().unwrap_or_default();
        let stop_ref = &stop;
        let merger =
            scope.spawn(move || merge_loop(workers, done_rx, judge, config, names, out, stop_ref));

        let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::default()).collect();
        let send = |w: usize, m: Msg| {
            if let Some(tx) = to_workers.get(w) {
                // A worker only goes away when the run is over.
                let _ = tx.send(m);
            }
        };
        let flush = |batches: &mut Vec<Batch>| {
            for (w, b) in batches.iter_mut().enumerate() {
                if !b.segs.is_empty() {
                    send(w, Msg::Batch(std::mem::replace(b, refill())));
                }
            }
        };
        while !stop.load(Ordering::Relaxed) {
            let Step::Frame {
                segment,
                packet_no,
                file_index,
                sweep,
            } = front.step(&mut front_stats)
            else {
                break;
            };
            if let Some(seg) = segment {
                let key = FlowKey::new(
                    Endpoint {
                        ip: seg.src,
                        port: seg.src_port,
                    },
                    Endpoint {
                        ip: seg.dst,
                        port: seg.dst_port,
                    },
                );
                let w = (key.shard_hash() % workers as u64) as usize;
                if let Some(b) = batches.get_mut(w) {
                    let start = b.data.len();
                    b.data.extend_from_slice(seg.payload);
                    b.segs.push(SegMeta {
                        packet_no,
                        file_index,
                        ts: seg.ts,
                        src: seg.src,
                        dst: seg.dst,
                        src_port: seg.src_port,
                        dst_port: seg.dst_port,
                        seq: seg.seq,
                        ack: seg.ack,
                        flags: seg.flags,
                        payload: start..b.data.len(),
                        missing_tail: seg.missing_tail,
                        vlans: seg.vlans,
                    });
                    if b.segs.len() >= BATCH_SEGMENTS || b.data.len() >= BATCH_BYTES {
                        send(w, Msg::Batch(std::mem::replace(b, refill())));
                    }
                }
            }
            if let Some(ts) = sweep {
                flush(&mut batches);
                for w in 0..workers {
                    send(w, Msg::Tick(packet_no, ts));
                }
            } else if (packet_no + 1).is_multiple_of(PROGRESS_EVERY) {
                flush(&mut batches);
                for w in 0..workers {
                    send(w, Msg::Progress(packet_no));
                }
            }
        }
        flush(&mut batches);
        for w in 0..workers {
            send(w, Msg::Finish(front.last_ts));
        }
        drop(to_workers);
        merger.join()
    });
    let (mut stats, closed) = match merged {
        Ok(r) => r?,
        Err(_) => {
            return Err(RunError::Output(std::io::Error::other(
                "the merging thread stopped unexpectedly",
            )));
        }
    };
    stats.merge(&front_stats);
    Ok(RunEnd {
        stats,
        packets: front.packet_no,
        last_ts: front.last_ts,
        closed,
        failure: front.failure,
    })
}

fn worker_loop(
    index: usize,
    config: &Config,
    shards: usize,
    rx: Receiver<Msg>,
    done: Sender<Done>,
    pool: Sender<Batch>,
    sessions: Option<Arc<SessionCache>>,
) {
    let mut w = FlowWorker::new(config, shards).with_sessions(sessions);
    for msg in rx {
        let (watermark, last) = match msg {
            Msg::Batch(mut b) => {
                let mut mark = 0;
                for m in &b.segs {
                    let seg = Segment {
                        ts: m.ts,
                        src: m.src,
                        dst: m.dst,
                        src_port: m.src_port,
                        dst_port: m.dst_port,
                        seq: m.seq,
                        ack: m.ack,
                        flags: m.flags,
                        payload: b.data.get(m.payload.clone()).unwrap_or(&[]),
                        missing_tail: m.missing_tail,
                        vlans: m.vlans,
                    };
                    w.segment(&seg, m.packet_no, m.file_index);
                    mark = m.packet_no;
                }
                // Back to the reading thread, emptied (dropped when the pool is full).
                b.segs.clear();
                b.data.clear();
                let _ = pool.try_send(b);
                // A sweep may still come at the last packet.
                (mark, false)
            }
            Msg::Tick(p, ts) => {
                w.tick(p, ts);
                (p + 1, false)
            }
            Msg::Progress(p) => (p + 1, false),
            Msg::Finish(ts) => {
                w.finish(ts);
                (u64::MAX, true)
            }
        };
        let d = Done {
            worker: index,
            events: w.drain(),
            watermark,
            stats: last.then(|| w.sink.stats.clone()),
        };
        if done.send(d).is_err() {
            return;
        }
        if last {
            return;
        }
    }
}

/// Merges the workers' events in capture order; runs the tracker and writes. Returns the
/// merged counters of the workers and the tracker, and whether the output was closed.
fn merge_loop(
    workers: usize,
    rx: Receiver<Done>,
    mut judge: Judge,
    config: &Config,
    names: &[String],
    out: &mut Output,
    stop: &AtomicBool,
) -> Result<(Stats, bool), RunError> {
    let mut queues: Vec<VecDeque<(OrderKey, HttpOut)>> =
        (0..workers).map(|_| VecDeque::new()).collect();
    let mut marks = vec![0u64; workers];
    let mut finished = vec![false; workers];
    let mut stats = Stats::default();
    let mut closed = false;
    let mut ready: Vec<HttpOut> = Vec::new();
    for d in rx {
        if let Some(q) = queues.get_mut(d.worker) {
            q.extend(d.events);
        }
        if let Some(m) = marks.get_mut(d.worker) {
            *m = (*m).max(d.watermark);
        }
        if let Some(s) = d.stats {
            stats.merge(&s);
            if let Some(f) = finished.get_mut(d.worker) {
                *f = true;
            }
        }
        if closed {
            queues.iter_mut().for_each(VecDeque::clear);
            continue;
        }
        let all_done = finished.iter().all(|f| *f);
        let limit = marks.iter().copied().min().unwrap_or(0);
        // Take, in key order, every event no worker can precede any more.
        loop {
            let next = queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.front().map(|(k, _)| (*k, i)))
                .min();
            match next {
                Some((k, i)) if all_done || k.packet_no < limit => {
                    if let Some((_, ev)) = queues.get_mut(i).and_then(VecDeque::pop_front) {
                        ready.push(ev);
                    }
                }
                _ => break,
            }
        }
        if !ready.is_empty() && judge.write(config, names, std::mem::take(&mut ready), out)? {
            closed = true;
            stop.store(true, Ordering::Relaxed);
        }
    }
    if !closed {
        closed = judge.finish(config, names, out)?;
    }
    stats.merge(&judge.counters());
    // A gauge, read once at the end: the store's size shows `--max-keys` holding.
    stats.tracker_keys_tracked = judge.tracker.tracked_keys() as u64;
    Ok((stats, closed))
}
