//! `ChunkScanner` over an arbitrary "chunk file" held in memory: never panics, terminates, and
//! yields frames at strictly increasing offsets that all lie inside the input.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::{BlobHash, ChunkScanner, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(mut scanner) = ChunkScanner::new(Cursor::new(data)) else {
        return;
    };
    let len = data.len() as u64;
    // Every frame is at least a 64-byte header, so a correct scanner yields at most this many.
    let max_frames = data.len() / FRAME_HEADER_LEN + 1;
    let mut last_offset: Option<u64> = None;
    for _ in 0..=max_frames {
        match scanner.next_frame() {
            Ok(Some(frame)) => {
                assert!(
                    frame.offset >= CHUNK_HEADER_LEN,
                    "frame at {} overlaps the chunk header",
                    frame.offset
                );
                if let Some(last) = last_offset {
                    assert!(
                        frame.offset > last,
                        "frame offsets not increasing: {last} then {}",
                        frame.offset
                    );
                }
                assert!(
                    frame.offset + frame.header.frame_len() <= len,
                    "frame at {} of {} bytes runs past the {len}-byte input",
                    frame.offset,
                    frame.header.frame_len()
                );
                assert_eq!(frame.payload.len() as u64, frame.header.raw_len);
                assert_eq!(BlobHash::of(&frame.payload), frame.header.hash);
                last_offset = Some(frame.offset);
            }
            end => {
                if matches!(end, Ok(None)) {
                    // A clean end of file is exactly at a frame boundary.
                    assert_eq!(
                        scanner.offset(),
                        len,
                        "clean end of scan before the end of the input"
                    );
                }
                assert!(
                    matches!(scanner.next_frame(), Ok(None)),
                    "scanner yields more after its end"
                );
                return;
            }
        }
    }
    panic!("scanner yielded more than {max_frames} frames from {len} bytes");
});
