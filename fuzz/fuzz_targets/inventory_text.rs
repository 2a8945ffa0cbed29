//! A file given to `--inventory` (or an imported snapshot): `inventory::parse_text` (JSON, a List,
//! multi-document YAML), then the index built from its objects and a generation over it. Names,
//! labels, selectors and ports are all untrusted here: no panic, and what is generated verifies.
#![no_main]

use flowgate::inventory::{Inventory, parse_text};
use flowgate::policy::generate::{Options, generate};
use flowgate::policy::verify::verify;
use flowgate::topology::{Catalog, Connections};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = parse_text(text, "fuzz");
    let inv = Inventory::build(&loaded.objects);
    let _ = inv.dns_service();
    let conns = Connections::new(Catalog::from_inventory(&inv));
    let generation = generate(&inv, &conns, &Options::default());
    let v = verify(&generation, &inv, &conns.catalog);
    assert!(v.ok(), "{} mismatches: {:#?}", v.mismatches.len(), v.mismatches);
});
