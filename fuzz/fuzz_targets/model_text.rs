//! The text values users and URLs hand to the core: `--exclude`/`--trust` and the trusted-CIDR
//! field (`model::Cidr`, `model::PeerSpec`), workloads in URLs (`model::WorkloadRef`), the review
//! form's `peer` (`enrich::Endpoint::from_key`), `since=`/`until=` (`topology::TimeBound`), ports
//! and protocols. No panic; and whatever parses prints back to text that parses to the same value,
//! because that text is what the store keeps (decisions are stored as JSON of these strings) and
//! what the UI links to.
#![no_main]

use std::str::FromStr;

use flowgate::enrich::Endpoint;
use flowgate::model::{Cidr, PeerSpec, Port, Protocol, WorkloadKind, WorkloadRef};
use flowgate::topology::TimeBound;
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(s: &str)
where
    T: FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = s.parse::<T>() {
        let text = v.to_string();
        match text.parse::<T>() {
            Ok(back) => assert_eq!(back, v, "{s:?} -> {text:?}"),
            Err(_) => panic!("{s:?} parsed, but its text {text:?} does not"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    round_trip::<Cidr>(s);
    round_trip::<PeerSpec>(s);
    round_trip::<WorkloadRef>(s);
    round_trip::<WorkloadKind>(s);
    round_trip::<Port>(s);
    round_trip::<Protocol>(s);
    // Stored as JSON strings (serde try_from/into String): the same round trip through serde.
    if let Ok(p) = s.parse::<PeerSpec>() {
        let json = serde_json::to_string(&p).expect("a peer serialises");
        assert_eq!(serde_json::from_str::<PeerSpec>(&json).ok(), Some(p), "{json}");
    }
    if let Some(e) = Endpoint::from_key(s) {
        let key = e.key();
        assert_eq!(Endpoint::from_key(&key).as_ref(), Some(&e), "{s:?} -> {key:?}");
    }
    if let Ok(b) = s.parse::<TimeBound>() {
        let _ = b.resolve(Some(jiff::Timestamp::MAX));
        let _ = b.resolve(Some(jiff::Timestamp::MIN));
        let _ = b.resolve(Some(jiff::Timestamp::UNIX_EPOCH));
    }
});
