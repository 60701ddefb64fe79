"""The grpcio test client: runs one scenario against a podlb.test.v1.TestService.

Usage: client.py TARGET SCENARIO [ARGS...]

TARGET is any grpcio target (`127.0.0.1:50051`, `dns:///localhost:50051`,
`xds:///greeter.default:50051` with GRPC_XDS_BOOTSTRAP set): a test backend
directly, or podlb in front of some. PODLB_AUTHORITY, if set, is the calls'
:authority (to call a gateway that routes by it, such as Envoy). Scenarios:

  unary            one call, payload echoed
  server_stream    reply_count replies of reply_size zeros, and of a payload
  client_stream    messages counted and their bytes summed by the backend
  bidi             ping-pong: each message is echoed before the next is sent
  metadata         ascii, -bin and repeated x-echo-* metadata come back byte
                   for byte as headers and x-trailer-* trailers (unary,
                   server stream, and a failing call)
  status           fail_code with a Unicode message comes back exactly
  deadline [MS]    a sleeping call with an MS deadline (default 300) ends
                   DEADLINE_EXCEEDED (or tonic's server-side CANCELLED
                   "Timeout expired", when its timer wins the race)
  balance N        N unary calls on one channel; counts per backend
  hello [NAME [N]] helloworld.Greeter/SayHello (podlb's greeter backends), N
                   times on one channel (default 1); counts per backend

On success prints one JSON line ({"scenario": ..., "ok": true, ...}) and exits
0; on failure prints the reason on stderr and exits 1.
Needs the stubs that scripts/test.sh generates into gen/.
"""

import json
import os
import queue
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402
import podlb_test_pb2 as pb  # noqa: E402
import podlb_test_pb2_grpc as pb_grpc  # noqa: E402

MAX_MESSAGE_SIZE = 64 * 1024 * 1024


class Failure(Exception):
    """A scenario's check did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def open_channel(target):
    return grpc.insecure_channel(
        target,
        options=[
            # Tests talk to 127.0.0.1 only: never through an HTTP proxy from the environment.
            ("grpc.enable_http_proxy", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
        ]
        + ([("grpc.default_authority", os.environ["PODLB_AUTHORITY"])] if os.environ.get("PODLB_AUTHORITY") else []),
    )


def values(metadata, key):
    """All values of `key` in `metadata`, in order."""
    return [value for k, value in (metadata or ()) if k == key]


def unary(stub):
    payload = b"ping \x00\xff pong"
    reply = stub.Unary(pb.EchoRequest(payload=payload))
    check(reply.payload == payload, f"payload {reply.payload!r} != {payload!r}")
    check(reply.backend != "", "reply names no backend")
    return {"backend": reply.backend}


def server_stream(stub):
    replies = list(stub.ServerStream(pb.EchoRequest(reply_count=5, reply_size=3000)))
    check(len(replies) == 5, f"{len(replies)} replies, expected 5")
    for i, reply in enumerate(replies, 1):
        check(reply.count == i, f"reply {i} has count {reply.count}")
        check(reply.payload == bytes(3000), f"reply {i} payload is not 3000 zero bytes")
    replies = list(stub.ServerStream(pb.EchoRequest(payload=b"abc", reply_count=3)))
    check([r.payload for r in replies] == [b"abc"] * 3, "payload not repeated 3 times")
    return {"backend": replies[0].backend, "replies": 8}


def client_stream(stub):
    sizes = [0, 1, 10, 100, 1000, 65536]
    reply = stub.ClientStream(pb.EchoRequest(payload=bytes(size)) for size in sizes)
    check(reply.count == len(sizes), f"count {reply.count}, expected {len(sizes)}")
    check(reply.total_bytes == sum(sizes), f"total_bytes {reply.total_bytes}, expected {sum(sizes)}")
    return {"backend": reply.backend, "count": reply.count, "total_bytes": reply.total_bytes}


def bidi(stub):
    outbox = queue.Queue()

    def requests():
        while (request := outbox.get()) is not None:
            yield request

    responses = stub.Bidi(requests())
    backend = None
    for i in range(1, 6):
        payload = f"message {i}".encode()
        outbox.put(pb.EchoRequest(payload=payload))
        reply = next(responses)
        check(reply.payload == payload, f"echo {i}: {reply.payload!r} != {payload!r}")
        check(reply.count == i, f"echo {i} has count {reply.count}")
        backend = reply.backend
    outbox.put(None)
    rest = list(responses)
    check(rest == [], f"{len(rest)} replies after the client closed")
    return {"backend": backend, "echoes": 5}


ECHOED = [
    ("x-echo-ascii", "hello, world ~ 0123 !#$%&'*+-.^_`|"),
    ("x-echo-data-bin", bytes(range(256))),
    ("x-echo-multi", "first"),
    ("x-echo-multi", "second"),
]


def check_echoes(where, headers, trailers, trailers_only=False):
    for key in dict(ECHOED):
        sent = values(ECHOED, key)
        trailer = "x-trailer-" + key[len("x-echo-"):]
        if not trailers_only:
            got = values(headers, key)
            check(got == sent, f"{where}: header {key} came back as {got!r}, sent {sent!r}")
        got = values(trailers, trailer)
        check(got == sent, f"{where}: trailer {trailer} came back as {got!r}, sent {sent!r}")


def metadata(stub):
    reply, call = stub.Unary.with_call(pb.EchoRequest(payload=b"md"), metadata=ECHOED)
    check_echoes("unary", call.initial_metadata(), call.trailing_metadata())

    call = stub.ServerStream(pb.EchoRequest(reply_count=2, reply_size=10), metadata=ECHOED)
    replies = list(call)
    check(len(replies) == 2, f"server stream: {len(replies)} replies, expected 2")
    check_echoes("server stream", call.initial_metadata(), call.trailing_metadata())

    try:
        stub.Unary(pb.EchoRequest(fail_code=grpc.StatusCode.NOT_FOUND.value[0]), metadata=ECHOED)
        raise Failure("failing call: succeeded")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.NOT_FOUND, f"failing call: {error.code()}")
        check_echoes("failing call", None, error.trailing_metadata(), trailers_only=True)
    return {"backend": reply.backend, "checked": ["unary", "server_stream", "failing_call"]}


def status(stub):
    cases = [
        (grpc.StatusCode.FAILED_PRECONDITION, "caf\u00e9 \U0001F680 done, 100% sure"),
        (grpc.StatusCode.NOT_FOUND, "plain words"),
        (grpc.StatusCode.INVALID_ARGUMENT, ""),
    ]
    for code, message in cases:
        try:
            stub.Unary(pb.EchoRequest(fail_code=code.value[0], fail_message=message))
            raise Failure(f"{code.name}: the call succeeded")
        except grpc.RpcError as error:
            check(error.code() == code, f"code {error.code()}, expected {code}")
            details = error.details() or ""
            check(details == message, f"{code.name}: message {details!r}, expected {message!r}")
    return {"codes": [code.name for code, _ in cases]}


def deadline(stub, ms="300"):
    timeout = int(ms) / 1000.0
    start = time.monotonic()
    try:
        stub.Unary(pb.EchoRequest(sleep_ms=60_000), timeout=timeout)
        raise Failure("the sleeping call succeeded")
    except grpc.RpcError as error:
        # The deadline travels as grpc-timeout, and the backend keeps it too:
        # a tonic server whose own timer fires first answers CANCELLED
        # "Timeout expired" (tonic's choice), which can reach the client
        # before its own timer does. Either way the call ended at its deadline.
        by_client = error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        by_tonic_server = (
            error.code() == grpc.StatusCode.CANCELLED and error.details() == "Timeout expired"
        )
        check(
            by_client or by_tonic_server,
            f"code {error.code()} ({error.details()}), expected DEADLINE_EXCEEDED",
        )
        code = error.code().name
    elapsed_ms = int((time.monotonic() - start) * 1000)
    return {"code": code, "elapsed_ms": elapsed_ms}


def balance(stub, n):
    counts = {}
    for _ in range(int(n)):
        backend = stub.Unary(pb.EchoRequest()).backend
        counts[backend] = counts.get(backend, 0) + 1
    return {"calls": int(n), "counts": counts}


def hello(channel, name="python", n="1"):
    stub = helloworld_pb2_grpc.GreeterStub(channel)
    counts = {}
    for _ in range(int(n)):
        reply = stub.SayHello(helloworld_pb2.HelloRequest(name=name))
        check(reply.message.startswith(f"Hello {name} from "), f"unexpected greeting {reply.message!r}")
        backend = reply.message.rsplit(" from ", 1)[1]
        counts[backend] = counts.get(backend, 0) + 1
    return {"message": reply.message, "backend": backend, "counts": counts}


SCENARIOS = {
    "unary": unary,
    "server_stream": server_stream,
    "client_stream": client_stream,
    "bidi": bidi,
    "metadata": metadata,
    "status": status,
    "deadline": deadline,
    "balance": balance,
}


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in [*SCENARIOS, "hello"]:
        sys.exit(f"usage: client.py TARGET {{{'|'.join([*SCENARIOS, 'hello'])}}} [ARGS...]")
    target, name, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        with open_channel(target) as channel:
            if name == "hello":
                result = hello(channel, *args)
            else:
                result = SCENARIOS[name](pb_grpc.TestServiceStub(channel), *args)
    except Failure as failure:
        sys.exit(f"client.py {name} against {target}: FAILED: {failure}")
    except grpc.RpcError as error:
        sys.exit(f"client.py {name} against {target}: unexpected {error.code()}: {error.details()}")
    print(json.dumps({"scenario": name, "ok": True, **result}), flush=True)


if __name__ == "__main__":
    main()
