//! NetworkPolicies: evaluating what a set of policies allows (and, later, generating them).

pub mod eval;
pub mod portset;
