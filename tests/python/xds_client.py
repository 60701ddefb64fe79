"""The grpcio xDS client: a real proxyless gRPC client of podlb's control plane.

Usage: xds_client.py TARGET [options]

TARGET is `xds:///NAME` (proxyless: grpcio asks the xDS server in its
bootstrap for Listener NAME, then its route, cluster and endpoints), or with
--plain any grpcio target (e.g. Envoy's gateway port, `127.0.0.1:PORT`).
The bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG (inline JSON) or
GRPC_XDS_BOOTSTRAP (a file), as grpcio reads them; --xds-server writes one.

Every call is unary, sequential, on ONE channel, each with its own deadline:
  --method unary   podlb.test.v1.TestService/Unary (the reply names its backend)
  --method hello   helloworld.Greeter/SayHello ("Hello NAME from ID")

Modes:
  (default)        long-running: prints `READY`, then reads commands on stdin,
                   one per line, answering each with one line:
                     calls N   N calls -> a tally JSON line
                     quit      exits 0
                   The channel lives as long as the process, so a test can
                   change what the control plane serves and see whether the
                   same channel follows.
  --calls N        N calls, prints the tally JSON line, exits 0
  --until-backends a,b,c [--rounds R] [--round-calls N]
                   rounds of N calls (default 30) until one round is served by
                   exactly those backends with no error (at most R rounds,
                   default 100); prints that round's tally with "rounds" and
                   "matched", exits 0 when matched, else 1

A tally: {"calls": N, "ok": K, "tally": {BACKEND: COUNT}, "errors": {CODE:
COUNT}, "messages": [first distinct error messages], "stopped_early": BOOL}.
A round stops early after --max-errors failed calls (default 20), so a target
nobody serves answers in bounded time.
Needs the stubs that scripts/test.sh generates into gen/.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402
import podlb_test_pb2 as pb  # noqa: E402
import podlb_test_pb2_grpc as pb_grpc  # noqa: E402

MAX_MESSAGES_KEPT = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(description="grpcio xDS test client")
    parser.add_argument("target")
    parser.add_argument("--plain", action="store_true", help="TARGET is not xds:///, e.g. Envoy's gateway")
    parser.add_argument("--authority", help="the :authority of every call (grpc.default_authority)")
    parser.add_argument("--method", choices=["unary", "hello"], default="unary")
    parser.add_argument("--deadline-ms", type=int, default=5000, help="per call")
    parser.add_argument("--max-errors", type=int, default=20, help="per round")
    parser.add_argument("--xds-server", help="HOST:PORT of the ADS server: writes the bootstrap")
    parser.add_argument("--node-id", default="podlb-test-grpcio")
    parser.add_argument("--calls", type=int)
    parser.add_argument("--until-backends")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--round-calls", type=int, default=30)
    args = parser.parse_args(argv)
    if not args.plain and not args.target.startswith("xds:"):
        parser.error("TARGET must be xds:///NAME unless --plain")
    return args


def bootstrap(server, node_id):
    return json.dumps(
        {
            "xds_servers": [
                {
                    "server_uri": server,
                    "channel_creds": [{"type": "insecure"}],
                    "server_features": ["xds_v3"],
                }
            ],
            "node": {"id": node_id, "cluster": "podlb-test", "locality": {"zone": "test"}},
        }
    )


def open_channel(args):
    options = [
        # Tests talk to 127.0.0.1 only: never through an HTTP proxy from the environment.
        ("grpc.enable_http_proxy", 0),
    ]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    return grpc.insecure_channel(args.target, options=options)


def call_once(args, stubs):
    """One call; returns the id of the backend that served it."""
    timeout = args.deadline_ms / 1000.0
    if args.method == "hello":
        reply = stubs["hello"].SayHello(helloworld_pb2.HelloRequest(name="xds"), timeout=timeout)
        _, _, backend = reply.message.rpartition(" from ")
        return backend
    return stubs["unary"].Unary(pb.EchoRequest(payload=b"xds"), timeout=timeout).backend


def run_calls(args, stubs, count):
    tally, errors, messages = {}, {}, []
    ok = 0
    stopped_early = False
    for _ in range(count):
        try:
            backend = call_once(args, stubs)
        except grpc.RpcError as e:
            code = e.code().name if e.code() else "UNKNOWN"
            errors[code] = errors.get(code, 0) + 1
            message = f"{code}: {e.details()}"
            if message not in messages and len(messages) < MAX_MESSAGES_KEPT:
                messages.append(message)
            if sum(errors.values()) >= args.max_errors:
                stopped_early = True
                break
            continue
        ok += 1
        tally[backend] = tally.get(backend, 0) + 1
    return {
        "calls": ok + sum(errors.values()),
        "ok": ok,
        "tally": tally,
        "errors": errors,
        "messages": messages,
        "stopped_early": stopped_early,
    }


def emit(result):
    print(json.dumps(result, sort_keys=True), flush=True)


def serve_stdin(args, stubs):
    print("READY", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words == ["quit"]:
            return 0
        if len(words) == 2 and words[0] == "calls" and words[1].isdigit():
            emit(run_calls(args, stubs, int(words[1])))
            continue
        emit({"error": f"unknown command {line.strip()!r}; expected `calls N` or `quit`"})
    return 0


def until_backends(args, stubs):
    expected = set(filter(None, args.until_backends.split(",")))
    result = {}
    for round_number in range(1, args.rounds + 1):
        result = run_calls(args, stubs, args.round_calls)
        if set(result["tally"]) == expected and not result["errors"]:
            emit({**result, "rounds": round_number, "matched": True})
            return 0
        # The control plane's push is what is awaited; a short pause keeps a
        # fast failing round from spinning.
        time.sleep(0.1)
    emit({**result, "rounds": args.rounds, "matched": False})
    return 1


def main(argv):
    args = parse_args(argv)
    if args.xds_server:
        os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = bootstrap(args.xds_server, args.node_id)
    channel = open_channel(args)
    stubs = {
        "unary": pb_grpc.TestServiceStub(channel),
        "hello": helloworld_pb2_grpc.GreeterStub(channel),
    }
    try:
        if args.calls is not None:
            emit(run_calls(args, stubs, args.calls))
            return 0
        if args.until_backends is not None:
            return until_backends(args, stubs)
        return serve_stdin(args, stubs)
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
