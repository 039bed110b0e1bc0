#!/usr/bin/env bash
# dashboard.sh - loads the dashboard (GET /) of a running `edgeserve serve` in
# headless Chromium and checks that its charts drew: the page must report at
# least 4 charts with a line of 2+ points, and in the screenshot each chart that
# says it drew must hold pixels of its series colours (a blank canvas fails).
# Also checks that the page is self-contained (< 40 KB, no external reference,
# no request outside 127.0.0.1 in Chromium's net log) and that the server stops
# cleanly on SIGTERM.
#
# Usage:
#   tests/server/dashboard.sh EDGESERVE_BINARY MODEL_FILE
#   tests/server/dashboard.sh --mock [MOCK_OPTIONS...]
#       the same test against tests/server/mock_status.py (options: see there)
#   tests/server/dashboard.sh --selftest
#       runs --mock cases that must pass (normal, flaky status, API key) and
#       cases that must fail (blank page, empty status, a page that claims
#       charts it did not draw, an external resource, server down, no key)
# Environment: CHROMIUM (default chromium), DASHBOARD_KEY (sent as ?key=),
# KEEP=1 keeps the work folder (screenshot, DOM, logs) and prints its path.
# Needs chromium (Debian `chromium`), curl and python3. Takes < 60 s.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-chromium}
pngcheck=("python3" "$here/pngcheck.py")

if [ "${1:-}" = "--selftest" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  page=$here/../../src/server/dashboard.html
  printf '<!doctype html><title>blank</title><body></body>\n' > "$work/blank.html"
  # claims six drawn charts with rectangles and colours, draws nothing
  { printf '<!doctype html><title>x</title><body>'
    for i in 1 2 3 4 5 6; do printf '<canvas data-chart="c%s" style="width:380px;height:170px;display:inline-block"></canvas>' "$i"; done
    printf '<script>document.querySelectorAll("canvas").forEach(function(c){var r=c.getBoundingClientRect();'
    printf 'c.dataset.drawn="1";c.dataset.colors="#2563eb";c.dataset.rect=[r.left,r.top,r.width,r.height].map(Math.round).join(",");});'
    printf 'document.body.dataset.charts="6";document.title="edgeserve - 6 charts";fetch("v1/status");</script></body>\n'
  } > "$work/liar.html"
  sed 's|<div id="tiles">|<img src="http://cdn.example.invalid/logo.png" alt=""><div id="tiles">|' "$page" > "$work/external.html"
  # an external request that no static check can see: only the net log catches it
  sed 's|<div id="tiles">|<script>fetch(["http:", "", "cdn.example.invalid", "t.js"].join("/")).catch(function () {});</script><div id="tiles">|' \
    "$page" > "$work/fetcher.html"
  sed 's|<div id="tiles">|<script>setTimeout(function () { null.x; }, 100);</script><div id="tiles">|' \
    "$page" > "$work/throws.html"
  pass=0 fail=0
  # case NAME EXPECT(pass|fail) PATTERN [ENV=VAL] -- MOCK_OPTIONS...
  case_() {
    local name=$1 expect=$2 pattern=$3 envs=()
    shift 3
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]}" "$0" --mock "$@" > "$work/out" 2>&1
    local st=$?
    if { [ "$expect" = pass ] && [ $st -eq 0 ]; } || { [ "$expect" = fail ] && [ $st -ne 0 ]; }; then
      if grep -q -- "$pattern" "$work/out"; then
        echo "ok $name"
        [ "$expect" = fail ] && grep -e '^FAIL' -e '^ *FAIL' -e '^banner' -e '^   banner' "$work/out" | sed 's/^ */    /'
        pass=$((pass + 1))
        return
      fi
      echo "FAIL $name: exit status $st as expected but the output lacks \"$pattern\""
    else
      echo "FAIL $name: want $expect, got exit status $st"
    fi
    sed 's/^/    /' "$work/out" | tail -25
    fail=$((fail + 1))
  }
  case_ "the dashboard passes against the mock" pass "ok at least 4 charts drew" X=1 --
  case_ "the page recovers after failed polls" pass "data-state='ok'" X=1 -- --status flaky
  case_ "the page sends ?key= as a bearer token" pass "data-state='ok'" DASHBOARD_KEY=s3cret -- --key s3cret
  case_ "a missing key fails with a clear banner" fail "banner: disconnected: HTTP 401" X=1 -- --key s3cret
  case_ "a server that fails /v1/status shows the banner and fails" fail "banner: disconnected: HTTP 503" X=1 -- --status down
  case_ "a blank page fails" fail "reports no charts" X=1 -- --page "$work/blank.html"
  case_ "an empty status fails" fail "reports 0 charts" X=1 -- --status empty
  case_ "a page that claims charts it did not draw fails" fail "the canvas is blank" X=1 -- --page "$work/liar.html"
  case_ "a page with an external resource fails" fail "cdn.example.invalid" X=1 -- --page "$work/external.html"
  case_ "a page that fetches from outside 127.0.0.1 fails" fail "requested http://cdn.example.invalid/t.js" X=1 -- --page "$work/fetcher.html"
  case_ "a page that throws fails" fail "Uncaught TypeError" X=1 -- --page "$work/throws.html"
  echo "selftest: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit
fi

if [ "${1:-}" = "--mock" ]; then
  shift
  server=(python3 "$here/mock_status.py")
  model=mock
  extra=("$@")
elif [ $# -eq 2 ]; then
  server=("$1")
  model=$2
  extra=()
else
  echo "usage: $0 EDGESERVE_BINARY MODEL_FILE | --mock [MOCK_OPTIONS...] | --selftest" >&2
  exit 2
fi

for tool in "$chromium" curl python3 timeout; do
  command -v "$tool" > /dev/null 2>&1 || { echo "FAIL $tool not found (install Debian chromium, curl," \
    "python3 and coreutils: they are test dependencies of edgeserve)" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid="" load_pid="" chrome_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  # load_pid and chrome_pid are `timeout` processes, each leading its own process group
  for p in $chrome_pid $load_pid; do kill -TERM -- "-$p" 2> /dev/null; done
  if [ -n "$server_pid" ]; then
    kill -TERM -- "-$server_pid" 2> /dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$server_pid" 2> /dev/null || break; sleep 0.2; done
    kill -KILL -- "-$server_pid" 2> /dev/null
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '  %s\n' "$@" | head -30; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

# 1. the server, on a free port, in a process group of its own (killed whole at exit);
# it writes its base URL into the ready file
setsid "${server[@]}" serve --host 127.0.0.1 --port 0 --model "$model" --data "$work/data" \
  --ready-file "$work/url" \
  "${extra[@]}" < /dev/null > "$work/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 100); do
  if [ -s "$work/url" ]; then
    url=$(head -n 1 "$work/url" | tr -d '[:space:]')
    [[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && break
  fi
  kill -0 "$server_pid" 2> /dev/null || break
  sleep 0.1
done
if ! [[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]]; then
  bad "the server writes its URL into the ready file within 10 s" "ready file: '$(cat "$work/url" 2> /dev/null)'" \
    "server: $(kill -0 "$server_pid" 2> /dev/null && echo running || echo exited)" \
    "$(tail -n 20 "$work/server.log")"
  finish
fi
ok "the server is ready at $url"

# 2. the page as served: self-contained and small
code=$(curl -s -m 5 -o "$work/page.html" -D "$work/page.hdr" -w '%{http_code}' "$url/")
size=$(wc -c < "$work/page.html" 2> /dev/null || echo 0)
if [ "$code" = 200 ] && grep -qi '^content-type: *text/html' "$work/page.hdr" && [ "$size" -gt 0 ] &&
  [ "$size" -lt 40960 ]; then
  ok "GET / answers an HTML page of $size bytes (< 40 KB)"
else
  bad "GET / answers an HTML page under 40 KB" "HTTP $code, $size bytes" "$(cat "$work/page.hdr")"
fi
ext=$(grep -noiE '://|<script[^>]+src|<link[^>]+stylesheet|@import|@font-face|url\(|<img|<iframe|(src|href)=["'\'']?//' \
  "$work/page.html" | head -5)
if [ -z "$ext" ]; then ok "the page references no external resource"; else
  bad "the page references no external resource" "$ext"
fi

# 3. some load, so that the latency percentiles have data before the page loads
# shellcheck disable=SC2016 # $1 and $(seq) expand in the inner shell
timeout 40 bash -c 'for _ in $(seq 200); do
    curl -s -m 2 -o /dev/null -w "%{http_code}\n" -X POST -H "Content-Type: application/json" \
      --data "{\"text\":\"Breaking.Bad.S01E02.720p.mkv\"}" "$1/v1/classify"
  done' load "$url" < /dev/null > "$work/load.codes" 2> /dev/null &
load_pid=$!
for _ in $(seq 50); do
  [ "$(wc -l < "$work/load.codes")" -ge 20 ] && break
  sleep 0.1
done

# 4. the dashboard in headless Chromium: 8 s of page time (virtual: polls run without waiting)
page_url="$url/"
[ -n "${DASHBOARD_KEY:-}" ] && page_url="$url/?key=$DASHBOARD_KEY"
mkdir -p "$work/home"
HOME=$work/home timeout -k 5 30 "$chromium" --headless --no-sandbox --disable-gpu \
  --window-size=1280,1000 --user-data-dir="$work/profile" --no-first-run --disable-extensions \
  --disable-background-networking --disable-component-update --disable-sync --disable-default-apps \
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --log-net-log="$work/net.json" \
  --enable-logging=stderr --v=0 \
  --virtual-time-budget=8000 --screenshot="$work/dash.png" --dump-dom "$page_url" \
  < /dev/null > "$work/dom.html" 2> "$work/chromium.log" &
chrome_pid=$!
wait "$chrome_pid"
st=$?
chrome_pid=""
if [ $st -eq 0 ] && [ -s "$work/dash.png" ] && [ -s "$work/dom.html" ]; then
  ok "chromium loaded the page, took a screenshot and dumped the DOM"
else
  why="exit status $st"
  [ $st -eq 124 ] && why="did not finish within 30 s (does the page settle? does /v1/status answer?)"
  bad "chromium loaded the page, took a screenshot and dumped the DOM" "$why" \
    "$(grep -v -e dbus -e 'bytes written' "$work/chromium.log" | tail -n 10)"
  finish
fi
kill -TERM -- "-$load_pid" 2> /dev/null
wait "$load_pid" 2> /dev/null
load_pid=""
echo "   load: $(grep -c '^200$' "$work/load.codes") of $(wc -l < "$work/load.codes") POST /v1/classify answered 200"

# 5. the charts drew: DOM counts, then pixels in the screenshot
"${pngcheck[@]}" charts "$work/dash.png" "$work/dom.html" --css-width 1280 --min 4 > "$work/charts.out" 2>&1
st=$?
sed 's/^/   /' "$work/charts.out" | grep -v '   FAIL'
if [ $st -eq 0 ]; then ok "at least 4 charts drew, and the screenshot shows their lines"; else
  bad "at least 4 charts drew, and the screenshot shows their lines" "$(grep '^FAIL' "$work/charts.out")"
fi
if grep -q 'data-state="ok"' "$work/dom.html"; then ok "the page is connected (no error banner)"; else
  bad "the page is connected (no error banner)" "$(grep -o '<div id="banner"[^<]*' "$work/dom.html")"
fi

js=$(grep -F 'INFO:CONSOLE' "$work/chromium.log" | grep -E '"(Uncaught|Unhandled)' | sed 's/^[^]]*\] //' | head -5)
if [ -z "$js" ]; then ok "the page raised no JavaScript error"; else
  bad "the page raised no JavaScript error" "$js"
fi

# 6. nothing outside 127.0.0.1: in the DOM, and in Chromium's net log
ext=$(grep -oiE '(src|href|action|poster)=["'\'']?(https?:)?//[^"'\'' >]*' "$work/dom.html" | grep -v '//127\.0\.0\.1[:/]' | head -5)
if [ -z "$ext" ]; then ok "the DOM has no src/href outside 127.0.0.1"; else
  bad "the DOM has no src/href outside 127.0.0.1" "$ext"
fi
"${pngcheck[@]}" netlog "$work/net.json" "$url" > "$work/net.out" 2>&1
st=$?
if [ $st -eq 0 ]; then ok "chromium requested nothing outside 127.0.0.1 ($(head -n 1 "$work/net.out" | cut -c10-))"; else
  bad "chromium requested nothing outside 127.0.0.1" "$(cat "$work/net.out")"
fi

# 7. the server stops cleanly on SIGTERM
kill -TERM "$server_pid" 2> /dev/null
for _ in $(seq 50); do kill -0 "$server_pid" 2> /dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2> /dev/null; then
  bad "the server exits on SIGTERM within 5 s" "still running: killed"
  kill -KILL -- "-$server_pid" 2> /dev/null
  wait "$server_pid" 2> /dev/null
else
  wait "$server_pid"
  st=$?
  if [ $st -eq 0 ]; then ok "the server exits with status 0 on SIGTERM"; else
    bad "the server exits with status 0 on SIGTERM" "exit status $st" "$(tail -n 10 "$work/server.log")"
  fi
fi
kill -KILL -- "-$server_pid" 2> /dev/null # whatever it left behind
server_pid=""
finish
