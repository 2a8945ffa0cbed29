//! One Flowgate NDJSON record, as `flows::parse_ndjson_line` gets it from the reader: arbitrary
//! bytes must give a flow, a skip or a reason, never a panic.
#![no_main]

use flowgate::flows::{Item, parse_ndjson_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Item::Flow(f, _)) = parse_ndjson_line(data) {
        assert_ne!(f.dst_port.get(), 0);
    }
});
