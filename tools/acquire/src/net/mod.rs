//! `capture net`: packets of one interface into a signed pcapng item, with an AF_PACKET
//! socket (no libpcap). Each packet is timestamped by the kernel on receipt
//! (SO_TIMESTAMPNS) and kept up to the snap length with its length on the wire.
//!
//! On the loopback interface every packet passes twice (sent, then received); like
//! libpcap, only the received copy is kept.

pub mod pcapng;

use crate::disk::{check_item_name, source_io_err, AcquireError};
use crate::host;
use crate::seal::{self, ItemContext, ListedFile};
use nix::sys::socket::{
    recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{IoSliceMut, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vestige_evidence::custody::now_utc_rfc3339;
use vestige_evidence::manifest::{
    AcquisitionInfo, CaptureInfo, ChunkDigests, Manifest, OutputFile, SourceHashes, SourceIdentity,
    Status, WriteProtection, MANIFEST_FORMAT, NETWORK_CAPTURE_KIND,
};

/// The capture file inside the item.
pub const CAPTURE_FILE: &str = "capture.pcapng";
/// ARPHRD_ETHER and ARPHRD_LOOPBACK: both carry Ethernet headers on Linux.
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;
/// PACKET_OUTGOING in sockaddr_ll's sll_pkttype.
const PACKET_OUTGOING: u8 = 4;

/// What to capture and where it goes.
#[derive(Debug)]
pub struct NetRequest<'a> {
    /// The case, item, examiner and key.
    pub ctx: ItemContext<'a>,
    /// The interface, e.g. "eth0".
    pub interface: &'a str,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Bytes kept of each packet.
    pub snap_len: u32,
}

/// The outcome of a capture that produced an item.
#[derive(Debug)]
pub struct NetOutcome {
    /// The item directory.
    pub item_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
}

fn errno_source<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(nix::Error) -> AcquireError + 'a {
    move |e| source_io_err(path, what)(std::io::Error::from(e))
}

/// Captures packets into a new item of the case.
pub fn capture_net(req: &NetRequest<'_>, cancel: &AtomicBool) -> Result<NetOutcome, AcquireError> {
    check_item_name(req.ctx.item)?;
    let iface_path = PathBuf::from(format!("/sys/class/net/{}", req.interface));
    if req.interface.contains('/') || !iface_path.exists() {
        return Err(source_io_err(&iface_path, "find the interface")(
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such network interface"),
        ));
    }
    let arphrd: u32 = std::fs::read_to_string(iface_path.join("type"))
        .map_err(source_io_err(&iface_path, "read its link type"))?
        .trim()
        .parse()
        .unwrap_or(0);
    if arphrd != ARPHRD_ETHER && arphrd != ARPHRD_LOOPBACK {
        return Err(source_io_err(&iface_path, "capture it")(
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("link type {arphrd} (only Ethernet and loopback are supported)"),
            ),
        ));
    }
    let ifindex = nix::net::if_::if_nametoindex(req.interface)
        .map_err(errno_source(&iface_path, "find its index"))?;
    let ifindex = usize::try_from(ifindex).unwrap_or(usize::MAX);
    let sock = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(errno_source(
        &iface_path,
        "open an AF_PACKET socket (root needed)",
    ))?;
    setsockopt(&sock, sockopt::ReceiveTimestampns, &true)
        .map_err(errno_source(&iface_path, "ask for kernel timestamps"))?;
    setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000))
        .map_err(errno_source(&iface_path, "set a receive timeout"))?;

    let out_err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| AcquireError::Output { path, what, source }
    };
    let (item_dir, file) = req.ctx.create_item_with_file(CAPTURE_FILE)?;
    let path = item_dir.join(CAPTURE_FILE);
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut write = |bytes: &[u8]| -> std::io::Result<()> {
        out.write_all(bytes)?;
        hasher.update(bytes);
        size += bytes.len() as u64;
        Ok(())
    };
    let started = now_utc_rfc3339();
    let comment = format!(
        "case {} item {} examiner {}",
        req.ctx.case.info().case_id,
        req.ctx.item,
        req.ctx.examiner
    );
    write(&pcapng::header(
        &format!("{} {}", req.ctx.tool.name, req.ctx.tool.version),
        &comment,
        req.interface,
        pcapng::LINKTYPE_ETHERNET,
        req.snap_len,
    ))
    .map_err(out_err(&path, "write the capture"))?;

    let snap = usize::try_from(req.snap_len).unwrap_or(65535).max(64);
    let mut buf = vec![0u8; snap];
    let mut packets = 0u64;
    let mut wire_bytes = 0u64;
    let begin = Instant::now();
    let stop_reason = loop {
        if cancel.load(Ordering::Relaxed) {
            break "interrupted";
        }
        if req.count.is_some_and(|c| packets >= c) {
            break "count";
        }
        if req.duration.is_some_and(|d| begin.elapsed() >= d) {
            break "duration";
        }
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let received = recvmsg::<LinkAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_TRUNC,
        );
        let msg = match received {
            Ok(m) => m,
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(errno_source(&iface_path, "receive a packet")(e));
            }
        };
        let Some(addr) = msg.address else { continue };
        if addr.ifindex() != ifindex
            || (arphrd == ARPHRD_LOOPBACK && addr.pkttype() == PACKET_OUTGOING)
        {
            continue;
        }
        let wire_len = msg.bytes;
        let mut ts_ns = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
                    let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
                    ts_ns = Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos));
                }
            }
        }
        let ts_ns = ts_ns.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        });
        let kept = buf.get(..wire_len.min(snap)).unwrap_or_default();
        write(&pcapng::packet(
            ts_ns,
            kept,
            u32::try_from(wire_len).unwrap_or(u32::MAX),
        ))
        .map_err(out_err(&path, "write the capture"))?;
        packets += 1;
        wire_bytes += wire_len as u64;
    };
    let finished = now_utc_rfc3339();
    let file = out
        .into_inner()
        .map_err(|e| out_err(&path, "flush the capture")(e.into_error()))?;
    file.sync_all()
        .map_err(out_err(&path, "sync the capture"))?;
    let sha256 = hex::encode(hasher.finalize());
    // Ended early only when asked for a count or a duration that was not reached.
    let status = if stop_reason == "interrupted" && (req.count.is_some() || req.duration.is_some())
    {
        Status::Incomplete
    } else {
        Status::Complete
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        status,
        incomplete_reason: (status == Status::Incomplete)
            .then(|| format!("interrupted after {packets} packets")),
        tool: req.ctx.tool.clone(),
        case: req.ctx.case_ref(),
        source: SourceIdentity {
            path: req.interface.to_string(),
            kind: NETWORK_CAPTURE_KIND.to_string(),
            size_bytes: size,
            write_protection: WriteProtection::not_a_block_device("AF_PACKET receive only"),
            ..SourceIdentity::default()
        },
        host: host::host_info(),
        times: seal::times(started, finished),
        acquisition: AcquisitionInfo::plain_files(size),
        hashes: SourceHashes::sha256_only(sha256.clone()),
        chunks: ChunkDigests::none(),
        outputs: vec![OutputFile {
            name: CAPTURE_FILE.to_string(),
            size_bytes: size,
            sha256: sha256.clone(),
        }],
        signing_key: Some(req.ctx.key_ref()),
        memory: None,
        capture: Some(CaptureInfo {
            interface: req.interface.to_string(),
            link_type: u32::from(pcapng::LINKTYPE_ETHERNET),
            snap_len: req.snap_len,
            packets,
            wire_bytes,
            stop_reason: stop_reason.to_string(),
        }),
    };
    let manifest_sha = req.ctx.seal(
        &item_dir,
        &manifest,
        &[ListedFile {
            name: CAPTURE_FILE.to_string(),
            sha256: sha256.clone(),
        }],
    )?;
    let mut hashes = BTreeMap::new();
    hashes.insert(format!("{CAPTURE_FILE} sha256"), sha256);
    hashes.insert("manifest.json sha256".to_string(), manifest_sha);
    let mut details = BTreeMap::new();
    details.insert("interface".to_string(), req.interface.to_string());
    details.insert("packets".to_string(), packets.to_string());
    details.insert("stop_reason".to_string(), stop_reason.to_string());
    req.ctx.record_custody("capture-net", hashes, details)?;
    Ok(NetOutcome { item_dir, manifest })
}
