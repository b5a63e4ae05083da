#!/usr/bin/env bash
# Image-format benchmark on the shared corpus, each format against its peer on the same
# image in one run, page cache warm:
# - reading every byte: `vestige image hash` against qemu-io reads (and ewfverify for E01);
# - exporting to a raw file: `vestige export raw` against `qemu-img convert -O raw` (and
#   ewfexport), also with the peer's output hashed afterwards by openssl.
#
# Usage: bench/formats.sh [SIZE_MIB]        (default 2048)
#   BENCH_DIR  work dir for the corpus, the images and the outputs (default /var/tmp/vestige-bench)
#   VESTIGE_BIN  use this vestige binary instead of building one (optional)
#
# The images are made once (qemu-img convert, ewfacquire) and kept in BENCH_DIR/formats/.
# Each output is compared with the corpus by `cmp` (untimed) and deleted, and each
# `image hash` must give the corpus's SHA-256; exits 1 on a mismatch.
set -euo pipefail

size_mib=${1:-2048}
bench_dir=${BENCH_DIR:-/var/tmp/vestige-bench}
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
mkcorpus="$repo/../shared/bench/mkcorpus.sh"
source "$repo/bench/lib.sh"
need qemu-img:qemu-utils ewfacquire:ewf-tools ewfexport:ewf-tools /usr/bin/time:time openssl:openssl

mkdir -p "$bench_dir/formats"
bench_dir=$(cd "$bench_dir" && pwd)
corpus="$bench_dir/corpus-${size_mib}M.raw"
bash "$mkcorpus" "$corpus" "$size_mib" >&2
vestige_bin

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
fails=0
check() { cmp -s "$out" "$corpus" || { echo "FAIL: $1 output differs from the corpus"; fails=1; }; rm -f "$out"; sync; }

cat "$corpus" "$imgs"/* > /dev/null
want=$(sha256sum "$corpus" | cut -d' ' -f1)
size=$(stat -c %s "$corpus")
# qemu-io reads the whole virtual disk in 256 MiB requests into memory and discards it.
qemu_io_reads=()
for ((at = 0; at < size; at += 256 << 20)); do
  len=$(( size - at < (256 << 20) ? size - at : 256 << 20 ))
  qemu_io_reads+=(-c "read -q $at $len")
done
images=(plain.qcow2 zlib.qcow2 sparse.vmdk stream.vmdk dynamic.vhdx dynamic.vhd dynamic.vdi ewf.E01)

echo "## Image-format read benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPUs; corpus $size_mib MiB; median of $reps runs; $("$vestige" --version); $(qemu-img --version | head -n 1); ewfexport $(ewfexport -V 2>&1 | head -n 1 | awk '{print $2}')"
echo
echo "### Reading every byte"
echo
echo "\`vestige image hash\` decodes on every core and hashes with SHA-256 (and with the hashes an"
echo "E01 stores, to check them: here MD5). qemu-io decodes and discards, hashing nothing; ewfverify"
echo "decodes and hashes MD5 + SHA-1 (\`-d sha1\`)."
echo
echo "| image | image MiB | vestige image hash s | peer | peer s | peer time ÷ vestige time |"
echo "|---|---:|---:|---|---:|---:|"
for img in "${images[@]}"; do
  path="$imgs/$img"
  mib=$(du -m --apparent-size "$path" | cut -f1)
  v=$(timed : "$vestige" image hash "$path") || { echo "FAIL: vestige image hash $img"; fails=1; continue; }
  got=$("$vestige" image hash "$path" 2>/dev/null | sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p')
  [ "$got" = "$want" ] || { echo "FAIL: vestige image hash $img gives $got, the corpus $want"; fails=1; }
  if [ "$img" = ewf.E01 ]; then
    peer="ewfverify -d sha1"
    p=$(timed : ewfverify -q -d sha1 "$path") || { echo "FAIL: ewfverify"; fails=1; continue; }
  else
    peer="qemu-io read"
    p=$(timed : qemu-io -r -f "$(qemu-img info --output=json "$path" | sed -n 's/.*"format": "\([a-z0-9]*\)".*/\1/p' | head -n 1)" "${qemu_io_reads[@]}" "$path") \
      || { echo "FAIL: qemu-io on $img"; fails=1; continue; }
  fi
  echo "| $img | $mib | $v | $peer | $p | $(ratio "$p" "$v") |"
done

echo
echo "### Exporting to a raw file"
echo
echo "Both sides leave zeros as holes. \`vestige export raw\` also hashes what it writes"
echo "(SHA-256, and MD5 for the E01, which stores it); qemu-img and ewfexport hash nothing,"
echo "so the last columns add what an examiner runs next to document the output: \`openssl"
echo "dgst -sha256\` (SHA-NI, the fastest SHA-256 here) of the raw file (\`-md5\` too for the E01)."
echo
echo "| image | vestige export raw s | peer | peer s | peer ÷ vestige | peer + hash s | (peer + hash) ÷ vestige |"
echo "|---|---:|---|---:|---:|---:|---:|"
for img in "${images[@]}"; do
  path="$imgs/$img"
  v=$(timed 'rm -f "$out"' "$vestige" export raw "$path" "$out") || { echo "FAIL: vestige on $img"; fails=1; continue; }
  check "vestige $img"
  if [ "$img" = ewf.E01 ]; then
    peer="ewfexport"
    # ewfexport -t T writes T.raw, which is $out.
    p=$(timed 'rm -f "$out"' ewfexport -u -q -t "${out%.raw}" -f raw "$path") || { echo "FAIL: ewfexport"; fails=1; continue; }
  else
    peer="qemu-img convert -O raw"
    p=$(timed 'rm -f "$out"' qemu-img convert -O raw "$path" "$out") || { echo "FAIL: qemu-img on $img"; fails=1; continue; }
  fi
  h=$(timed : openssl dgst -sha256 "$out")
  if [ "$img" = ewf.E01 ]; then
    h=$(awk -v a="$h" -v b="$(timed : openssl dgst -md5 "$out")" 'BEGIN{ printf "%.2f", a + b }')
  fi
  ph=$(awk -v a="$p" -v b="$h" 'BEGIN{ printf "%.2f", a + b }')
  check "$peer $img"
  echo "| $img | $v | $peer | $p | $(ratio "$p" "$v") | $ph | $(ratio "$ph" "$v") |"
done

echo
echo "### Writing an E01"
echo
echo "The raw corpus into an EnCase 6 E01, deflate fast, MD5 and SHA-1 stored, one segment:"
echo "\`vestige export e01\` (compresses on every core) against \`ewfacquire -c deflate:fast -d sha1\`."
echo "\`ewfverify\` must accept both (untimed)."
echo
echo "| source | vestige export e01 s | E01 MiB | ewfacquire s | E01 MiB | ewfacquire time ÷ vestige time |"
echo "|---|---:|---:|---:|---:|---:|"
e01="$bench_dir/formats-out"
v=$(timed 'rm -f "$e01".E01' "$vestige" export e01 "$corpus" "$e01.E01" --segment-mib 8192) || { echo "FAIL: vestige export e01"; fails=1; }
vmib=$(du -m --apparent-size "$e01.E01" | cut -f1)
ewfverify -q "$e01.E01" > /dev/null || { echo "FAIL: ewfverify rejects vestige's E01"; fails=1; }
p=$(timed 'rm -f "$e01".E01' ewfacquire -u -q -t "$e01" -c deflate:fast -d sha1 -S 8GiB -C BENCH -e bench -E 1 -D bench -N bench "$corpus") \
  || { echo "FAIL: ewfacquire"; fails=1; }
pmib=$(du -m --apparent-size "$e01.E01" | cut -f1)
ewfverify -q "$e01.E01" > /dev/null || { echo "FAIL: ewfverify rejects ewfacquire's E01"; fails=1; }
rm -f "$e01".E01
echo "| corpus ($size_mib MiB raw) | $v | $vmib | $p | $pmib | $(ratio "$p" "$v") |"
exit $fails
