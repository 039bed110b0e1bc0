# lib.sh - helpers shared by the compatibility scripts (sourced).

# compat_args EDGESERVE FASTTEXT: checks the two programs and sets ES and FT
# to their absolute paths; exits 2 with a message otherwise.
compat_args() {
  if [ $# -ne 2 ]; then
    echo "usage: $0 EDGESERVE FASTTEXT" >&2
    exit 2
  fi
  if [ ! -x "$1" ]; then
    echo "edgeserve binary not found: $1" >&2
    exit 2
  fi
  if ! FT=$(command -v "$2"); then
    echo "fasttext binary not found: $2" >&2
    exit 2
  fi
  ES=$(realpath "$1")
  FT=$(realpath "$FT")
}

# show_diff ES_OUT FT_OUT: the first three differing lines, side by side.
show_diff() {
  local shown
  shown=$(awk -v ft="$2" '
    function cut(s) { return length(s) > 200 ? substr(s, 1, 200) "..." : s }
    function show(a, b) {
      printf "    line %d:\n      edgeserve: %s\n      fasttext:  %s\n", FNR, cut(a), cut(b)
      if (++shown == 3) exit
    }
    { if ((getline b < ft) <= 0) show($0, "(no such line)"); else if ($0 != b) show($0, b) }
    END { if (shown < 3 && (getline b < ft) > 0) { FNR++; show("(no such line)", b) } }
  ' "$1")
  if [ -n "$shown" ]; then
    printf '%s\n' "$shown"
  else # same lines, different bytes (a final newline, a NUL)
    echo "    $(cmp "$1" "$2" 2>&1 || true), sizes $(wc -c <"$1") and $(wc -c <"$2") bytes"
  fi
}

# Synthetic corpus with 300 labels (quantizing the output matrix needs at
# least 256): label c<i> has its own words t<i>a..t<i>f; n<j> is noise; a
# few lines have two labels and non-ASCII words.
make_synthetic() { # make_synthetic SEED LINES
  awk -v seed="$1" -v lines="$2" 'BEGIN {
    srand(seed)
    split("città été 中文 日本語 émoji🎉 naïve", u, " ")
    for (l = 0; l < lines; l++) {
      c = int(rand() * 300)
      line = sprintf("__label__c%03d", c)
      if (rand() < 0.15) line = line sprintf(" __label__c%03d", int(rand() * 300))
      n = 3 + int(rand() * 8)
      for (i = 0; i < n; i++) {
        r = rand()
        if (r < 0.6) w = sprintf("t%03d%c", c, 97 + int(rand() * 6))
        else if (r < 0.95) w = sprintf("n%d", int(rand() * 200))
        else w = u[1 + int(rand() * 6)]
        line = line " " w
      }
      print line
    }
  }'
}


# compat_workdir NAME: a fresh work directory (removed at exit unless
# ES_COMPAT_KEEP is set), entered, with the pass/fail counters at zero.
compat_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  if [ -n "${ES_COMPAT_KEEP:-}" ]; then
    echo "# keeping the work directory $WORK"
  else
    trap 'rm -rf "$WORK"' EXIT
  fi
  cd "$WORK"
  export LC_ALL=C
  passed=0
  failed=0
  SECONDS=0
}

# ok NAME / fail NAME [DETAIL]: count and print one check.
ok() { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || printf '    %s\n' "$2"; }

# same NAME FILE_A FILE_B: byte-identical files.
same() {
  if cmp -s "$2" "$3"; then ok "$1"; else fail "$1"; show_diff "$2" "$3"; fi
}
