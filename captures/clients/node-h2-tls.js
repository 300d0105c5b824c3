// node-h2-tls: Node's built-in http2 client over TLS (ALPN h2), one session, for captures/h2/.
//
//   node node-h2-tls.js BASE        (the TLS key log, from the TLSSocket 'keylog' event, goes to $SSLKEYLOGFILE)
//
// One connection, one Authorization, JSON bodies, one request at a time:
// 1 POST /v1/charges key K1 {amount 700}   -> 200 created
// 2 the same                               -> 200 replayed
// 3 POST /v1/charges key K2 {amount 710}   -> 200 created
// 4 POST /v1/charges key K1 {amount 799}   -> 400 idempotency_error
// 5 GET /v1/charges?limit=1 (no body: END_STREAM on HEADERS)
'use strict';
const fs = require('fs');
const http2 = require('http2');
const tls = require('tls');

const base = new URL(process.argv[2]);
const keylog = process.env.SSLKEYLOGFILE;
const session = http2.connect(base, {
  createConnection: () => {
    const s = tls.connect({
      host: base.hostname, port: Number(base.port), servername: 'api.example.com',
      ALPNProtocols: ['h2'], rejectUnauthorized: false,
    });
    if (keylog) s.on('keylog', (line) => fs.appendFileSync(keylog, line));
    return s;
  },
});

function request(method, path, key, body) {
  return new Promise((resolve, reject) => {
    const headers = { ':method': method, ':path': path, authorization: 'Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc' };
    if (key) headers['idempotency-key'] = key;
    if (body) headers['content-type'] = 'application/json';
    const req = session.request(headers, { endStream: !body });
    let status = null;
    let data = '';
    req.on('response', (h) => { status = h[':status']; });
    req.setEncoding('utf8');
    req.on('data', (d) => { data += d; });
    req.on('end', () => {
      let id = '';
      try { const j = JSON.parse(data); id = j.id || (j.error && j.error.type) || ''; } catch (e) { id = '?'; }
      console.log(status, method, path, key || '-', id);
      resolve();
    });
    req.on('error', reject);
    if (body) req.end(JSON.stringify(body)); else req.end();
  });
}

(async () => {
  const K1 = '0de0a000-0000-4000-8000-000000000001';
  const K2 = '0de0a000-0000-4000-8000-000000000002';
  const c = (amount) => ({ amount, currency: 'usd', customer: 'cus_NodeH2Client1' });
  await request('POST', '/v1/charges', K1, c(700));
  await request('POST', '/v1/charges', K1, c(700));
  await request('POST', '/v1/charges', K2, c(710));
  await request('POST', '/v1/charges', K1, c(799));
  await request('GET', '/v1/charges?limit=1', null, null);
  session.close();
})().catch((e) => { console.error(e); process.exit(1); });
