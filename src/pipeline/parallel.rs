//! Several flow workers: the calling thread reads and decodes, workers reassemble and parse
//! the flows of their shard, a merging thread puts the events back in capture order and hands
//! them on: to the tracker and the output (`read`), or back to the capture thread (`live`).
//!
//! Order is kept without locks on the packet path: every event carries its [`OrderKey`], and
//! every worker reports a watermark, the lowest packet index it may still produce events for.
//! The merger hands an event on only when no worker can produce an earlier one, so the output
//! is byte-identical to one worker's. Segments travel in batches (one copy of their payload);
//! sweeps are decided by the caller, in capture time, and sent to every worker at the same
//! packet. [`Shards`] is the one home of this machinery: `read` and `live` both drive it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

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
pub(super) const PROGRESS_EVERY: u64 = 4096;
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
    /// A sweep after this packet.
    Tick(u64, Timestamp),
    /// A followed key log grew, after this packet: held TLS connections try again.
    Wake(u64, Timestamp),
    /// Everything up to this packet was sent.
    Progress(u64),
    /// The end: with a time, every flow ends (end of input); without, the flows are left as
    /// they are (a daemon stopping after its last sweep).
    Finish(Option<Timestamp>),
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

/// Where the merger hands the events, in capture order. It runs on the merging thread.
pub(super) trait Ordered: Send {
    /// Takes the next events; true when the output was closed (the run should stop).
    fn take(&mut self, events: Vec<HttpOut>) -> Result<bool, RunError>;
}

/// `read`: the tracker and the output, on the merging thread.
struct JudgeSink<'a> {
    judge: Judge,
    config: &'a Config,
    names: &'a [String],
    out: &'a mut Output,
}

impl Ordered for JudgeSink<'_> {
    fn take(&mut self, events: Vec<HttpOut>) -> Result<bool, RunError> {
        self.judge.write(self.config, self.names, events, self.out)
    }
}

/// What the merger ended with.
pub(super) struct Merged<S> {
    /// The workers' counters, summed.
    pub stats: Stats,
    /// The sink closed the output.
    pub closed: bool,
    pub sink: S,
}

/// Flow workers and the merger, owned by the thread that reads: it pushes segments and tells
/// the workers how far capture time and the input went; [`Shards::finish`] waits for the
/// threads and gives back the sink.
pub(super) struct Shards<'scope, S> {
    workers: usize,
    to_workers: Vec<Sender<Msg>>,
    batches: Vec<Batch>,
    pool: Receiver<Batch>,
    merger: ScopedJoinHandle<'scope, Result<Merged<S>, RunError>>,
    /// Set by the merger when the sink closed the output.
    stop: Arc<AtomicBool>,
    /// Each worker's counters at its last message other than a batch, for stats lines while
    /// running.
    reports: Arc<Vec<Mutex<Stats>>>,
    /// The highest packet index every worker was told about (segments, sweep or progress).
    told: Option<u64>,
    /// The highest packet index pushed.
    pushed: Option<u64>,
}

impl<'scope, S: Ordered + 'scope> Shards<'scope, S> {
    /// Starts `workers` flow workers and the merger in `scope`.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        config: &'scope Config,
        workers: usize,
        sessions: Option<Arc<SessionCache>>,
        sink: S,
    ) -> Shards<'scope, S> {
        let workers = workers.max(1);
        let (done_tx, done_rx) = bounded::<Done>(4 * workers);
        let (pool_tx, pool_rx) = bounded::<Batch>(POOL_PER_WORKER * workers);
        let reports: Arc<Vec<Mutex<Stats>>> =
            Arc::new((0..workers).map(|_| Mutex::new(Stats::default())).collect());
        let mut to_workers: Vec<Sender<Msg>> = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Msg>(64);
            to_workers.push(tx);
            let ctx = WorkerCtx {
                index: i,
                shards: workers,
                done: done_tx.clone(),
                pool: pool_tx.clone(),
                sessions: sessions.clone(),
                reports: reports.clone(),
            };
            scope.spawn(move || worker_loop(config, rx, ctx));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop_merger = stop.clone();
        let merger = scope.spawn(move || merge_loop(workers, done_rx, sink, &stop_merger));
        Shards {
            workers,
            to_workers,
            batches: (0..workers).map(|_| Batch::default()).collect(),
            pool: pool_rx,
            merger,
            stop,
            reports,
            told: None,
            pushed: None,
        }
    }

    /// True once the sink closed the output: reading can stop.
    pub fn closed(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Hands a segment of the `packet_no`th frame to the worker of its flow.
    pub fn segment(&mut self, seg: &Segment<'_>, packet_no: u64, file_index: usize) {
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
        self.pushed = self.pushed.max(Some(packet_no));
        let w = (key.shard_hash() % self.workers as u64) as usize;
        let Some(b) = self.batches.get_mut(w) else {
            return;
        };
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
            let full = std::mem::replace(b, self.pool.try_recv().unwrap_or_default());
            send(&self.to_workers, w, Msg::Batch(full));
        }
    }

    /// A sweep at capture time `ts`, after the `packet_no`th frame.
    pub fn tick(&mut self, packet_no: u64, ts: Timestamp) {
        self.broadcast(packet_no, |p| Msg::Tick(p, ts));
    }

    /// A followed key log grew, after the `packet_no`th frame.
    pub fn wake(&mut self, packet_no: u64, ts: Timestamp) {
        self.broadcast(packet_no, |p| Msg::Wake(p, ts));
    }

    /// Every frame up to `packet_no` was read: workers that got none of them let the merger
    /// pass them. Sends nothing when the workers already know.
    pub fn progress(&mut self, packet_no: u64) {
        if self.told >= Some(packet_no) {
            return;
        }
        self.broadcast(packet_no, Msg::Progress);
    }

    /// The highest packet index pushed to a worker and not yet passed on by a sweep or
    /// progress; `live` sends progress for it when the link goes quiet.
    pub fn untold(&self) -> Option<u64> {
        self.pushed.filter(|p| self.told < Some(*p))
    }

    /// The workers' counters as of their last sweep or progress, summed.
    pub fn worker_stats(&self) -> Stats {
        let mut st = Stats::default();
        for r in self.reports.iter() {
            // A worker that panicked holding the lock left whole counters: still worth adding.
            let s = r.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.merge(&s);
        }
        st
    }

    /// Sends what is batched and the end (`end`: see [`Msg::Finish`]), and waits for the
    /// workers and the merger.
    pub fn finish(mut self, end: Option<Timestamp>) -> Result<Merged<S>, RunError> {
        self.flush();
        for w in 0..self.workers {
            send(&self.to_workers, w, Msg::Finish(end));
        }
        drop(self.to_workers);
        match self.merger.join() {
            Ok(r) => r,
            Err(_) => Err(RunError::Output(std::io::Error::other(
                "the merging thread stopped unexpectedly",
            ))),
        }
    }

    fn broadcast(&mut self, packet_no: u64, msg: impl Fn(u64) -> Msg) {
        self.flush();
        for w in 0..self.workers {
            send(&self.to_workers, w, msg(packet_no));
        }
        self.told = self.told.max(Some(packet_no));
    }

    fn flush(&mut self) {
        for (w, b) in self.batches.iter_mut().enumerate() {
            if !b.segs.is_empty() {
                let full = std::mem::replace(b, self.pool.try_recv().unwrap_or_default());
                send(&self.to_workers, w, Msg::Batch(full));
            }
        }
    }
}

fn send(to_workers: &[Sender<Msg>], w: usize, m: Msg) {
    if let Some(tx) = to_workers.get(w) {
        // A worker only goes away when the run is over.
        let _ = tx.send(m);
    }
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
    let mut front_stats = Stats::default();
    let mut front = Front::new(config, source, sessions.clone());
    let sink = JudgeSink {
        judge,
        config,
        names,
        out,
    };
    let merged = std::thread::scope(|scope| {
        let mut shards = Shards::start(scope, config, workers, sessions, sink);
        while !shards.closed() {
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
                shards.segment(&seg, packet_no, file_index);
            }
            if let Some(ts) = sweep {
                shards.tick(packet_no, ts);
            } else if (packet_no + 1).is_multiple_of(PROGRESS_EVERY) {
                shards.progress(packet_no);
            }
        }
        shards.finish(Some(front.last_ts))
    })?;
    let Merged {
        mut stats,
        mut closed,
        sink,
    } = merged;
    let JudgeSink { mut judge, out, .. } = sink;
    if !closed {
        closed = judge.finish(config, names, out)?;
    }
    stats.merge(&judge.counters());
    // A gauge, read once at the end: the store's size shows `--max-keys` holding.
    stats.tracker_keys_tracked = judge.tracker.tracked_keys() as u64;
    stats.merge(&front_stats);
    Ok(RunEnd {
        stats,
        packets: front.packet_no,
        last_ts: front.last_ts,
        closed,
        failure: front.failure,
    })
}

/// What a worker thread needs besides its messages.
struct WorkerCtx {
    index: usize,
    shards: usize,
    done: Sender<Done>,
    pool: Sender<Batch>,
    sessions: Option<Arc<SessionCache>>,
    reports: Arc<Vec<Mutex<Stats>>>,
}

fn worker_loop(config: &Config, rx: Receiver<Msg>, ctx: WorkerCtx) {
    let mut w = FlowWorker::new(config, ctx.shards).with_sessions(ctx.sessions);
    for msg in rx {
        let batch = matches!(msg, Msg::Batch(_));
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
                let _ = ctx.pool.try_send(b);
                // A sweep may still come at the last packet.
                (mark, false)
            }
            Msg::Tick(p, ts) => {
                w.tick(p, ts);
                (p + 1, false)
            }
            Msg::Wake(p, ts) => {
                w.wake(p, ts);
                (p + 1, false)
            }
            Msg::Progress(p) => (p + 1, false),
            Msg::Finish(end) => {
                if let Some(ts) = end {
                    w.finish(ts);
                }
                (u64::MAX, true)
            }
        };
        // After a sweep or progress, not after every batch: a copy per few thousand packets
        // (`live`: per PROGRESS_WAIT), fresh enough for stats lines.
        if !batch && let Some(r) = ctx.reports.get(ctx.index) {
            *r.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = w.sink.stats.clone();
        }
        let d = Done {
            worker: ctx.index,
            events: w.drain(),
            watermark,
            stats: last.then(|| w.sink.stats.clone()),
        };
        if ctx.done.send(d).is_err() {
            return;
        }
        if last {
            return;
        }
    }
}

/// Merges the workers' events in capture order and hands them to `sink`. Returns the merged
/// counters of the workers, whether the sink closed the output, and the sink.
fn merge_loop<S: Ordered>(
    workers: usize,
    rx: Receiver<Done>,
    mut sink: S,
    stop: &AtomicBool,
) -> Result<Merged<S>, RunError> {
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
        if !ready.is_empty() && sink.take(std::mem::take(&mut ready))? {
            closed = true;
            stop.store(true, Ordering::Relaxed);
        }
    }
    Ok(Merged {
        stats,
        closed,
        sink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    /// Hands the merged events to the test thread, as `live` does.
    struct ToTest(Sender<Vec<HttpOut>>);

    impl Ordered for ToTest {
        fn take(&mut self, events: Vec<HttpOut>) -> Result<bool, RunError> {
            Ok(self.0.send(events).is_err())
        }
    }

    fn seg<'a>(
        ms: i64,
        to_server: bool,
        seq: u32,
        ack: u32,
        syn: bool,
        data: &'a [u8],
    ) -> Segment<'a> {
        let (c, s) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        let (src, dst, src_port, dst_port) = if to_server {
            (c, s, 40000, 80)
        } else {
            (s, c, 80, 40000)
        };
        Segment {
            ts: Timestamp::from_parts(1_700_000_000, ms * 1_000_000),
            src,
            dst,
            src_port,
            dst_port,
            seq,
            ack,
            flags: TcpFlags {
                syn,
                ack: !(syn && to_server),
                fin: false,
                rst: false,
            },
            payload: data,
            missing_tail: 0,
            vlans: Vlans::default(),
        }
    }

    #[test]
    fn progress_hands_on_what_the_workers_finished_before_the_end() {
        let config = Config::default();
        let req: &[u8] = b"POST /v1/charges HTTP/1.1\r\nHost: api\r\nIdempotency-Key: k1\r\n\
                           Content-Length: 2\r\n\r\n{}";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let req_end = 101 + req.len() as u32;
        let segs = [
            seg(0, true, 100, 0, true, b""),
            seg(1, false, 500, 101, true, b""),
            seg(2, true, 101, 501, false, b""),
            seg(3, true, 101, 501, false, req),
            seg(4, false, 501, req_end, false, resp),
        ];
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::scope(|scope| {
            // Two workers: the flow's, and one that sees nothing and holds the merger back.
            let mut shards = Shards::start(scope, &config, 2, None, ToTest(tx));
            for (n, s) in segs.iter().enumerate() {
                shards.segment(s, n as u64, 0);
            }
            assert!(
                rx.recv_timeout(Duration::from_millis(200)).is_err(),
                "nothing may pass before the workers are told how far the input went"
            );
            assert_eq!(shards.untold(), Some(4));
            shards.progress(4);
            assert_eq!(shards.untold(), None);
            // The request when it ended, then its exchange: both before the end.
            let mut events = Vec::new();
            while events.len() < 2 {
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(mut evs) => events.append(&mut evs),
                    Err(_) => break,
                }
            }
            assert!(
                matches!(
                    events.as_slice(),
                    [HttpOut::Request { .. }, HttpOut::Transaction(_)]
                ),
                "{events:?}"
            );
            let merged = shards.finish(None).expect("the merger ends");
            assert_eq!(merged.stats.tcp_segments, 5);
            assert!(!merged.closed);
        });
    }
}
