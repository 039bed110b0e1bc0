#!/usr/bin/env python3
"""pngcheck.py - the checks of tests/server/dashboard.sh that need parsing.

  pngcheck.py charts PNG DOM [--css-width W] [--min N] [--min-pixels P]
      The dashboard's DOM (chromium --dump-dom) says, per <canvas>, whether it
      drew a line (data-drawn), where it is (data-rect, CSS px) and in which
      colours (data-colors). Decodes the screenshot and, in each such canvas
      region that lies inside the screenshot, counts the pixels of those
      colours. Fails when the DOM reports fewer than N charts, when a chart
      that says it drew has fewer than P such pixels (a blank canvas), or when
      fewer than N visible charts pass.
  pngcheck.py netlog NETLOG ORIGIN
      Reads a chromium --log-net-log file: every request made for the page
      (its network isolation key is ORIGIN's site) must go to ORIGIN's host,
      and the page and /v1/status must be among them.
  pngcheck.py selftest
      Encodes RGB and RGBA images with each PNG filter type (0-4) and checks
      that the decoder gives the pixels back.

A PNG decoder in the standard library only (zlib + struct): 8-bit RGB or RGBA,
non-interlaced, filter types 0-4. Exit status 0 when the check passed, 1 when
it failed (with the reason on stdout), 2 on bad usage or unreadable input.
"""
import argparse
import json
import random
import re
import struct
import sys
import zlib
from html.parser import HTMLParser

PNG_SIG = b"\x89PNG\r\n\x1a\n"


class PngError(Exception):
    pass


def png_decode(data):
    """Returns (width, height, channels, rows, filters): rows is a list of
    bytearrays of width*channels bytes, filters a count per filter type."""
    if data[:8] != PNG_SIG:
        raise PngError("not a PNG file (bad signature)")
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise PngError("truncated %s chunk" % ctype.decode("latin-1"))
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if ihdr is None or not idat:
        raise PngError("no IHDR or no IDAT chunk")
    w, h, depth, color, _comp, _filt, interlace = ihdr
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise PngError("unsupported PNG: bit depth %d, colour type %d, interlace %d (want 8-bit "
                       "RGB or RGBA, not interlaced)" % (depth, color, interlace))
    raw = zlib.decompress(b"".join(idat))
    stride = w * channels
    if len(raw) < h * (stride + 1):
        raise PngError("image data too short: %d bytes for %dx%d" % (len(raw), w, h))
    bpp, rows, filters = channels, [], [0] * 5
    prior = bytearray(stride)
    for y in range(h):
        off = y * (stride + 1)
        ft = raw[off]
        row = bytearray(raw[off + 1:off + 1 + stride])
        if ft > 4:
            raise PngError("row %d: bad filter type %d" % (y, ft))
        filters[ft] += 1
        if ft == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif ft == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prior))
        elif ft == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prior[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                if i >= bpp:
                    a, c = row[i - bpp], prior[i - bpp]
                else:
                    a = c = 0
                b = prior[i]
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[i] = (row[i] + pred) & 255
        rows.append(row)
        prior = row
    return w, h, channels, rows, filters


def png_encode(w, h, channels, rows, filter_of_row):
    """A PNG of the given rows, row y filtered with filter_of_row(y): for the self-test."""
    bpp, stride, out = channels, w * channels, bytearray()
    prior = bytearray(stride)
    for y, row in enumerate(rows):
        ft = filter_of_row(y)
        f = bytearray(stride)
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            f[i] = (row[i] - pred) & 255
        out.append(ft)
        out += f
        prior = row

    def chunk(t, body):
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if channels == 3 else 6, 0, 0, 0)
    return PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


class DomScan(HTMLParser):
    """Collects the title, body[data-charts] and the canvases' data attributes."""

    def __init__(self):
        super().__init__()
        self.title, self.in_title, self.body, self.canvases = "", False, {}, []
        self.banner, self.in_banner = "", False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "banner":
            self.in_banner = True
        if tag == "title":
            self.in_title = True
        elif tag == "body":
            self.body = a
        elif tag == "canvas":
            self.canvases.append(a)

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        self.in_banner = False

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.in_banner:
            self.banner += data


def hex_rgb(s):
    s = s.strip().lstrip("#")
    if not re.fullmatch(r"[0-9a-fA-F]{6}", s):
        return None
    return tuple(int(s[i:i + 2], 16) for i in (0, 2, 4))


def cmd_charts(argv):
    p = argparse.ArgumentParser(prog="pngcheck.py charts")
    p.add_argument("png")
    p.add_argument("dom")
    p.add_argument("--css-width", type=int, default=1280)
    p.add_argument("--min", type=int, default=4)
    p.add_argument("--min-pixels", type=int, default=150)
    p.add_argument("--tolerance", type=int, default=12)
    a = p.parse_args(argv)
    try:
        with open(a.png, "rb") as f:
            w, h, ch, rows, filters = png_decode(f.read())
        with open(a.dom, encoding="utf-8", errors="replace") as f:
            dom = DomScan()
            dom.feed(f.read())
    except (OSError, PngError, zlib.error) as e:
        print("cannot read the screenshot or the DOM: %s" % e)
        return 2
    print("screenshot %dx%d, %d channels, rows per filter type 0-4: %s" % (w, h, ch, filters))
    failures = []
    m = re.fullmatch(r"edgeserve - (\d+) charts", dom.title.strip())
    reported = int(m.group(1)) if m else -1
    body_n = dom.body.get("data-charts")
    print("DOM: title %r, body data-charts=%r, data-state=%r, %d canvases" %
          (dom.title.strip(), body_n, dom.body.get("data-state"), len(dom.canvases)))
    if dom.banner.strip():
        print("banner: " + dom.banner.strip())
    if reported < a.min:
        failures.append("the page reports %s charts drawn (title %r), want >= %d" %
                        (reported if reported >= 0 else "no", dom.title.strip(), a.min))
    if body_n is None or (reported >= 0 and body_n != str(reported)):
        failures.append("body data-charts=%r does not match the title %r" % (body_n, dom.title))
    scale = w / float(a.css_width)
    min_px = int(a.min_pixels * scale * scale)
    tol, passed = a.tolerance, 0
    for c in dom.canvases:
        name = c.get("data-chart", "?")
        try:
            x, y, cw, chh = [float(v) for v in c.get("data-rect", "").split(",")]
        except ValueError:
            print("  %-16s no data-rect: not checked" % name)
            continue
        cols = [hex_rgb(s) for s in c.get("data-colors", "").split(",") if s]
        cols = [v for v in cols if v]
        x0, y0 = int(round(x * scale)), int(round(y * scale))
        x1, y1 = min(w, int(round((x + cw) * scale))), min(h, int(round((y + chh) * scale)))
        if c.get("data-drawn") != "1":
            print("  %-16s drew no line" % name)
            continue
        if x0 < 0 or y0 < 0 or x1 - x0 < 10 or y1 - y0 < 10:
            print("  %-16s outside the screenshot: not checked" % name)
            continue
        if not cols:
            failures.append("chart %s says it drew but names no colours" % name)
            continue
        count = 0
        for yy in range(y0, y1):
            row = rows[yy]
            for xx in range(x0, x1):
                i = xx * ch
                r, g, b = row[i], row[i + 1], row[i + 2]
                for (cr, cg, cb) in cols:
                    if abs(r - cr) <= tol and abs(g - cg) <= tol and abs(b - cb) <= tol:
                        count += 1
                        break
        ok = count >= min_px
        passed += ok
        print("  %-16s region %d,%d %dx%d: %6d pixels of its %d series colours %s" %
              (name, x0, y0, x1 - x0, y1 - y0, count, len(cols), "ok" if ok else "BLANK"))
        if not ok:
            failures.append("chart %s says it drew a line but its region has %d pixels of its "
                            "series colours (want >= %d): the canvas is blank" % (name, count, min_px))
    if passed < a.min:
        failures.append("%d charts visibly drew a line in the screenshot, want >= %d" % (passed, a.min))
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


def cmd_netlog(argv):
    if len(argv) != 2:
        print("usage: pngcheck.py netlog NETLOG ORIGIN")
        return 2
    path, origin = argv
    m = re.match(r"(https?)://([^/:]+)(?::(\d+))?", origin)
    if not m:
        print("bad origin %r" % origin)
        return 2
    site, host = m.group(1) + "://" + m.group(2), m.group(2)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        print("cannot read the net log: %s" % e)
        return 2
    try:
        log = json.loads(text)
    except ValueError:
        # chromium leaves the log unterminated when it is killed: close it
        text = text.rstrip().rstrip(",")
        try:
            log = json.loads(text + "]}")
        except ValueError as e:
            print("the net log is not JSON: %s" % e)
            return 2
    types = log.get("constants", {}).get("logEventTypes", {})
    start = types.get("URL_REQUEST_START_JOB")
    page, outside = [], []
    for e in log.get("events", []):
        if e.get("type") != start:
            continue
        prm = e.get("params", {})
        url, nik = prm.get("url", ""), prm.get("network_isolation_key", "")
        mine = nik.split(" ")[0] == site or prm.get("initiator", "").startswith(site)
        if not mine:
            continue  # the browser's own traffic (update checks and such), not the page's
        page.append(url)
        um = re.match(r"[a-z]+://([^/:]+)", url)
        if not um or um.group(1) != host:
            outside.append(url)
    print("net log: %d requests for the page: %s" %
          (len(page), ", ".join(sorted(set(re.sub(r"^[a-z]+://[^/]+", "", u) for u in page)))))
    failures = ["the page requested %s (outside %s)" % (u, host) for u in sorted(set(outside))]
    if not any(re.match(re.escape(origin) + r"/(\?.*)?$", u) for u in page):
        failures.append("the net log has no request for the page itself: is it a real net log?")
    if not any(re.match(re.escape(origin) + r"/v1/status", u) for u in page):
        failures.append("the page never requested /v1/status")
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


def cmd_selftest(_argv):
    rng = random.Random(1)
    bad = 0
    for channels in (3, 4):
        w, h = 37, 25
        rows = []
        for y in range(h):
            # smooth ramps with noise, so every filter has real work to do
            rows.append(bytearray((x * 7 + y * 3 + k * 50 + rng.randint(0, 40)) & 255
                                  for x in range(w) for k in range(channels)))
        for ft in range(5):
            data = png_encode(w, h, channels, rows, lambda y, ft=ft: ft)
            dw, dh, dc, got, filters = png_decode(data)
            ok = (dw, dh, dc) == (w, h, channels) and got == rows and filters[ft] == h
            bad += not ok
            print("%s %s filter %d" % ("ok" if ok else "FAIL", "RGB" if channels == 3 else "RGBA", ft))
        data = png_encode(w, h, channels, rows, lambda y: y % 5)
        ok = png_decode(data)[3] == rows
        bad += not ok
        print("%s %s filters 0-4 mixed" % ("ok" if ok else "FAIL", "RGB" if channels == 3 else "RGBA"))
    try:
        png_decode(b"GIF89a")
        print("FAIL a non-PNG is refused")
        bad += 1
    except PngError:
        print("ok a non-PNG is refused")
    return 1 if bad else 0


def main():
    cmds = {"charts": cmd_charts, "netlog": cmd_netlog, "selftest": cmd_selftest}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
