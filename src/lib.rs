//! Flowgate turns observed network flows into verified least-privilege Kubernetes NetworkPolicies.
//!
//! The core is pure and synchronous (values in, values out); IO lives at the edges.
//!
//! - [`model`]: domain values (protocols, ports, workload refs, CIDRs, peers, flow records).
//! - [`policy`]: NetworkPolicy generation (selectors, merged rules, YAML) and evaluation.
//! - [`topology`]: enriched flows folded into connections; the catalog of workloads and labels.
//! - [`enrich`]: a flow plus the inventory at the flow's time gives Kubernetes-level endpoints.
//! - [`inventory`]: Kubernetes objects from files, indexed by address and time.
pub mod enrich;
pub mod inventory;
pub mod model;
pub mod policy;
pub mod topology;
