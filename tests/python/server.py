"""The grpcio test backend: podlb.test.v1.TestService (and helloworld.Greeter).

The Python twin of crates/podlb-testkit's TestBackend, so podlb's tests can put
an independent gRPC implementation behind the proxy. Same behaviour:

  Unary         sleep sleep_ms, fail with fail_code/fail_message if set,
                else echo payload
  ServerStream  the same once, then reply_count replies (count = 1..N), each
                with payload, or reply_size zero bytes when payload is empty
  ClientStream  the same for each message; replies count and total_bytes
  Bidi          the same for each message; echoes it as it arrives (count = 1..N)

Request metadata `x-podlb-fail-on: ID[,ID...]` aims fail_code at those
backends only; the others answer as if it were 0 (as the Rust TestBackend).

Every reply names the backend (its id). Request metadata `x-echo-*` comes back
as response headers and as trailers `x-trailer-*` (ascii and -bin alike); a
call that fails before any reply sends both in its trailers, as tonic does.

A test can make the server sick at run time (crates/podlb-testkit's
sickness.rs): each Unary and ServerStream call first reads the control file
$TMPDIR/podlb-sickness-<pid>, one line: `healthy`, `fail_headers CODE`
(fail at once, trailers-only), `fail_trailers CODE` (ServerStream: one reply,
then the status in the trailers; Unary: as fail_headers) or `slow MS`.

Usage: server.py ID [PORT]   listens on 127.0.0.1:PORT (default: a free port),
prints `LISTENING <port>` once ready, stops on SIGTERM or SIGINT.
Needs the stubs that scripts/test.sh generates into gen/.
"""

import os
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402
import podlb_test_pb2 as pb  # noqa: E402
import podlb_test_pb2_grpc as pb_grpc  # noqa: E402

ECHO_PREFIX = "x-echo-"
TRAILER_PREFIX = "x-trailer-"
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
FAIL_ON = "x-podlb-fail-on"
# This server's id, from the command line.
BACKEND_ID = None


class Call:
    """One call: its metadata echo, its sleeps and its failure."""

    def __init__(self, context):
        self.context = context
        self.headers = [
            (key, value)
            for key, value in context.invocation_metadata()
            if key.startswith(ECHO_PREFIX)
        ]
        self.trailers = [
            (TRAILER_PREFIX + key[len(ECHO_PREFIX):], value) for key, value in self.headers
        ]
        self.headers_sent = False
        aimed = dict(context.invocation_metadata()).get(FAIL_ON)
        self.fails_here = aimed is None or BACKEND_ID in [i.strip() for i in aimed.split(",")]
        # Wakes a sleep as soon as the call ends (cancel, deadline).
        self.ended = threading.Event()
        if not context.add_callback(self.ended.set):
            self.ended.set()

    def send_headers(self):
        """Sends the echo headers, once, before the first reply."""
        if not self.headers_sent:
            self.headers_sent = True
            if self.headers:
                self.context.send_initial_metadata(self.headers)
            self.context.set_trailing_metadata(self.trailers)

    def obey(self, request):
        """Sleeps sleep_ms, then fails with fail_code when it is set."""
        if request.sleep_ms > 0:
            self.ended.wait(request.sleep_ms / 1000.0)
            if not self.context.is_active():
                self.context.abort(grpc.StatusCode.CANCELLED, "call ended while sleeping")
        if request.fail_code != 0 and self.fails_here:
            trailers = self.trailers if self.headers_sent else self.headers + self.trailers
            self.context.set_trailing_metadata(trailers)
            code = STATUS_CODES.get(request.fail_code, grpc.StatusCode.UNKNOWN)
            self.context.abort(code, request.fail_message)


SICKNESS_FILE = os.path.join(tempfile.gettempdir(), f"podlb-sickness-{os.getpid()}")


def sickness():
    """The sickness the test set: (kind, number), ("healthy", 0) without one."""
    try:
        with open(SICKNESS_FILE, encoding="utf-8") as f:
            kind, _, number = f.read().strip().partition(" ")
        return kind, int(number or 0)
    except (OSError, ValueError):
        return "healthy", 0


def sicken(context, allow_trailers):
    """Fails or delays the call as the sickness says; returns the status code
    to send in the trailers after one reply, when that is the sickness."""
    kind, number = sickness()
    if kind == "slow":
        time.sleep(number / 1000.0)
    elif kind == "fail_trailers" and allow_trailers:
        return STATUS_CODES.get(number, grpc.StatusCode.UNKNOWN)
    elif kind in ("fail_headers", "fail_trailers"):
        context.abort(STATUS_CODES.get(number, grpc.StatusCode.UNKNOWN), "the test made this backend sick")
    return None


class TestService(pb_grpc.TestServiceServicer):
    def __init__(self, backend_id):
        self.id = backend_id

    def Unary(self, request, context):
        sicken(context, allow_trailers=False)
        call = Call(context)
        call.obey(request)
        call.send_headers()
        return pb.EchoReply(backend=self.id, payload=request.payload)

    def ServerStream(self, request, context):
        in_trailers = sicken(context, allow_trailers=True)
        call = Call(context)
        call.obey(request)
        payload = request.payload or bytes(request.reply_size)
        call.send_headers()
        if in_trailers is not None:
            yield pb.EchoReply(backend=self.id, payload=payload, count=1)
            context.abort(in_trailers, "the test made this backend sick")
        for i in range(1, request.reply_count + 1):
            yield pb.EchoReply(backend=self.id, payload=payload, count=i)

    def ClientStream(self, request_iterator, context):
        call = Call(context)
        count = total = 0
        for request in request_iterator:
            call.obey(request)
            count += 1
            total += len(request.payload)
        call.send_headers()
        return pb.EchoReply(backend=self.id, count=count, total_bytes=total)

    def Bidi(self, request_iterator, context):
        call = Call(context)
        call.send_headers()
        for i, request in enumerate(request_iterator, 1):
            call.obey(request)
            yield pb.EchoReply(backend=self.id, payload=request.payload, count=i)


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    """Answers like podlb's own greeter backend: `Hello NAME from ID`."""

    def __init__(self, backend_id):
        self.id = backend_id

    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message=f"Hello {request.name} from {self.id}")


def main():
    global BACKEND_ID
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: server.py ID [PORT]")
    backend_id = sys.argv[1]
    BACKEND_ID = backend_id
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 0

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
            # Two servers must never share a port by accident.
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_TestServiceServicer_to_server(TestService(backend_id), server)
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(backend_id), server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    if port == 0:
        sys.exit("server.py: could not listen")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"LISTENING {port}", flush=True)
    stop.wait()
    server.stop(grace=2).wait()
    try:
        os.remove(SICKNESS_FILE)
    except OSError:
        pass


if __name__ == "__main__":
    main()
