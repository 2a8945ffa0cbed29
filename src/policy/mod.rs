//! NetworkPolicies: generation from reviewed connections (stable selectors, merged rules, YAML),
//! and evaluation of what a set of policies allows, which verifies every generated set.

pub mod eval;
pub mod generate;
pub mod portset;
pub mod provenance;
pub mod safety;
pub mod selector;
pub mod simulate;
pub mod verify;
