//! An artifact body from `pipecache serve` or one of its clients, fed in pieces whose sizes
//! the input chooses. Decoding never panics, never accepts more than its limit, and agrees
//! with the whole-buffer inline decoder: same record and parts, or both refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::remote::decode_inline_value;
use pipecache_format::wire::WireDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut decoder = WireDecoder::new(body.len() as u64);
    let streamed = body
        .chunks(step)
        .try_for_each(|piece| decoder.push(piece))
        .and_then(|()| decoder.finish());
    match (streamed, decode_inline_value(body)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "streamed and whole decodes differ"),
        (Ok(_), Err(e)) => panic!("streamed decoder accepted what the inline decoder refused: {e}"),
        // The inline decoder accepts any codec; the wire takes pack-free records only, like it.
        (Err(_), _) => {}
    }
});
