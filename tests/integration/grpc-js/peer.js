// A @grpc/grpc-js peer for test_grpc.py, speaking the same generic service
// as its Python EchoServer (raw bytes, no protobuf):
//   node peer.js server            prints "LISTENING <port>", serves until killed
//   node peer.js client HOST:PORT AUTHORITY
//                                  runs the interop cases, prints one JSON line
//                                  {"case": "ok" | "error text", ...}, exits 0
'use strict';
const grpc = require('@grpc/grpc-js');

const SVC = '/sinew.test.Echo/';
const id = (b) => b;
const def = {
  Unary: { path: SVC + 'Unary', requestStream: false, responseStream: false },
  ServerStream: { path: SVC + 'ServerStream', requestStream: false, responseStream: true },
  ClientStream: { path: SVC + 'ClientStream', requestStream: true, responseStream: false },
  Bidi: { path: SVC + 'Bidi', requestStream: true, responseStream: true },
};
for (const k of Object.keys(def)) {
  Object.assign(def[k], { requestSerialize: id, requestDeserialize: id, responseSerialize: id,
                          responseDeserialize: id, originalName: k });
}
const opts = { 'grpc.max_receive_message_length': 8 << 20, 'grpc.max_send_message_length': 8 << 20 };

function server() {
  const s = new grpc.Server(opts);
  s.addService(def, {
    Unary(call, cb) {
      const md = call.metadata;
      const fail = md.get('x-fail')[0];
      if (md.get('x-echo-initial').length) {
        const m = new grpc.Metadata();
        m.set('x-echo-initial', md.get('x-echo-initial')[0]);
        call.sendMetadata(m);
      }
      const trailing = new grpc.Metadata();
      if (md.get('x-echo-trailing-bin').length) trailing.set('x-echo-trailing-bin', md.get('x-echo-trailing-bin')[0]);
      if (fail) return cb({ code: Number(fail), details: 'failed on purpose: ' + fail, metadata: trailing });
      const sleep = Number(md.get('x-sleep-ms')[0] || 0);
      setTimeout(() => cb(null, call.request.toString() === 'who' ? Buffer.from('js') : call.request, trailing), sleep);
    },
    ServerStream(call) {
      const n = Number(call.request.toString() || '0');
      for (let i = 0; i < n; i++) call.write(Buffer.from('msg-' + i));
      call.end();
    },
    ClientStream(call, cb) {
      const parts = [];
      call.on('data', (m) => parts.push(m));
      call.on('end', () => cb(null, Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from('|'), p] : [p])))));
      call.on('cancelled', () => process.stdout.write('CANCELLED\n'));
    },
    Bidi(call) {
      call.on('data', (m) => call.write(Buffer.concat([Buffer.from('echo:'), m])));
      call.on('end', () => call.end());
    },
  });
  s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write('LISTENING ' + port + '\n');
  });
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

async function client(target, authority) {
  const Client = grpc.makeGenericClientConstructor(def, 'Echo');
  const c = new Client(target, grpc.credentials.createInsecure(), Object.assign({ 'grpc.default_authority': authority }, opts));
  const deadline = (ms) => new Date(Date.now() + ms);
  const unary = (req, md, ms) => new Promise((res, rej) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(md || {})) m.set(k, v);
    const call = c.Unary(req, m, { deadline: deadline(ms || 10000) }, (err, r) => (err ? rej(err) : res({ r, call })));
  });
  const cases = {
    async empty_unary() { const { r } = await unary(Buffer.alloc(0)); expect(r.length === 0, 'not empty'); },
    async large_unary() {
      const big = Buffer.alloc(1 << 20, 7);
      const { r } = await unary(big);
      expect(Buffer.compare(r, big) === 0, 'large body differs');
    },
    async server_streaming() {
      const got = [];
      await new Promise((res, rej) => {
        const s = c.ServerStream(Buffer.from('50'), { deadline: deadline(10000) });
        s.on('data', (m) => got.push(m.toString()));
        s.on('end', res);
        s.on('error', rej);
      });
      expect(got.length === 50 && got[49] === 'msg-49', 'got ' + got.length);
    },
    async client_streaming() {
      const r = await new Promise((res, rej) => {
        const s = c.ClientStream({ deadline: deadline(10000) }, (err, r) => (err ? rej(err) : res(r)));
        for (let i = 0; i < 10; i++) s.write(Buffer.from('p' + i));
        s.end();
      });
      expect(r.toString() === 'p0|p1|p2|p3|p4|p5|p6|p7|p8|p9', r.toString());
    },
    async ping_pong() {
      const out = [];
      await new Promise((res, rej) => {
        const s = c.Bidi({ deadline: deadline(20000) });
        let i = 0;
        s.on('data', (m) => {
          out.push(m.toString());
          if (++i < 10) s.write(Buffer.from('ping-' + i)); else s.end();
        });
        s.on('end', res);
        s.on('error', rej);
        s.write(Buffer.from('ping-0'));
      });
      expect(out.length === 10 && out[9] === 'echo:ping-9', JSON.stringify(out));
    },
    async status_code_and_message() {
      try { await unary(Buffer.from('x'), { 'x-fail': '2' }); } catch (e) {
        expect(e.code === 2 && e.details === 'failed on purpose: 2', e.code + ' ' + e.details);
        return;
      }
      throw new Error('no error');
    },
    async custom_metadata() {
      const m = new grpc.Metadata();
      m.set('x-echo-initial', 'hello');
      m.set('x-echo-trailing-bin', Buffer.from([0, 1, 254]));
      let initial = null, trailing = null;
      await new Promise((res, rej) => {
        const call = c.Unary(Buffer.from('md'), m, { deadline: deadline(10000) }, (err) => (err ? rej(err) : res()));
        call.on('metadata', (md) => { initial = md.get('x-echo-initial')[0]; });
        call.on('status', (st) => { trailing = st.metadata.get('x-echo-trailing-bin')[0]; });
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(initial === 'hello', 'initial ' + initial);
      expect(trailing && Buffer.compare(trailing, Buffer.from([0, 1, 254])) === 0, 'trailing ' + trailing);
    },
    async timeout_on_sleeping_server() {
      try { await unary(Buffer.from('zz'), { 'x-sleep-ms': '3000' }, 500); } catch (e) {
        expect(e.code === grpc.status.DEADLINE_EXCEEDED, 'code ' + e.code);
        return;
      }
      throw new Error('no deadline');
    },
    async cancel_after_begin() {
      await new Promise((res, rej) => {
        const s = c.ClientStream({ deadline: deadline(10000) }, (err) => {
          if (err && err.code === grpc.status.CANCELLED) res(); else rej(new Error('not cancelled: ' + (err && err.code)));
        });
        s.write(Buffer.from('first'));
        setTimeout(() => s.cancel(), 300);
      });
    },
  };
  const result = {};
  for (const [name, fn] of Object.entries(cases)) {
    try { await fn(); result[name] = 'ok'; } catch (e) { result[name] = String(e && e.message || e); }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  c.close();
  process.exit(0);
}

if (process.argv[2] === 'server') server();
else client(process.argv[3], process.argv[4]);
