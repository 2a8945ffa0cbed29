//! A whole flow file or HTTP body through `flows::FlowReader` (format detection, lines or a
//! streamed JSON array, the record length bound): no panic, and the same outcomes in the same
//! order whatever the buffer size the bytes arrive in (a record split across reads must not read
//! differently).
//!
//! The first byte picks the format (auto, hubble, ndjson) and the read buffer's size; the second
//! the record length bound (small, so that the bound is reached).
#![no_main]

use std::io::BufReader;

use flowgate::flows::{FlowFormat, FlowReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else { return };
    let format = match a % 3 {
        0 => FlowFormat::Auto,
        1 => FlowFormat::Hubble,
        _ => FlowFormat::Ndjson,
    };
    let chunk = 1 + (*a as usize / 3) % 17;
    let max = 16 + (*b as usize) * 16;
    let whole: Vec<_> = FlowReader::new(input, format).with_max_record_len(max).collect();
    let pieces: Vec<_> =
        FlowReader::new(BufReader::with_capacity(chunk, input), format).with_max_record_len(max).collect();
    assert_eq!(whole, pieces, "read whole vs in {chunk}-byte reads");
});
