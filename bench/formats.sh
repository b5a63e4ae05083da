#!/usr/bin/env bash
# Image-format benchmark: a full sequential read of the shared corpus through each format,
# `vestige export raw` against `qemu-img convert -O raw` (and ewfexport for E01), on the
# same image in one run, page cache warm.
#
# Usage: bench/formats.sh [SIZE_MIB]        (default 2048)
#   BENCH_DIR  work dir for the corpus, the images and the outputs (default /var/tmp/vestige-bench)
#   VESTIGE_BIN  use this vestige binary instead of building one (optional)
#
# The images are made once (qemu-img convert, ewfacquire) and kept in BENCH_DIR/formats/.
# `export raw` hashes what it writes with SHA-256 (and MD5 + SHA-1 for E01, which stores
# them); qemu-img and ewfexport write without hashing. Each output is compared with the
# corpus by `cmp` (untimed) and deleted; exits 1 on a mismatch.
set -euo pipefail

size_mib=${1:-2048}
bench_dir=${BENCH_DIR:-/var/tmp/vestige-bench}
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
mkcorpus="$repo/../shared/bench/mkcorpus.sh"
log() { echo "== $*" >&2; }

for pair in qemu-img:qemu-utils ewfacquire:ewf-tools ewfexport:ewf-tools /usr/bin/time:time; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "${pair%%:*}" ] || {
    log "installing ${pair##*:}"; apt-get install -y -q "${pair##*:}" >&2; }
done

mkdir -p "$bench_dir/formats"
bench_dir=$(cd "$bench_dir" && pwd)
corpus="$bench_dir/corpus-${size_mib}M.raw"
bash "$mkcorpus" "$corpus" "$size_mib" >&2
if [ -n "${VESTIGE_BIN:-}" ]; then
  vestige=$VESTIGE_BIN
else
  log "building vestige (release)"
  (cd "$repo" && cargo build --release -q -p vestige-cli >&2)
  vestige="$repo/target/release/vestige"
fi

imgs="$bench_dir/formats"
make() { # NAME QEMU_FORMAT OPTIONS...
  local name=$1 fmt=$2; shift 2
  [ -s "$imgs/$name" ] || { log "making $name"; qemu-img convert -f raw -O "$fmt" "$@" "$corpus" "$imgs/$name"; }
}
make plain.qcow2 qcow2
make zlib.qcow2 qcow2 -c
make sparse.vmdk vmdk -o subformat=monolithicSparse
make stream.vmdk vmdk -o subformat=streamOptimized
make dynamic.vhdx vhdx
make dynamic.vhd vpc -o subformat=dynamic,force_size=on
make dynamic.vdi vdi
if [ ! -s "$imgs/ewf.E01" ]; then
  log "making ewf.E01"
  ewfacquire -u -q -t "$imgs/ewf" -c deflate:fast -S 8GiB -C BENCH -e bench -E 1 -D bench \
    -N bench "$corpus" >/dev/null
fi

out="$bench_dir/formats-out.raw"
trap 'rm -f "$out" "$out".partial' EXIT
secs() { /usr/bin/time -f '%e' -o "$bench_dir/time.txt" "$@" >/dev/null 2>&1 || return 1; tail -n 1 "$bench_dir/time.txt"; }
fails=0
check() { cmp -s "$out" "$corpus" || { echo "FAIL: $1 output differs from the corpus"; fails=1; }; rm -f "$out"; sync; }

cat "$corpus" "$imgs"/* > /dev/null
echo "## Image-format read benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPUs; corpus $size_mib MiB; $("$vestige" --version); $(qemu-img --version | head -n 1); ewfexport $(ewfexport -V 2>&1 | head -n 1 | awk '{print $2}')"
echo
echo "| image | image MiB | vestige export raw s | peer | peer s | peer time ÷ vestige time |"
echo "|---|---:|---:|---|---:|---:|"
for img in plain.qcow2 zlib.qcow2 sparse.vmdk stream.vmdk dynamic.vhdx dynamic.vhd dynamic.vdi ewf.E01; do
  path="$imgs/$img"
  mib=$(du -m --apparent-size "$path" | cut -f1)
  v=$(secs "$vestige" export raw "$path" "$out") || { echo "FAIL: vestige on $img"; fails=1; continue; }
  check "vestige $img"
  if [ "$img" = ewf.E01 ]; then
    peer="ewfexport"
    p=$(secs ewfexport -u -q -t "${out%.raw}" -f raw "$path") || { echo "FAIL: ewfexport"; fails=1; continue; }
    mv "${out%.raw}.raw" "$out" 2>/dev/null || true
  else
    peer="qemu-img convert -O raw"
    p=$(secs qemu-img convert -O raw "$path" "$out") || { echo "FAIL: qemu-img on $img"; fails=1; continue; }
  fi
  check "$peer $img"
  ratio=$(awk -v a="$p" -v b="$v" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "inf" }')
  echo "| $img | $mib | $v | $peer | $p | $ratio |"
done
exit $fails
