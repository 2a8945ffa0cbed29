//! Network policies: generation from reviewed connections (stable selectors, merged rules, YAML)
//! in either dialect, and evaluation of what a set of policies allows, which verifies every
//! generated set.

pub mod admin;
pub mod cilium;
pub mod diff;
pub mod eval;
pub mod generate;
pub mod guardrails;
pub mod portset;
pub mod provenance;
pub mod safety;
pub mod selector;
pub mod simulate;
pub mod verify;

use std::fmt;
use std::str::FromStr;

/// The policy language a generation is written in: `networking.k8s.io/v1` NetworkPolicy, or
/// Cilium's `cilium.io/v2` CiliumNetworkPolicy. Both come from the same decisions
/// ([`generate::Generation`]'s neutral rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Dialect {
    #[default]
    Kubernetes,
    Cilium,
}

impl Dialect {
    pub const ALL: [Dialect; 2] = [Dialect::Kubernetes, Dialect::Cilium];

    /// `kubernetes` or `cilium`, as flags and URLs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Kubernetes => "kubernetes",
            Dialect::Cilium => "cilium",
        }
    }

    /// What a person reads: `NetworkPolicy` or `CiliumNetworkPolicy`.
    pub fn kind(self) -> &'static str {
        match self {
            Dialect::Kubernetes => "NetworkPolicy",
            Dialect::Cilium => cilium::KIND,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?} (expected kubernetes or cilium)")]
pub struct DialectError(String);

impl FromStr for Dialect {
    type Err = DialectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "kubernetes" | "k8s" => Ok(Dialect::Kubernetes),
            "cilium" => Ok(Dialect::Cilium),
            _ => Err(DialectError(crate::model::names::excerpt(s))),
        }
    }
}
