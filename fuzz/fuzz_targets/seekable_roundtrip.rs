//! Differential, structure-aware: the input's tail is source data, its first bytes choose
//! how the container is written (chunk sizes, zstd level, checksums, reader cache). The
//! container is built with `FrameCompressor` + `SeekTableWriter` and read back with
//! `SeekTable`, `SeekableReader` (whole and in ranges), `decompress_frame` and stock zstd
//! streaming decompression (which must skip the seek table); all must give the source back.
//! Then one byte of the container is changed: reading must then fail or still give the
//! source — never other bytes (zstd's content checksum and the seek-table checksum are
//! both the low 32 bits of XXH64, so a silent change is a 2^-32 event).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_evidence::read_at::ReadAt;
use vestige_evidence::seekable::{
    decompress_frame, FrameCompressor, SeekTable, SeekTableWriter, SeekableReader,
};

/// Bytes of the input that are parameters, not data.
const PARAMS: usize = 8;

fuzz_target!(|input: &[u8]| {
    let (params, source) = input.split_at(input.len().min(PARAMS));
    let mut p = [0u8; PARAMS];
    p[..params.len()].copy_from_slice(params);
    let [c0, c1, c2, level_sel, flags, cache_frames, flip_lo, flip_hi] = p;
    // Chunk sizes cycle through three values, 1..=1024 bytes each.
    let chunk_sizes = [c0, c1, c2].map(|c| 1 + (usize::from(c) * 4) % 1024);
    let level = [-5, -1, 1, 3, 9][usize::from(level_sel) % 5];
    let with_checksums = flags & 1 != 0;
    let cache_frames = usize::from(cache_frames % 6);
    let cache_bytes = if flags & 2 != 0 { 1 } else { 1 << 20 };

    // Write.
    let mut compressor = FrameCompressor::new(level).expect("compressor");
    let mut writer = SeekTableWriter::new(with_checksums);
    let mut container = Vec::new();
    let mut frame = Vec::new();
    let mut at = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while at < source.len() {
        let n = (*sizes.next().expect("cycle")).min(source.len() - at);
        let mut entry = compressor
            .compress(&source[at..at + n], &mut frame)
            .expect("compress");
        assert_eq!(entry.decompressed_size as usize, n);
        assert_eq!(entry.compressed_size as usize, frame.len());
        if !with_checksums {
            entry.checksum = None;
        }
        container.extend_from_slice(&frame);
        writer.push(entry);
        at += n;
    }
    let data_end = container.len() as u64;
    let table_bytes = writer.try_to_bytes().expect("valid entries encode");
    assert_eq!(table_bytes, writer.to_bytes());
    container.extend_from_slice(&table_bytes);

    // The table reads back as written.
    let table = SeekTable::read(&container).expect("own container has a valid table");
    assert_eq!(table.frame_count(), writer.frames().len());
    assert_eq!(table.decompressed_size(), source.len() as u64);
    assert_eq!(table.compressed_data_end(), data_end);
    assert_eq!(table.has_checksums(), with_checksums);
    for (info, entry) in table.frames().zip(writer.frames()) {
        assert_eq!(info.compressed_size, entry.compressed_size);
        assert_eq!(info.decompressed_size, entry.decompressed_size);
        assert_eq!(info.checksum, entry.checksum);
    }

    // Frame by frame with the free function.
    let mut joined = Vec::with_capacity(source.len());
    let mut out = Vec::new();
    for info in table.frames() {
        let start = info.compressed_offset as usize;
        let end = info.compressed_end() as usize;
        decompress_frame(&info, &container[start..end], &mut out).expect("own frame decompresses");
        joined.extend_from_slice(&out);
    }
    assert_eq!(joined, source);

    // Stock zstd streaming decoder: frames then the skippable seek table.
    let stock = zstd::stream::decode_all(container.as_slice()).expect("stock zstd reads it");
    assert_eq!(stock, source);

    // Random access through the reader.
    let reader = SeekableReader::with_cache(container.as_slice(), cache_frames, cache_bytes)
        .expect("reader opens");
    assert_eq!(reader.size(), source.len() as u64);
    let mut whole = vec![0u8; source.len()];
    reader.read_exact_at(&mut whole, 0).expect("whole read");
    assert_eq!(whole, source);
    let len = source.len();
    let offsets = [
        0,
        len / 3,
        len / 2,
        len.saturating_sub(1),
        chunk_sizes[0].min(len),
        (chunk_sizes[0] + chunk_sizes[1]).saturating_sub(1).min(len),
    ];
    for (i, &off) in offsets.iter().enumerate() {
        let want = (1 + i * 37 + usize::from(flip_lo)) % (len + 2);
        let mut buf = vec![0u8; want];
        let n = reader.read_at(&mut buf, off as u64).expect("range read");
        let expect = &source[off..(off + want).min(len)];
        assert_eq!(n, expect.len());
        assert_eq!(&buf[..n], expect);
    }
    let mut past = [0u8; 4];
    assert_eq!(
        reader.read_at(&mut past, len as u64).expect("read at end"),
        0
    );
    assert_eq!(
        reader.read_at(&mut past, u64::MAX).expect("read past end"),
        0
    );

    // Tamper with one byte: read must fail or return exactly the source.
    if container.is_empty() {
        return;
    }
    let mut tampered = container.clone();
    let at = usize::from(u16::from_le_bytes([flip_lo, flip_hi])) % tampered.len();
    tampered[at] ^= 1 << (flags >> 5);
    let Ok(reader) = SeekableReader::open(tampered.as_slice()) else {
        return;
    };
    let size = reader.size();
    // A table edit can only move bytes between frames of the real data or fail; a reader
    // that opens must not claim more data than frames restore (frames <= 1024 B here, but a
    // changed Decompressed_Size could claim up to 1 GiB: only read small claims).
    if size > 1 << 20
        || reader
            .table()
            .frames()
            .any(|f| f.decompressed_size > 1 << 16)
    {
        return;
    }
    let mut buf = vec![0u8; usize::try_from(size).expect("small")];
    if reader.read_exact_at(&mut buf, 0).is_ok() {
        assert_eq!(
            buf, source,
            "one changed byte at {at} gave different data silently"
        );
    }
});
