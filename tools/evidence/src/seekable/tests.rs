//! Unit tests of the parent module.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn us(n: u64) -> usize {
    usize::try_from(n).unwrap()
}

/// Deterministic xorshift64* so tests need no `rand`.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Text, zeros and pseudo-random bytes, `len` long.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match rng.below(3) {
            0 => out.extend_from_slice(b"The quick brown fox jumps over the lazy dog. "),
            1 => out.extend(std::iter::repeat_n(0u8, 1000)),
            _ => (0..500).for_each(|_| out.push(rng.next().to_le_bytes()[0])),
        }
    }
    out.truncate(len);
    out
}

/// A container of `source` cut into chunks of the given sizes (cycled), plus its table.
fn build(source: &[u8], chunk_sizes: &[usize], checksums: bool) -> (Vec<u8>, SeekTableWriter) {
    let mut compressor = FrameCompressor::new(3).unwrap();
    let mut table = SeekTableWriter::new(checksums);
    let mut container = Vec::new();
    let mut frame = Vec::new();
    let mut at = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while at < source.len() {
        let n = (*sizes.next().unwrap()).min(source.len() - at);
        let mut entry = compressor
            .compress(&source[at..at + n], &mut frame)
            .unwrap();
        if !checksums {
            entry.checksum = None;
        }
        container.extend_from_slice(&frame);
        table.push(entry);
        at += n;
    }
    container.extend_from_slice(&table.try_to_bytes().unwrap());
    (container, table)
}

fn read_err(container: &[u8]) -> SeekableError {
    SeekTable::read(&container.to_vec()).unwrap_err()
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap())
}

#[test]
fn frame_checksum_is_low_half_of_xxh64() {
    // XXH64("", 0) = 0xEF46DB3751D8E999.
    assert_eq!(frame_checksum(b""), 0x51D8_E999);
    let full = xxhash_rust::xxh64::xxh64(b"vestige", 0);
    assert_eq!(u64::from(frame_checksum(b"vestige")), full & 0xFFFF_FFFF);
}

#[test]
fn seekable_round_trip_random_reads() {
    let source = mixed(700_000, 7);
    for (sizes, checksums) in [
        (&[65_536usize][..], true),
        (&[100_000, 1, 4096, 77_777][..], true),
        (&[300_000][..], false),
        (&[1_000_000][..], true), // one frame
    ] {
        let (container, writer) = build(&source, sizes, checksums);
        let reader = SeekableReader::open(container.clone()).unwrap();
        let table = reader.table();
        assert_eq!(reader.size(), source.len() as u64);
        assert_eq!(table.frame_count(), writer.frames().len());
        assert_eq!(table.has_checksums(), checksums);
        assert_eq!(table.container_size(), container.len() as u64);
        assert_eq!(
            table.table_offset() + 17 + table.frame_count() as u64 * if checksums { 12 } else { 8 },
            container.len() as u64
        );
        // Frames are contiguous in both spaces.
        let mut c = 0;
        let mut d = 0;
        for (i, f) in table.frames().enumerate() {
            assert_eq!(
                (f.index, f.compressed_offset, f.decompressed_offset),
                (i, c, d)
            );
            assert_eq!(table.frame(i), Some(f));
            assert_eq!(table.frame_at(f.decompressed_offset), Some(f));
            assert_eq!(table.frame_at(f.decompressed_end() - 1), Some(f));
            c = f.compressed_end();
            d = f.decompressed_end();
        }
        assert_eq!(c, table.compressed_data_end());
        assert_eq!(table.frame_at(d), None);
        // Last chunk is short (700_000 is no multiple of these sizes, except by design).
        let mut rng = Rng(99);
        for _ in 0..300 {
            let off = rng.below(source.len() as u64 + 10);
            let len = us(match rng.below(3) {
                0 => rng.below(16),
                1 => rng.below(200_000),
                _ => rng.below(1 << 20),
            });
            let mut buf = vec![0xAAu8; len];
            let n = reader.read_at(&mut buf, off).unwrap();
            let start = us(off).min(source.len());
            let want = &source[start..(start + len).min(source.len())];
            assert_eq!(n, want.len(), "read of {len} at {off}");
            assert_eq!(&buf[..n], want);
        }
        // Every frame boundary, read across.
        for f in table.frames().skip(1) {
            let mut buf = [0u8; 10];
            reader
                .read_exact_at(&mut buf, f.decompressed_offset - 5)
                .unwrap();
            let at = us(f.decompressed_offset) - 5;
            assert_eq!(&buf, &source[at..at + 10]);
        }
        let mut all = vec![0u8; source.len()];
        reader.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, source);
    }
}

#[test]
fn seekable_sequential_small_reads_hit_the_cache() {
    let source = mixed(200_000, 3);
    let (container, _) = build(&source, &[50_000], true);
    let reader = SeekableReader::open(container).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let mut at = 0u64;
    loop {
        let n = reader.read_at(&mut buf, at).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    assert_eq!(out, source);
    let cache = reader.cache.lock().unwrap();
    assert!(cache.frames.len() <= DEFAULT_CACHE_FRAMES);
    assert_eq!(cache.frames.front().map(|f| f.0), Some(3));
}

#[test]
fn seekable_reads_from_many_threads() {
    let source = mixed(400_000, 11);
    let (container, _) = build(&source, &[30_000], true);
    let reader = SeekableReader::with_cache(container, 2, 1 << 20).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (reader, source) = (&reader, &source);
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                for _ in 0..100 {
                    let off = rng.below(source.len() as u64);
                    let mut buf = vec![0u8; us(rng.below(70_000))];
                    let n = reader.read_at(&mut buf, off).unwrap();
                    let o = us(off);
                    assert_eq!(&buf[..n], &source[o..(o + buf.len()).min(source.len())]);
                }
            });
        }
    });
}

#[test]
fn seekable_empty_source_is_a_valid_container() {
    let (container, _) = build(&[], &[4096], true);
    assert_eq!(container.len(), 17);
    let reader = SeekableReader::open(container).unwrap();
    assert_eq!(reader.size(), 0);
    assert_eq!(reader.table().frame_count(), 0);
    assert_eq!(reader.table().frame_at(0), None);
    let mut buf = [0u8; 4];
    assert_eq!(reader.read_at(&mut buf, 0).unwrap(), 0);
    assert_eq!(reader.read_at(&mut buf, u64::MAX).unwrap(), 0);
}

#[test]
fn seekable_compressor_refuses_empty_and_reuses_buffer() {
    let mut c = FrameCompressor::new(1).unwrap();
    let mut out = Vec::with_capacity(1 << 20);
    let ptr = out.as_ptr();
    assert!(matches!(
        c.compress(&[], &mut out),
        Err(SeekableError::ChunkSizeOutOfRange { found: 0, .. })
    ));
    let e = c.compress(&[7u8; 10_000], &mut out).unwrap();
    assert_eq!(out.as_ptr(), ptr);
    assert_eq!(e.compressed_size as usize, out.len());
    assert_eq!(e.decompressed_size, 10_000);
    // zstd's header carries the content size, and the frame has zstd's checksum (FHD bit 2).
    assert_eq!(
        zstd_safe::get_frame_content_size(&out).unwrap(),
        Some(10_000)
    );
    assert_ne!(out[4] & 0x04, 0);
}

#[test]
fn seekable_writer_refuses_what_the_reader_refuses() {
    let mut w = SeekTableWriter::new(true);
    w.push(FrameEntry {
        compressed_size: 10,
        decompressed_size: 5,
        checksum: None,
    });
    assert!(matches!(
        w.try_to_bytes(),
        Err(SeekableError::InvalidEntry { index: 0, .. })
    ));
    let mut w = SeekTableWriter::new(false);
    w.push(FrameEntry {
        compressed_size: 10,
        decompressed_size: 0,
        checksum: None,
    });
    assert!(matches!(
        w.try_to_bytes(),
        Err(SeekableError::InvalidEntry { index: 0, .. })
    ));
}

// ---- hostile tables: each case gives its variant and offset ----

/// A valid three-frame checksummed container and its length.
fn sample() -> Vec<u8> {
    build(&mixed(30_000, 5), &[12_000], true).0
}

#[test]
fn hostile_too_short() {
    for len in [0usize, 1, 8] {
        assert!(matches!(
            read_err(&sample()[..len]),
            SeekableError::TooShort { expected: 9, found } if found == len as u64
        ));
    }
    // Footer present but no room for the skippable header.
    let c = sample();
    let footer = c[c.len() - 9..].to_vec();
    let mut short = footer.clone();
    put_u32(&mut short, 0, 0);
    assert!(matches!(
        read_err(&short),
        SeekableError::TableExceedsFile {
            offset: 0,
            frames: 0,
            needed: 8,
            available: 0
        }
    ));
}

#[test]
fn hostile_wrong_seekable_magic() {
    let mut c = sample();
    let len = c.len();
    c[len - 1] ^= 0xFF;
    let e = read_err(&c);
    assert!(
        matches!(e, SeekableError::BadSeekableMagic { offset, found }
        if offset == len as u64 - 4 && found == SEEKABLE_MAGIC ^ 0xFF00_0000)
    );
    assert_eq!(e.offset(), Some(len as u64 - 4));
    // Truncated by one byte: the magic is misaligned.
    assert!(
        matches!(read_err(&sample()[..len - 1]), SeekableError::BadSeekableMagic { offset, .. }
        if offset == len as u64 - 5)
    );
}

#[test]
fn hostile_reserved_descriptor_bits() {
    let mut c = sample();
    let at = c.len() - 5;
    c[at] |= 0x04;
    assert!(
        matches!(read_err(&c), SeekableError::ReservedDescriptorBits { offset, found: 0x84 }
        if offset == at as u64)
    );
    c[at] = CHECKSUM_FLAG | 0x40;
    assert!(matches!(
        read_err(&c),
        SeekableError::ReservedDescriptorBits { found: 0xC0, .. }
    ));
    // Unused bits (1-0) are not interpreted, but kept.
    c[at] = CHECKSUM_FLAG | 0x03;
    let t = SeekTable::read(&c).unwrap();
    assert_eq!(t.descriptor(), 0x83);
    assert!(t.has_checksums());
}

#[test]
fn hostile_frame_count_larger_than_file() {
    let mut c = sample();
    let at = c.len() - 9;
    for frames in [u32::MAX, 1 << 20, 10_000] {
        put_u32(&mut c, at, frames);
        let e = read_err(&c);
        assert!(
            matches!(e, SeekableError::TableExceedsFile { offset, frames: f, needed, available }
                if offset == at as u64 && f == frames
                    && needed == u64::from(frames) * 12 + 8 && available == at as u64),
            "{e}"
        );
    }
}

#[test]
fn hostile_skippable_header() {
    let c = sample();
    let t = SeekTable::read(&c).unwrap();
    let to = us(t.table_offset());
    let mut bad = c.clone();
    bad[to] ^= 1;
    assert!(
        matches!(read_err(&bad), SeekableError::BadSkippableMagic { offset, found }
        if offset == to as u64 && found == SKIPPABLE_MAGIC ^ 1)
    );
    let mut bad = c.clone();
    put_u32(&mut bad, to + 4, 3 * 12 + 9 + 1);
    assert!(
        matches!(read_err(&bad), SeekableError::SkippableSizeMismatch { offset, expected: 45, found: 46 }
        if offset == to as u64 + 4)
    );
    // One frame fewer than written: the table starts 12 bytes later, inside entry 0.
    let mut bad = c.clone();
    let n = bad.len() - 9;
    put_u32(&mut bad, n, 2);
    assert!(
        matches!(read_err(&bad), SeekableError::BadSkippableMagic { offset, .. }
        if offset == to as u64 + 12)
    );
}

#[test]
fn hostile_compressed_sizes_must_reach_the_table() {
    let c = sample();
    let t = SeekTable::read(&c).unwrap();
    let entries = us(t.table_offset()) + 8;
    // Frame 0 one byte longer: the last frame then overlaps the table.
    let mut bad = c.clone();
    put_u32(&mut bad, entries, get_u32(&c, entries) + 1);
    assert!(
        matches!(read_err(&bad), SeekableError::FrameBeyondTable { index: 2, offset, frame_end, table_offset }
        if offset == entries as u64 + 24 && frame_end == t.table_offset() + 1 && table_offset == t.table_offset())
    );
    // Frame 0 huge: caught at entry 0.
    let mut bad = c.clone();
    put_u32(&mut bad, entries, u32::MAX);
    assert!(
        matches!(read_err(&bad), SeekableError::FrameBeyondTable { index: 0, offset, .. }
        if offset == entries as u64)
    );
    // Frame 1 one byte shorter: a gap before the table.
    let mut bad = c.clone();
    put_u32(&mut bad, entries + 12, get_u32(&c, entries + 12) - 1);
    assert!(
        matches!(read_err(&bad), SeekableError::FramesEndBeforeTable { offset, frames_end }
        if offset == t.table_offset() && frames_end == t.table_offset() - 1)
    );
    // Bytes before the first frame (frames must start at 0).
    let mut bad = vec![0u8; 3];
    bad.extend_from_slice(&c);
    assert!(
        matches!(read_err(&bad), SeekableError::FramesEndBeforeTable { offset, frames_end }
        if offset == t.table_offset() + 3 && frames_end == t.table_offset())
    );
}

#[test]
fn hostile_decompressed_sizes() {
    let c = sample();
    let entries = us(SeekTable::read(&c).unwrap().table_offset()) + 8;
    for (value, index) in [
        (0u32, 1usize),
        (MAX_FRAME_DECOMPRESSED_BYTES + 1, 2),
        (u32::MAX, 0),
    ] {
        let mut bad = c.clone();
        put_u32(&mut bad, entries + index * 12 + 4, value);
        let e = read_err(&bad);
        assert!(
            matches!(e, SeekableError::FrameSizeOutOfRange { index: i, offset, found, max }
                if i == index && offset == (entries + index * 12 + 4) as u64
                    && found == value && max == MAX_FRAME_DECOMPRESSED_BYTES),
            "{e}"
        );
    }
    // The largest allowed size is accepted by the table (never allocated on its word).
    let mut big = c.clone();
    put_u32(&mut big, entries + 4, MAX_FRAME_DECOMPRESSED_BYTES);
    let t = SeekTable::read(&big).unwrap();
    assert_eq!(
        t.decompressed_size(),
        u64::from(MAX_FRAME_DECOMPRESSED_BYTES) + 18_000
    );
    // …but reading that frame fails on zstd's own content size, before any allocation.
    let reader = SeekableReader::open(big).unwrap();
    let err = reader.read_at(&mut [0u8; 8], 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<SeekableError>());
    assert!(matches!(
        inner,
        Some(SeekableError::ContentSizeMismatch {
            index: 0,
            offset: 0,
            found: 12_000,
            ..
        })
    ));
}

// ---- frames that do not match their entries ----

fn frame_no_content_size(data: &[u8]) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    c.set_parameter(CParameter::ContentSizeFlag(false)).unwrap();
    c.compress(data).unwrap()
}

fn info(compressed: &[u8], decompressed_size: u32, checksum: Option<u32>) -> FrameInfo {
    FrameInfo {
        index: 7,
        compressed_offset: 1000,
        compressed_size: u32::try_from(compressed.len()).unwrap(),
        decompressed_offset: 0,
        decompressed_size,
        checksum,
    }
}

#[test]
fn frame_size_checked_while_decompressing() {
    let data = mixed(50_000, 9);
    let frame = frame_no_content_size(&data);
    assert_eq!(zstd_safe::get_frame_content_size(&frame).unwrap(), None);
    let mut out = Vec::new();
    decompress_frame(
        &info(&frame, 50_000, Some(frame_checksum(&data))),
        &frame,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, data);
    assert!(matches!(
        decompress_frame(&info(&frame, 50_001, None), &frame, &mut out),
        Err(SeekableError::FrameSizeMismatch {
            index: 7,
            offset: 1000,
            expected: 50_001,
            found: 50_000
        })
    ));
    let mut fresh = Vec::new();
    assert!(matches!(
        decompress_frame(&info(&frame, 49_999, None), &frame, &mut fresh),
        Err(SeekableError::FrameOverrun {
            index: 7,
            offset: 1000,
            expected: 49_999
        })
    ));
    assert!(
        fresh.capacity() <= 49_999,
        "never allocates past the expected size"
    );
}

#[test]
fn frame_checksum_and_shape_checked() {
    let data = mixed(20_000, 13);
    let mut frame = Vec::new();
    let e = FrameCompressor::new(3)
        .unwrap()
        .compress(&data, &mut frame)
        .unwrap();
    let mut out = Vec::new();
    let good = info(&frame, 20_000, e.checksum);
    decompress_frame(&good, &frame, &mut out).unwrap();
    let bad_sum = info(&frame, 20_000, e.checksum.map(|c| c ^ 1));
    assert!(matches!(
        decompress_frame(&bad_sum, &frame, &mut out),
        Err(SeekableError::ChecksumMismatch { index: 7, offset: 1000, expected, found })
            if Some(found) == e.checksum && expected == found ^ 1
    ));
    // Two frames where one is expected.
    let mut two = frame.clone();
    two.extend_from_slice(&frame);
    assert!(matches!(
        decompress_frame(&info(&two, 20_000, e.checksum), &two, &mut out),
        Err(SeekableError::TrailingBytes { index: 7, offset, found })
            if offset == 1000 + frame.len() as u64 && found == frame.len()
    ));
    // Cut short.
    let cut = &frame[..frame.len() - 3];
    assert!(matches!(
        decompress_frame(&info(cut, 20_000, e.checksum), cut, &mut out),
        Err(SeekableError::FrameTruncated {
            index: 7,
            offset: 1000,
            ..
        })
    ));
    // Slice of the wrong length.
    assert!(matches!(
        decompress_frame(&good, cut, &mut out),
        Err(SeekableError::CompressedLengthMismatch {
            index: 7,
            offset: 1000,
            ..
        })
    ));
    // A flipped byte in the compressed data: zstd (content checksum or corruption) refuses.
    let mut flipped = frame.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    assert!(matches!(
        decompress_frame(&good, &flipped, &mut out),
        Err(SeekableError::Decompress {
            index: 7,
            offset: 1000,
            ..
        } | SeekableError::ChecksumMismatch {
            index: 7,
            offset: 1000,
            ..
        })
    ));
    // Garbage is not a frame.
    let junk = vec![0x55u8; 64];
    assert!(matches!(
        decompress_frame(&info(&junk, 10, None), &junk, &mut out),
        Err(SeekableError::Decompress {
            index: 7,
            offset: 1000,
            ..
        })
    ));
}

#[test]
fn seekable_reader_names_the_damaged_frame() {
    let c = sample();
    let t = SeekTable::read(&c).unwrap();
    let f1 = t.frame(1).unwrap();
    let entries = us(t.table_offset()) + 8;
    let mut bad = c.clone();
    put_u32(&mut bad, entries + 12 + 8, f1.checksum.unwrap() ^ 0xFFFF);
    let reader = SeekableReader::open(bad).unwrap();
    // Frame 0 still reads; frame 1 fails naming itself and its compressed offset.
    let mut buf = vec![0u8; 100];
    assert_eq!(reader.read_at(&mut buf, 0).unwrap(), 100);
    let err = reader
        .read_at(&mut buf, f1.decompressed_offset + 10)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains("frame 1 at byte") && msg.contains(&f1.compressed_offset.to_string()),
        "{msg}"
    );
    assert!(matches!(
        err.get_ref().and_then(|e| e.downcast_ref::<SeekableError>()),
        Some(SeekableError::ChecksumMismatch { index: 1, offset, .. }) if *offset == f1.compressed_offset
    ));
}

#[test]
fn frame_checksum_from_zstd_equals_a_fresh_xxh64() {
    let mut c = FrameCompressor::new(3).unwrap();
    let mut out = Vec::new();
    for data in [
        vec![0u8; 1],
        vec![7u8; 100_000],
        (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect(),
    ] {
        let e = c.compress(&data, &mut out).unwrap();
        assert_eq!(e.checksum, Some(frame_checksum(&data)));
    }
}
