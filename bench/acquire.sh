#!/usr/bin/env bash
# Acquisition benchmark: vestige against dc3dd, ewfacquire, a tee/sha256sum/zstd pipeline
# and plain zstd, all on the shared corpus (../shared/bench/mkcorpus.sh), page cache warm.
#
# Usage: bench/acquire.sh [SIZE_MIB]        (default 2048)
#   BENCH_DIR  work dir for the corpus and the outputs (default /var/tmp/vestige-bench)
#   REPS       runs of each measurement; the best (shortest) time is reported (default 1)
#   VESTIGE_BIN  use this vestige binary instead of building one (optional)
#
# Each tool is timed with /usr/bin/time -f '%e %M' (wall seconds, peak RSS KiB); each
# output is measured and deleted before the next tool runs (then `sync`, untimed).
# Peak RSS is the largest seen over the REPS runs. For the pipeline row, /usr/bin/time
# times `bash -c`, so its RSS is the largest of its processes, not their sum.
# Exits 1 if a correctness check fails (hash mismatch, verify failure); targets that are
# not met are reported but do not change the exit status.
set -euo pipefail

size_mib=${1:-2048}
bench_dir=${BENCH_DIR:-/var/tmp/vestige-bench}
reps=${REPS:-1}
[[ $size_mib =~ ^[0-9]+$ ]] || { echo "usage: $0 [SIZE_MIB]" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "REPS must be a positive integer" >&2; exit 2; }

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
mkcorpus="$repo/../shared/bench/mkcorpus.sh"
[ -f "$mkcorpus" ] || { echo "missing $mkcorpus" >&2; exit 2; }

exec 3>&2
log() { echo "== $*" >&3; }

# ---- 1. host tools ----------------------------------------------------------------------
need=()
have() { if [[ $1 == /* ]]; then [ -x "$1" ]; else command -v "$1" >/dev/null 2>&1; fi; }
for pair in dc3dd:dc3dd ewfacquire:ewf-tools sgdisk:gdisk zstd:zstd /usr/bin/time:time \
            mkfs.ext4:e2fsprogs openssl:openssl; do
  have "${pair%%:*}" || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2; }
fi

mkdir -p "$bench_dir"
bench_dir=$(cd "$bench_dir" && pwd)
corpus="$bench_dir/corpus-${size_mib}M.raw"
log "corpus $corpus"
bash "$mkcorpus" "$corpus" "$size_mib" >&2
corpus_bytes=$(stat -c %s "$corpus")

# ---- 2. build ---------------------------------------------------------------------------
if [ -n "${VESTIGE_BIN:-}" ]; then
  vestige=$VESTIGE_BIN   # a prebuilt binary (e.g. while the work tree does not build)
  log "using prebuilt $vestige (VESTIGE_BIN); not building"
else
  log "building vestige (release)"
  (cd "$repo" && cargo build --release -q -p vestige-cli >&2)
  vestige="$repo/target/release/vestige"
fi

# ---- 3. measure -------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming the page cache"
cat "$corpus" > /dev/null
ref_sha=$(sha256sum "$corpus" | cut -d' ' -f1)

work="$bench_dir/run.$$"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
fails=()
fail() { echo "FAIL: $*"; fails+=("$*"); }

# results, keyed by row name
declare -A secs rss outb runs
# timed NAME CMD...: runs CMD under /usr/bin/time, keeps the best time and the largest RSS
timed() {
  local name=$1; shift
  local tf="$work/time.$name" rc=0
  /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null || rc=$?
  local s m; read -r s m < <(tail -n 1 "$tf")
  runs[$name]="${runs[$name]:-}${runs[$name]:+ }$s"
  log "$name: ${s}s, ${m} KiB"
  if [ -z "${secs[$name]:-}" ] || awk -v a="$s" -v b="${secs[$name]}" 'BEGIN{exit !(a < b)}'; then
    secs[$name]=$s
  fi
  if [ -z "${rss[$name]:-}" ] || [ "$m" -gt "${rss[$name]}" ]; then rss[$name]=$m; fi
  return $rc
}
settle() { sync; }

for ((r = 1; r <= reps; r++)); do
  log "rep $r/$reps"

  # a. vestige acquire (+ f. vestige verify on the same item)
  log "vestige acquire"
  "$vestige" case init "$work/case" --case-id BENCH --examiner bench >/dev/null 2>&1
  if timed vestige env VESTIGE_KEY_DIR="$work/keys" "$vestige" acquire disk "$corpus" \
       --case "$work/case" --item disk >"$work/vestige.json" 2>"$work/vestige.err"; then
    v_sha=$(sed -n 's/.*"sha256": *"\([0-9a-f]*\)".*/\1/p' "$work/vestige.json")
    [ "$v_sha" = "$ref_sha" ] || fail "vestige sha256 ${v_sha:-none} != sha256sum $ref_sha"
    outb[vestige]=$(stat -c %s "$work/case/disk/image.zst")
    settle
    log "vestige verify"
    if timed verify "$vestige" verify "$work/case/disk" >"$work/verify.out" 2>&1; then :; else
      fail "vestige verify exited non-zero: $(tail -n 3 "$work/verify.out" | tr '\n' ' ')"
    fi
  else
    fail "vestige acquire exited non-zero: $(tail -n 3 "$work/vestige.err" | tr '\n' ' ')"
  fi
  rm -rf "$work/case" "$work/keys"; settle

  # a2. the cost of durability: the same acquisition with the image fsynced (and a resume
  #     journal line written) every 64 MiB, and only once at the end (the default is 256 MiB)
  for variant in 64:vestige_sync64 1048576:vestige_nosync; do
    mib=${variant%%:*}; key=${variant##*:}
    log "vestige acquire --sync-every-mib $mib"
    "$vestige" case init "$work/case" --case-id BENCH --examiner bench >/dev/null 2>&1
    if timed "$key" env VESTIGE_KEY_DIR="$work/keys" "$vestige" acquire disk "$corpus" \
         --case "$work/case" --item disk --sync-every-mib "$mib" >"$work/$key.json" 2>"$work/$key.err"; then
      s_sha=$(sed -n 's/.*"sha256": *"\([0-9a-f]*\)".*/\1/p' "$work/$key.json")
      [ "$s_sha" = "$ref_sha" ] || fail "$key sha256 ${s_sha:-none} != sha256sum $ref_sha"
      outb[$key]=$(stat -c %s "$work/case/disk/image.zst")
    else
      fail "$key exited non-zero: $(tail -n 3 "$work/$key.err" | tr '\n' ' ')"
    fi
    rm -rf "$work/case" "$work/keys"; settle
  done

  # b. dc3dd
  log "dc3dd"
  if timed dc3dd dc3dd if="$corpus" hash=sha256 of="$work/dc3dd.raw" 2>"$work/dc3dd.log"; then :; else
    fail "dc3dd exited non-zero"
  fi
  d_sha=$(awk '/\(sha256\)/ {print $1; exit}' "$work/dc3dd.log")
  [ "$d_sha" = "$ref_sha" ] || fail "dc3dd sha256 ${d_sha:-none} != sha256sum $ref_sha"
  outb[dc3dd]=$(stat -c %s "$work/dc3dd.raw")
  rm -f "$work/dc3dd.raw"; settle

  # c. ewfacquire: -u unattended (no prompts), deflate fast, extra digest sha256 (md5 is
  #    always computed), one segment (-S 8GiB; encase6 allows up to 7.9 EiB)
  log "ewfacquire"
  if timed ewfacquire ewfacquire -u -q -t "$work/ewf" -c deflate:fast -d sha256 -S 8GiB \
       -C BENCH -e bench -E 1 -D bench -N bench -l "$work/ewf.log" "$corpus" \
       >"$work/ewf.out" 2>&1; then :; else
    fail "ewfacquire exited non-zero: $(tail -n 3 "$work/ewf.out" | tr '\n' ' ')"
  fi
  e_sha=$(awk '/SHA256 hash calculated/ {print $NF; exit}' "$work/ewf.log" 2>/dev/null || true)
  [ "$e_sha" = "$ref_sha" ] || fail "ewfacquire sha256 ${e_sha:-none} != sha256sum $ref_sha"
  ewf_segments=$(find "$work" -maxdepth 1 -name 'ewf.[EeLs]*' ! -name '*.log' | wc -l)
  outb[ewfacquire]=$(find "$work" -maxdepth 1 -name 'ewf.[EeLs]*' ! -name '*.log' -printf '%s\n' \
                     | awk '{t += $1} END {print t + 0}')
  rm -f "$work"/ewf.[EeLs]* "$work/ewf.log"; settle

  # d. tee + sha256sum + zstd pipeline
  log "tee | sha256sum | zstd pipeline"
  rm -f "$work/sha.txt"
  if timed pipeline bash -c 'tee >(sha256sum > "$1") < "$2" | zstd -3 -T0 -q -f -o "$3"; wait $! 2>/dev/null || true' \
       _ "$work/sha.txt" "$corpus" "$work/pipe.zst"; then :; else
    fail "pipeline exited non-zero"
  fi
  p_sha=$(cut -d' ' -f1 "$work/sha.txt" 2>/dev/null || true)
  [ "$p_sha" = "$ref_sha" ] || fail "pipeline sha256 ${p_sha:-none} != sha256sum $ref_sha"
  outb[pipeline]=$(stat -c %s "$work/pipe.zst")
  rm -f "$work/pipe.zst"; settle

  # e. plain zstd -3 -T0 (size reference; no hash)
  log "zstd -3 -T0"
  timed zstd zstd -3 -T0 -q -f "$corpus" -o "$work/plain.zst" || fail "zstd exited non-zero"
  outb[zstd]=$(stat -c %s "$work/plain.zst")
  rm -f "$work/plain.zst"; settle
done

# ---- 4. report --------------------------------------------------------------------------
mbps() { awk -v b="$corpus_bytes" -v s="$1" 'BEGIN{ if (s > 0) printf "%.1f", b / s / 1e6; else print "inf" }'; }
v_mbps=$(mbps "${secs[vestige]:-0}")

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
echo
echo "## Vestige acquisition benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -srm)"
echo "- CPU: ${cpu:-unknown}; nproc: $(nproc); memory: $mem"
if [ -n "${VESTIGE_BIN:-}" ]; then
  echo "- vestige: $("$vestige" --version) (prebuilt $vestige)"
else
  echo "- vestige: $("$vestige" --version) (commit $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- tools 2>/dev/null || echo ', work tree modified'))"
fi
echo "- dc3dd: $(dc3dd --version 2>&1 | head -n 1); ewfacquire: $(ewfacquire -V 2>&1 | head -n 1); zstd: $(zstd --version 2>&1 | head -n 1)"
echo "- load average (1/5/15 min) before: $load_start; after: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) CPUs; above ~1 before means other work was competing)"
echo "- corpus: $corpus ($corpus_bytes bytes, $size_mib MiB), page cache warm; REPS=$reps (best time, largest RSS)"
echo
echo "| tool | seconds | MB/s | output bytes | output/corpus % | peak RSS MiB | vestige speed ÷ tool speed |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() { # KEY LABEL
  local k=$1 label=$2 s=${secs[$1]:-} o=${outb[$1]:-} m=${rss[$1]:-}
  [ -n "$s" ] || { echo "| $label | — | — | — | — | — | — |"; return; }
  local pct="—" ratio="—" ob="—"
  if [ -n "$o" ]; then ob=$o; pct=$(awk -v o="$o" -v b="$corpus_bytes" 'BEGIN{printf "%.2f", 100 * o / b}'); fi
  if [ "$k" != verify ] && [ -n "${secs[vestige]:-}" ]; then
    ratio=$(awk -v v="${secs[vestige]}" -v t="$s" 'BEGIN{printf "%.2f", t / v}')
  fi
  printf '| %s | %.2f | %s | %s | %s | %.1f | %s |\n' "$label" "$s" "$(mbps "$s")" "$ob" "$pct" \
    "$(awk -v k="$m" 'BEGIN{print k / 1024}')" "$ratio"
}
row vestige    "vestige acquire (zstd 3, sha256; durable every 256 MiB, the default)"
row vestige_sync64 "vestige acquire --sync-every-mib 64"
row vestige_nosync "vestige acquire, fsync only at the end (--sync-every-mib 1048576)"
row dc3dd      "dc3dd hash=sha256 (raw)"
row ewfacquire "ewfacquire (E01, deflate:fast, md5+sha256, ${ewf_segments:-?} segment(s))"
row pipeline   "tee + sha256sum + zstd -3 -T0"
row zstd       "zstd -3 -T0 (no hash)"
row verify     "vestige verify (reads image)"
echo
if [ "$reps" -gt 1 ]; then
  echo "All runs (seconds): vestige ${runs[vestige]:-—}; sync64 ${runs[vestige_sync64]:-—}; nosync ${runs[vestige_nosync]:-—}; dc3dd ${runs[dc3dd]:-—}; ewfacquire ${runs[ewfacquire]:-—}; pipeline ${runs[pipeline]:-—}; zstd ${runs[zstd]:-—}; verify ${runs[verify]:-—}"
  echo
fi
echo "Verify's own report (last run): $(grep -o 'image: .*' "$work/verify.out" 2>/dev/null | head -n 1 || true)"
echo

target() { # DESCRIPTION AWK-CONDITION DETAIL
  local verdict=MET
  awk "BEGIN{exit !($2)}" || verdict="NOT MET"
  echo "- target: $1 — $verdict ($3)"
}
if [ -n "${secs[vestige]:-}" ]; then
  s=${secs[vestige]}
  [ -n "${secs[dc3dd]:-}" ] && target "vestige ≥ 1.8× dc3dd throughput" "${secs[dc3dd]} / $s >= 1.8" \
    "$(awk -v a="${secs[dc3dd]}" -v b="$s" 'BEGIN{printf "%.2f×", a / b}')"
  [ -n "${secs[ewfacquire]:-}" ] && target "vestige ≥ 5× ewfacquire throughput" "${secs[ewfacquire]} / $s >= 5" \
    "$(awk -v a="${secs[ewfacquire]}" -v b="$s" 'BEGIN{printf "%.2f×", a / b}')"
  [ -n "${secs[pipeline]:-}" ] && target "vestige faster than tee/sha256sum/zstd pipeline" "$s < ${secs[pipeline]}" \
    "$(awk -v a="${secs[pipeline]}" -v b="$s" 'BEGIN{printf "%.2fs vs %.2fs, %.2f×", b, a, a / b}')"
  [ -n "${outb[zstd]:-}" ] && target "image.zst ≤ zstd -3 output + 1 %" "${outb[vestige]} <= ${outb[zstd]} * 1.01" \
    "$(awk -v a="${outb[vestige]}" -v b="${outb[zstd]}" 'BEGIN{printf "%d vs %d bytes, %+.2f %%", a, b, 100 * (a - b) / b}')"
  target "vestige peak RSS ≤ 128 MiB" "${rss[vestige]} <= 131072" \
    "$(awk -v k="${rss[vestige]}" 'BEGIN{printf "%.1f MiB", k / 1024}')"
  [ -n "${secs[verify]:-}" ] && target "verify ≥ 600 MB/s" "$(mbps "${secs[verify]}") >= 600" "$(mbps "${secs[verify]}") MB/s"
fi
echo "- note: vestige fsyncs image.zst; dc3dd, ewfacquire and zstd do not (their outputs sit in the page cache; \`sync\` after each run is not timed)"

if [ ${#fails[@]} -gt 0 ]; then
  echo
  echo "correctness: ${#fails[@]} FAIL(s)"
  exit 1
fi
echo "- correctness: vestige, dc3dd, ewfacquire and pipeline sha256 all equal sha256sum ($ref_sha); vestige verify passed"
