//! The pipeline fuzz target's case, shared with `tests/property.rs` (which replays every fixed
//! finding in `fuzz/findings/` through it): see `fuzz_targets/pipeline.rs` for the input format.

use flowgate::enrich::{Endpoint, enrich_learning};
use flowgate::flows::{Item, parse_hubble_line};
use flowgate::inventory::Inventory;
use flowgate::model::WorkloadRef;
use flowgate::policy::generate::{Decisions, Options, generate, to_yaml};
use flowgate::policy::verify::verify;
use flowgate::topology::{Catalog, Connections};

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

fn check_key(e: &Endpoint) -> Result<(), String> {
    let key = e.key();
    if Endpoint::from_key(&key).as_ref() != Some(e) {
        return Err(format!("the key {key:?} does not read back"));
    }
    Ok(())
}

/// Runs one input; `Err` says what contradicted which claim.
pub fn run(data: &[u8]) -> Result<(), String> {
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
                let enriched = enrich_learning(&inv, &flow, |w, end| catalog.knows(w, &end.labels));
                conns.add(&flow, enriched);
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
        check_key(&key.src)?;
        check_key(&key.dst)?;
    }
    let generation = generate(&inv, &conns, &opts);
    let v = verify(&generation, &inv, &conns.catalog);
    if !v.ok() {
        return Err(format!("{} mismatches: {:#?}", v.mismatches.len(), v.mismatches));
    }
    to_yaml(&generation.policies).map_err(|e| format!("the policies do not serialise: {e}"))?;
    // The same rules as CiliumNetworkPolicies, read as Cilium reads them.
    let cilium = flowgate::policy::cilium::render(&generation);
    let v = flowgate::policy::verify::verify_cilium(&generation, &cilium.policies, &inv, &conns.catalog, &conns.names);
    if !v.ok() {
        return Err(format!("{} Cilium mismatches: {:#?}", v.mismatches.len(), v.mismatches));
    }
    flowgate::policy::cilium::to_yaml(&cilium.policies)
        .map_err(|e| format!("the Cilium policies do not serialise: {e}"))?;
    Ok(())
}
