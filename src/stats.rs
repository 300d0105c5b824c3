//! Every counter of the pipeline, named once.
//!
//! Each stage bumps plain `u64` fields of its own worker's `Stats`; workers are merged at the
//! end (or at each stats interval), so counting costs no atomics on the packet path. The field
//! names are the stable snake_case names users see in `"event_type":"stats"` lines.

use serde::Serialize;

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Counters of one worker, or of the whole run once merged.
        #[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        /// Each counter's name and its documentation (the help of its Prometheus metric).
        pub const HELP: &[(&str, &str)] = &[ $( (stringify!($name), concat!($($doc, " ",)* "")), )* ];

        impl Stats {
            /// Adds every counter of `other` into `self`.
            pub fn merge(&mut self, other: &Stats) {
                $( self.$name = self.$name.saturating_add(other.$name); )*
            }

            /// Counter names and values, in declaration order.
            pub fn entries(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

counters! {
    /// Live capture: packets the kernel handed to libpcap (libpcap's `ps_recv`; Suricata's
    /// `capture.kernel_packets`).
    capture_kernel_packets,
    /// Live capture: packets dropped because the kernel buffer was full (`ps_drop`;
    /// Suricata's `capture.kernel_drops`).
    capture_kernel_drops,
    /// Live capture: packets dropped by the interface or its driver (`ps_ifdrop`; Suricata's
    /// `capture.kernel_ifdrops`).
    capture_kernel_ifdrops,
    /// Mirror: connections accepted, refused past `--max-connections`, closed for a failed
    /// TLS handshake (no or a bad client certificate with `--client-ca`, not TLS), closed by a
    /// timeout (handshake, idle, slow request), closed for bytes that are not HTTP or a head
    /// over the limits; requests answered.
    mirror_connections,
    mirror_refused,
    mirror_tls_errors,
    mirror_timeouts,
    mirror_bad_requests,
    mirror_requests,
    /// Mirror: requests that reached the endpoint after one their gateway received later (by
    /// its `X-Request-Start`), and were put back in the gateway's order; those that came later
    /// than `--reorder-window` or past its bound could not be, and are judged as they came.
    mirror_reordered,
    mirror_reorder_late,
    /// Frames read from the source.
    packets,
    /// Bytes of frames as captured (caplen).
    bytes,
    /// Frames whose captured length is shorter than their length on the wire (snaplen).
    truncated_packets,
    /// Frames that were not IPv4/IPv6 (ARP, LLDP, ...).
    non_ip_packets,
    /// Frames too short or malformed to decode.
    decode_errors,
    /// IP packets that are not TCP (UDP, ICMP, ...).
    non_tcp_packets,
    /// IPv4 header or TCP checksums that are wrong (often offload on the capturing host).
    bad_checksums,
    /// IPv4 fragments seen.
    ipv4_fragments,
    /// IPv4 packets rebuilt from fragments.
    ipv4_reassembled,
    /// IPv6 fragments seen (not reassembled; counted).
    ipv6_fragments,
    /// Fragment sets dropped: timeout, table full, too large or inconsistent.
    fragments_dropped,
    /// TCP segments handed to reassembly.
    tcp_segments,
    /// Flows created.
    flows_created,
    /// Flows closed by FIN or RST.
    flows_closed,
    /// Flows ended by the idle timeout (capture time).
    flows_timed_out,
    /// Flows evicted because the flow table was full.
    flows_evicted,
    /// Segments without payload or SYN for an unknown flow (not worth a flow).
    tcp_segments_no_flow,
    /// Segments whose bytes were all delivered before (retransmissions).
    tcp_retransmitted_segments,
    /// Overlapping segments whose bytes differ from the copy kept (first copy wins).
    tcp_overlap_mismatch,
    /// Segments buffered because they arrived ahead of a hole.
    tcp_out_of_order_segments,
    /// Holes declared in a byte stream (lost packets).
    tcp_gaps,
    /// Bytes lost in those holes.
    tcp_gap_bytes,
    /// Holes forced because the out-of-order buffer of a flow hit its limit.
    tcp_reassembly_limit_gaps,
    /// Segments so far from the expected sequence number that they were ignored.
    tcp_segments_out_of_window,
    /// TLS connections: seen (their first bytes were a TLS handshake record), decrypted (some
    /// application data came out), not decrypted (none came out: never parsed as HTTP), and
    /// why not: no secret in the key log for their client random, a suite not decrypted
    /// (CBC, CCM), Encrypted Client Hello, or a record that failed authentication, a gap
    /// decryption could not get past, or bytes that were not TLS after all.
    tls_sessions,
    tls_sessions_decrypted,
    tls_sessions_undecrypted,
    tls_undecrypted_no_secret,
    tls_undecrypted_unsupported_suite,
    tls_undecrypted_ech,
    tls_undecrypted_broken,
    /// TLS records that did not authenticate after earlier records of their side had
    /// (damaged in the capture, or forged): never guessed at, handed on as a gap.
    tls_records_failed,
    /// TLS 1.3 0-RTT early-data records not handed on: refused by the server (the client
    /// sends the request again after the handshake), or their secret was not logged.
    tls_early_data_skipped,
    /// TLS connections that chose HTTP/2 (ALPN `h2`): counted (also as decrypted or not), read
    /// as HTTP/2.
    tls_sessions_h2,
    /// TLS key logs: secrets read, and lines skipped as not key-log lines (their numbers at
    /// `-v`).
    tls_keylog_secrets,
    tls_keylog_bad_lines,
    /// TLS 1.2 connections whose key log had no line of their own, decrypted with the master
    /// secret of the full handshake whose session ID or ticket they resumed.
    tls_sessions_resumed_by_cache,
    /// TLS 1.2 session cache entries (connections, session IDs, tickets) dropped before their
    /// 24 hours because the cache was full.
    tls_session_cache_evicted,
    /// Bytes skipped while looking for the next request or status line.
    http_resync_skipped_bytes,
    /// Request heads parsed.
    http_requests,
    /// Final response heads parsed.
    http_responses,
    /// Interim (1xx) responses.
    http_interim_responses,
    /// Server segments held until the client bytes they acknowledge were read (capture
    /// points that deliver one direction late).
    http_held_chunks,
    /// Transactions written (request, response or both).
    http_transactions,
    /// Responses whose request was lost.
    http_orphan_responses,
    /// Requests that got no response before their connection ended.
    http_requests_unanswered,
    /// Message heads over the size limit.
    http_head_too_large,
    /// Messages with more header lines than the limit.
    http_too_many_headers,
    /// Heads that could not be parsed (resynchronised after).
    http_parse_errors,
    /// Messages whose body length cannot be determined safely (RFC 9112 section 6.3).
    http_bad_framing,
    /// Messages carrying both Transfer-Encoding and Content-Length.
    http_te_and_cl,
    /// Bodies with a capture gap (never compared).
    http_incomplete_bodies,
    /// Requests (HTTP/1.1) or streams (HTTP/2) handed on unanswered because a connection had
    /// too many outstanding: their responses are not observed.
    http_pending_overflow,
    /// Connections switched to a non-HTTP protocol (101, CONNECT), and HTTP/2 CONNECT
    /// streams.
    http_upgraded,
    /// Content-decoded request bodies cut at the decoding limit.
    http_decode_truncated,
    /// Content decoding failures (corrupt gzip or deflate).
    http_decode_errors,
    /// Connections read as HTTP/2: by the client's preface (prior knowledge), after
    /// `Upgrade: h2c` (also counted in `http2_upgrades`), or by TLS's ALPN `h2`.
    http2_connections,
    http2_upgrades,
    /// HTTP/2 request streams read (each one transaction; also in `http_requests`).
    http2_streams,
    /// HTTP/2 header blocks not decoded because their direction's HPACK table is unknown (an
    /// error in that block or an earlier one): their streams are skipped, never guessed.
    http2_headers_undecodable,
    /// HPACK errors that left a direction's table unknown (an HPACK bomb over
    /// `--max-head-bytes` is also counted in `http_head_too_large`).
    http2_hpack_errors,
    /// HTTP/2 streams the client reset (RST_STREAM) before their response: aborted. Rapid
    /// resets are counted here and hold no state.
    http2_streams_reset,
    /// HTTP/2 streams the server refused (REFUSED_STREAM), and streams above the last stream
    /// id of its GOAWAY: not processed by the server (RFC 9113 section 8.7).
    http2_streams_refused,
    http2_streams_goaway,
    /// HTTP/2 directions no longer read: a capture gap, a malformed frame
    /// (`http2_frame_errors`) or a CONTINUATION flood over `--max-head-bytes`
    /// (`http2_continuation_floods`). What they would have carried ends there.
    http2_directions_lost,
    http2_frame_errors,
    http2_continuation_floods,
    /// Requests the tracker judged.
    tracker_requests,
    /// Plain retries: same key, same request, same result (the mechanism working).
    tracker_retries,
    /// Keys (and request fingerprints) forgotten after twice the window.
    tracker_keys_expired,
    /// Keys evicted because `--max-keys` was reached (oldest first).
    tracker_keys_evicted,
    /// Keys tracked when the line was written (a gauge, not a counter).
    tracker_keys_tracked,
    /// Live: tracked keys saved to the state directory, and failed saves.
    state_saves,
    state_save_errors,
    /// Live: keys loaded from the state directory at start.
    state_keys_loaded,
    /// Requests not compared because a body was incomplete.
    tracker_incomplete_skipped,
    /// Requests not judged as conflicts because the server replayed a success for their key
    /// while the only earlier request seen with it was rejected: the capture lost the first.
    tracker_unseen_original_skipped,
    /// Requests not compared with their key's first because they began before it (their end
    /// was delayed by a capture hole): which came first is unknown.
    tracker_order_unknown_skipped,
    /// In-flight judgements skipped because the server's side was never seen.
    tracker_unobservable_skipped,
    /// Fleet mode: pipelined round trips to the shared store.
    store_round_trips,
    /// Fleet mode: operations the store ran (claims, settles, endpoints).
    store_ops,
    /// Fleet mode: operations that failed because the store was unreachable or erred.
    store_ops_failed,
    /// Fleet mode: operations not sent because the store's queue (`--store-max-inflight`) was
    /// full.
    store_ops_skipped,
    /// Fleet mode: keys the store found already held by an earlier first use.
    store_claims_held,
    /// Fleet mode: records in the store that this version cannot read (ignored).
    store_bad_records,
    /// Fleet mode: failed round trips.
    store_errors,
    /// Fleet mode: times the store became unreachable.
    store_outages,
    /// Fleet mode: times the connection came back after an outage.
    store_reconnects,
    /// Fleet mode: milliseconds spent without the store (outages that ended).
    store_degraded_ms,
    /// Fleet mode, a gauge: 1 while the store is unreachable.
    store_down,
    /// Fleet mode, a gauge: the last round trip's time in microseconds.
    store_last_rtt_us,
    /// Fleet mode: keyed requests judged with a first use seen by another instance.
    store_shared_originals,
    /// Fleet mode: attempts that ended badly on another instance, taken to judge key_churn.
    store_shared_attempts,
    /// Fleet mode: keyless requests seen by another instance, taken to judge
    /// keyless_duplicate.
    store_shared_keyless,
    /// Fleet mode: requests (keyed, or keyless of a watched method) judged on this
    /// instance's own knowledge because the store did not answer in time (`--store-wait`) or
    /// was unreachable: detections that needed the shared store may have been missed for them.
    store_judged_locally,
    /// Fleet mode: endpoints learned from other instances.
    store_endpoints_imported,
    /// Alerts raised, all kinds.
    alerts,
    alerts_key_conflict,
    alerts_key_reencoded,
    alerts_key_churn,
    alerts_keyless_duplicate,
    alerts_missing_key,
    alerts_late_retry,
    alerts_invalid_key,
    alerts_conflict_accepted,
    alerts_conflict_replayed,
    alerts_replay_mismatch,
    alerts_replay_drift,
    alerts_concurrent_reuse,
}

/// Gives a stage access to the counters of the worker it runs in.
pub trait HasStats {
    fn stats(&mut self) -> &mut Stats;
}

impl HasStats for Stats {
    fn stats(&mut self) -> &mut Stats {
        self
    }
}
