//! One Hubble record (`hubble observe -o json` line, exporter line or array element), as
//! `flows::parse_hubble_line` gets it from the reader: arbitrary bytes must give a flow, a skip or
//! a reason, never a panic; and the hot path's own JSON reader, whenever it reads a record, must
//! read what serde_json reads.
#![no_main]

use flowgate::flows::{Item, check_fast_parse, parse_hubble_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Item::Flow(f, _)) = parse_hubble_line(data) {
        // What the parser promises about every flow it returns.
        assert_ne!(f.dst_port.get(), 0);
    }
    if let Err(e) = check_fast_parse(data) {
        panic!("{e}");
    }
});
