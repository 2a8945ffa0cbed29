//! A pod's owning workload, following the owner chain (Pod -> ReplicaSet -> Deployment,
//! Pod -> Job -> CronJob, StatefulSet, DaemonSet, bare Pod). Where a link is missing from the
//! inventory it is inferred from the names Kubernetes generates (`<deployment>-<pod-template-hash>`)
//! and the caller is told so.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::KubeObject;
use crate::model::{NameRule, WorkloadKind, WorkloadRef};

pub struct OwnerIndex<'a> {
    replicasets: HashMap<(&'a str, &'a str), &'a ObjectMeta>,
    jobs: HashMap<(&'a str, &'a str), &'a ObjectMeta>,
}

fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    let refs = meta.owner_references.as_ref()?;
    refs.iter().find(|r| r.controller == Some(true)).or_else(|| refs.first())
}

impl<'a> OwnerIndex<'a> {
    pub fn new(objects: &'a [KubeObject]) -> Self {
        let mut replicasets = HashMap::new();
        let mut jobs = HashMap::new();
        for o in objects {
            let (map, meta) = match o {
                KubeObject::ReplicaSet(rs) => (&mut replicasets, &rs.metadata),
                KubeObject::Job(j) => (&mut jobs, &j.metadata),
                _ => continue,
            };
            if let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) {
                map.insert((ns.as_str(), name.as_str()), meta);
            }
        }
        OwnerIndex { replicasets, jobs }
    }

    /// The Deployment that owns a ReplicaSet, if any.
    pub fn top_owner_of_rs(&self, rs: &ReplicaSet) -> Option<WorkloadRef> {
        let ns = rs.metadata.namespace.as_deref()?;
        let r = controller(&rs.metadata)?;
        (r.kind == "Deployment").then(|| WorkloadRef::new(WorkloadKind::Deployment, ns, r.name.clone()))
    }

    /// The CronJob that owns a Job, if any.
    pub fn top_owner_of_job(&self, job: &Job) -> Option<WorkloadRef> {
        let ns = job.metadata.namespace.as_deref()?;
        let r = controller(&job.metadata)?;
        (r.kind == "CronJob").then(|| WorkloadRef::new(WorkloadKind::CronJob, ns, r.name.clone()))
    }

    /// The pod's top-level owner, and a note when a link had to be inferred. An owner name
    /// inferred from the pod's (`web--x` with hash `x` gives `web-`) that is not a valid name for
    /// its kind is not used: the pod is then its own workload.
    pub fn owner_of_pod(&self, pod: &Pod) -> (WorkloadRef, Option<String>) {
        let (w, note) = self.owner_of_pod_unchecked(pod);
        match NameRule::for_workload(w.kind).check(&w.name) {
            Ok(()) => (w, note),
            Err(e) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let note = format!(
                    "pod {ns}/{name}: its {} would be {e}; the pod is taken as its own workload",
                    w.kind.kube_kind()
                );
                (WorkloadRef::new(WorkloadKind::Pod, ns, name), Some(note))
            }
        }
    }

    fn owner_of_pod_unchecked(&self, pod: &Pod) -> (WorkloadRef, Option<String>) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.as_ref();
        let bare = || WorkloadRef::new(WorkloadKind::Pod, ns, name);
        let Some(r) = controller(&pod.metadata) else {
            // No owner reference: a bare pod, unless its labels show a ReplicaSet's hash.
            if let Some(hash) = labels.and_then(|l| l.get("pod-template-hash"))
                && let Some(dep) = strip_generated(name, hash)
            {
                return (
                    WorkloadRef::new(WorkloadKind::Deployment, ns, dep),
                    Some(format!(
                        "pod {ns}/{name} has no owner reference; Deployment {dep} inferred from pod-template-hash"
                    )),
                );
            }
            return (bare(), None);
        };
        match r.kind.as_str() {
            "ReplicaSet" => match self.replicasets.get(&(ns, r.name.as_str())) {
                Some(rs) => match controller(rs) {
                    Some(top) if top.kind == "Deployment" => {
                        (WorkloadRef::new(WorkloadKind::Deployment, ns, top.name.clone()), None)
                    }
                    _ => (WorkloadRef::new(WorkloadKind::ReplicaSet, ns, r.name.clone()), None),
                },
                None => {
                    let hash = labels.and_then(|l| l.get("pod-template-hash"));
                    match hash.and_then(|h| r.name.strip_suffix(h.as_str())).and_then(|s| s.strip_suffix('-')) {
                        Some(dep) if !dep.is_empty() => (
                            WorkloadRef::new(WorkloadKind::Deployment, ns, dep),
                            Some(format!(
                                "ReplicaSet {ns}/{} is not in the inventory; Deployment {dep} inferred from pod-template-hash",
                                r.name
                            )),
                        ),
                        _ => (WorkloadRef::new(WorkloadKind::ReplicaSet, ns, r.name.clone()), None),
                    }
                }
            },
            "Job" => match self.jobs.get(&(ns, r.name.as_str())) {
                Some(job) => match controller(job) {
                    Some(top) if top.kind == "CronJob" => {
                        (WorkloadRef::new(WorkloadKind::CronJob, ns, top.name.clone()), None)
                    }
                    _ => (WorkloadRef::new(WorkloadKind::Job, ns, r.name.clone()), None),
                },
                None => (
                    WorkloadRef::new(WorkloadKind::Job, ns, r.name.clone()),
                    Some(format!(
                        "Job {ns}/{} is not in the inventory; it is taken as the workload (its CronJob, if any, is unknown)",
                        r.name
                    )),
                ),
            },
            "StatefulSet" => (WorkloadRef::new(WorkloadKind::StatefulSet, ns, r.name.clone()), None),
            "DaemonSet" => (WorkloadRef::new(WorkloadKind::DaemonSet, ns, r.name.clone()), None),
            "ReplicationController" => {
                (WorkloadRef::new(WorkloadKind::ReplicationController, ns, r.name.clone()), None)
            }
            "Deployment" => (WorkloadRef::new(WorkloadKind::Deployment, ns, r.name.clone()), None),
            "CronJob" => (WorkloadRef::new(WorkloadKind::CronJob, ns, r.name.clone()), None),
            // Node-owned static pods (kube-system control plane) and custom controllers: the pod
            // is its own workload.
            _ => (bare(), None),
        }
    }
}

/// `web-7d9f8b6c5d-x2x9q` with hash `7d9f8b6c5d` -> `web`.
fn strip_generated<'n>(pod_name: &'n str, hash: &str) -> Option<&'n str> {
    let idx = pod_name.rfind(&format!("-{hash}-"))?;
    Some(&pod_name[..idx]).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::parse_text;

    fn owner(objects: &str, pod: &str) -> (String, bool) {
        let loaded = parse_text(objects, "t.yaml");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let idx = OwnerIndex::new(&loaded.objects);
        let pod = loaded
            .objects
            .iter()
            .find_map(|o| match o {
                KubeObject::Pod(p) if p.metadata.name.as_deref() == Some(pod) => Some(p),
                _ => None,
            })
            .expect("pod in fixture");
        let (w, note) = idx.owner_of_pod(pod);
        (w.to_string(), note.is_some())
    }

    const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-5d4f, namespace: shop, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: "1", controller: true}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: report-2890, namespace: shop, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: report, uid: "2", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-5d4f-abcde, namespace: shop, labels: {pod-template-hash: 5d4f}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f, uid: "3", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-77aa-zzzzz, namespace: shop, labels: {pod-template-hash: 77aa}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: api-77aa, uid: "4", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: report-2890-q1, namespace: shop, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: report-2890, uid: "5", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: "6", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: agent-x1, namespace: shop, ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: "7", controller: true}]}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: orphan-99ff-aaaaa, namespace: shop, labels: {pod-template-hash: 99ff}}
---
apiVersion: v1
kind: Pod
metadata: {name: a--99ff-aaaaa, namespace: shop, labels: {pod-template-hash: 99ff}}
"#;

    #[test]
    fn follows_and_infers_owner_chains() {
        let cases = [
            ("web-5d4f-abcde", "deployment/shop/web", false),
            ("api-77aa-zzzzz", "deployment/shop/api", true),
            ("report-2890-q1", "cronjob/shop/report", false),
            ("db-0", "statefulset/shop/db", false),
            ("agent-x1", "daemonset/shop/agent", false),
            ("debug", "pod/shop/debug", false),
            ("orphan-99ff-aaaaa", "deployment/shop/orphan", true),
            // Deployment `a-` is no name: the pod stands for itself.
            ("a--99ff-aaaaa", "pod/shop/a--99ff-aaaaa", true),
        ];
        for (pod, want, inferred) in cases {
            assert_eq!(owner(OBJECTS, pod), (want.to_string(), inferred), "pod {pod}");
        }
    }
}
