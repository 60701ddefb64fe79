// The @grpc/grpc-js-xds client: a real proxyless gRPC client (Node) of
// podlb's control plane. The twin of tests/python/xds_client.py, with the
// same command line, stdin protocol and tally JSON.
//
// Usage: node xds_client.js TARGET [options]
//
// TARGET is `xds:///NAME` (grpc-js-xds asks the xDS server in its bootstrap
// for Listener NAME, then its route, cluster and endpoints), or with --plain
// any grpc-js target. The bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG
// (inline JSON) or GRPC_XDS_BOOTSTRAP (a file); --xds-server writes one.
//
// Every call is unary, sequential, on ONE client (one channel), each with
// its own deadline:
//   --method unary   podlb.test.v1.TestService/Unary (the reply names its backend)
//   --method hello   helloworld.Greeter/SayHello ("Hello NAME from ID")
// Options: --authority A, --deadline-ms N (default 5000), --max-errors N
// (per round, default 20), --node-id ID.
//
// Modes:
//   (default)       prints `READY`, then answers stdin commands, one line each:
//                     calls N   N calls -> a tally JSON line
//                     quit      exits 0
//   --calls N       N calls, prints the tally JSON line, exits 0
//   --until-backends a,b,c [--rounds R] [--round-calls N]
//                   rounds of N calls (default 30) until one is served by
//                   exactly those backends with no error (at most R rounds,
//                   default 100); exits 0 when matched, else 1
//
// A tally: {"calls": N, "ok": K, "tally": {BACKEND: COUNT}, "errors": {CODE:
// COUNT}, "messages": [...], "stopped_early": BOOL}.
'use strict';

const path = require('path');
const readline = require('readline');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.PODLB_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const MAX_MESSAGES_KEPT = 5;

function usage(message) {
  process.stderr.write(`xds_client.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    target: undefined,
    plain: false,
    authority: undefined,
    method: 'unary',
    deadlineMs: 5000,
    maxErrors: 20,
    xdsServer: undefined,
    nodeId: 'podlb-test-grpc-js',
    calls: undefined,
    untilBackends: undefined,
    rounds: 100,
    roundCalls: 30,
  };
  const integer = (name, value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) usage(`${name} takes a whole number, not ${value}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} takes a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--plain': args.plain = true; break;
      case '--authority': args.authority = value(); break;
      case '--method': args.method = value(); break;
      case '--deadline-ms': args.deadlineMs = integer(arg, value()); break;
      case '--max-errors': args.maxErrors = integer(arg, value()); break;
      case '--xds-server': args.xdsServer = value(); break;
      case '--node-id': args.nodeId = value(); break;
      case '--calls': args.calls = integer(arg, value()); break;
      case '--until-backends': args.untilBackends = value(); break;
      case '--rounds': args.rounds = integer(arg, value()); break;
      case '--round-calls': args.roundCalls = integer(arg, value()); break;
      default:
        if (arg.startsWith('--') || args.target !== undefined) usage(`unexpected argument ${arg}`);
        args.target = arg;
    }
  }
  if (args.target === undefined) usage('a TARGET is needed');
  if (!args.plain && !args.target.startsWith('xds:')) usage('TARGET must be xds:///NAME unless --plain');
  if (args.method !== 'unary' && args.method !== 'hello') usage('--method is unary or hello');
  return args;
}

function bootstrap(server, nodeId) {
  return JSON.stringify({
    xds_servers: [{
      server_uri: server,
      channel_creds: [{ type: 'insecure' }],
      server_features: ['xds_v3'],
    }],
    node: { id: nodeId, cluster: 'podlb-test', locality: { zone: 'test' } },
  });
}

function loadStub(args) {
  const file = args.method === 'hello' ? 'helloworld.proto' : 'podlb_test.proto';
  const definition = protoLoader.loadSync(file, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  const Service = args.method === 'hello'
    ? loaded.helloworld.Greeter
    : loaded.podlb.test.v1.TestService;
  const options = {};
  if (args.authority) options['grpc.default_authority'] = args.authority;
  return new Service(args.target, grpc.credentials.createInsecure(), options);
}

// One call; resolves to the id of the backend that served it.
function callOnce(args, stub) {
  const deadline = new Date(Date.now() + args.deadlineMs);
  return new Promise((resolve, reject) => {
    if (args.method === 'hello') {
      stub.SayHello({ name: 'xds' }, { deadline }, (err, reply) => {
        if (err) return reject(err);
        const at = reply.message.lastIndexOf(' from ');
        resolve(at < 0 ? '' : reply.message.slice(at + ' from '.length));
      });
    } else {
      stub.Unary({ payload: Buffer.from('xds') }, { deadline }, (err, reply) => {
        if (err) return reject(err);
        resolve(reply.backend);
      });
    }
  });
}

async function runCalls(args, stub, count) {
  const tally = {};
  const errors = {};
  const messages = [];
  let ok = 0;
  let failed = 0;
  let stoppedEarly = false;
  for (let i = 0; i < count; i++) {
    try {
      const backend = await callOnce(args, stub);
      ok += 1;
      tally[backend] = (tally[backend] || 0) + 1;
    } catch (err) {
      const code = grpc.status[err.code] || 'UNKNOWN';
      errors[code] = (errors[code] || 0) + 1;
      failed += 1;
      const message = `${code}: ${err.details}`;
      if (!messages.includes(message) && messages.length < MAX_MESSAGES_KEPT) messages.push(message);
      if (failed >= args.maxErrors) {
        stoppedEarly = true;
        break;
      }
    }
  }
  return { calls: ok + failed, ok, tally, errors, messages, stopped_early: stoppedEarly };
}

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function serveStdin(args, stub) {
  process.stdout.write('READY\n');
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    if (words.length === 1 && words[0] === 'quit') return 0;
    if (words.length === 2 && words[0] === 'calls' && /^\d+$/.test(words[1])) {
      emit(await runCalls(args, stub, Number(words[1])));
      continue;
    }
    emit({ error: `unknown command ${JSON.stringify(line.trim())}; expected \`calls N\` or \`quit\`` });
  }
  return 0;
}

async function untilBackends(args, stub) {
  const expected = new Set(args.untilBackends.split(',').filter(Boolean));
  let result = {};
  for (let round = 1; round <= args.rounds; round++) {
    result = await runCalls(args, stub, args.roundCalls);
    const seen = Object.keys(result.tally);
    const same = seen.length === expected.size && seen.every((b) => expected.has(b));
    if (same && Object.keys(result.errors).length === 0) {
      emit({ ...result, rounds: round, matched: true });
      return 0;
    }
    // The control plane's push is what is awaited; a short pause keeps a
    // fast failing round from spinning.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  emit({ ...result, rounds: args.rounds, matched: false });
  return 1;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.xdsServer) process.env.GRPC_XDS_BOOTSTRAP_CONFIG = bootstrap(args.xdsServer, args.nodeId);
  if (!args.plain) require('@grpc/grpc-js-xds').register();
  const stub = loadStub(args);
  try {
    if (args.calls !== undefined) {
      emit(await runCalls(args, stub, args.calls));
      return 0;
    }
    if (args.untilBackends !== undefined) return await untilBackends(args, stub);
    return await serveStdin(args, stub);
  } finally {
    stub.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`xds_client.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
