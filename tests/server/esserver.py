"""esserver.py - what the server's test scripts (api_test.py, faults_test.py) share: the real
`edgeserve serve` in the background on an ephemeral loopback port, and a small check runner.

    import esserver
    from esserver import Server, check, expect, Skip
    esserver.setup(sys.argv[1], "es-api-")     # the binary, the scratch folder's prefix

    @check("what the check proves")
    def t_something():
        s = Server("--model", MODEL)           # --port 0 --ready-file --data <scratch>
        st, r = s.req("POST", "/v1/classify", {"text": "dark"})
        expect(st == 200, r)

    sys.exit(esserver.run())                   # ONLY=name / SKIP=a,b pick the checks

Python's standard library only. Servers talk to 127.0.0.1 only, with bounded timeouts; the
servers a check started are killed after it, and their logs printed when it failed.
"""
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ES = None     # the edgeserve binary (setup)
WORK = None   # scratch folder, removed by run()
CHECKS = []
STARTED = []  # the servers of the running check
RESULT = {"passed": 0, "failed": [], "skipped": []}


def setup(es, prefix):
    global ES, WORK
    ES = es
    WORK = tempfile.mkdtemp(prefix=prefix)
    return WORK


class Skip(Exception):
    """Raised by a check that cannot run here (says why)."""


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Server:
    """edgeserve serve in the background; stopped by stop() or kill().

    data: True (default) a data folder of its own, False no --data flag, or a path.
    fsize / nofile: soft RLIMIT_FSIZE / RLIMIT_NOFILE for the server. Its output is
    collected through a pipe (a log file would be subject to the file-size limit)."""

    def __init__(self, *args, data=True, fsize=None, nofile=None, env=None):
        self.dir = tempfile.mkdtemp(dir=WORK)
        ready = os.path.join(self.dir, "url")
        cmd = [ES, "serve", "--port", "0", "--ready-file", ready]
        self.data = os.path.join(self.dir, "data") if data in (True, None) else data
        if data is not False:
            cmd += ["--data", self.data]
        cmd += list(args)
        self.lines = []
        STARTED.append(self)

        def limit():  # in the child, before exec: soft limits only, so they can be raised
            for res, val in ((resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NOFILE, nofile)):
                if val:
                    resource.setrlimit(res, (val, resource.getrlimit(res)[1]))
        t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=limit,
                                  env=dict(os.environ, **(env or {})))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = t0 + 15
        while not os.path.exists(ready):
            if self.p.poll() is not None:
                self.reader.join(2)
                raise RuntimeError("server exited (%s): %s" % (self.p.returncode, self.logtext()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server not ready in 15 s: " + self.logtext())
            time.sleep(0.01)
        self.ready_s = time.monotonic() - t0
        url = open(ready).read().strip()
        self.host, self.port = url[len("http://"):].rsplit(":", 1)
        self.port = int(self.port)
        expect(self.host == "127.0.0.1", url)

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    def logtext(self, n=3000):
        """The last n characters of its output (all of it with n=None)."""
        text = "".join(self.lines)
        return text if n is None else text[-n:]

    def conn(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def req(self, method, path, body=None, headers=None, raw=False, timeout=10, conn=None):
        """One request: (status, parsed JSON or text), or (status, headers, bytes) with raw.
        On `conn` when given (kept open), else on a new connection."""
        c = conn or self.conn(timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if not conn:
            c.close()
        if raw:
            return r.status, dict(r.getheaders()), data
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode("utf-8", "replace")

    def sock(self, timeout=10):
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def cpu_s(self):
        """CPU time (user + system) the server has used so far."""
        f = open("/proc/%d/stat" % self.p.pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, wait=15):
        """SIGTERM, then its exit status; kills it and raises after `wait` seconds."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(wait)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise RuntimeError("server ignored SIGTERM for %d s" % wait)
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def check(name):
    """Registers a check: a failure (any exception) reports and the others go on."""
    def wrap(fn):
        def run():
            t0 = time.monotonic()
            del STARTED[:]
            try:
                fn()
                RESULT["passed"] += 1
                print("ok   %-62s %6.2fs" % (name, time.monotonic() - t0), flush=True)
            except Skip as e:
                RESULT["skipped"].append(name)
                print("skip %s: %s" % (name, e), flush=True)
            except Exception as e:
                RESULT["failed"].append(name)
                print("FAIL %s: %s" % (name, e), flush=True)
                for srv in STARTED:
                    print("---- server log (%s):\n%s" % (srv.dir, srv.logtext()), flush=True)
            finally:
                for srv in STARTED:
                    srv.kill()
        run.__name__ = fn.__name__
        CHECKS.append(run)
        return run
    return wrap


def run(cleanup=None):
    """Runs the checks ONLY (a substring of their function names) and SKIP (comma-separated
    names) select, then cleanup(), removes the scratch folder and prints the summary.
    Returns the exit status: 1 when a check failed."""
    only = os.environ.get("ONLY")
    skip = os.environ.get("SKIP", "").split(",")
    try:
        for c in CHECKS:
            if (not only or only in c.__name__) and c.__name__ not in skip:
                c()
    finally:
        if cleanup:
            cleanup()
        shutil.rmtree(WORK, ignore_errors=True)
    print("%d passed, %d failed, %d skipped"
          % (RESULT["passed"], len(RESULT["failed"]), len(RESULT["skipped"])))
    return 1 if RESULT["failed"] else 0


def repo(root, model, train, queue_limit=256, delay="0us", max_batch=32, extra=""):
    """A repository at root with model 'media' version 1 (the file `model`) and its base
    data (`train`); returns the model's folder."""
    d = os.path.join(root, "media")
    os.makedirs(os.path.join(d, "1"), exist_ok=True)
    shutil.copy(model, os.path.join(d, "1", "media.esm"))
    shutil.copy(train, os.path.join(d, "train.txt"))
    with open(os.path.join(d, "config.ini"), "w") as f:
        f.write("[batching]\nmax_batch = %d\nmax_queue_delay = %s\nqueue_limit = %d\n"
                "[training]\ndata = train.txt\n%s" % (max_batch, delay, queue_limit, extra))
    return d
