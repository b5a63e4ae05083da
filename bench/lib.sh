# Shared by the benchmark scripts (sourced): logging, tools, the vestige binary, timing.
# Expects $repo (the repository) and $bench_dir (the work directory) to be set.

log() { echo "== $*" >&2; }

# need CMD:PACKAGE…: installs the Debian package of each command that is missing.
need() {
  local pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "${pair%%:*}" ] || {
      log "installing ${pair##*:}"; apt-get install -y -q "${pair##*:}" >&2; }
  done
}

# Sets $vestige: $VESTIGE_BIN, or a release build of this checkout.
vestige_bin() {
  if [ -n "${VESTIGE_BIN:-}" ]; then
    vestige=$VESTIGE_BIN
  else
    log "building vestige (release)"
    (cd "$repo" && cargo build --release -q -p vestige-cli >&2)
    vestige="$repo/target/release/vestige"
  fi
}

# secs CMD…: the wall-clock seconds CMD took (its output discarded); fails if CMD fails.
secs() { /usr/bin/time -f '%e' -o "$bench_dir/time.txt" "$@" >/dev/null 2>&1 || return 1; tail -n 1 "$bench_dir/time.txt"; }

# timed 'CLEANUP' CMD…: runs CMD $reps times (REPS, default 3), CLEANUP and sync before
# each; prints the median.
reps=${REPS:-3}
timed() {
  local pre=$1 all="" one i; shift
  for ((i = 0; i < reps; i++)); do
    eval "$pre"; sync
    one=$(secs "$@") || return 1
    all+="$one"$'\n'
  done
  printf '%s' "$all" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# ratio A B: A ÷ B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
