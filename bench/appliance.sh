#!/usr/bin/env bash
# Appliance benchmark (issue 4, "Prove it"): image sizes, boot to ready under QEMU, and the
# in-VM acquisition of a virtio target against the same acquisition run on the host.
#
# Usage: bench/appliance.sh
#   SIZE           target size in MiB (default 1024): the shared corpus, ../shared/bench/mkcorpus.sh
#   BENCH_DIR      work dir for the corpus and the disks (default /var/tmp/vestige-bench)
#   REPS           boots and host acquisitions; the best (shortest) time is reported (default 1)
#   APPLIANCE_DIR  use these prebuilt vmlinuz/initramfs.img/… instead of `cargo xtask appliance`
#   VESTIGE_BIN    use this host vestige binary instead of building one (release)
#   ACCEL          tcg, kvm or auto (default): KVM only when a probe boot under it reaches the
#                  kernel banner (some nested hypervisors open /dev/kvm and then fail or hang)
#   VM_TIMEOUT     seconds before a boot is killed (default 900)
#
# The VM: direct kernel boot, -m 1024 -smp 2, the corpus attached virtio readonly=on (vda),
# an evidence disk (2 GiB sparse, GPT partition VESTIGE-EVIDENCE, ext4 made in place) as vdb;
# the kernel command line runs an unattended acquisition of every disk into case BENCH.
# Every console line is stamped with the host clock as it arrives (boot to ready is measured
# from QEMU's start); the acquisition is timed by the appliance's own console timestamps.
# Afterwards the evidence is read back with debugfs (no mount) and checked with
# `vestige verify`; the corpus must still hash the same. The host run is
# `vestige acquire disk CORPUS` with the page cache warm.
# Exits 1 if a correctness check fails; targets that are not met are reported but do not
# change the exit status.
set -euo pipefail
export LC_ALL=C   # '.' decimals in $EPOCHREALTIME and awk

size_mib=${SIZE:-1024}
bench_dir=${BENCH_DIR:-/var/tmp/vestige-bench}
reps=${REPS:-1}
accel_req=${ACCEL:-auto}
vm_timeout=${VM_TIMEOUT:-900}
[[ $size_mib =~ ^[0-9]+$ ]] && [ "$size_mib" -ge 256 ] || { echo "SIZE must be a number of MiB ≥ 256" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "REPS must be a positive integer" >&2; exit 2; }
[[ $accel_req =~ ^(auto|tcg|kvm)$ ]] || { echo "ACCEL must be auto, tcg or kvm" >&2; exit 2; }
[[ $vm_timeout =~ ^[1-9][0-9]*$ ]] || { echo "VM_TIMEOUT must be a number of seconds" >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "needs bash ≥ 5 (\$EPOCHREALTIME)" >&2; exit 2; }

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
mkcorpus="$repo/../shared/bench/mkcorpus.sh"
[ -f "$mkcorpus" ] || { echo "missing $mkcorpus" >&2; exit 2; }

exec 3>&2
log() { echo "== $*" >&3; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a - b}'; }
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }

# ---- 1. host tools ----------------------------------------------------------------------
qemu=qemu-system-x86_64
need=()
for pair in $qemu:qemu-system-x86 sgdisk:gdisk mkfs.ext4:e2fsprogs debugfs:e2fsprogs \
            dumpe2fs:e2fsprogs openssl:openssl timeout:coreutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2; }
fi

# ---- 2. build ---------------------------------------------------------------------------
if [ -n "${APPLIANCE_DIR:-}" ]; then
  app=$(cd "$APPLIANCE_DIR" && pwd)
  log "using prebuilt appliance $app (APPLIANCE_DIR); not building"
else
  log "building the appliance (cargo xtask appliance)"
  b0=$EPOCHREALTIME
  (cd "$repo" && cargo xtask appliance >&2)
  log "appliance built in $(sub "$EPOCHREALTIME" "$b0") s"
  app="$repo/target/appliance"
fi
if [ -n "${VESTIGE_BIN:-}" ]; then
  vestige=$VESTIGE_BIN
  log "using prebuilt $vestige (VESTIGE_BIN); not building"
else
  log "building vestige (release)"
  (cd "$repo" && cargo build --release -q -p vestige-cli >&2)
  vestige="$repo/target/release/vestige"
fi

# ---- 3. the target ----------------------------------------------------------------------
# mkcorpus.sh's recipe with its sizes scaled to SIZE (p1 ext4 3/4 of the disk, filled to about
# 70 % from /usr/bin then /usr/share in path order; p2 200/2048 of it pseudo-random; the rest
# zeros; the same fixed GUIDs and cipher). For sizes the shared script's fixed layout
# (1536 MiB + 200 MiB) does not fit in.
mk_corpus_scaled() { # OUT SIZE_MIB
  local out=$1 size=$2 tmp p1 p2 budget p2start
  p1=$((size * 3 / 4)); p2=$((size * 200 / 2048)); budget=$((p1 * 7 / 10))
  tmp=$(mktemp -d)
  rm -f "$out"; truncate -s "${size}M" "$out"
  (cd /usr && find bin share -type f -printf '%s %p\n' 2>/dev/null) | sort -k2 \
    | awk -v b=$((budget << 20)) 'full { next } { t += int(($1 + 4095) / 4096) * 4096 }
                                  t > b { full = 1; next } { sub(/^[0-9]+ /, ""); print }' > "$tmp/list"
  mkdir "$tmp/root"
  tar -C /usr -cf - -T "$tmp/list" | tar -C "$tmp/root" -xf -
  mkfs.ext4 -q -F -E offset=$((2048 * 512)),lazy_itable_init=0,lazy_journal_init=0 \
    -U 5e1f0000-0000-4000-8000-000000000004 -d "$tmp/root" "$out" "${p1}M"
  rm -rf "$tmp"
  sgdisk -o -U 5e1f0000-0000-4000-8000-000000000001 \
    -n 1:2048:+${p1}M -t 1:8300 -u 1:5e1f0000-0000-4000-8000-000000000002 \
    -n 2:0:+${p2}M -t 2:8300 -u 2:5e1f0000-0000-4000-8000-000000000003 "$out" >/dev/null
  p2start=$(sgdisk -i 2 "$out" | awk '/First sector/ {print $3}')
  head -c $((p2 * 1024 * 1024)) /dev/zero \
    | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 \
    | dd of="$out" bs=1M seek=$((p2start * 512)) oflag=seek_bytes conv=notrunc status=none
}

mkdir -p "$bench_dir"
bench_dir=$(cd "$bench_dir" && pwd)
corpus="$bench_dir/corpus-${size_mib}M.raw"
log "corpus $corpus"
if ! bash "$mkcorpus" "$corpus" "$size_mib" >"$bench_dir/mkcorpus.log" 2>&1 \
   || [ "$(stat -c %s "$corpus" 2>/dev/null || echo 0)" -ne $((size_mib << 20)) ]; then
  log "mkcorpus.sh cannot make a ${size_mib} MiB corpus ($(tail -n 1 "$bench_dir/mkcorpus.log")); scaling its recipe"
  mk_corpus_scaled "$corpus" "$size_mib"
fi
corpus_bytes=$(stat -c %s "$corpus")
corpus_layout=$(sgdisk -p "$corpus" 2>/dev/null | awk '/^ +[0-9]+ / {printf "%sp%s %s %s", sep, $1, $4, $5; sep = ", "}')

# ---- 4. KVM or TCG ----------------------------------------------------------------------
work="$bench_dir/appliance.$$"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
# A snapshot of the appliance: another build into target/appliance must not change it mid-run.
# Sizes are taken from the build's own files (apparent bytes, and bytes allocated on disk).
declare -A fbytes falloc
mkdir "$work/appliance"
for f in vmlinuz initramfs.img vestige.efi vestige-usb.img vestige.iso build-info.json; do
  [ -f "$app/$f" ] || { [ "$f" = build-info.json ] && continue; echo "missing $app/$f" >&2; exit 2; }
  read -r fb fblocks fbs < <(stat -c '%s %b %B' "$app/$f")
  fbytes[$f]=$fb; falloc[$f]=$((fblocks * fbs))
  cp "$app/$f" "$work/appliance/$f"
done
app_src=$app; app="$work/appliance"

accel=tcg
accel_note="TCG (requested)"
if [ "$accel_req" != tcg ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    # A kernel with no init panics at once and, with panic=-1 and -no-reboot, QEMU exits.
    log "probing KVM"
    # (in a subshell, so that its "Aborted" for a QEMU that crashes goes to the log too)
    ( timeout --kill-after=5 20 $qemu -accel kvm -cpu host -m 256 -nodefaults -nographic -serial stdio \
      -no-reboot -kernel "$app/vmlinuz" -append 'console=ttyS0 panic=-1 rdinit=/nonexistent' \
      </dev/null || true ) >"$work/kvm-probe.log" 2>&1
    if grep -q 'Linux version' "$work/kvm-probe.log"; then
      accel=kvm; accel_note="KVM"
    else
      accel_note="TCG: KVM does not work here ($(grep -m 1 -v '^$' "$work/kvm-probe.log" | cut -c 1-120 || echo 'no kernel banner within 20 s'))"
    fi
  else
    accel_note="TCG: /dev/kvm cannot be opened"
  fi
  [ "$accel_req" = kvm ] && [ "$accel" != kvm ] && { echo "ACCEL=kvm but $accel_note" >&2; exit 2; }
fi
accel_args=(-accel tcg)
[ "$accel" = kvm ] && accel_args=(-accel kvm -cpu host)
log "accelerator: $accel_note"

# ---- 5. measure -------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming the page cache"
cat "$corpus" > /dev/null
ref_sha=$(sha256sum "$corpus" | cut -d' ' -f1)

fails=()
fail() { echo "FAIL: $*" >&3; fails+=("$*"); }
qesc() { printf '%s' "${1//,/,,}"; }   # a QEMU option value: commas doubled

# The evidence disk, as qemu-tests/src/disk.rs make_evidence_disk makes it.
make_evidence_disk() { # PATH SIZE_MIB
  rm -f "$1"; truncate -s "$2M" "$1"
  sgdisk -o -n 1:2048:0 -t 1:8300 -c 1:VESTIGE-EVIDENCE "$1" >/dev/null
  mkfs.ext4 -q -F -L VESTIGE -E offset=1048576,nodiscard "$1" "$(($2 - 2))M"
}

# stamp: prefixes each line with the host clock as it arrives (carriage returns dropped)
stamp() { local l; while IFS= read -r l || [ -n "$l" ]; do printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"; done; }
# at LOG NEEDLE: "HOST_SECONDS GUEST_SECONDS" of the first line containing NEEDLE (guest: the
# "[   t.ttt]" prefix, empty if none); nothing when no line has it
at() {
  awk -v n="$2" 'index($0, n) {
      g = ""; if (match($0, /^[0-9.]+ \[ *[0-9]+\.[0-9]+\]/)) { g = substr($0, RSTART, RLENGTH);
        sub(/^[0-9.]+ \[ */, "", g); sub(/\]$/, "", g) }
      print $1, g; exit }' "$1"
}
best() { # VAR VALUE: VAR = min(VAR, VALUE)
  if [ -z "${!1:-}" ] || awk -v a="$2" -v b="${!1}" 'BEGIN{exit !(a < b)}'; then printf -v "$1" '%s' "$2"; fi
}

cmdline="console=ttyS0 panic=-1 vestige.run=acquire vestige.targets=all vestige.case=BENCH vestige.examiner=bench"
ev="$work/evidence.raw"
evidence_mib=2048
ready_s="" acq_s="" data_s="" total_s="" host_s="" vm_verify_s="" keygen_s="" ready_guest=""
all_ready=() all_acq=() all_host=()
for ((r = 1; r <= reps; r++)); do
  log "rep $r/$reps: boot ($accel)"
  make_evidence_disk "$ev" "$evidence_mib"
  con="$work/console.$r.log"
  t0=$EPOCHREALTIME
  set +e
  timeout --kill-after=10 "$vm_timeout" $qemu "${accel_args[@]}" -machine pc -m 1024 -smp 2 \
    -nographic -nodefaults -serial stdio -no-reboot \
    -kernel "$app/vmlinuz" -initrd "$app/initramfs.img" -append "$cmdline" \
    -drive "file=$(qesc "$corpus"),format=raw,if=virtio,readonly=on" \
    -drive "file=$(qesc "$ev"),format=raw,if=virtio" \
    </dev/null 2>"$work/qemu.err" | stamp > "$con"
  q_rc=${PIPESTATUS[0]}
  set -e
  t_end=$EPOCHREALTIME
  cp "$con" "$bench_dir/appliance-console.log"   # kept for reading after the run
  s=$(sub "$t_end" "$t0"); best total_s "$s"
  log "QEMU ran ${s} s (exit $q_rc); console in $bench_dir/appliance-console.log"
  [ "$q_rc" -eq 0 ] || fail "QEMU exited $q_rc ($( [ "$q_rc" -eq 124 ] && echo "killed after ${vm_timeout} s"; head -c 300 "$work/qemu.err" | tr '\n' ' '))"
  grep -q 'reboot: Power down' "$con" || fail "the appliance did not power off by itself"
  ! grep -q 'Kernel panic' "$con" || fail "kernel panic (see $bench_dir/appliance-console.log)"

  read -r h g < <(at "$con" "vestige-init: ready") || true
  if [ -n "${h:-}" ]; then
    s=$(sub "$h" "$t0"); best ready_s "$s"; all_ready+=("$s"); ready_guest=$g
    log "ready ${s} s after QEMU started (init's clock: ${g} s)"
    # where the boot's time goes (host clock since QEMU started), for the last rep
    boot_split=""
    for mark in "SeaBIOS|first console line (SeaBIOS)" "Linux version|kernel banner" \
                "Freeing unused kernel image (initmem)|kernel done, init starts" \
                "vestige-init: ready|ready"; do
      read -r hm _ < <(at "$con" "${mark%%|*}") || true
      [ -n "${hm:-}" ] && boot_split+="${boot_split:+ → }${mark#*|} $(sub "$hm" "$t0") s"
    done
  else
    fail "no \"vestige-init: ready\" on the console"
  fi
  read -r h1 g1 < <(at "$con" "vestige-init: running: vestige acquire disk") || true
  read -r h2 g2 < <(at "$con" "vestige-init: acquired:") || true
  if [ -n "${g1:-}" ] && [ -n "${g2:-}" ]; then
    s=$(sub "$g2" "$g1"); best acq_s "$s"; all_acq+=("$s")
    log "in-VM acquisition ${s} s (console; host clock $(sub "$h2" "$h1") s)"
    read -r _ g3 < <(at "$con" "acquisition started") || true
    read -r _ g4 < <(at "$con" " bytes; SHA-256 ") || true
    [ -n "${g3:-}" ] && [ -n "${g4:-}" ] && best data_s "$(sub "$g4" "$g3")"
    read -r _ g5 < <(at "$con" "generated a per-case signing key") || true
    [ -n "${g5:-}" ] && keygen_s=$(sub "$g5" "$g1")
  else
    fail "no acquisition on the console (\"running: vestige acquire disk\" … \"acquired:\")"
  fi
  read -r _ g6 < <(at "$con" "vestige-init: running: vestige verify") || true
  read -r _ g7 < <(at "$con" "vestige-init: power off") || true
  [ -n "${g6:-}" ] && [ -n "${g7:-}" ] && vm_verify_s=$(sub "$g7" "$g6")
  grep -q 'vestige-init: acquired: vda; incomplete: none; failed: none' "$con" || fail "the appliance did not acquire vda alone: $(grep -m 1 'vestige-init: acquired:' "$con" | cut -d' ' -f2-)"
  vm_sha=$(sed -n 's/.*acquired [0-9]* bytes; SHA-256 \([0-9a-f]*\).*/\1/p' "$con" | head -n 1)
  [ "$vm_sha" = "$ref_sha" ] || fail "in-VM sha256 ${vm_sha:-none} != sha256sum $ref_sha"

  # The evidence, read back without mounting.
  log "checking the evidence from the host"
  state=$(dumpe2fs -h "$ev?offset=1048576" 2>/dev/null | sed -n 's/^Filesystem state: *//p')
  [ "$state" = clean ] || fail "evidence file system state ${state:-unreadable}, not clean"
  dumpe2fs -h "$ev?offset=1048576" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery' \
    && fail "evidence file system needs journal recovery (not unmounted cleanly)"
  out="$work/extracted.$r"; mkdir -p "$out"
  debugfs -R "rdump /BENCH $out" "$ev?offset=1048576" >"$work/debugfs.log" 2>&1 || true
  if [ -d "$out/BENCH/vda" ]; then
    if "$vestige" verify "$out/BENCH" >"$work/verify.out" 2>&1; then
      log "vestige verify: $(grep -m 1 'VERIFIED' "$work/verify.out" || echo ok)"
    else
      fail "vestige verify of the in-VM evidence: $(tail -n 3 "$work/verify.out" | tr '\n' ' ')"
    fi
    grep -q "\"sha256\": *\"$ref_sha\"" "$out/BENCH/vda/manifest.json" \
      || fail "the in-VM manifest does not carry the corpus sha256"
    [ -e "$out/BENCH/vdb" ] && fail "the evidence disk vdb was acquired as a target"
    vm_image=$(stat -c %s "$out/BENCH/vda/image.zst")
  else
    fail "no BENCH/vda on the evidence disk ($(tail -n 2 "$work/debugfs.log" | tr '\n' ' '))"
  fi
  rm -rf "$out" "$ev"
  after_sha=$(sha256sum "$corpus" | cut -d' ' -f1)
  [ "$after_sha" = "$ref_sha" ] || fail "the corpus changed during the boot: $after_sha != $ref_sha"

  # The same acquisition on the host.
  log "rep $r/$reps: host acquisition"
  cat "$corpus" > /dev/null
  "$vestige" case init "$work/case" --case-id BENCH --examiner bench >/dev/null 2>&1
  t1=$EPOCHREALTIME
  if VESTIGE_KEY_DIR="$work/keys" "$vestige" acquire disk "$corpus" --case "$work/case" --item host \
       </dev/null >"$work/host.json" 2>"$work/host.err"; then
    s=$(sub "$EPOCHREALTIME" "$t1"); best host_s "$s"; all_host+=("$s")
    log "host acquisition ${s} s"
    h_sha=$(sed -n 's/.*"sha256": *"\([0-9a-f]*\)".*/\1/p' "$work/host.json")
    [ "$h_sha" = "$ref_sha" ] || fail "host sha256 ${h_sha:-none} != sha256sum $ref_sha"
    host_image=$(stat -c %s "$work/case/host/image.zst")
  else
    fail "host vestige acquire exited non-zero: $(tail -n 3 "$work/host.err" | tr '\n' ' ')"
  fi
  rm -rf "$work/case" "$work/keys"; sync
done

# ---- 6. report --------------------------------------------------------------------------
mbps() { awk -v b="$corpus_bytes" -v s="$1" 'BEGIN{ if (s > 0) printf "%.1f", b / s / 1e6; else print "—" }'; }
verdict() { awk "BEGIN{exit !($1)}" && echo MET || echo "NOT MET"; }
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
echo
echo "## Vestige appliance benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -srm)"
echo "- CPU: ${cpu:-unknown}; nproc: $(nproc); memory: $mem"
echo "- QEMU: $($qemu --version | head -n 1); accelerator: $accel_note"
if [ -n "${APPLIANCE_DIR:-}" ]; then
  echo "- appliance: prebuilt $app_src"
else
  echo "- appliance: cargo xtask appliance at commit $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- init image tools 2>/dev/null || echo ', work tree modified')"
fi
echo "- kernel $(sed -n 's/.*"kernel_release": *"\([^"]*\)".*/\1/p' "$app/build-info.json" 2>/dev/null | head -n 1); VM: -m 1024 -smp 2, direct kernel boot; target virtio readonly=on, evidence disk virtio (${evidence_mib} MiB sparse, ext4)"
echo "- target: $corpus ($corpus_bytes bytes; GPT: $corpus_layout; the rest zeros), host page cache warm; sha256 $ref_sha"
echo "- load average (1/5/15 min) before: $load_start; after: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) CPUs; \"after\" counts this run's own QEMU; above ~1 before means other work was competing)"
echo "- REPS=$reps (best time reported)"
echo
echo "### Images"
echo
echo "| file | bytes | MiB | allocated MiB |"
echo "|---|---:|---:|---:|"
for f in vmlinuz initramfs.img vestige.efi vestige-usb.img vestige.iso; do
  echo "| $f | ${fbytes[$f]} | $(mib "${fbytes[$f]}") | $(mib "${falloc[$f]}") |"
done
usb_layout=$(sgdisk -p "$app/vestige-usb.img" 2>/dev/null \
  | awk '/^ +[0-9]+ / {n = $7; for (i = 8; i <= NF; i++) n = n " " $i; printf "%s%s %s %s", sep, n, $4, $5; sep = ", "}')
echo
echo "vestige-usb.img partitions: ${usb_layout:-unreadable}."
echo
echo "### Results"
echo
echo "| measure | value | target | verdict |"
echo "|---|---:|---|---|"
if [ -n "$ready_s" ]; then
  echo "| boot to ready, QEMU start → \"vestige-init: ready\" ($accel) | ${ready_s} s | ≤ 8 s | $(verdict "$ready_s <= 8") |"
else
  echo "| boot to ready ($accel) | — | ≤ 8 s | NOT MEASURED |"
fi
ib=${fbytes[initramfs.img]}
echo "| initramfs.img size | $(mib "$ib") MiB | ≤ 64 MiB | $(verdict "$ib <= 64 * 1048576") |"
ub=${fbytes[vestige-usb.img]} ua=${falloc[vestige-usb.img]}
echo "| vestige-usb.img size, apparent / allocated | $(mib "$ub") / $(mib "$ua") MiB | ≤ 64 MiB | apparent $(verdict "$ub <= 64 * 1048576"), allocated $(verdict "$ua <= 64 * 1048576") |"
if [ -n "$acq_s" ]; then
  echo "| in-VM acquisition of the $size_mib MiB virtio target ($accel) | $(mbps "$acq_s") MB/s (${acq_s} s) | — | — |"
else
  echo "| in-VM acquisition ($accel) | — | — | NOT MEASURED |"
fi
if [ -n "$host_s" ]; then
  echo "| host acquisition, same target | $(mbps "$host_s") MB/s (${host_s} s) | — | — |"
else
  echo "| host acquisition | — | — | NOT MEASURED |"
fi
if [ -n "$acq_s" ] && [ -n "$host_s" ]; then
  echo "| in-VM ÷ host throughput | $(awk -v v="$acq_s" -v h="$host_s" 'BEGIN{printf "%.3f (%.1f %%)", h / v, 100 * h / v}') | — | — |"
fi
echo
echo "Details:"
[ -n "$total_s" ] && echo "- QEMU total (start → exit after power off): ${total_s} s"
[ -n "$ready_guest" ] && echo "- init's own clock at \"ready\" (from PID 1's start): ${ready_guest} s"
[ -n "${boot_split:-}" ] && echo "- boot, host clock since QEMU started: $boot_split"
[ -n "$acq_s" ] && echo "- in-VM acquisition is timed on the appliance's console, \"running: vestige acquire disk\" → \"vestige-init: acquired:\"; it includes generating the per-case signing key (${keygen_s:-?} s in the VM)"
[ -n "$data_s" ] && echo "- in-VM data phase alone (\"acquisition started\" → \"acquired N bytes\"): ${data_s} s, $(mbps "$data_s") MB/s"
[ -n "$vm_verify_s" ] && echo "- in-VM \`vestige verify\` of the case (\"running: vestige verify\" → \"power off\"): ${vm_verify_s} s"
[ -n "${vm_image:-}" ] && [ -n "${host_image:-}" ] && echo "- image.zst: in VM $vm_image bytes, on host $host_image bytes"
if [ "$reps" -gt 1 ]; then
  echo "- all runs (seconds): ready ${all_ready[*]:-—}; in-VM acquisition ${all_acq[*]:-—}; host acquisition ${all_host[*]:-—}"
fi
echo "- console of the last boot: $bench_dir/appliance-console.log"
if [ "$accel" = tcg ]; then
  echo "- note: under TCG QEMU emulates the guest CPU instruction by instruction (no KVM here), so the"
  echo "  in-VM throughput — hashing and compression run in the emulated CPU — is a lower bound for the"
  echo "  appliance on real hardware or under KVM; the boot time is likewise a TCG figure."
fi
echo "- note: the host page cache holds the corpus, so QEMU's virtio reads come from memory (as do the host run's)"

if [ ${#fails[@]} -gt 0 ]; then
  echo
  for f in "${fails[@]}"; do echo "- FAIL: $f"; done
  echo "correctness: ${#fails[@]} FAIL(s)"
  exit 1
fi
echo "- correctness: the appliance powered off by itself; the in-VM image's sha256 (console and manifest) and the host run's equal sha256sum of the corpus; \`vestige verify\` passed on the evidence read back with debugfs; the evidence file system is clean; the corpus is unchanged after the boot"
