#!/usr/bin/env bash
# File-system benchmark: `vestige bodyfile` against TSK's `fls -r -m /` on the same volume,
# in one run, page cache warm, median of REPS runs (default 3):
# - the 1.5 GiB ext4 partition of the shared corpus (../shared/bench/mkcorpus.sh);
# - a populated NTFS image (made once: mkntfs, then /usr/share/doc and /usr/bin copied in
#   through ntfs-3g), kept in BENCH_DIR.
# Both outputs are compared: the lines they share, and those only one side has.
#
# Usage: bench/fs.sh            BENCH_DIR (default /var/tmp/vestige-bench), VESTIGE_BIN
set -euo pipefail

bench_dir=${BENCH_DIR:-/var/tmp/vestige-bench}
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
source "$repo/bench/lib.sh"
need fls:sleuthkit mkntfs:ntfs-3g /usr/bin/time:time
mkdir -p "$bench_dir"
corpus="$bench_dir/corpus-2048M.raw"
bash "$repo/../shared/bench/mkcorpus.sh" "$corpus" 2048 >&2
vestige_bin

ntfs="$bench_dir/populated.ntfs"
if [ ! -s "$ntfs" ]; then
  log "making $ntfs"
  truncate -s 1G "$ntfs.tmp"
  mkntfs -F -q -Q -L BENCH "$ntfs.tmp" >/dev/null
  m=$(mktemp -d)
  ntfs-3g "$ntfs.tmp" "$m"
  cp -r /usr/share/doc "$m/doc" 2>/dev/null || true
  cp -r /usr/bin "$m/bin" 2>/dev/null || true
  umount "$m"; rmdir "$m"
  mv "$ntfs.tmp" "$ntfs"
fi

cat "$corpus" "$ntfs" > /dev/null

echo "## File-system benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPUs; median of $reps runs; $("$vestige" --version); $(fls -V | head -n 1)"
echo
echo "| volume | fls lines | vestige bodyfile s | fls -r -m / s | fls time ÷ vestige time | identical lines | identical but the UID | only fls | only vestige |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
run() { # NAME IMAGE OFFSET_SECTORS VOLUME
  local name=$1 img=$2 off=$3 vol=$4 v p
  v=$(timed : "$vestige" bodyfile "$img" --volume "$vol")
  p=$(timed : fls -r -m / -o "$off" "$img")
  "$vestige" bodyfile "$img" --volume "$vol" 2>/dev/null | sort > "$bench_dir/ours.body"
  fls -r -m / -o "$off" "$img" | sort > "$bench_dir/tsk.body"
  local n same same_uid only_t only_v
  n=$(wc -l < "$bench_dir/tsk.body")
  same=$(comm -12 "$bench_dir/tsk.body" "$bench_dir/ours.body" | wc -l)
  # TSK shows 48 as the owner of NTFS files whose $STANDARD_INFORMATION has no owner id
  # (it reads past the attribute); we show 0. Compared once more without that field.
  nouid() { awk -F'|' 'BEGIN { OFS = "|" } { $5 = "-"; print }' "$1" | sort; }
  same_uid=$(comm -12 <(nouid "$bench_dir/tsk.body") <(nouid "$bench_dir/ours.body") | wc -l)
  only_t=$(comm -23 <(nouid "$bench_dir/tsk.body") <(nouid "$bench_dir/ours.body") | wc -l)
  only_v=$(comm -13 <(nouid "$bench_dir/tsk.body") <(nouid "$bench_dir/ours.body") | wc -l)
  echo "| $name | $n | $v | $p | $(ratio "$p" "$v") | $same | $same_uid | $only_t | $only_v |"
  { echo "$name:"
    comm -23 <(nouid "$bench_dir/tsk.body") <(nouid "$bench_dir/ours.body") | sed -n '1,6p' | sed 's/^/  fls:     /'
    comm -13 <(nouid "$bench_dir/tsk.body") <(nouid "$bench_dir/ours.body") | sed -n '1,6p' | sed 's/^/  vestige: /'
  } >> "$bench_dir/fs-differences.txt"
}
rm -f "$bench_dir/fs-differences.txt"
run "corpus ext4 (1.5 GiB)" "$corpus" 2048 004
run "populated NTFS (1 GiB)" "$ntfs" 0 disk
echo
echo "Lines only one side has (the UID field shown as \`-\`; at most 6 each):"
echo '```'
cat "$bench_dir/fs-differences.txt"
echo '```'
