#!/usr/bin/env python3
"""Per-backend split and gRPC-level correctness, over ONE connection.

Makes N unary helloworld.Greeter/SayHello calls, one after the other, over a
single grpcio channel (one HTTP/2 connection to TARGET), reads the backend id
out of every reply ("Hello NAME from ID") and the gRPC status of every call,
and prints one JSON object:

    {"calls": 3000, "ok": 3000, "by_backend": {"b1": 1000, ...},
     "errors": {"UNAVAILABLE": 0, ...}, "seconds": 1.2}

h2load cannot do this: it sees HTTP status codes, not `grpc-status` in the
trailers, nor reply bodies. No generated code is needed: the request and the
reply are one string field each, encoded by hand below.

Usage: grpc_split.py HOST:PORT [N] [NAME]
"""

import json
import sys
import time
from collections import Counter

import grpc


def encode_hello_request(name: str) -> bytes:
    """helloworld.HelloRequest{name} as protobuf: field 1, wire type 2."""
    data = name.encode()
    return b"\x0a" + _varint(len(data)) + data


def decode_hello_reply(buf: bytes) -> str:
    """helloworld.HelloReply.message (field 1) out of protobuf bytes."""
    i = 0
    message = ""
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = _read_varint(buf, i)
            if field == 1:
                message = buf[i : i + length].decode()
            i += length
        elif wire == 0:
            _, i = _read_varint(buf, i)
        else:
            raise ValueError(f"unexpected wire type {wire} in HelloReply")
    return message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    name = sys.argv[3] if len(sys.argv) > 3 else "world"

    # One channel, one subchannel (pick_first), so one HTTP/2 connection: the
    # case where a Kubernetes Service pins every call to one pod.
    channel = grpc.insecure_channel(target)
    say_hello = channel.unary_unary(
        "/helloworld.Greeter/SayHello",
        request_serializer=lambda s: encode_hello_request(s),
        response_deserializer=decode_hello_reply,
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=5)
    except grpc.FutureTimeoutError:
        print(json.dumps({"calls": calls, "ok": 0, "by_backend": {},
                          "errors": {"CONNECT_TIMEOUT": calls}, "seconds": 0}))
        return 1

    by_backend: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    prefix = f"Hello {name} from "
    start = time.perf_counter()
    for _ in range(calls):
        try:
            message = say_hello(name, timeout=5)
        except grpc.RpcError as err:
            errors[err.code().name] += 1
            continue
        if message.startswith(prefix):
            by_backend[message[len(prefix):]] += 1
        else:
            errors["BAD_REPLY"] += 1
    seconds = time.perf_counter() - start
    channel.close()

    print(json.dumps({
        "calls": calls,
        "ok": sum(by_backend.values()),
        "by_backend": dict(sorted(by_backend.items())),
        "errors": dict(errors),
        "seconds": round(seconds, 3),
    }))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
