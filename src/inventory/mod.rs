//! The Kubernetes inventory: objects read from files (or, later, watched) and indexed so that an
//! address at a point in time resolves to a pod, its owning workload, a Service or a node.

pub mod load;

pub use load::{KubeObject, LoadError, Loaded, load_paths, parse_text};
