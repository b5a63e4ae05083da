//! `SeekTable::read` and `SeekableReader` over arbitrary bytes, as if they were a container.
//!
//! Invariants when the table is accepted: frames are contiguous from byte 0 up to the seek
//! table, which ends exactly at the end of the input; decompressed offsets are contiguous from
//! 0 and add up to `decompressed_size`; `frame_at` finds each frame by its first and last
//! byte. Reads never panic, return the length the table promises when they succeed, agree
//! with `read_frame` and with `decompress_frame` on the same bytes, and stay in memory bounds
//! (frames that claim more than `READ_FRAME_CAP` decompressed bytes are not read here: the
//! format allows 1 GiB frames, and a few bytes of zstd RLE blocks can legitimately expand
//! that far).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vestige_evidence::read_at::ReadAt;
use vestige_evidence::seekable::{
    decompress_frame, FrameInfo, SeekTable, SeekableReader, FOOTER_BYTES,
    MAX_FRAME_DECOMPRESSED_BYTES, SKIPPABLE_HEADER_BYTES,
};

/// Largest frame (decompressed bytes) this target decompresses.
const READ_FRAME_CAP: u32 = 1 << 20;
/// Frames checked one by one (the rest only through the table invariants).
const FRAMES_CHECKED: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = SeekTable::read(&data) else {
        return;
    };
    check_table(&table, data);

    let container = data.to_vec();
    let reader = match SeekableReader::open(container) {
        Ok(r) => r,
        Err(e) => panic!("SeekTable::read accepted what SeekableReader::open refuses: {e}"),
    };
    assert_eq!(reader.table().frame_count(), table.frame_count());
    assert_eq!(reader.size(), table.decompressed_size());

    // Frame by frame: the reader's own path and the free function must agree.
    for info in table.frames().take(FRAMES_CHECKED) {
        if info.decompressed_size > READ_FRAME_CAP {
            continue;
        }
        check_frame(&reader, &info, data);
    }

    // A few ranges through ReadAt: the start, each checked frame boundary, the end.
    let size = reader.size();
    let mut ranges = vec![
        (0, 4096),
        (size.saturating_sub(17), 64),
        (size, 8),
        (u64::MAX, 8),
    ];
    for info in table.frames().take(FRAMES_CHECKED) {
        ranges.push((info.decompressed_end().saturating_sub(3), 7));
    }
    for (offset, len) in ranges {
        read_range(&reader, &table, offset, len);
    }
});

fn check_table(table: &SeekTable, data: &[u8]) {
    let len = data.len() as u64;
    let entry_bytes: u64 = if table.has_checksums() { 12 } else { 8 };
    let count = table.frame_count();
    assert!(table.compressed_data_end() <= len);
    assert_eq!(table.compressed_data_end(), table.table_offset());
    assert_eq!(table.container_size(), len);
    assert_eq!(
        table.table_offset() + SKIPPABLE_HEADER_BYTES + count as u64 * entry_bytes + FOOTER_BYTES,
        len,
        "the seek table must end the file"
    );

    let mut compressed = 0u64;
    let mut decompressed = 0u64;
    let mut seen = 0usize;
    for (i, f) in table.frames().enumerate() {
        assert_eq!(f.index, i);
        assert_eq!(f.compressed_offset, compressed, "frame {i} not contiguous");
        assert_eq!(f.decompressed_offset, decompressed, "frame {i} source gap");
        assert!((1..=MAX_FRAME_DECOMPRESSED_BYTES).contains(&f.decompressed_size));
        assert_eq!(f.checksum.is_some(), table.has_checksums());
        assert_eq!(table.frame(i), Some(f));
        compressed = f.compressed_end();
        decompressed = f.decompressed_end();
        assert!(compressed <= table.compressed_data_end());
        if i < FRAMES_CHECKED {
            assert_eq!(table.frame_at(f.decompressed_offset), Some(f));
            assert_eq!(table.frame_at(f.decompressed_end() - 1), Some(f));
        }
        seen += 1;
    }
    assert_eq!(seen, count);
    assert_eq!(table.frame(count), None);
    assert_eq!(
        compressed,
        table.compressed_data_end(),
        "frames end before the table"
    );
    assert_eq!(decompressed, table.decompressed_size());
    assert_eq!(table.frame_at(table.decompressed_size()), None);
}

fn check_frame(reader: &SeekableReader<Vec<u8>>, info: &FrameInfo, data: &[u8]) {
    let mut via_reader = Vec::new();
    let r1 = reader.read_frame(info, &mut via_reader);
    let start = usize::try_from(info.compressed_offset).expect("offset fits");
    let end = usize::try_from(info.compressed_end()).expect("end fits");
    let compressed = data.get(start..end).expect("frame inside the container");
    let mut direct = Vec::new();
    let r2 = decompress_frame(info, compressed, &mut direct);
    assert_eq!(
        r1.is_ok(),
        r2.is_ok(),
        "read_frame {r1:?} vs decompress_frame {r2:?}"
    );
    if r1.is_ok() {
        assert_eq!(via_reader.len(), info.decompressed_size as usize);
        assert_eq!(via_reader, direct);
        if let Some(sum) = info.checksum {
            assert_eq!(vestige_evidence::seekable::frame_checksum(&direct), sum);
        }
        // The same bytes through ReadAt (and its cache).
        let mut buf = vec![0u8; via_reader.len()];
        let n = reader
            .read_at(&mut buf, info.decompressed_offset)
            .expect("a frame that decompresses reads");
        assert_eq!(n, buf.len());
        assert_eq!(buf, via_reader);
    }
    assert!(via_reader.len() <= info.decompressed_size as usize);
    assert!(direct.len() <= info.decompressed_size as usize);
}

/// Reads `len` bytes at `offset` unless a frame it touches is larger than the cap.
fn read_range(reader: &SeekableReader<Vec<u8>>, table: &SeekTable, offset: u64, len: usize) {
    let size = table.decompressed_size();
    let end = offset.saturating_add(len as u64).min(size);
    let mut pos = offset;
    while pos < end {
        let Some(f) = table.frame_at(pos) else {
            panic!("no frame holds byte {pos} of {size}");
        };
        if f.decompressed_size > READ_FRAME_CAP {
            return;
        }
        pos = f.decompressed_end();
    }
    let mut buf = vec![0u8; len];
    if let Ok(n) = reader.read_at(&mut buf, offset) {
        let expected = end.saturating_sub(offset);
        assert_eq!(
            n as u64, expected,
            "read at {offset} of {len}: short read inside the data"
        );
    }
}
