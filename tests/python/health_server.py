"""A grpcio greeter with grpcio's own health service (grpcio-health-checking):
the reference Python implementation of grpc.health.v1 (Check and Watch), for
podlb's active health checks to be tested against.

  SayHello   answers `Hello NAME from ID`
  Health     the whole server ("") and helloworld.Greeter start SERVING;
             each line on stdin, `SERVING` or `NOT_SERVING`, sets both

Usage: health_server.py ID   listens on a free port of 127.0.0.1, prints
`LISTENING <port>` once ready, stops when stdin closes or on SIGTERM.
Needs the stubs that scripts/test.sh generates into gen/.
"""

import os
import sys
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

SERVICES = ("", "helloworld.Greeter")


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def __init__(self, server_id):
        self.server_id = server_id

    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message=f"Hello {request.name} from {self.server_id}")


def main():
    server_id = sys.argv[1]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(server_id), server)
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in SERVICES:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"LISTENING {port}", flush=True)
    statuses = {
        "SERVING": health_pb2.HealthCheckResponse.SERVING,
        "NOT_SERVING": health_pb2.HealthCheckResponse.NOT_SERVING,
    }
    for line in sys.stdin:
        status = statuses.get(line.strip())
        if status is None:
            print(f"unknown status {line.strip()!r}", file=sys.stderr, flush=True)
            continue
        for name in SERVICES:
            servicer.set(name, status)
        print(f"SET {line.strip()}", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
