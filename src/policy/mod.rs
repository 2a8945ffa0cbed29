//! NetworkPolicies: generation from reviewed connections, stable selectors, YAML output.

pub mod generate;
pub mod selector;
