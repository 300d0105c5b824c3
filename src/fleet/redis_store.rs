//! The Redis backend: one record per key, a Redis hash named `PREFIXk:` + scope and key hashes
//! (fields `q` the first request, `t` its capture time in µs, `c` its claimer, `f` its response,
//! `s` the stored result, `=` when it is the first response), with the key window twice as its
//! TTL; one hash `PREFIXendpoints` of learned endpoints and their deadlines; a sorted set
//! `PREFIXd:` + scope and request hashes of a request's recent keyless uses.
//!
//! A claim is one Lua script, so two gateways claiming a key at the same moment agree on
//! which is first: Redis runs scripts one at a time. Every operation touches one key, so the
//! same scripts run on a Redis Cluster (routed by key). All operations of a batch go in one
//! pipelined round trip.

use std::time::Duration;

use redis::Value;

use super::{Backend, Op, RawClaim, RawRecord, RawReply, StoreError};

/// KEYS[1] the record; ARGV: mode (`c` claim, `l` look), first use (µs), window (µs), TTL
/// (ms), claim id, record, how many later uses to register at most. Returns {0} (free, or
/// claimed now), {1, q, c, f, s, e} (held) or {2, q, c, f, s, e} (claimed now, replacing a
/// holder whose window had passed). A claim held by a first use still in flight (no `e`) is
/// registered as a later use, `u:` + its claim id (`n` counts them), for the holder's claimer
/// to judge.
const CLAIM: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'q', 't', 'c', 'f', 's', 'e')
if cur[1] and (ARGV[1] == 'l' or tonumber(ARGV[2]) - tonumber(cur[2]) <= tonumber(ARGV[3])) then
  if ARGV[1] == 'c' and not cur[6] and redis.call('HLEN', KEYS[1]) < 6 + tonumber(ARGV[7])
      and redis.call('HSETNX', KEYS[1], 'u:' .. ARGV[5], ARGV[6]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'n', 1)
  end
  return {1, cur[1], cur[3], cur[4], cur[5], cur[6]}
end
if ARGV[1] == 'l' then return {0} end
if cur[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'q', ARGV[6], 't', ARGV[2], 'c', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if cur[1] then return {2, cur[1], cur[3], cur[4], cur[5], cur[6]} end
return {0}
";

/// KEYS[1] the record; ARGV: claim id, first response (or empty), stored result (or empty;
/// `=` for the first response), end mark (or empty). With an end mark from the claimer:
/// files it and returns (and forgets) the later uses registered until now; else returns an
/// empty list.
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local claimer = redis.call('HGET', KEYS[1], 'c') == ARGV[1]
if ARGV[2] ~= '' and claimer then
  redis.call('HSET', KEYS[1], 'f', ARGV[2])
end
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], 's', ARGV[3]) end
local uses = {}
if ARGV[4] ~= '' and claimer then
  redis.call('HSET', KEYS[1], 'e', ARGV[4])
  -- `n` counts the registered uses: the whole hash is read only when there are some.
  if redis.call('HEXISTS', KEYS[1], 'n') == 1 then
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'u:' then
        uses[#uses + 1] = all[i + 1]
        redis.call('HDEL', KEYS[1], all[i])
      end
    end
    redis.call('HDEL', KEYS[1], 'n')
  end
end
return uses
";

/// KEYS[1] the record; ARGV[1] claim id. The claimer's first use was not processed: the
/// record goes, with the later uses registered on it.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'c') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// KEYS[1] the endpoints hash; ARGV[1] now (µs): forgets the endpoints past their deadline,
/// returns the others as a flat name, deadline list.
const SYNC: &str = r"
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
";

/// KEYS[1] the endpoints hash; ARGV: name, deadline (µs). Keeps the later deadline.
const ENDPOINT: &str = r"
local d = redis.call('HGET', KEYS[1], ARGV[1])
if (not d) or tonumber(d) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
";

/// KEYS[1] a request's recent keyless uses, a sorted set scored by capture time (µs); ARGV:
/// this use's capture time, TTL (ms), the record, how many uses to keep (the latest).
const KEYLESS: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1 - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS[1] a request's last keyed attempt, a hash: `s` its state (`f` in flight, `b` ended
/// badly, `g` well), `c` its claimer, `h` its key's hash, `r` its record, `w:` + claim id the
/// attempts under other keys registered while it was in flight, `n` how many. ARGV: claim id, key hash, record, TTL
/// (ms). Files an attempt as in flight, unless another instance's is.
const ATTEMPT_START: &str = r"
local cur = redis.call('HMGET', KEYS[1], 's', 'c')
if cur[1] == 'f' and cur[2] ~= ARGV[1] then return 0 end
if cur[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 's', 'f', 'c', ARGV[1], 'h', ARGV[2], 'r', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// KEYS[1] as for ATTEMPT_START; ARGV: claim id, bad (`1` or `0`), record, TTL (ms). The
/// claimer's attempt ended: returns its waiters (and forgets them); kept as ended badly (`b`)
/// or well (`g`), with when it ended, for the requests under other keys that began while it
/// was in flight and reach the store later.
const ATTEMPT_END: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'c', 'n')
if cur[1] ~= ARGV[1] then return {} end
local out = {}
-- `n` counts the waiters: the whole hash is read only when there are some.
if cur[2] then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'w:' then
      out[#out + 1] = all[i + 1]
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
  redis.call('HDEL', KEYS[1], 'n')
end
local state = 'g'
if ARGV[2] == '1' then state = 'b' end
redis.call('HSET', KEYS[1], 's', state, 'r', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return out
";

/// KEYS[1] as for ATTEMPT_START; ARGV: claim id, key hash, this request's attempt record,
/// how many waiters at most, TTL (ms). An attempt that ended comes back as {state, record};
/// one in flight by another instance under another key registers this request as its waiter,
/// under the same key leaves it be. Otherwise this request is filed as the attempt in flight
/// (what ATTEMPT_START would file after it is judged: one round trip for both).
const ATTEMPT_LOOKUP: &str = r"
local cur = redis.call('HMGET', KEYS[1], 's', 'c', 'h', 'r')
if cur[1] == 'f' and cur[2] ~= ARGV[1] then
  if cur[3] ~= ARGV[2] and redis.call('HLEN', KEYS[1]) < 5 + tonumber(ARGV[4])
      and redis.call('HSETNX', KEYS[1], 'w:' .. ARGV[1], ARGV[3]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'n', 1)
  end
  return false
end
local out = false
if cur[1] == 'b' or cur[1] == 'g' then out = {cur[1], cur[4]} end
if cur[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 's', 'f', 'c', ARGV[1], 'h', ARGV[2], 'r', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return out
";

const SCRIPTS: [&str; 9] = [
    CLAIM,
    SETTLE,
    SYNC,
    ENDPOINT,
    KEYLESS,
    ATTEMPT_START,
    ATTEMPT_END,
    ATTEMPT_LOOKUP,
    RELEASE,
];

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A [`Backend`] on one Redis node (`redis://`, `rediss://`) or a Redis Cluster.
pub struct RedisBackend {
    target: Target,
    conn: Option<Conn>,
    prefix: String,
    timeout: Duration,
    /// SHA-1 of each script, as loaded on a single node (a cluster gets the scripts' text).
    shas: Vec<String>,
    described: String,
}

/// A URL without its password, for logs.
fn shown(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            u.to_string()
        }
        None => "(bad URL)".into(),
    }
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl RedisBackend {
    pub fn single(
        url: &str,
        prefix: &str,
        timeout: Duration,
        tls: Option<redis::TlsCertificates>,
    ) -> Result<RedisBackend, String> {
        let client = match tls {
            None => redis::Client::open(url),
            Some(certs) => redis::Client::build_with_tls(url, certs),
        }
        .map_err(|e| format!("cannot use store {}: {e}", shown(url)))?;
        Ok(RedisBackend {
            target: Target::Single(client),
            conn: None,
            prefix: prefix.to_string(),
            timeout,
            shas: Vec::new(),
            described: shown(url),
        })
    }

    pub fn cluster(
        urls: &[String],
        prefix: &str,
        timeout: Duration,
        tls: Option<redis::TlsCertificates>,
    ) -> Result<RedisBackend, String> {
        // One quick retry, for a MOVED or ASK after slots moved. The crate's default (16
        // retries, 1.28 s and more apart) would hold this thread for minutes on a cluster that
        // answers CLUSTERDOWN while a failed primary is replaced; the worker's own backoff
        // handles that, and counts it.
        let wait_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(2);
        let mut builder = redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .min_retry_wait(1)
            .max_retry_wait(wait_ms);
        if let Some(certs) = tls {
            builder = builder.certs(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot use the Redis Cluster {}: {e}", urls.join(",")))?;
        Ok(RedisBackend {
            target: Target::Cluster(client),
            conn: None,
            prefix: prefix.to_string(),
            timeout,
            shas: Vec::new(),
            described: format!(
                "Redis Cluster {}",
                urls.iter().map(|u| shown(u)).collect::<Vec<_>>().join(",")
            ),
        })
    }

    /// The script `i` as a command: EVALSHA on a node where it was loaded, else EVAL.
    fn script(&self, i: usize) -> redis::Cmd {
        match self.shas.get(i) {
            Some(sha) => {
                let mut c = redis::cmd("EVALSHA");
                c.arg(sha);
                c
            }
            None => {
                let mut c = redis::cmd("EVAL");
                c.arg(SCRIPTS.get(i).copied().unwrap_or("return 0"));
                c
            }
        }
    }

    fn command(&self, op: &Op) -> redis::Cmd {
        match op {
            Op::Claim { rk, claim, .. } => {
                let mut c = self.script(0);
                c.arg(1).arg(rk.name(&self.prefix));
                match claim {
                    Some(cl) => {
                        c.arg("c")
                            .arg(cl.first_us)
                            .arg(cl.window_us)
                            .arg(cl.ttl_ms.max(1))
                            .arg(&cl.claim_id)
                            .arg(&cl.record[..])
                            .arg(super::USES_KEPT);
                    }
                    None => {
                        c.arg("l").arg(0).arg(0).arg(1).arg("").arg("").arg(0);
                    }
                }
                c
            }
            Op::Settle {
                rk,
                claim_id,
                first_response,
                stored,
                end,
                ..
            } => {
                let mut c = self.script(1);
                c.arg(1).arg(rk.name(&self.prefix)).arg(claim_id);
                c.arg(first_response.as_deref().unwrap_or(b""));
                match stored {
                    None => c.arg(""),
                    Some(None) => c.arg("="),
                    Some(Some(s)) => c.arg(&s[..]),
                };
                c.arg(end.map(|e| e.encode()).unwrap_or_default());
                c
            }
            Op::Release { rk, claim_id } => {
                let mut c = self.script(8);
                c.arg(1).arg(rk.name(&self.prefix)).arg(claim_id);
                c
            }
            Op::Endpoint { name, deadline_us } => {
                let mut c = self.script(3);
                c.arg(1)
                    .arg(format!("{}endpoints", self.prefix))
                    .arg(name)
                    .arg(*deadline_us);
                c
            }
            Op::SyncEndpoints { now_us } => {
                let mut c = self.script(2);
                c.arg(1)
                    .arg(format!("{}endpoints", self.prefix))
                    .arg(*now_us);
                c
            }
            // The worker answers barriers itself; a PING keeps replies aligned if one came.
            Op::Barrier { .. } => redis::cmd("PING"),
            Op::AttemptStarted {
                ak,
                claim_id,
                key,
                record,
                ttl_ms,
            } => {
                let mut c = self.script(5);
                c.arg(1)
                    .arg(ak.name(&self.prefix))
                    .arg(claim_id)
                    .arg(&key.bytes()[..])
                    .arg(&record[..])
                    .arg((*ttl_ms).max(1));
                c
            }
            Op::AttemptEnded {
                ak,
                claim_id,
                bad,
                record,
                ttl_ms,
                ..
            } => {
                let mut c = self.script(6);
                c.arg(1)
                    .arg(ak.name(&self.prefix))
                    .arg(claim_id)
                    .arg(if *bad { "1" } else { "0" })
                    .arg(&record[..])
                    .arg((*ttl_ms).max(1));
                c
            }
            Op::AttemptLookup {
                ak,
                claim_id,
                key,
                waiter,
                ttl_ms,
                ..
            } => {
                let mut c = self.script(7);
                c.arg(1)
                    .arg(ak.name(&self.prefix))
                    .arg(claim_id)
                    .arg(&key.bytes()[..])
                    .arg(&waiter[..])
                    .arg(super::USES_KEPT)
                    .arg((*ttl_ms).max(1));
                c
            }
            Op::KeylessLookup {
                dk,
                at_us,
                window_us,
                ..
            } => {
                // The latest use captured before this one, within the window.
                let mut c = redis::cmd("ZREVRANGEBYSCORE");
                c.arg(dk.name(&self.prefix))
                    .arg(format!("({at_us}"))
                    .arg(at_us.saturating_sub(*window_us))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1);
                c
            }
            Op::KeylessUse {
                dk,
                at_us,
                ttl_ms,
                record,
            } => {
                let mut c = self.script(4);
                c.arg(1)
                    .arg(dk.name(&self.prefix))
                    .arg(*at_us)
                    .arg((*ttl_ms).max(1))
                    .arg(&record[..])
                    .arg(super::KEYLESS_KEPT);
                c
            }
            Op::EndpointLookup { name, .. } => {
                let mut c = redis::cmd("HGET");
                c.arg(format!("{}endpoints", self.prefix)).arg(name);
                c
            }
        }
    }
}

fn bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A claim's reply; `None` when it is not shaped as the script returns.
fn claim_reply(v: &Value) -> Option<RawClaim> {
    let Value::Array(items) = v else {
        return None;
    };
    let status = int(items.first())?;
    if status == 0 {
        return Some(RawClaim::Free);
    }
    let stored = bytes(items.get(4)).map(|s| (s != b"=").then_some(s));
    let raw = RawRecord {
        record: bytes(items.get(1))?,
        claim_id: String::from_utf8_lossy(&bytes(items.get(2)).unwrap_or_default()).into_owned(),
        first_response: bytes(items.get(3)),
        stored,
        end: bytes(items.get(5)).and_then(|b| super::EndMark::decode(&b)),
    };
    match status {
        1 => Some(RawClaim::Held(raw)),
        2 => Some(RawClaim::Replaced(raw)),
        _ => None,
    }
}

fn endpoints_reply(v: &Value) -> Option<Vec<(String, i64)>> {
    let Value::Array(items) = v else {
        return None;
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        let name = String::from_utf8(bytes(pair.first())?).ok()?;
        out.push((name, int(pair.get(1))?));
    }
    Some(out)
}

impl Backend for RedisBackend {
    fn connect(&mut self) -> Result<(), StoreError> {
        self.conn = None;
        self.shas.clear();
        match &self.target {
            Target::Single(client) => {
                let mut con = client
                    .get_connection_with_timeout(self.timeout)
                    .map_err(err)?;
                con.set_read_timeout(Some(self.timeout)).map_err(err)?;
                con.set_write_timeout(Some(self.timeout)).map_err(err)?;
                let mut shas = Vec::new();
                for s in SCRIPTS {
                    let sha: String = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(s)
                        .query(&mut con)
                        .map_err(err)?;
                    shas.push(sha);
                }
                self.shas = shas;
                self.conn = Some(Conn::Single(con));
            }
            Target::Cluster(client) => {
                let mut con = client.get_connection().map_err(err)?;
                // A connection is made as long as one seed answers, with the slot map that
                // node has. While a failed primary is not yet replaced, that map still names
                // it: the store is not back until every primary of the map answers, or each
                // reconnection would be "reachable again" for one batch and fail on the next.
                let all = redis::cluster_routing::RoutingInfo::MultiNode((
                    redis::cluster_routing::MultipleNodeRoutingInfo::AllMasters,
                    Some(redis::cluster_routing::ResponsePolicy::AllSucceeded),
                ));
                con.route_command(&redis::cmd("PING"), all).map_err(err)?;
                self.conn = Some(Conn::Cluster(Box::new(con)));
            }
        }
        Ok(())
    }

    fn run(&mut self, ops: &[Op]) -> Result<Vec<RawReply>, StoreError> {
        let cmds: Vec<redis::Cmd> = ops.iter().map(|op| self.command(op)).collect();
        let values: Vec<Value> = match self.conn.as_mut() {
            None => return Err(StoreError("not connected".into())),
            Some(Conn::Single(con)) => {
                let mut p = redis::pipe();
                for c in cmds {
                    p.add_command(c);
                }
                p.query(con).map_err(err)?
            }
            Some(Conn::Cluster(con)) => {
                let mut p = redis::cluster::cluster_pipe();
                for c in cmds {
                    p.add_command(c);
                }
                p.query(con).map_err(err)?
            }
        };
        if values.len() != ops.len() {
            return Err(StoreError(format!(
                "{} replies to {} operations",
                values.len(),
                ops.len()
            )));
        }
        let mut out = Vec::with_capacity(ops.len());
        for (op, v) in ops.iter().zip(&values) {
            out.push(match op {
                Op::Claim { .. } => RawReply::Claim(
                    claim_reply(v).ok_or_else(|| StoreError(format!("unexpected reply {v:?}")))?,
                ),
                Op::AttemptLookup { .. } => RawReply::Attempt(match v {
                    Value::Nil => None,
                    Value::Array(items) => Some((
                        bytes(items.first()).as_deref() == Some(b"b"),
                        bytes(items.get(1))
                            .ok_or_else(|| StoreError(format!("unexpected reply {v:?}")))?,
                    )),
                    other => return Err(StoreError(format!("unexpected reply {other:?}"))),
                }),
                Op::KeylessLookup { .. } => RawReply::Keyless(match v {
                    Value::Array(items) if items.is_empty() => None,
                    Value::Array(items) => Some(
                        bytes(items.first())
                            .ok_or_else(|| StoreError(format!("unexpected reply {v:?}")))?,
                    ),
                    other => return Err(StoreError(format!("unexpected reply {other:?}"))),
                }),
                Op::EndpointLookup { .. } => RawReply::Endpoint(match v {
                    Value::Nil => None,
                    other => Some(
                        int(Some(other))
                            .ok_or_else(|| StoreError(format!("unexpected reply {other:?}")))?,
                    ),
                }),
                Op::Settle { end: Some(_), .. } | Op::AttemptEnded { .. } => {
                    RawReply::Settled(match v {
                        Value::Array(items) => items
                            .iter()
                            .map(|i| bytes(Some(i)))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| StoreError(format!("unexpected reply {v:?}")))?,
                        other => return Err(StoreError(format!("unexpected reply {other:?}"))),
                    })
                }
                Op::SyncEndpoints { .. } => RawReply::Endpoints(
                    endpoints_reply(v)
                        .ok_or_else(|| StoreError(format!("unexpected reply {v:?}")))?,
                ),
                _ => RawReply::Done,
            });
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}
