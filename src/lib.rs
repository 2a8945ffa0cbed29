//! Flowgate turns observed network flows into verified least-privilege Kubernetes NetworkPolicies.
//!
//! The core is pure and synchronous (values in, values out); IO lives at the edges.
//!
//! - [`model`]: domain values (protocols, ports, workload refs, CIDRs, peers, flow records).
//! - [`inventory`]: Kubernetes objects from files, indexed by address and time.
//! - [`policy`]: NetworkPolicy semantics: which connections a set of policies allows.
pub mod inventory;
pub mod model;
pub mod policy;
