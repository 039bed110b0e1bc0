#!/usr/bin/env python3
"""faults_test.py - the real server against a full disk, an unwritable data directory,
slow and abusive clients.

usage: faults_test.py EDGESERVE MODEL.esm TRAIN.txt

Each check starts the servers it needs (edgeserve serve --port 0 --ready-file),
talks to 127.0.0.1 only, with bounded timeouts, and stops them. Python's standard
library only. The checks that need to mount a small tmpfs (a real ENOSPC, a
read-only remount while the server runs) say "skip" where mounting is not
allowed (not root, no CAP_SYS_ADMIN). docs/server/soak.md lists the faults.
ONLY=name runs the checks whose function name contains name; SKIP=a,b leaves
those out. Exit status 0 when every check that ran passed.
"""
import http.client
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import esserver
from esserver import Server, Skip, check, expect

ES, MODEL, TRAIN = sys.argv[1], sys.argv[2], sys.argv[3]
WORK = esserver.setup(ES, "es-faults-")
MOUNTS = []  # tmpfs mounted by the checks, unmounted at the end whatever happens


def note(msg):
    """Details of what a check saw, with VERBOSE=1."""
    if os.environ.get("VERBOSE"):
        print("     " + msg, flush=True)


def repo(root, queue_limit=256):
    """A repository with model 'media' version 1 and its base data; returns root."""
    esserver.repo(root, MODEL, TRAIN, queue_limit=queue_limit)
    return root


def history_rows(data):
    """Rows in the history table, read through a separate read-only connection."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "edgeserve.db"), uri=True,
                          timeout=10)
    try:
        return con.execute("SELECT count(*) FROM history").fetchone()[0]
    finally:
        con.close()


def integrity(data):
    con = sqlite3.connect(os.path.join(data, "edgeserve.db"), timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def sizes(data):
    return {f: os.path.getsize(os.path.join(data, f)) for f in sorted(os.listdir(data))}


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` at path, or raises Skip when not allowed here."""
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, timeout=10)
    if p.returncode != 0:
        raise Skip("cannot mount a tmpfs here (%s)" % p.stderr.decode().strip())
    MOUNTS.append(path)


def remount(path, opts):
    p = subprocess.run(["mount", "-o", "remount," + opts, path], capture_output=True, timeout=10)
    expect(p.returncode == 0, "remount %s: %s" % (opts, p.stderr.decode()))


def unmount_all():
    while MOUNTS:
        path = MOUNTS.pop()
        if subprocess.run(["umount", path], capture_output=True, timeout=10).returncode:
            subprocess.run(["umount", "-l", path], capture_output=True, timeout=10)


def db_unhealthy(s, words=("edgeserve.db",)):
    """/health says degraded and why, /metrics says the database is unhealthy."""
    st, r = s.req("GET", "/health")
    expect(st == 200 and r["status"] == "degraded" and r["database"]["healthy"] is False,
           "/health while the database cannot be written: %s %s" % (st, r))
    for w in words:
        expect(w in r["database"].get("error", ""), "/health's database error lacks %r: %s" %
               (w, r["database"]))
    st, text = s.req("GET", "/metrics")
    expect("edgeserve_database_healthy 0" in text or "edgeserve_database_healthy" not in text,
           "edgeserve_database_healthy is not 0")


def classify_burst(s, n, tag, text_len=300):
    """n classify requests on one keep-alive connection, each with a distinct text of about
    text_len bytes (history rows that fill a disk fast). Returns the statuses."""
    c = s.conn()
    out = []
    try:
        for i in range(n):
            text = ("%s %d " % (tag, i)) + "Breaking.Bad.S01E02.720p " * (text_len // 25)
            st, _ = s.req("POST", "/v1/classify", {"text": text}, conn=c)
            out.append(st)
    except (OSError, http.client.HTTPException) as e:
        time.sleep(0.2)
        rc = s.p.poll()
        if rc is not None:
            raise AssertionError("the server died: %s" % (
                "killed by %s" % signal.Signals(-rc).name if rc < 0 else "exit status %d" % rc))
        raise AssertionError("classify failed: %r" % e)
    finally:
        c.close()
    return out


def storage_fault_cycle(s, data, fill, restore, what):
    """The common part of the disk-full checks: fill the history until feedback fails with a
    503 naming the database, check serving goes on and the log says why, then restore() and
    check that feedback and history come back."""
    # 1. history rows until the database cannot grow: feedback then fails
    fb, deadline, sent = None, time.monotonic() + 60, 0
    while time.monotonic() < deadline:
        codes = classify_burst(s, 100, "fill%d" % sent)
        sent += 100
        expect(codes == [200] * 100, "classify while %s: %s" % (what, sorted(set(codes))))
        fb = s.req("POST", "/v1/models/media/feedback", {"text": "probe %d" % sent,
                                                         "label": "dark"})
        if fb[0] != 201:
            break
        fill()
    expect(fb and fb[0] == 503, "feedback never failed while %s after %d rows: %s (files %s)" %
           (what, sent, fb, sizes(data)))
    note("feedback failed after %d history rows, files %s: %s" % (sent, sizes(data), fb[1]))
    msg = fb[1].get("error", "") if isinstance(fb[1], dict) else str(fb[1])
    expect("edgeserve.db" in msg and ("disk" in msg or "full" in msg or "I/O" in msg),
           "the 503 does not say the database or disk: %r" % msg)
    # 2. serving goes on while the disk stays full (history rows are dropped)
    codes = classify_burst(s, 200, "full")
    expect(codes == [200] * 200, "classify on a full disk: %s" % sorted(set(codes)))
    for path in ("/health", "/metrics", "/v1/status"):
        st, r = s.req("GET", path)
        expect(st == 200, "GET %s on a full disk: %s %s" % (path, st, str(r)[:200]))
    db_unhealthy(s)
    time.sleep(1.5)  # the log is flushed every second
    log = s.logtext(100000)
    later = []  # failures that do not stop the rest of the check
    if not any(("level=error" in l or "level=warn" in l) and
               ("edgeserve.db" in l or "history" in l or "store" in l or "disk" in l)
               for l in log.splitlines()):
        later.append("nothing in the server log says that the database cannot be written "
                     "(feedback answered %r)" % msg)
    # 3. space returns: feedback at once, history within a few retries
    restore()
    deadline = time.monotonic() + 10
    while True:
        fb = s.req("POST", "/v1/models/media/feedback", {"text": "after", "label": "dark"})
        if fb[0] == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(fb[0] == 201, "feedback after space returned: %s" % (fb,))
    n0 = history_rows(data)
    expect(classify_burst(s, 200, "resumed") == [200] * 200, "classify after recovery")
    deadline = time.monotonic() + 10
    n1 = n0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        n1 = history_rows(data)
        if n1 - n0 >= 150:
            break
    expect(n1 - n0 >= 150, "history did not resume: %d rows before, %d after 200 requests" %
           (n0, n1))
    st, r = s.req("GET", "/health")
    expect(st == 200 and r["status"] == "ok" and r["database"]["healthy"] is True,
           "/health after recovery: %s" % r)
    expect(s.stop() == 0, "exit status after SIGTERM")
    expect(integrity(data) == "ok", "integrity_check after the fault")
    expect(not later, "; ".join(later))
    return sent


# ---------------------------------------------------------------------------------------------

FSIZE = 256 * 1024  # bytes a file of the server may reach in check 1


@check("disk full (RLIMIT_FSIZE): serving goes on, feedback 503, history resumes")
def t_disk_full_fsize():
    root = repo(os.path.join(WORK, "repo-fsize"))
    s = Server("--models", root, "--set", "cache.entries=0", fsize=FSIZE)
    expect(s.p.poll() is None, "server down after start")

    def restore():
        resource.prlimit(s.p.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    storage_fault_cycle(s, s.data, lambda: None, restore, "files are limited to %d bytes" % FSIZE)
    # the cycle saw the fault (feedback 503 naming the database); the files' sizes after the
    # stop say nothing (the last checkpoint folds the WAL back, to any size below the limit)
    expect(s.p.returncode == 0, "killed by a signal (SIGXFSZ not ignored?): %s" % s.p.returncode)


@check("disk full (a 512 KiB tmpfs, ENOSPC): same, then the file system grows")
def t_disk_full_tmpfs():
    mnt = os.path.join(WORK, "mnt-full")
    mount_tmpfs(mnt, "512k")
    data = os.path.join(mnt, "data")
    root = repo(os.path.join(WORK, "repo-tmpfs"))
    s = Server("--models", root, "--set", "cache.entries=0", data=data)
    storage_fault_cycle(s, data, lambda: None, lambda: remount(mnt, "size=64m"),
                        "the file system is full")


def mount_ext4(img, path, size_mb):
    """Makes an ext4 image and mounts it at path with errors=remount-ro (what a Raspberry
    Pi's SD card root uses), or raises Skip. Returns the loop device's name (loopN)."""
    os.makedirs(path, exist_ok=True)
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    for cmd in (["mkfs.ext4", "-q", "-F", img],
                ["mount", "-o", "loop,errors=remount-ro", img, path]):
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=30)
        except OSError as e:
            raise Skip("%s: %s" % (cmd[0], e))
        if p.returncode:
            raise Skip("%s: %s" % (" ".join(cmd[:2]), p.stderr.decode().strip()))
    MOUNTS.append(path)
    dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", path], capture_output=True,
                         timeout=10).stdout.decode().strip()
    return os.path.basename(dev)


@check("file system goes read-only under the server (ext4 error): serving goes on, clean stop")
def t_readonly_while_serving():
    # A file system cannot be remounted read-only while the server has the database open
    # for writing (EBUSY), but ext4 does it on its own after an I/O error when mounted
    # errors=remount-ro (an SD card failing): /sys/fs/ext4/DEV/trigger_fs_error does the same.
    mnt = os.path.join(WORK, "mnt-ro")
    img = os.path.join(WORK, "ro.img")
    dev = mount_ext4(img, mnt, 32)
    trigger = "/sys/fs/ext4/%s/trigger_fs_error" % dev
    if not os.path.exists(trigger):
        raise Skip("no %s" % trigger)
    data = os.path.join(mnt, "data")
    root = repo(os.path.join(WORK, "repo-ro"))
    s = Server("--models", root, "--set", "cache.entries=0", data=data)
    expect(classify_burst(s, 50, "before") == [200] * 50, "classify before")
    st, r = s.req("POST", "/v1/models/media/feedback", {"text": "before", "label": "dark"})
    expect(st == 201, "feedback before: %s %s" % (st, r))
    # synchronous=NORMAL: a commit survives the process, not the machine (store.h); the
    # error below drops what the kernel has not written back yet, like a power cut, so
    # write it back first
    os.sync()
    with open(trigger, "w") as f:
        f.write("1\n")
    opts = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", mnt], capture_output=True,
                          timeout=10).stdout.decode()
    expect("ro" in opts.split(",") or "emergency_ro" in opts, "not read-only: %s" % opts)
    expect(classify_burst(s, 300, "ro") == [200] * 300, "classify on a read-only disk")
    st, r = s.req("POST", "/v1/models/media/feedback", {"text": "ro", "label": "dark"})
    msg = r.get("error", "") if isinstance(r, dict) else str(r)
    expect(st == 503 and "edgeserve.db" in msg, "feedback on a read-only disk: %s %r" % (st, msg))
    for path in ("/health", "/metrics", "/v1/status"):
        expect(s.req("GET", path)[0] == 200, "GET %s on a read-only disk" % path)
    db_unhealthy(s)
    time.sleep(1.5)
    log = s.logtext(100000)
    logged = any(("level=error" in l or "level=warn" in l) and
                 ("edgeserve.db" in l or "history" in l or "store" in l) for l in log.splitlines())
    expect(s.stop() == 0, "exit status after SIGTERM on a read-only disk")
    # the administrator's part: unmount, fsck, mount: the database is intact
    unmount_all()
    subprocess.run(["e2fsck", "-fy", img], capture_output=True, timeout=60)
    p = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, timeout=30)
    expect(p.returncode == 0, "mount after fsck: %s" % p.stderr.decode())
    MOUNTS.append(mnt)
    expect(integrity(data) == "ok", "integrity_check")
    con = sqlite3.connect(os.path.join(data, "edgeserve.db"))
    texts = [t for (t,) in con.execute("SELECT text FROM feedback")]
    con.close()
    expect(texts == ["before"], "feedback rows after the failure: %s" % texts)
    s2 = Server("--models", root, data=data)
    st, r = s2.req("POST", "/v1/models/media/feedback", {"text": "after", "label": "dark"})
    expect(st == 201 and r["feedback_total"] == 2, "feedback after the restart: %s %s" % (st, r))
    expect(s2.stop() == 0, "exit status")
    expect(logged, "nothing in the server log says that the database cannot be written "
           "(feedback answered %r)" % msg)


def without_database(root, data, words):
    """A server whose database cannot be opened serves on without one (history and feedback
    off): the log says why with the path, /health says degraded with the same reason,
    classify answers, feedback answers 503 naming the path. When the data directory cannot
    even be created the server refuses to start instead (exit status 1, the path on
    stderr); returns which of the two happened."""
    p = subprocess.run([ES, "serve", "--port", "0", "--models", root, "--data", data,
                        "--ready-file", "/dev/null/x"], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)  # an unwritable ready file: exits after start
    err = p.stderr.decode("utf-8", "replace")
    if "cannot create the data directory" in err:
        expect(p.returncode == 1 and data in err, "refused: status %s, %s" % (p.returncode, err))
        return "refused"
    s = Server("--models", root, data=data)
    log = s.logtext(100000)
    expect(any("level=error" in l and all(w in l for w in words) for l in log.splitlines()),
           "no error line naming %s in the log: %s" % (words, log[-1000:]))
    st, r = s.req("GET", "/health")
    expect(st == 200 and r["status"] == "degraded" and r["database"]["healthy"] is False and
           all(w in r["database"].get("error", "") for w in words), "/health: %s" % r)
    st, r = s.req("POST", "/v1/classify", {"text": "dark s01e01"})
    expect(st == 200 and r["label"] == "dark", "classify without a database: %s %s" % (st, r))
    st, r = s.req("POST", "/v1/models/media/feedback", {"text": "x", "label": "dark"})
    expect(st == 503 and all(w in r.get("error", "") for w in words),
           "feedback without a database: %s %s" % (st, r))
    expect(s.stop() == 0, "exit status")
    return "served"


@check("unusable data directory at start: served without a database, the path said")
def t_data_unusable():
    root = repo(os.path.join(WORK, "repo-bad-data"))
    # server.data is a regular file
    f = os.path.join(WORK, "data-is-a-file")
    open(f, "w").write("not a directory\n")
    expect(without_database(root, f, [f]) == "served", "data is a file")
    # the database path is a directory
    d = os.path.join(WORK, "db-is-a-dir")
    os.makedirs(os.path.join(d, "edgeserve.db"))
    expect(without_database(root, d, [os.path.join(d, "edgeserve.db")]) == "served", "db is a dir")
    # the database is another program's file
    d = os.path.join(WORK, "db-is-garbage")
    os.makedirs(d)
    open(os.path.join(d, "edgeserve.db"), "wb").write(b"garbage " * 1000)
    expect(without_database(root, d, [os.path.join(d, "edgeserve.db"), "not a SQLite"]) ==
           "served", "garbage db")
    # the parent of the data directory does not exist
    d = os.path.join(WORK, "no", "such", "dir")
    how = without_database(root, d, [d])
    print("     (a data directory that cannot be created: %s)" % how)


@check("data directory on a read-only file system at start: served without a database")
def t_data_readonly_at_start():
    mnt = os.path.join(WORK, "mnt-ro-start")
    mount_tmpfs(mnt, "1m")
    os.makedirs(os.path.join(mnt, "data"))
    remount(mnt, "ro")
    root = repo(os.path.join(WORK, "repo-ro-start"))
    d = os.path.join(mnt, "data")
    expect(without_database(root, d, [d]) == "served", "read-only data directory")


def trickle_body(s, first_wait=0.0):
    """Sends headers announcing 20 bytes, then the body one byte per second. Returns
    (seconds until the server closed or answered, bytes sent, what it answered)."""
    body = b'{"text": "dark s0x"}'
    assert len(body) == 20
    sk = s.sock()
    t0 = time.monotonic()
    sk.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 20\r\n\r\n")
    sent, got = 0, b""
    try:
        for i in range(20):
            sk.settimeout(1.0)
            try:
                got = sk.recv(4096)
                break  # an answer, or b"" (closed)
            except socket.timeout:
                pass
            if time.monotonic() - t0 > 12:
                break
            sk.sendall(body[i:i + 1])
            sent += 1
    except OSError as e:  # reset by the server
        got = repr(e).encode()
    finally:
        sk.close()
    return time.monotonic() - t0, sent, got


@check("a body sent one byte per second is cut after request_timeout; others served")
def t_body_trickle():
    s = Server("--model", MODEL, "--set", "server.request_timeout=2s",
               "--set", "server.keep_alive=3s")
    stop = threading.Event()
    slow = []

    def others():  # a normal client meanwhile: every answer fast
        while not stop.is_set():
            t = time.monotonic()
            st, _ = s.req("POST", "/v1/classify", {"text": "ozark s01e01"}, timeout=5)
            slow.append((st, time.monotonic() - t))
            time.sleep(0.05)
    th = threading.Thread(target=others)
    th.start()
    try:
        took, sent, got = trickle_body(s)
    finally:
        stop.set()
        th.join(10)
    note("trickled body: cut after %.2f s and %d bytes, answer %r; others: %d requests, "
         "worst %.3f s" % (took, sent, got[:60], len(slow), max(t for _, t in slow)))
    expect(took < 4.5 and sent < 20, "trickled body cut after %.1f s, %d bytes (want < 4.5 s); "
           "got %r" % (took, sent, got[:200]))
    expect(not got.startswith(b"HTTP/1.1 200"), "the trickled request was served: %r" % got[:200])
    expect(slow and all(st == 200 and t < 1.0 for st, t in slow),
           "other clients meanwhile: %s" % [x for x in slow if x[0] != 200 or x[1] >= 1][:5])
    # a body that stops halfway is cut too (by the idle timeout, keep_alive)
    sk = s.sock()
    t0 = time.monotonic()
    sk.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"text\"")
    sk.settimeout(10)
    try:
        r = sk.recv(4096)
    except OSError:
        r = b""
    took = time.monotonic() - t0
    sk.close()
    note("stalled body: closed after %.2f s, answer %r" % (took, r[:60]))
    expect(took < 5, "a stalled body held the connection for %.1f s (keep_alive 3s)" % took)
    expect(s.req("GET", "/health")[0] == 200, "health after")


@check("50 clients trickling bodies at once do not stall the others")
def t_many_tricklers():
    s = Server("--model", MODEL, "--set", "server.request_timeout=2s",
               "--set", "server.keep_alive=3s", "--set", "server.io_threads=2")
    results = []
    ths = [threading.Thread(target=lambda: results.append(trickle_body(s))) for _ in range(50)]
    for t in ths:
        t.start()
    time.sleep(0.5)
    lat = []
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        t = time.monotonic()
        st, _ = s.req("POST", "/v1/classify", {"text": "dark s02e03"}, timeout=5)
        lat.append((st, time.monotonic() - t))
    for t in ths:
        t.join(20)
    note("50 tricklers cut after %.2f..%.2f s; others: %d requests, worst %.3f s" %
         (min(r[0] for r in results), max(r[0] for r in results), len(lat),
          max(t for _, t in lat)))
    expect(len(results) == 50, "%d trickling clients finished" % len(results))
    expect(all(r[0] < 5.5 for r in results), "slowest trickler cut after %.1f s" %
           max(r[0] for r in results))
    expect(all(st == 200 for st, _ in lat) and max(t for _, t in lat) < 1.0,
           "others meanwhile: %d requests, worst %.3f s, statuses %s" %
           (len(lat), max(t for _, t in lat), sorted({st for st, _ in lat})))


def flood(nofile):
    """1,200 idle connections against a server whose connection limit is 1,000 and whose
    file-descriptor limit is `nofile` (1024 is the usual default: accept() then fails with
    EMFILE before MHD's own limit is reached)."""
    s = Server("--model", MODEL, "--set", "server.keep_alive=3s",
               "--set", "server.request_timeout=3s", nofile=nofile)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want + 100:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 200), hard))
        except (ValueError, OSError):
            raise Skip("cannot open %d sockets (RLIMIT_NOFILE %d)" % (want, soft))
    socks = []
    try:
        for _ in range(want):  # idle connections
            try:
                socks.append(socket.create_connection((s.host, s.port), timeout=5))
            except OSError:
                break
        expect(len(socks) >= 1000, "only %d connections opened" % len(socks))
        time.sleep(0.5)
        cpu0, t0 = s.cpu_s(), time.monotonic()
        # a new client now: answered, or refused at once; never a hang
        try:
            st, _ = s.req("GET", "/health", timeout=6)
            outcome = st
        except (OSError, http.client.HTTPException) as e:
            outcome = type(e).__name__
        took = time.monotonic() - t0
        note("nofile %s: %d connections held; a new client: %s after %.2f s" %
             (nofile, len(socks), outcome, took))
        time.sleep(max(0, 2 - took))
        cpu = (s.cpu_s() - cpu0) / (time.monotonic() - t0)
        note("server CPU while they are held: %.0f%%" % (cpu * 100))
        expect(s.p.poll() is None, "the server died")
        expect(cpu < 0.5, "the server spins at %.0f%% CPU with %d idle connections" %
               (cpu * 100, len(socks)))
        expect(took < 6.5, "a client beyond the limit waited %.1f s (%s)" % (took, outcome))
    finally:
        for k in socks:
            k.close()
    # the idle ones are gone: served again
    deadline = time.monotonic() + 10
    st = None
    while time.monotonic() < deadline:
        try:
            st, _ = s.req("GET", "/health", timeout=2)
            if st == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    expect(st == 200, "not served again after the flood: %s" % st)
    expect(s.stop() == 0, "exit status")


@check("more connections than the limit: refused or queued, never a crash or a spin")
def t_connection_flood():
    flood(None)


@check("more connections than file descriptors (RLIMIT_NOFILE 1024): no spin, recovers")
def t_connection_flood_nofile():
    flood(1024)


def raw(s, data, timeout=5):
    """Sends raw bytes, returns what came back until the server closed or went quiet."""
    sk = s.sock(timeout)
    out = b""
    try:
        sk.sendall(data)
        sk.settimeout(timeout)
        while True:
            b = sk.recv(65536)
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except OSError as e:  # reset: a refusal without an answer
        out = out or ("<%s>" % type(e).__name__).encode()
    finally:
        sk.close()
    return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.") else None
    except (IndexError, ValueError):
        return None


@check("abusive requests: 10k headers, 64 KB URL, bad lengths, chunked over max_body")
def t_abuse():
    s = Server("--model", MODEL, "--set", "server.max_body=16K")
    cases = []
    # 10,000 headers (~150 KB of header): refused (431/413/400) or closed, never served
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
    cases.append(("10k headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n",
                  {None, 400, 413, 414, 431}))
    cases.append(("64 KB URL", b"GET /v2/models/" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                  {None, 400, 404, 413, 414, 431}))
    cases.append(("64 KB header value", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                  b"v" * 65536 + b"\r\n\r\n", {None, 400, 413, 431}))
    cases.append(("Content-Length not a number", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: abc\r\n\r\n{}", {None, 400, 413}))
    cases.append(("Content-Length 2^64", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 18446744073709551617\r\n\r\n{}", {None, 400, 413}))
    cases.append(("Content-Length -1", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: -1\r\n\r\n{}", {None, 400, 413}))
    chunk = b"a" * 8000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    cases.append(("chunked body over max_body", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" +
                  chunked, {413}))
    cases.append(("bad chunk size", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", {None, 400}))
    for depth, allowed in ((7000, {400}), (900, {200, 400})):  # cJSON stops at 1000 levels
        body = b'{"texts": ' + b"[" * depth + b'"dark"' + b"]" * depth + b"}"
        cases.append(("texts nested %d deep" % depth, b"POST /v1/classify HTTP/1.1\r\nHost: x"
                      b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), allowed))
    cases.append(("Expect: 100-continue over max_body", b"POST /v1/classify HTTP/1.1\r\n"
                  b"Host: x\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n", {413}))
    cases.append(("HTTP/0.9 request", b"GET /health\r\n\r\n", {None, 400, 505}))
    cases.append(("NUL in the request line", b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n",
                  {None, 400, 404}))
    bad = []
    for name, data, allowed in cases:
        t0 = time.monotonic()
        resp = raw(s, data)
        st = status_of(resp)
        note("%-36s -> %s in %.2f s %r" % (name, st, time.monotonic() - t0,
                                           resp.split(b"\r\n\r\n")[-1][:80]))
        if st not in allowed:
            bad.append("%s: %s %r" % (name, st, resp[:120]))
        if s.p.poll() is not None:
            bad.append("%s: the server died (%s)" % (name, s.p.returncode))
            break
        if s.req("GET", "/health")[0] != 200:
            bad.append("%s: not serving after it" % name)
    expect(not bad, "; ".join(bad))
    # pipelined requests on one connection, some suspended for inference: every answer in
    # order
    reqs = b""
    for i in range(20):
        body = json.dumps({"text": "dark s01e%02d" % i} if i % 2 else {"texs": 1}).encode()
        reqs += (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    sk = s.sock()
    sk.sendall(reqs)
    f = sk.makefile("rb")
    got = []
    try:
        for i in range(20):
            line = f.readline()
            st = status_of(line)
            n = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    n = int(h.split(b":")[1])
            f.read(n)
            got.append(st)
    except OSError as e:
        got.append(repr(e))
    sk.close()
    want = [200 if i % 2 else 400 for i in range(20)]
    expect(got == want, "pipelined answers %s, want %s" % (got, want))
    expect(s.stop() == 0, "exit status")


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unmount on the way out
sys.exit(esserver.run(cleanup=unmount_all))
