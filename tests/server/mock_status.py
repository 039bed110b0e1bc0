#!/usr/bin/env python3
"""mock_status.py - a stand-in for `edgeserve serve` to develop the dashboard.

Serves the dashboard page at GET /, a changing fake status at GET /v1/status
(the JSON of docs/server/dashboard.md) and answers POST /v1/classify with a
fixed result, counting it. It takes the serve command line of the real server,
so tests/server/dashboard.sh can run it in the server's place (--mock):

  mock_status.py serve --host 127.0.0.1 --port 0 --model M --ready-file F
      [--page FILE] [--status MODE] [--models N] [--key KEY]

MODE: normal (default), empty ({}), nomodels (no "models"), notemp
(temperature_c null), down (503 on every status), flaky (the 3rd and 4th
status fail with 500, then it recovers) or garbage (a status that is not
JSON). --key makes
/v1/status want "Authorization: Bearer KEY". Writes its base URL into the
ready file once it listens; exits 0 on SIGTERM. Development only: the test
proper runs against the real server. Python 3 standard library only.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.requests = 0
        self.polls = 0
        self.rng = random.Random(7)
        names = ["media", "spam", "lang", "intent", "topic", "toxic"]
        self.models = names[: max(0, args.models)]

    def status(self):
        with self.lock:
            up = time.monotonic() - self.start
            self.polls += 1
            rng = self.rng
            req = self.requests + int(up * 40)
            models = []
            for i, name in enumerate(self.models):
                base = 120 * (i + 1) * (1 + 0.3 * math.sin(up / 5 + i))
                models.append({
                    "name": name, "version": 1 + i, "state": "READY" if i != 2 else "LOADING",
                    "variant": name + ".esm", "quality": ["high", "medium", "low"][i % 3],
                    "requests_total": req // (i + 1), "batch_avg": round(1 + rng.random(), 2),
                    "latency_us": {
                        "total": {"p50": base, "p95": base * 2.5, "p99": base * 6 * (1 + rng.random())},
                        "queue": {"p50": base / 10, "p95": base / 3, "p99": base * (0.5 + rng.random())},
                        "inference": {"p50": base / 2, "p95": base, "p99": base * 1.7},
                    },
                })
            hits = int(up * 10 + self.requests * 0.3)
            misses = int(up * 25 + self.requests * 0.7)
            s = {
                "server": {"version": "0.1.0-mock", "uptime_s": round(up, 2), "requests_total": req,
                           "errors_total": int(up / 3), "requests_per_s": round(40 + 10 * math.sin(up), 1)},
                "models": models,
                "queues": {"critical": int(2 + 2 * math.sin(up)), "high": int(4 + 3 * math.sin(up / 2)),
                           "normal": int(8 + 6 * math.sin(up / 3)), "low": rng.randint(0, 12)},
                "memory": {"rss_bytes": int(90e6 + 40e6 * math.sin(up / 4)), "budget_bytes": 300000000,
                           "reserved_bytes": int(60e6 + 20e6 * math.sin(up / 6)), "pressure": "ok"},
                "cache": {"hits": hits, "misses": misses, "hit_rate": hits / max(1, hits + misses),
                          "entries": 80 + int(up), "bytes": 20000 + int(up) * 100},
                "system": {"cpu_percent": round(30 + 20 * math.sin(up / 3), 1),
                           "temperature_c": round(48 + 5 * math.sin(up / 7), 1), "load_level": "optimal"},
                "rejected": {"queue_full": int(up / 5), "deadline": 1, "budget": 0, "cancelled": 0,
                             "invalid": 2},
            }
            mode = self.args.status
            if mode == "empty":
                return {}
            if mode == "nomodels":
                del s["models"]
            if mode == "notemp":
                s["system"]["temperature_c"] = None
            return s


def handler(state):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            if state.args.verbose:
                sys.stderr.write("mock: " + fmt % a + "\n")

        def reply(self, code, body, ctype="application/json"):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/":
                with open(state.args.page, "rb") as f:
                    return self.reply(200, f.read(), "text/html; charset=utf-8")
            if path != "/v1/status":
                return self.reply(404, '{"error":"not found"}')
            a = state.args
            if a.key and self.headers.get("Authorization") != "Bearer " + a.key:
                return self.reply(401, '{"error":"unauthorized"}')
            n = state.polls
            if a.status == "down" or (a.status == "flaky" and n in (2, 3)):
                state.polls += 1
                return self.reply(503 if a.status == "down" else 500, '{"error":"mock failure"}')
            if a.status == "garbage":
                return self.reply(200, "<html>not json")
            return self.reply(200, json.dumps(state.status()))

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            if self.path.split("?", 1)[0] != "/v1/classify":
                return self.reply(404, '{"error":"not found"}')
            with state.lock:
                state.requests += 1
            return self.reply(200, '{"labels":["__label__tv"],"probs":[0.97]}')

    return H


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["serve"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="")
    p.add_argument("--ready-file", default="")
    p.add_argument("--data", default="")  # accepted like the real server's; unused
    p.add_argument("--page", default=os.path.join(HERE, "..", "..", "src", "server", "dashboard.html"))
    p.add_argument("--status", default="normal",
                   choices=["normal", "empty", "nomodels", "notemp", "down", "flaky", "garbage"])
    p.add_argument("--models", type=int, default=1)
    p.add_argument("--key", default="")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    srv = ThreadingHTTPServer((args.host, args.port), handler(State(args)))
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = "http://%s:%d" % (args.host, srv.server_address[1])
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.rename(tmp, args.ready_file)
    print("mock_status: serving " + url, file=sys.stderr)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
