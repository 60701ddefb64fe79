#!/usr/bin/env python3
"""A grpcio backend for bench/sick.sh that can be made sick at run time.

Serves podlb.test.v1.TestService (proto/podlb_test.proto) Unary and
ServerStream, without generated code: requests are ignored and every reply
is EchoReply{backend: ID}, encoded by hand. What it does depends on its
mode, read at start from --mode and then from the control file whenever the
file changes (polled every 20 ms; write the new mode into it; once in
force, the mode is written back into FILE.ack):

  ok                         answer after --work-ms (default 2 ms: a healthy
                             call does some work; ServerStream: one reply, OK)
  slow                       the same, 250 ms later (--slow-ms)
  unavailable                UNAVAILABLE at once, trailers-only (no reply)
  unavailable_after_message  ServerStream: one reply, then UNAVAILABLE in the
                             trailers; Unary cannot send a reply and then fail
                             in grpcio, so it answers as `unavailable`
  not_found                  NOT_FOUND after --work-ms, trailers-only

Every failure carries `x-backend: ID` in its trailers, so the load
generator can tell which backend failed a call. SIGSTOP freezes it (the
kernel still accepts connections), SIGKILL kills it.

Usage: sick_backend.py ID PORT [--mode MODE] [--control FILE] [--work-ms N]
                        [--slow-ms N]
Prints `LISTENING PORT` once ready; stops on SIGTERM or SIGINT.
"""

import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

MODES = ("ok", "slow", "unavailable", "unavailable_after_message", "not_found")
SERVICE = "podlb.test.v1.TestService"


def echo_reply(backend_id: str) -> bytes:
    """podlb.test.v1.EchoReply{backend} as protobuf: field 1, wire type 2."""
    data = backend_id.encode()
    return b"\x0a" + bytes([len(data)]) + data


class Backend:
    def __init__(self, backend_id, mode, control, work_ms, slow_ms):
        self.id = backend_id
        self.mode = mode
        self.control = control
        self.work_s = work_ms / 1000.0
        self.slow_s = slow_ms / 1000.0
        self.reply = echo_reply(backend_id)
        self.trailers = (("x-backend", backend_id),)

    def watch(self):
        """Re-reads the control file whenever its mtime changes."""
        seen = None
        while True:
            try:
                st = os.stat(self.control)
                if (st.st_mtime_ns, st.st_size) != seen:
                    seen = (st.st_mtime_ns, st.st_size)
                    with open(self.control) as f:
                        mode = f.read().strip()
                    if mode in MODES and mode != self.mode:
                        self.mode = mode
                        print(f"{time.time():.3f} mode {mode}", flush=True)
                    # Tell sick.sh the mode is in force from now on.
                    with open(self.control + ".ack.tmp", "w") as f:
                        f.write(self.mode + "\n")
                    os.replace(self.control + ".ack.tmp", self.control + ".ack")
            except FileNotFoundError:
                pass
            time.sleep(0.02)

    def fail(self, context, code):
        context.set_trailing_metadata(self.trailers)
        context.abort(code, f"{self.id} is sick ({self.mode})")

    def before_reply(self, context, streaming):
        mode = self.mode
        if mode == "slow":
            time.sleep(self.work_s + self.slow_s)
        elif mode == "not_found":
            time.sleep(self.work_s)   # an answer, after the same work as OK
            self.fail(context, grpc.StatusCode.NOT_FOUND)
        elif mode == "unavailable" or (mode == "unavailable_after_message" and not streaming):
            self.fail(context, grpc.StatusCode.UNAVAILABLE)
        elif self.work_s > 0:
            time.sleep(self.work_s)

    def unary(self, request, context):
        self.before_reply(context, streaming=False)
        return self.reply

    def server_stream(self, request, context):
        self.before_reply(context, streaming=True)
        yield self.reply
        if self.mode == "unavailable_after_message":
            self.fail(context, grpc.StatusCode.UNAVAILABLE)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("id")
    p.add_argument("port", type=int)
    p.add_argument("--mode", choices=MODES, default="ok")
    p.add_argument("--control", help="file holding the mode, polled every 20 ms")
    p.add_argument("--work-ms", type=float, default=2.0, help="time a healthy call takes")
    p.add_argument("--slow-ms", type=float, default=250.0, help="slow: added to --work-ms")
    args = p.parse_args()

    backend = Backend(args.id, args.mode, args.control, args.work_ms, args.slow_ms)
    if args.control:
        threading.Thread(target=backend.watch, daemon=True).start()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        options=[("grpc.so_reuseport", 0)],  # never share a port by accident
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(backend.unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(backend.server_stream),
    }),))
    if server.add_insecure_port(f"127.0.0.1:{args.port}") == 0:
        sys.exit(f"sick_backend.py: could not listen on 127.0.0.1:{args.port}")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"LISTENING {args.port}", flush=True)
    stop.wait()
    server.stop(grace=0.5).wait()


if __name__ == "__main__":
    main()
