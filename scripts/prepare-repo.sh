#!/usr/bin/env bash
# prepare-repo.sh - the model repository `make serve` serves: the bundled
# media model (scripts/make-model.sh, built once) as model "media" version 1,
# with its training data as the base for retraining jobs.
#
# usage: scripts/prepare-repo.sh BUILD_DIR   -> BUILD_DIR/repo/media/...
# An existing repository is left as it is (versions published by retraining
# jobs stay); delete BUILD_DIR/repo to start over.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: $0 BUILD_DIR}
[ -f "$BUILD/models/media.esm" ] || "$ROOT/scripts/make-model.sh" "$BUILD" >/dev/null
D=$BUILD/repo/media
if [ ! -d "$D/1" ]; then
  mkdir -p "$D/1"
  cp "$BUILD/models/media.esm" "$D/1/media.esm"
  cp "$BUILD/models/media-work/train.txt" "$D/train.txt"
  cat >"$D/config.ini" <<'INI'
; The bundled media organizer model (docs/server/README.md lists every key).
[batching]
max_batch = 32
max_queue_delay = 0us   ; fastText's per-text cost does not drop with batch size
queue_limit = 256
timeout = 5s
[decision]
auto = 0.85             ; classify automatically
suggest = 0.50          ; suggest, with the top-3 alternatives
alternatives = 3
[sla]
p99 = 50ms
[training]
data = train.txt        ; base data for POST /v1/models/media/train
INI
fi
echo "$BUILD/repo"
