//! Flowgate turns observed network flows into verified least-privilege Kubernetes NetworkPolicies.
//!
//! The core is pure and synchronous (values in, values out); IO lives at the edges.
//!
//! - [`model`]: domain values (protocols, ports, workload refs, CIDRs, peers, flow records), and
//!   Kubernetes names and labels as the API server checks them ([`model::names`]).
//! - [`inventory`]: Kubernetes objects from files, checked (names, labels) and indexed by address
//!   and time; owner chains.
//! - [`flows`]: flow formats (Hubble JSON, Flowgate NDJSON) and streaming, parallel readers.
//! - [`dns`]: DNS names seen for addresses (Hubble's DNS answers, flows' destination names),
//!   bounded per address.
//! - [`enrich`]: a flow plus the inventory at the flow's time gives Kubernetes-level endpoints.
//! - [`topology`]: enriched flows folded into connections; the catalog of workloads and labels.
//! - [`policy`]: policy generation in two dialects (NetworkPolicy, CiliumNetworkPolicy), selectors,
//!   YAML, evaluation of both and verification.
//! - [`retention`]: which flow times the store takes at a given now (expired, future, current).
//! - [`store`]: PostgreSQL: time-aware inventory, flows, hourly aggregates, decisions, sessions
//!   (IO shell).
//! - [`ingest`]: flows into the store in batches, enriched against the stored inventory (IO shell).
//! - [`relay`]: Hubble Relay's gRPC stream (hand-written prost messages, tonic client) into the
//!   ingest, resuming, with backoff and backpressure (IO shell).
//! - [`metrics`]: what `serve` counts (flows per source, batch and request latencies, watch
//!   restarts) and its Prometheus text exposition; atomics, no IO.
//! - [`review`]: store-backed generation with each workload's stored decisions.
//! - [`report`]: a review as table rows, the map's graph and summaries, for the CLI and the web.
//! - [`web`]: the HTTP server: flow ingestion API (and the review UI), auth and sessions, errors,
//!   probes, and its bounds (ingest slots, timeouts, connection cap, graceful shutdown).
//! - [`watch`]: a live cluster through kube-rs reflectors, recorded in the store (IO shell).
//! - [`offline`]: the CLI's pipeline over files (IO shell around the core).
pub mod dns;
pub mod enrich;
pub mod flows;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod policy;
pub mod relay;
pub mod report;
pub mod retention;
pub mod review;
pub mod store;
pub mod topology;
pub mod watch;
pub mod web;
