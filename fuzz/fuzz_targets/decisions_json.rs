//! Review decisions as they come in and go back out:
//!
//! - the body of `PUT …/decisions`, read exactly as `web::api::put_decisions` reads it
//!   (`serde_json::from_slice` into its private `PutDecisions`, mirrored here field for field);
//! - `policy::generate::Decisions` itself from JSON;
//! - then what the store does with accepted decisions: each set written as text
//!   (`store::decisions::put_decisions`) and parsed back on read (`parse_row`), which must give
//!   the same decisions, or a stored change could not be read again (a 500 on every later page).
#![no_main]

use std::collections::BTreeSet;
use std::net::IpAddr;

use flowgate::model::{Cidr, DnsName, PeerSpec};
use flowgate::policy::generate::{Decisions, Direction};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// `web::api::PutDecisions`, which is private to its handler.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PutDecisions {
    #[serde(default)]
    exclude: BTreeSet<PeerSpec>,
    #[serde(default)]
    trust: BTreeSet<Cidr>,
    #[serde(default)]
    include_unresolved: BTreeSet<IpAddr>,
    #[serde(default)]
    trust_names: BTreeSet<DnsName>,
    #[serde(default)]
    leave_out: BTreeSet<Direction>,
    version: Option<i32>,
}

/// Through the store's text columns and back, as `put_decisions` and `parse_row` do it.
fn stored(d: &Decisions) -> Decisions {
    let exclude: Vec<String> = d.exclude.iter().map(|p| p.to_string()).collect();
    let trust: Vec<String> = d.trust.iter().map(|c| c.to_string()).collect();
    let unresolved: Vec<String> = d.include_unresolved.iter().map(|ip| ip.to_string()).collect();
    let names: Vec<String> = d.trust_names.iter().map(|n| n.to_string()).collect();
    let leave_out: Vec<String> = d.leave_out.iter().map(|d| d.as_str().to_string()).collect();
    for s in exclude.iter().chain(&trust).chain(&unresolved).chain(&names).chain(&leave_out) {
        // PostgreSQL text cannot hold NUL.
        assert!(!s.contains('\0'), "{s:?}");
    }
    Decisions {
        exclude: exclude.iter().map(|p| p.parse().unwrap_or_else(|e| panic!("stored {p:?}: {e}"))).collect(),
        trust: trust.iter().map(|c| c.parse().unwrap_or_else(|e| panic!("stored {c:?}: {e}"))).collect(),
        include_unresolved: unresolved
            .iter()
            .map(|ip| ip.parse().unwrap_or_else(|e| panic!("stored {ip:?}: {e}")))
            .collect(),
        include_all_unresolved: false,
        trust_names: names.iter().map(|n| n.parse().unwrap_or_else(|e| panic!("stored {n:?}: {e}"))).collect(),
        leave_out: leave_out.iter().map(|d| d.parse().unwrap_or_else(|e| panic!("stored {d:?}: {e}"))).collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(put) = serde_json::from_slice::<PutDecisions>(data) {
        let d = Decisions {
            exclude: put.exclude,
            trust: put.trust,
            include_unresolved: put.include_unresolved,
            include_all_unresolved: false,
            trust_names: put.trust_names,
            leave_out: put.leave_out,
        };
        assert_eq!(stored(&d), d);
        // And what GET …/decisions answers reads back as the same decisions.
        let json = serde_json::json!({
            "exclude": d.exclude, "trust": d.trust, "include_unresolved": d.include_unresolved,
            "trust_names": d.trust_names, "leave_out": d.leave_out
        });
        let back: PutDecisions = serde_json::from_value(json).expect("GET's answer is a valid PUT");
        assert_eq!(
            (back.exclude, back.trust, back.include_unresolved, back.trust_names, back.leave_out),
            (d.exclude, d.trust, d.include_unresolved, d.trust_names, d.leave_out)
        );
    }
    if let Ok(d) = serde_json::from_slice::<Decisions>(data) {
        let json = serde_json::to_vec(&d).expect("decisions serialise");
        assert_eq!(serde_json::from_slice::<Decisions>(&json).ok().as_ref(), Some(&d));
        let d = Decisions { include_all_unresolved: false, ..d };
        assert_eq!(stored(&d), d);
    }
});
