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
)
case "${1:-}" in
bench) pkgs+=(hyperfine time) ;;
arm) pkgs+=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
            libc6-dev-armhf-cross qemu-user-static) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
