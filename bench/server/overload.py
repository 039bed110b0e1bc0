#!/usr/bin/env python3
"""overload.py - does edgeserve keep its promise under overload: the requests it admits meet
their latency target, the rest are refused at once (503 + Retry-After)?

usage: overload.py EDGESERVE MODEL.esm [SECONDS=10] [CLIENTS=16]

One model, one inference thread, a queue of 4 requests, requests of 256 texts each (a few ms of
work), so that a handful of Python clients offer several times what the server can compute.
First one client alone measures the service time S; then CLIENTS clients send back to back for
SECONDS (a client that gets 503 waits 20 ms, as a client honouring Retry-After would at least
pause). Prints a markdown table: the rates, and the latency of the admitted and of the refused
requests. With a queue of 4 and one thread, an admitted request waits for at most 4 others, so
its latency should stay near 5 x S whatever the load; a refusal should take about one round trip.
Everything runs on 127.0.0.1 and stops by itself.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ES, MODEL = sys.argv[1], sys.argv[2]
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
CLIENTS = int(sys.argv[4]) if len(sys.argv) > 4 else 16
QUEUE = 4
TEXTS = 256

work = tempfile.mkdtemp(prefix="es-overload-")
d = os.path.join(work, "repo", "media")
os.makedirs(os.path.join(d, "1"))
shutil.copy(MODEL, os.path.join(d, "1", "media.esm"))
with open(os.path.join(d, "config.ini"), "w") as f:
    f.write("[batching]\nmax_batch = 1\nqueue_limit = %d\ntimeout = 10s\n[sla]\np99 = 100ms\n"
            % QUEUE)
ready = os.path.join(work, "url")
log = open(os.path.join(work, "log"), "w")
srv = subprocess.Popen([ES, "serve", "--port", "0", "--ready-file", ready, "--models",
                        os.path.join(work, "repo"), "--data", os.path.join(work, "data"),
                        "--set", "cache.entries=0", "--set", "runtime.inference_threads=1"],
                       stdout=log, stderr=log)
try:
    deadline = time.monotonic() + 15
    while not os.path.exists(ready):
        if srv.poll() is not None or time.monotonic() > deadline:
            sys.exit("overload.py: the server did not start: " + open(log.name).read()[-2000:])
        time.sleep(0.01)
    host, port = open(ready).read().strip()[len("http://"):].rsplit(":", 1)
    body = json.dumps({"texts": ["breaking bad s01e%02d 720p web x264 %d" % (i % 20 + 1, i)
                                 for i in range(TEXTS)]}).encode()
    hdrs = {"Content-Type": "application/json"}

    def one(c):
        t0 = time.monotonic()
        c.request("POST", "/v1/classify", body=body, headers=hdrs)
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t0

    # 1. the service time, one client alone
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    for _ in range(5):
        one(c)
    alone = sorted(one(c)[1] for _ in range(40))
    service = alone[len(alone) // 2]
    c.close()

    # 2. overload
    results, lock = [], threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client():
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            st, dt = one(c)
            mine.append((st, dt))
            if st == 503:
                time.sleep(0.02)
        c.close()
        with lock:
            results.extend(mine)
    ts = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(SECONDS + 60)
    wall = time.monotonic() - t0
finally:
    srv.terminate()
    try:
        srv.wait(15)
    except subprocess.TimeoutExpired:
        srv.kill()
    shutil.rmtree(work, ignore_errors=True)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3 if xs else float("nan")


ok = [dt for st, dt in results if st == 200]
busy = [dt for st, dt in results if st == 503]
other = [st for st, dt in results if st not in (200, 503)]
print("| figure | value |")
print("|---|--:|")
print("| service time of one request alone (median of 40), ms | %.2f |" % (service * 1e3))
print("| clients, seconds | %d, %.1f |" % (CLIENTS, wall))
print("| offered requests/s | %.0f |" % (len(results) / wall))
print("| admitted (200) requests/s | %.0f |" % (len(ok) / wall))
print("| refused (503) requests/s | %.0f |" % (len(busy) / wall))
print("| other statuses | %d |" % len(other))
print("| admitted p50 / p99 / max, ms | %.1f / %.1f / %.1f |"
      % (pct(ok, 0.5), pct(ok, 0.99), max(ok) * 1e3 if ok else float("nan")))
print("| admitted p99 / service time | %.1fx (queue %d: at most %d ahead) |"
      % (pct(ok, 0.99) / 1e3 / service, QUEUE, QUEUE))
print("| refused p50 / p99, ms | %.2f / %.2f |" % (pct(busy, 0.5), pct(busy, 0.99)))
sys.exit(1 if other or not ok or not busy else 0)
