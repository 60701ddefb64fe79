#!/usr/bin/env python3
"""Load generator and report for bench/sick.sh (sick pods).

  sick_client.py run TARGET SECONDS OUT.tsv [--concurrency 16] [--deadline 2]
                                            [--method unary|stream]
      CONCURRENCY threads over ONE grpcio channel (one HTTP/2 connection, as
      a client of a proxy has), each making calls back to back for SECONDS:
      podlb.test.v1.TestService/Unary, or /ServerStream (read to its end),
      each with DEADLINE seconds. Writes one line per call to OUT.tsv:
      start (Unix time), latency ms, status code, backend id (from the
      reply, or from the `x-backend` trailer of a failure; empty when the
      call got neither, e.g. a deadline or an error made by the proxy).

  sick_client.py summarize SCENARIO PEER CALLS.tsv EVENTS PERSEC.tsv --sick ID
      One JSON line of figures for the run (see figures()); the per-second
      counts (OK, failures by code, answers by backend) into PERSEC.tsv.
      EVENTS has lines `NAME UNIX_TIME` written by sick.sh (fault, heal, ...).

  sick_client.py report ROWS.jsonl
      The Markdown tables, one per scenario, from the summarize lines.
"""

import argparse
import json
import sys
import threading
import time
from collections import Counter, defaultdict

METHODS = {"unary": "/podlb.test.v1.TestService/Unary",
           "stream": "/podlb.test.v1.TestService/ServerStream"}
# The window after which a good balancer has stopped failing: starts this
# long after the fault (frozen, fail-fast, NOT_FOUND, slow).
SETTLE_S = 5.0


def decode_backend(buf: bytes) -> str:
    """EchoReply.backend (field 1) out of protobuf bytes; other fields skipped."""
    i = 0
    backend = ""
    while i < len(buf):
        key = buf[i]
        i += 1
        wire = key & 7
        if wire == 2:
            n, shift = 0, 0
            while True:
                b = buf[i]
                i += 1
                n |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
            if key >> 3 == 1:
                backend = buf[i : i + n].decode()
            i += n
        elif wire == 0:
            while buf[i] & 0x80:
                i += 1
            i += 1
        else:
            break
    return backend


# ---------------------------------------------------------------- run

def run(args):
    import grpc

    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=5)
    except grpc.FutureTimeoutError:
        sys.exit(f"sick_client.py: cannot connect to {args.target}")
    path = METHODS[args.method]
    if args.method == "unary":
        call = channel.unary_unary(path)
    else:
        call = channel.unary_stream(path)
    records = []
    lock = threading.Lock()
    print("GO", file=sys.stderr, flush=True)
    t0 = time.time()
    t_end = t0 + args.seconds

    def worker():
        mine = []
        while True:
            start = time.time()
            if start >= t_end:
                break
            backend = ""
            try:
                if args.method == "unary":
                    backend = decode_backend(call(b"", timeout=args.deadline))
                else:
                    for reply in call(b"", timeout=args.deadline):
                        backend = backend or decode_backend(reply)
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name if err.code() else "UNKNOWN"
                for key, value in err.trailing_metadata() or ():
                    if key == "x-backend":
                        backend = value
            mine.append((start, (time.time() - start) * 1000.0, code, backend))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    records.sort()
    with open(args.out, "w") as f:
        f.write(f"# t0 {t0:.6f} end {t_end:.6f} method {args.method} "
                f"concurrency {args.concurrency} deadline {args.deadline}\n")
        for start, ms, code, backend in records:
            f.write(f"{start:.6f}\t{ms:.3f}\t{code}\t{backend}\n")
    ok = sum(1 for r in records if r[2] == "OK")
    print(f"{len(records)} calls, {ok} OK", file=sys.stderr)


# ---------------------------------------------------------------- summarize

def load_calls(path):
    t0 = t_end = None
    calls = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                words = line.split()
                t0, t_end = float(words[2]), float(words[4])
                continue
            start, ms, code, backend = line.rstrip("\n").split("\t")
            calls.append((float(start), float(ms), code, backend))
    return t0, t_end, calls


def load_events(path):
    events = {}
    with open(path) as f:
        for line in f:
            name, at = line.split()
            events[name] = float(at)
    return events


def pct(sorted_values, q):
    if not sorted_values:
        return None
    i = max(0, min(len(sorted_values) - 1, int(len(sorted_values) * q + 0.999999) - 1))
    return sorted_values[i]


def figures(scenario, peer, t0, t_end, calls, ev, sick):
    """The figures of one run: one dict, one row of the scenario's table."""
    fault = ev.get("fault")
    heal = ev.get("heal")
    # Failures that are answers about the request, not the backend's trouble.
    expected = {"NOT_FOUND"} if scenario == "not_found" else set()

    def failed(c):
        return c[2] != "OK" and c[2] not in expected

    def to_sick(c):
        # A frozen backend answers nothing: its calls end at the deadline
        # with no backend named (the other two answer within milliseconds).
        return c[3] == sick or (scenario == "frozen" and c[3] == "" and c[2] == "DEADLINE_EXCEEDED")

    if scenario == "frozen":
        win, win_label = (fault + SETTLE_S, heal), f"from {SETTLE_S:g} s after the freeze to the thaw"
    elif scenario in ("all_failing",):
        win, win_label = (heal, t_end), "after healing"
    elif scenario == "killed":
        win, win_label = (ev["listening"], t_end), "after the restart (listening)"
    else:
        win, win_label = (fault + SETTLE_S, t_end), f"from {SETTLE_S:g} s after the fault on"
    in_win = [c for c in calls if win[0] <= c[0] < win[1]]
    codes = Counter(c[2] for c in calls if failed(c))
    row = {
        "scenario": scenario, "peer": peer,
        "calls": len(calls),
        "ok": sum(1 for c in calls if c[2] == "OK"),
        "failed": sum(codes.values()),
        "codes": dict(codes.most_common()),
        "window": win_label,
        "window_s": round(win[1] - win[0], 1),
        "win_calls": len(in_win),
        "win_failed": sum(1 for c in in_win if failed(c)),
        "win_sick": sum(1 for c in in_win if to_sick(c)),
        "win_codes": dict(Counter(c[2] for c in in_win if failed(c)).most_common()),
    }
    row["win_sick_share"] = round(row["win_sick"] / len(in_win), 3) if in_win else None
    during = [c for c in calls if fault is not None and c[0] >= fault and (heal is None or c[0] < heal)]
    row["fault_calls"] = len(during)
    row["fault_failed"] = sum(1 for c in during if failed(c))
    if scenario == "slow":
        lat = sorted(c[1] for c in in_win if c[2] == "OK")
        row["win_p50_ms"] = round(pct(lat, 0.50), 1) if lat else None
        row["win_p99_ms"] = round(pct(lat, 0.99), 1) if lat else None
        base = sorted(c[1] for c in calls if c[0] < fault and c[2] == "OK")
        row["before_p50_ms"] = round(pct(base, 0.50), 1) if base else None
        row["before_p99_ms"] = round(pct(base, 0.99), 1) if base else None
    if scenario == "not_found":
        row["not_found"] = sum(1 for c in in_win if c[2] == "NOT_FOUND")
    if scenario == "all_failing":
        late = [c[0] for c in calls if c[0] >= heal and failed(c)]
        row["last_failure_after_heal_s"] = round(max(late) - heal, 2) if late else None
    if scenario == "killed":
        listening = ev["listening"]
        back = [c[0] + c[1] / 1000.0 for c in calls if c[2] == "OK" and c[3] == sick and c[0] >= ev["fault"]]
        back = [t for t in back if t >= listening]
        row["serves_again_s"] = round(min(back) - listening, 2) if back else None
        row["restart_s"] = round(listening - ev["fault"], 2)
    return row


def persec(t0, calls, path):
    secs = defaultdict(Counter)
    keys = set()
    for start, _, code, backend in calls:
        s = int(start - t0)
        secs[s][code] += 1
        keys.add(code)
        if code == "OK":
            secs[s]["ok_" + (backend or "?")] += 1
            keys.add("ok_" + (backend or "?"))
    keys = ["OK"] + sorted(k for k in keys if k != "OK" and not k.startswith("ok_")) + \
        sorted(k for k in keys if k.startswith("ok_"))
    with open(path, "w") as f:
        f.write("second\t" + "\t".join(keys) + "\n")
        for s in sorted(secs):
            f.write(f"{s}\t" + "\t".join(str(secs[s][k]) for k in keys) + "\n")


def summarize(args):
    t0, t_end, calls = load_calls(args.calls)
    ev = load_events(args.events)
    persec(t0, calls, args.persec)
    print(json.dumps(figures(args.scenario, args.peer, t0, t_end, calls, ev, args.sick)))


# ---------------------------------------------------------------- report

TITLES = {
    "frozen": "Frozen (SIGSTOP)",
    "fail_headers": "Fail-fast in headers (UNAVAILABLE, trailers-only)",
    "fail_trailers": "Fail-fast in trailers (one reply, then UNAVAILABLE)",
    "not_found": "NOT_FOUND (an answer about the request: must not be ejected)",
    "slow": "Slow (+250 ms)",
    "all_failing": "All failing, then healed",
    "killed": "Killed and restarted on the same port",
}


def codes_text(codes):
    return ", ".join(f"{k} {v}" for k, v in codes.items()) or "-"


def share(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def report(args):
    rows = [json.loads(line) for line in open(args.rows) if line.strip()]
    by = defaultdict(list)
    order = []
    for r in rows:
        if r["scenario"] not in by:
            order.append(r["scenario"])
        by[r["scenario"]].append(r)
    for scenario in order:
        rs = by[scenario]
        first = next((r for r in rs if "window" in r), None)
        print(f"### {TITLES.get(scenario, scenario)}\n")
        win = first["window"] if first else "in the window"
        sick_col = {"all_failing": "b3's share after healing",
                    "killed": "b3's share after the restart"}.get(scenario, "to the sick backend (window)")
        extra = {"slow": " | p50 / p99 ms before | p50 / p99 ms (window)",
                 "killed": " | b3 serves again after",
                 "all_failing": " | last failed call after healing"}.get(scenario, "")
        failed_col = "failed (not counting NOT_FOUND)" if scenario == "not_found" else "failed"
        print(f"Window: calls started {win}.\n")
        print(f"| peer | calls | {failed_col} | failed / calls in the window | {sick_col}{extra} | failures by code |")
        print("|---|---:|---:|---:|---:|" + "---:|" * extra.count("|") + "---|")
        for r in rs:
            if "error" in r:
                print(f"| {r['peer']} | FAILED: {r['error']} |" + " |" * (4 + extra.count("|")))
                continue
            cells = [r["peer"], str(r["calls"]), str(r["failed"]),
                     f"{r['win_failed']} / {r['win_calls']}", share(r["win_sick_share"])]
            if scenario == "slow":
                cells.append(f"{r['before_p50_ms']} / {r['before_p99_ms']}")
                cells.append(f"{r['win_p50_ms']} / {r['win_p99_ms']}")
            elif scenario == "killed":
                v = r["serves_again_s"]
                cells.append(f"not within {r['window_s']:g} s" if v is None else f"{v} s")
            elif scenario == "all_failing":
                v = r["last_failure_after_heal_s"]
                cells.append("none" if v is None else f"{v} s")
            codes = codes_text(r["codes"])
            if scenario == "not_found":
                codes += f"; NOT_FOUND in the window: {r['not_found']}"
            cells.append(codes)
            print("| " + " | ".join(cells) + " |")
        print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("target")
    r.add_argument("seconds", type=float)
    r.add_argument("out")
    r.add_argument("--concurrency", type=int, default=16)
    r.add_argument("--deadline", type=float, default=2.0)
    r.add_argument("--method", choices=METHODS, default="unary")
    s = sub.add_parser("summarize")
    s.add_argument("scenario")
    s.add_argument("peer")
    s.add_argument("calls")
    s.add_argument("events")
    s.add_argument("persec")
    s.add_argument("--sick", default="b3")
    o = sub.add_parser("report")
    o.add_argument("rows")
    args = p.parse_args()
    {"run": run, "summarize": summarize, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
