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

use flowgate::enrich::{Endpoint, enrich_learning};
use flowgate::flows::{Item, parse_hubble_line};
use flowgate::inventory::Inventory;
use flowgate::model::WorkloadRef;
use flowgate::policy::generate::{Decisions, Options, generate, to_yaml};
use flowgate::policy::verify::verify;
use flowgate::topology::{Catalog, Connections};
use libfuzzer_sys::fuzz_target;

const MAX_FLOWS: usize = 32;

fn decide(d: &mut Decisions, what: &str, value: &str) {
    match what {
        "X" => {
            if let Ok(p) = value.parse() {
                d.exclude.insert(p);
            }
        }
        "T" => {
            if let Ok(c) = value.parse() {
                d.trust.insert(c);
            }
        }
        "I" => {
            if let Ok(ip) = value.parse() {
                d.include_unresolved.insert(ip);
            }
        }
        _ => {}
    }
}

fn assert_key(e: &Endpoint) {
    let key = e.key();
    assert_eq!(Endpoint::from_key(&key).as_ref(), Some(e), "the key {key:?} does not read back");
}

fuzz_target!(|data: &[u8]| {
    let inv = Inventory::build(&[]);
    let mut opts = Options::default();
    let mut conns = Connections::new(Catalog::from_inventory(&inv));
    let mut flows = 0;
    for line in data.split(|&b| b == b'\n') {
        if line.first() == Some(&b'{') {
            if flows == MAX_FLOWS {
                continue;
            }
            flows += 1;
            if let Ok(Item::Flow(flow, _)) = parse_hubble_line(line) {
                let catalog = &conns.catalog;
                let enriched = enrich_learning(&inv, &flow, |w, labels| catalog.knows(w, labels));
                conns.add(&flow, &enriched);
            }
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("A"), None, _, _) => opts.decisions.include_all_unresolved = true,
            (Some("N"), None, _, _) => opts.dns = false,
            (Some(what), Some(value), None, _) => decide(&mut opts.decisions, what, value),
            (Some("W"), Some(w), Some(what), Some(value)) => {
                if let Ok(w) = w.parse::<WorkloadRef>() {
                    let base = opts.decisions.clone();
                    decide(opts.per_workload.entry(w).or_insert(base), what, value);
                }
            }
            _ => {}
        }
    }
    conns.settle(&inv);
    for key in conns.map.keys() {
        assert_key(&key.src);
        assert_key(&key.dst);
    }
    let generation = generate(&inv, &conns, &opts);
    let v = verify(&generation, &inv, &conns.catalog);
    assert!(v.ok(), "{} mismatches: {:#?}", v.mismatches.len(), v.mismatches);
    to_yaml(&generation.policies).expect("the policies serialise");
});
