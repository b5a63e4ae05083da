#!/usr/bin/env bash
# Memory acquisition benchmark (issue 5, "Prove it"): vestige against AVML (built from
# crates.io) inside the same QEMU guest, on the same memory, writing to the same disk.
#
# Usage: bench/memory.sh
#   GUEST_MIB      guest RAM in MiB (default 1024)
#   REPS           runs of each tool inside the one boot; the best is reported (default 2)
#   APPLIANCE_DIR  prebuilt appliance (default target/appliance; built if missing)
#   ACCEL          tcg (default) or kvm
#
# The guest: Debian's kernel with the appliance's initramfs and a busybox /init (the same
# suspect VM as qemu-tests/tests/live_memory.rs). Each run reads all of RAM from
# /proc/kcore onto a virtio ext4 disk:
#   avml           raw LiME, no hashing
#   avml-snappy    avml --compress (snappy-framed LiME), no hashing
#   vestige        seekable-zstd LiME (level 3) + SHA-256 + per-chunk BLAKE3 + signature
#   vestige-l1     the same at zstd level 1
# Times come from the guest's /proc/uptime around each command; the output is deleted
# after each run so every run finds the same free space. Under TCG the CPU is emulated:
# ratios between tools mean more than absolute numbers.
set -euo pipefail
export LC_ALL=C

guest_mib=${GUEST_MIB:-1024}
reps=${REPS:-2}
accel=${ACCEL:-tcg}
[[ $guest_mib =~ ^[0-9]+$ ]] && [ "$guest_mib" -ge 256 ] || { echo "GUEST_MIB must be ≥ 256" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "REPS must be a positive integer" >&2; exit 2; }

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
appliance=${APPLIANCE_DIR:-$repo/target/appliance}
work=$(mktemp -d /var/tmp/vestige-membench.XXXXXX)
trap 'rm -rf "$work"' EXIT

for tool in qemu-system-x86_64 cpio zstd mkfs.ext4 debugfs; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[ -x /bin/busybox ] || { echo "missing /bin/busybox (apt-get install busybox-static)" >&2; exit 2; }
if [ ! -f "$appliance/initramfs.img" ]; then
    (cd "$repo" && cargo xtask appliance)
fi
avml="$repo/target/bench-tools/bin/avml"
if [ ! -x "$avml" ]; then
    echo "building AVML (static) from crates.io …" >&2
    RUSTFLAGS="-C target-feature=+crt-static" cargo install avml --quiet --locked \
        --no-default-features --target x86_64-unknown-linux-gnu --root "$repo/target/bench-tools"
fi
avml_version=$("$avml" --version)

mkdir -p "$work/ov/bin"
cp /bin/busybox "$work/ov/bin/busybox"
cp "$avml" "$work/ov/bin/avml"
cat > "$work/ov/init" <<EOF
#!/bin/busybox sh
B=/bin/busybox
\$B mkdir -p /proc /sys /dev /mnt /run
\$B mount -t proc proc /proc
\$B mount -t sysfs sys /sys
\$B mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do \$B modprobe \$m; done
n=0; while [ ! -b /dev/vda ] && [ \$n -lt 50 ]; do \$B sleep 0.2; n=\$((n+1)); done
\$B mount -t ext4 /dev/vda /mnt
/bin/vestige key generate /run/k >/dev/null
/bin/vestige case init /mnt/case --case-id BENCH --examiner bench >/dev/null
\$B grep "^[0-9a-f]*-[0-9a-f]* : System RAM" /proc/iomem | while read r _; do echo "BENCH iomem \$r"; done
timed() {
    name=\$1; out=\$2; shift 2
    read t0 _ < /proc/uptime
    "\$@" >/dev/null 2>/mnt/\$name.log
    rc=\$?
    \$B sync
    read t1 _ < /proc/uptime
    size=\$(\$B du -sb \$out | \$B cut -f1)
    echo "BENCH run \$name \$t0 \$t1 \$size \$rc"
    \$B rm -rf \$out
}
for i in \$(\$B seq $reps); do
    timed avml /mnt/avml.lime /bin/avml acquire --source /proc/kcore /mnt/avml.lime
    timed avml-snappy /mnt/avml.snappy /bin/avml acquire --compress --source /proc/kcore /mnt/avml.snappy
    timed vestige /mnt/case/mem\$i /bin/vestige acquire memory --method kcore --case /mnt/case --item mem\$i --key /run/k.sec
    timed vestige-l1 /mnt/case/fast\$i /bin/vestige acquire memory --method kcore --level 1 --case /mnt/case --item fast\$i --key /run/k.sec
done
echo "BENCH done"
\$B umount /mnt
\$B poweroff -f
EOF
chmod 755 "$work/ov/init"
(cd "$work/ov" && find . | sort | cpio -o -H newc --quiet) > "$work/ov.cpio"
zstd -dc "$appliance/initramfs.img" > "$work/initrd"
cat "$work/ov.cpio" >> "$work/initrd"
truncate -s $((guest_mib * 3 + 1024))M "$work/evidence.raw"
mkfs.ext4 -q -F "$work/evidence.raw"

accel_args=(-accel tcg)
[ "$accel" = kvm ] && accel_args=(-accel kvm -cpu host)
timeout 3600 qemu-system-x86_64 "${accel_args[@]}" -machine pc -m "$guest_mib" -smp 2 \
    -nodefaults -nographic -serial stdio -no-reboot \
    -kernel "$appliance/vmlinuz" -initrd "$work/initrd" \
    -append "console=ttyS0 panic=-1 quiet" \
    -drive "file=$work/evidence.raw,format=raw,if=virtio" > "$work/console.log" 2>&1 || true
grep -q "BENCH done" "$work/console.log" || { tail -30 "$work/console.log"; echo "the guest did not finish" >&2; exit 1; }

ram=0
while read -r _ _ range; do
    range=${range%$'\r'}
    ram=$((ram + 16#${range#*-} - 16#${range%-*} + 1))
done < <(grep "BENCH iomem" "$work/console.log")
[ "$ram" -gt 0 ] || { echo "no System RAM ranges on the console" >&2; exit 1; }
echo "guest: ${guest_mib} MiB (System RAM ${ram} bytes), $accel, ${reps} run(s) each, best shown; $avml_version"
awk -v ram="$ram" '
/BENCH run/ {
    gsub("\r", "")
    name = $3; t = $5 - $4; size = $6; rc = $7
    if (rc != 0) { failed[name] = 1 }
    if (!(name in best) || t < best[name]) { best[name] = t; sz[name] = size }
}
END {
    for (n in best) {
        mbs = ram / best[n] / 1e6
        printf "%-12s %9.2f %9.1f %11.1f%% %8.2fx%s\n", n, best[n], mbs, 100 * sz[n] / ram, best["avml"] / best[n], (n in failed) ? "  (FAILED)" : ""
    }
}' "$work/console.log" | sort | { printf "%-12s %9s %9s %12s %9s\n" tool seconds MB/s output "vs avml"; cat; }
