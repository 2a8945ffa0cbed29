//! The pure pipeline end to end, as `flowgate generate --flows F` runs it without an inventory:
//! Hubble lines parsed, enriched against an empty inventory, folded into `topology::Connections`,
//! settled, generated, verified. Two claims are checked on every input:
//!
//! - verification finds no mismatch (ARCHITECTURE.md: "Verification is a property, not a hope");
//! - every connection end has a key that reads back as itself (`Endpoint::key`/`from_key`, the
//!   text the store and URLs use), so names from flows are valid DNS-1123 names before they
//!   become keys or URLs.
//!
//! The input is lines. A line starting with `{` is a Hubble record (at most 32 are read); the
//! others set the review decisions, so that the fuzzer explores them too:
//! `X PEER` excludes, `T CIDR` trusts, `I IP` includes an unresolved address, `A` includes every
//! unresolved one, `N` turns DNS off; `W KIND/NS/NAME X|T|I VALUE` does the same for one workload's
//! own decisions.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/pipeline_case.rs"]
mod pipeline_case;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = pipeline_case::run(data) {
        panic!("{e}");
    }
});
