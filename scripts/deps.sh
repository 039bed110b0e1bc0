#!/usr/bin/env bash
# Installs the Debian packages edgeserve needs to build, test and benchmark.
# Idempotent: when every package is present it only runs dpkg-query and exits.
# Usage: scripts/deps.sh            build + test dependencies
#        scripts/deps.sh bench      also the benchmark tools
#        scripts/deps.sh arm        also cross compilers and qemu-user
set -euo pipefail

# Each package is here because code in the tree uses it; later modules add
# theirs (libmicrohttpd, cJSON, SQLite, ... with the server).
pkgs=(
  build-essential cmake pkg-config
  libcmocka-dev          # unit tests
  fasttext               # compatibility oracle in tests and benchmarks
  libinih-dev            # INI configuration (src/runtime/config.c)
  libcjson-dev           # JSON output of the CLI (hardware --json, config --json)
  prometheus             # promtool validates the /metrics exposition in tests
  libmicrohttpd-dev      # the HTTP server (src/server/http.c)
  libsqlite3-dev         # history, feedback, jobs, events (src/storage/store.c)
  zlib1g-dev             # gzip responses
  python3                # the server's integration tests (tests/server/*.py, stdlib only)
  chromium               # the dashboard test loads the page headless (tests/server/dashboard.sh)
  wrk curl               # the soak test drives the server (tests/soak/soak.sh)
)
case "${1:-}" in
bench) pkgs+=(hyperfine time curl wrk nginx-light python3-fastapi python3-uvicorn python3-fasttext) ;;
fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;; # libFuzzer (make fuzz)
arm) # cross compilers, qemu-user, and the libraries edgeserve links, for
     # armhf and arm64 from Debian's multiarch archives (dpkg architectures
     # are added below when missing)
     pkgs+=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
            libc6-dev-armhf-cross qemu-user-static)
     for a in armhf arm64; do
       # (libmicrohttpd-dev, libsqlite3-dev and zlib1g-dev :armhf/:arm64 pull
       # libc6-dev for the target, which Debian mirrors often carry at another
       # version than the host's: the cross builds leave the server out)
       pkgs+=("libinih-dev:$a" "libcjson-dev:$a" "libcmocka-dev:$a")
     done ;;
esac

missing=()
native=$(dpkg --print-architecture)
installed() { # one package; a name without :arch is the native one (or arch all)
  local st
  case $1 in
  *:*) st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) ;;
  *) st=$(dpkg-query -W -f='${Status}' "$1:$native" 2>/dev/null ||
         dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) ;;
  esac
  [ "$st" = "install ok installed" ]
}
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = arm ]; then
  for a in armhf arm64; do
    dpkg --print-foreign-architectures | grep -qx "$a" || $SUDO dpkg --add-architecture "$a"
  done
fi
# A mirror caught mid-sync fails one index file; the install below then
# still works from the others, and fails clearly if a package is missing.
$SUDO apt-get update -qq || echo "deps.sh: apt-get update reported errors; trying the install anyway" >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
