#!/usr/bin/env bash
# server.sh - the server's integration tests: builds the media model into a
# scratch directory (scripts/make-model.sh, ~6 s) and runs api_test.py, which
# starts the real server on ephemeral loopback ports.
# usage: bash tests/server/server.sh BUILD_DIR [api|dashboard]
#   api        tests/server/api_test.py (default)
#   dashboard  tests/server/dashboard.sh: the page in headless Chromium
#   faults     tests/server/faults_test.py: disk full, read-only, slow clients...
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/es-server.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# ES_MODEL_BUILD: the build that trains the model (a sanitizer build's
# server is tested on a model trained by the optimized one)
"$ROOT/scripts/make-model.sh" "${ES_MODEL_BUILD:-$BUILD}" "$WORK/models" >/dev/null
case "${2:-api}" in
api) python3 "$ROOT/tests/server/api_test.py" "$BUILD/edgeserve" "$WORK/models/media.esm" \
  "$WORK/models/media-work/train.txt" ;;
dashboard) bash "$ROOT/tests/server/dashboard.sh" "$BUILD/edgeserve" "$WORK/models/media.esm" ;;
faults) python3 "$ROOT/tests/server/faults_test.py" "$BUILD/edgeserve" "$WORK/models/media.esm" \
  "$WORK/models/media-work/train.txt" ;;
*) echo "server.sh: unknown mode $2" >&2; exit 2 ;;
esac
