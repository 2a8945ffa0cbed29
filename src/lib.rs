//! Flowgate turns observed network flows into verified least-privilege Kubernetes NetworkPolicies.
//!
//! The core is pure and synchronous (values in, values out); IO lives at the edges.
//!
//! - [`model`]: domain values (protocols, ports, workload refs, CIDRs, peers, flow records).
//! - [`inventory`]: Kubernetes objects from files, indexed by address and time.
//! - [`flows`]: flow sources and their formats (Hubble JSON, Flowgate NDJSON), streamed and parsed in parallel.
pub mod flows;
pub mod inventory;
pub mod model;
