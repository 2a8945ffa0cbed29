//! Kubernetes objects from text: `kubectl get ... -o json` output (a single object or a `List`),
//! multi-document YAML, or a folder of such files.
//!
//! Parsing is pure (`parse_text`); only `load_paths` touches the file system. A broken document
//! is reported with its file and document number and costs nothing else: the other documents of
//! the file, and the other files, still load. Every object's names and labels are checked as it
//! is read ([`super::check`]): one with a bad name is skipped, a bad label dropped, each with a
//! warning that says where (file, document, kind and name) and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::policy::admin::{self, AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy};

/// The kinds Flowgate reads. Everything else is counted and ignored.
// Most objects in a cluster are Pods, the largest variant: boxing would cost an allocation each
// and save little.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum KubeObject {
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    Service(Service),
    EndpointSlice(EndpointSlice),
    ReplicaSet(ReplicaSet),
    ReplicationController(ReplicationController),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Job(Job),
    CronJob(CronJob),
    NetworkPolicy(NetworkPolicy),
    /// A `networking.k8s.io/v1` Ingress: its backend Services' pods are reached from outside the
    /// cluster, through the ingress controller ([`crate::policy::safety::exposure`]).
    Ingress(Ingress),
    /// The cluster-scoped policies of `policy.networking.k8s.io` ([`crate::policy::admin`]).
    AdminNetworkPolicy(AdminNetworkPolicy),
    BaselineAdminNetworkPolicy(BaselineAdminNetworkPolicy),
    ClusterNetworkPolicy(ClusterNetworkPolicy),
}

/// A problem with one document; `doc` counts from 1 within the file (or the List's items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub source: String,
    pub doc: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.doc {
            Some(d) => write!(f, "{}: document {}: {}", self.source, d, self.reason),
            None => write!(f, "{}: {}", self.source, self.reason),
        }
    }
}

impl std::error::Error for LoadError {}

/// Everything read from a set of inventory inputs.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub objects: Vec<KubeObject>,
    /// Kinds that were read but are not used, with how many of each.
    pub ignored: BTreeMap<String, usize>,
    pub errors: Vec<LoadError>,
    /// Objects skipped because their name or namespace breaks Kubernetes' rules.
    pub skipped: usize,
    /// One per skipped object and per thing dropped from an object (a label, an owner
    /// reference, ...), with where and why.
    pub warnings: Vec<LoadError>,
    pub files: usize,
}

impl Loaded {
    pub fn merge(&mut self, other: Loaded) {
        self.objects.extend(other.objects);
        for (k, n) in other.ignored {
            *self.ignored.entry(k).or_default() += n;
        }
        self.errors.extend(other.errors);
        self.skipped += other.skipped;
        self.warnings.extend(other.warnings);
        self.files += other.files;
    }
}

/// Files larger than this are refused: an inventory is metadata, and a runaway file should not
/// take the process's memory with it.
pub const MAX_INVENTORY_FILE: u64 = 512 * 1024 * 1024;

/// Reads files and folders (recursively, `.json`, `.yaml`, `.yml`, in name order).
/// Fails only when a named path cannot be read at all.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut out = Loaded::default();
    for path in paths {
        let mut files = Vec::new();
        collect_files(path, &mut files, true)?;
        for file in files {
            let source = file.display().to_string();
            let meta = std::fs::metadata(&file).map_err(|e| LoadError {
                source: source.clone(),
                doc: None,
                reason: e.to_string(),
            })?;
            if meta.len() > MAX_INVENTORY_FILE {
                out.errors.push(LoadError {
                    source,
                    doc: None,
                    reason: format!("file is {} bytes; the limit is {MAX_INVENTORY_FILE}", meta.len()),
                });
                continue;
            }
            match std::fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => out.merge(parse_text(&text, &source)),
                    Err(_) => out.errors.push(LoadError { source, doc: None, reason: "not UTF-8 text".into() }),
                },
                Err(e) => out.errors.push(LoadError { source, doc: None, reason: e.to_string() }),
            }
        }
    }
    Ok(out)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, named: bool) -> Result<(), LoadError> {
    let err = |e: std::io::Error| LoadError { source: path.display().to_string(), doc: None, reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).map_err(err)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            let hidden = e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&e, out, false)?;
            }
        }
    } else if named || is_manifest(path) {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml"))
}

/// Parses one file's text: JSON when it starts with `{` or `[`, YAML (one or more documents)
/// otherwise. `source` names the input in errors.
pub fn parse_text(text: &str, source: &str) -> Loaded {
    parse(text, source, true)
}

/// [`parse_text`] without the name and label checks: objects as an older version stored them.
#[cfg(test)]
pub(crate) fn parse_unchecked(text: &str, source: &str) -> Loaded {
    parse(text, source, false)
}

fn parse(text: &str, source: &str, checked: bool) -> Loaded {
    let mut out = Loaded { files: 1, ..Loaded::default() };
    let trimmed = text.trim_start();
    // JSON when it looks like JSON and parses as a stream of JSON values; YAML (a superset, which
    // also covers JSON documents separated by `---`) otherwise.
    let json_docs = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut docs = Vec::new();
        let mut failed = None;
        for (i, v) in serde_json::Deserializer::from_str(trimmed).into_iter::<Value>().enumerate() {
            match v {
                Ok(Value::Array(items)) => docs.extend(items),
                Ok(v) => docs.push(v),
                Err(e) => {
                    failed = Some((i + 1, e));
                    break;
                }
            }
        }
        match failed {
            None => Some(docs),
            Some((doc, e)) if split_yaml_documents(text).len() <= 1 => {
                out.errors.push(LoadError {
                    source: source.into(),
                    doc: Some(doc),
                    reason: format!("invalid JSON: {e}"),
                });
                Some(docs)
            }
            Some(_) => None,
        }
    } else {
        None
    };
    let docs: Vec<Value> = if let Some(docs) = json_docs {
        docs
    } else {
        match serde_saphyr::from_multiple::<Value>(text) {
            Ok(docs) => docs,
            Err(e) => {
                // A YAML syntax error stops the parser; retry document by document so one bad
                // document does not hide the good ones.
                let mut docs = Vec::new();
                for (i, chunk) in split_yaml_documents(text).into_iter().enumerate() {
                    match serde_saphyr::from_str::<Value>(chunk) {
                        Ok(v) => docs.push(v),
                        Err(e) => out.errors.push(LoadError {
                            source: source.into(),
                            doc: Some(i + 1),
                            reason: format!("invalid YAML: {}", first_line(&e.to_string())),
                        }),
                    }
                }
                if docs.is_empty() && out.errors.is_empty() {
                    out.errors.push(LoadError {
                        source: source.into(),
                        doc: None,
                        reason: format!("invalid YAML: {e}"),
                    });
                }
                docs
            }
        }
    };
    for (i, doc) in docs.into_iter().enumerate() {
        add_value(doc, source, i + 1, None, checked, &mut out);
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn split_yaml_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            if !text[start..offset].trim().is_empty() {
                docs.push(&text[start..offset]);
            }
            start = offset + line.len();
        }
        offset += line.len();
    }
    if !text[start..].trim().is_empty() {
        docs.push(&text[start..]);
    }
    docs
}

fn add_value(doc: Value, source: &str, n: usize, list_kind: Option<&str>, checked: bool, out: &mut Loaded) {
    if doc.is_null() {
        return;
    }
    let kind = doc.get("kind").and_then(Value::as_str).map(str::to_string).or_else(|| list_kind.map(str::to_string));
    let Some(kind) = kind else {
        out.errors.push(LoadError { source: source.into(), doc: Some(n), reason: "object has no `kind`".into() });
        return;
    };
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let ignored_key = if api.is_empty() { kind.clone() } else { format!("{kind} ({api})") };
    if kind == "List" || (kind.ends_with("List") && doc.get("items").is_some()) {
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty()).map(str::to_string);
        let items = match doc {
            Value::Object(mut m) => m.remove("items"),
            _ => None,
        };
        match items {
            Some(Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let src = format!("{source}: document {n}: items[{i}]");
                    add_value(item, &src, i + 1, item_kind.as_deref(), checked, out);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => out.errors.push(LoadError {
                source: source.into(),
                doc: Some(n),
                reason: "`items` is not a list".into(),
            }),
        }
        return;
    }
    let parsed = match object_from_value(&kind, doc) {
        Some(p) => p,
        None => {
            *out.ignored.entry(ignored_key).or_default() += 1;
            return;
        }
    };
    match parsed {
        Ok(obj) if !checked => out.objects.push(obj),
        Ok(obj) => {
            let who = super::check::who(&obj);
            let warn = |reason: String| LoadError { source: source.into(), doc: Some(n), reason };
            match super::check::clean(obj) {
                Ok((obj, dropped)) => {
                    out.warnings.extend(dropped.into_iter().map(|d| warn(format!("{who}: {d}"))));
                    out.objects.push(obj);
                }
                Err(why) => {
                    out.skipped += 1;
                    out.warnings.push(warn(format!("{who}: {why}; the object is skipped")));
                }
            }
        }
        Err(reason) => {
            out.errors.push(LoadError { source: source.into(), doc: Some(n), reason: format!("{kind}: {reason}") })
        }
    }
}

/// A typed object from its JSON, or `None` for a kind Flowgate does not read.
pub fn object_from_value(kind: &str, doc: Value) -> Option<Result<KubeObject, String>> {
    let parsed = match kind {
        "Namespace" => typed(doc).map(KubeObject::Namespace),
        "Node" => typed(doc).map(KubeObject::Node),
        "Pod" => typed(doc).map(KubeObject::Pod),
        "Service" => typed(doc).map(KubeObject::Service),
        "EndpointSlice" => typed(doc).map(KubeObject::EndpointSlice),
        "ReplicaSet" => typed(doc).map(KubeObject::ReplicaSet),
        "ReplicationController" => typed(doc).map(KubeObject::ReplicationController),
        "Deployment" => typed(doc).map(KubeObject::Deployment),
        "StatefulSet" => typed(doc).map(KubeObject::StatefulSet),
        "DaemonSet" => typed(doc).map(KubeObject::DaemonSet),
        "Job" => typed(doc).map(KubeObject::Job),
        "CronJob" => typed(doc).map(KubeObject::CronJob),
        "NetworkPolicy" if is_core_netpol(&doc) => typed(doc).map(KubeObject::NetworkPolicy),
        // The v1beta1 Ingresses of old clusters have another shape; they are not read.
        "Ingress" if is_core_netpol(&doc) => typed(doc).map(KubeObject::Ingress),
        admin::ANP_KIND if api_version_is(&doc, admin::V1ALPHA1, true) => {
            typed(doc).map(KubeObject::AdminNetworkPolicy)
        }
        admin::BANP_KIND if api_version_is(&doc, admin::V1ALPHA1, true) => {
            typed(doc).map(KubeObject::BaselineAdminNetworkPolicy)
        }
        // Antrea has a ClusterNetworkPolicy kind of its own: the group must be said.
        admin::CNP_KIND if api_version_is(&doc, admin::V1ALPHA2, false) => {
            typed(doc).map(KubeObject::ClusterNetworkPolicy)
        }
        _ => return None,
    };
    Some(parsed)
}

impl KubeObject {
    pub fn kind(&self) -> &'static str {
        match self {
            KubeObject::Namespace(_) => "Namespace",
            KubeObject::Node(_) => "Node",
            KubeObject::Pod(_) => "Pod",
            KubeObject::Service(_) => "Service",
            KubeObject::EndpointSlice(_) => "EndpointSlice",
            KubeObject::ReplicaSet(_) => "ReplicaSet",
            KubeObject::ReplicationController(_) => "ReplicationController",
            KubeObject::Deployment(_) => "Deployment",
            KubeObject::StatefulSet(_) => "StatefulSet",
            KubeObject::DaemonSet(_) => "DaemonSet",
            KubeObject::Job(_) => "Job",
            KubeObject::CronJob(_) => "CronJob",
            KubeObject::NetworkPolicy(_) => "NetworkPolicy",
            KubeObject::Ingress(_) => "Ingress",
            KubeObject::AdminNetworkPolicy(_) => admin::ANP_KIND,
            KubeObject::BaselineAdminNetworkPolicy(_) => admin::BANP_KIND,
            KubeObject::ClusterNetworkPolicy(_) => admin::CNP_KIND,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            KubeObject::Namespace(o) => &o.metadata,
            KubeObject::Node(o) => &o.metadata,
            KubeObject::Pod(o) => &o.metadata,
            KubeObject::Service(o) => &o.metadata,
            KubeObject::EndpointSlice(o) => &o.metadata,
            KubeObject::ReplicaSet(o) => &o.metadata,
            KubeObject::ReplicationController(o) => &o.metadata,
            KubeObject::Deployment(o) => &o.metadata,
            KubeObject::StatefulSet(o) => &o.metadata,
            KubeObject::DaemonSet(o) => &o.metadata,
            KubeObject::Job(o) => &o.metadata,
            KubeObject::CronJob(o) => &o.metadata,
            KubeObject::NetworkPolicy(o) => &o.metadata,
            KubeObject::Ingress(o) => &o.metadata,
            KubeObject::AdminNetworkPolicy(o) => &o.metadata,
            KubeObject::BaselineAdminNetworkPolicy(o) => &o.metadata,
            KubeObject::ClusterNetworkPolicy(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            KubeObject::Namespace(o) => &mut o.metadata,
            KubeObject::Node(o) => &mut o.metadata,
            KubeObject::Pod(o) => &mut o.metadata,
            KubeObject::Service(o) => &mut o.metadata,
            KubeObject::EndpointSlice(o) => &mut o.metadata,
            KubeObject::ReplicaSet(o) => &mut o.metadata,
            KubeObject::ReplicationController(o) => &mut o.metadata,
            KubeObject::Deployment(o) => &mut o.metadata,
            KubeObject::StatefulSet(o) => &mut o.metadata,
            KubeObject::DaemonSet(o) => &mut o.metadata,
            KubeObject::Job(o) => &mut o.metadata,
            KubeObject::CronJob(o) => &mut o.metadata,
            KubeObject::NetworkPolicy(o) => &mut o.metadata,
            KubeObject::Ingress(o) => &mut o.metadata,
            KubeObject::AdminNetworkPolicy(o) => &mut o.metadata,
            KubeObject::BaselineAdminNetworkPolicy(o) => &mut o.metadata,
            KubeObject::ClusterNetworkPolicy(o) => &mut o.metadata,
        }
    }

    /// The object as JSON (with apiVersion and kind), as the store keeps it.
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        match self {
            KubeObject::Namespace(o) => serde_json::to_value(o),
            KubeObject::Node(o) => serde_json::to_value(o),
            KubeObject::Pod(o) => serde_json::to_value(o),
            KubeObject::Service(o) => serde_json::to_value(o),
            KubeObject::EndpointSlice(o) => serde_json::to_value(o),
            KubeObject::ReplicaSet(o) => serde_json::to_value(o),
            KubeObject::ReplicationController(o) => serde_json::to_value(o),
            KubeObject::Deployment(o) => serde_json::to_value(o),
            KubeObject::StatefulSet(o) => serde_json::to_value(o),
            KubeObject::DaemonSet(o) => serde_json::to_value(o),
            KubeObject::Job(o) => serde_json::to_value(o),
            KubeObject::CronJob(o) => serde_json::to_value(o),
            KubeObject::NetworkPolicy(o) => serde_json::to_value(o),
            KubeObject::Ingress(o) => serde_json::to_value(o),
            KubeObject::AdminNetworkPolicy(o) => serde_json::to_value(o),
            KubeObject::BaselineAdminNetworkPolicy(o) => serde_json::to_value(o),
            KubeObject::ClusterNetworkPolicy(o) => serde_json::to_value(o),
        }
    }
}

/// Only `networking.k8s.io/v1` NetworkPolicies (and Ingresses); Calico's and Cilium's own kinds
/// share the name.
fn is_core_netpol(doc: &Value) -> bool {
    matches!(doc.get("apiVersion").and_then(Value::as_str), None | Some("networking.k8s.io/v1"))
}

/// `apiVersion` is `want` (or, with `or_missing`, not given).
fn api_version_is(doc: &Value, want: &str, or_missing: bool) -> bool {
    match doc.get("apiVersion").and_then(Value::as_str) {
        None => or_missing,
        Some(v) => v == want,
    }
}

fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> Result<T, String> {
    serde_json::from_value(doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_yaml_and_reports_bad_documents() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}},
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":"oops"}}
        ]}"#;
        let l = parse_text(json, "x.json");
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.ignored.get("ConfigMap (v1)"), Some(&1));
        assert_eq!(l.errors.len(), 1);
        assert!(
            l.errors[0].to_string().starts_with("x.json: document 1: items[2]: document 3: Pod:"),
            "{}",
            l.errors[0]
        );

        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: a\nspec:\n  ports:\n  - port: 80\n";
        let l = parse_text(yaml, "x.yaml");
        assert_eq!(l.objects.len(), 2, "{:?}", l.errors);
        assert!(l.errors.is_empty());
    }

    #[test]
    fn a_yaml_syntax_error_loses_only_its_document() {
        let yaml = "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\nkind: [unclosed\n---\nkind: Namespace\napiVersion: v1\nmetadata: {name: b}\n";
        let l = parse_text(yaml, "y.yaml");
        assert_eq!(l.objects.len(), 2, "{:?}", l.errors);
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].doc, Some(2));
    }

    #[test]
    fn json_documents_separated_like_yaml() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}\n---\n{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"b\"}}\n";
        let l = parse_text(text, "multi.yaml");
        assert_eq!(l.objects.len(), 2, "{:?}", l.errors);
        assert!(l.errors.is_empty());
        let broken = parse_text("{\"kind\": \"Namespace\", ", "broken.json");
        assert_eq!(broken.errors.len(), 1);
        assert!(broken.errors[0].reason.starts_with("invalid JSON"), "{:?}", broken.errors);
    }

    #[test]
    fn bad_names_skip_their_object_and_bad_labels_are_dropped_with_warnings() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}},
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"UPPER_case","namespace":"shop"},"spec":{"selector":{},"template":{}}},
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"app":"web","a:b":"c"}}},
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"a/b","namespace":"shop"}}
        ]}"#;
        let l = parse_text(json, "x.json");
        assert_eq!(l.objects.len(), 2, "{:?}", l.warnings);
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.skipped, 2);
        let warnings: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(
            warnings[0].starts_with(r#"x.json: document 1: items[1]: document 2: Deployment "shop/UPPER_case": metadata.name: "UPPER_case" is not a valid DNS-1123 subdomain"#),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].ends_with("; the object is skipped"), "{}", warnings[0]);
        assert!(
            warnings[1].contains(r#"document 3: Pod "shop/web-1": label dropped: label key "a:b""#),
            "{}",
            warnings[1]
        );
        assert!(warnings[2].contains(r#"document 4: Pod "shop/a/b": metadata.name"#), "{}", warnings[2]);
        let KubeObject::Pod(pod) = &l.objects[1] else { panic!() };
        assert_eq!(pod.metadata.labels.as_ref().map(|l| l.len()), Some(1));
    }

    #[test]
    fn reads_the_cluster_scoped_admin_policies_of_their_group_only() {
        let yaml = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec: {priority: 1, subject: {namespaces: {}}, ingress: [{name: r, action: Deny, from: [{namespaces: {}}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec: {subject: {namespaces: {}}}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: c}
spec: {tier: Baseline, priority: 3, subject: {namespaces: {}}}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: antrea}
spec: {priority: 5}
";
        let l = parse_text(yaml, "admin.yaml");
        assert!(l.errors.is_empty() && l.warnings.is_empty(), "{:?} {:?}", l.errors, l.warnings);
        let kinds: Vec<&str> = l.objects.iter().map(KubeObject::kind).collect();
        assert_eq!(kinds, ["AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy"]);
        assert_eq!(l.ignored.get("ClusterNetworkPolicy (crd.antrea.io/v1beta1)"), Some(&1));
        let KubeObject::AdminNetworkPolicy(anp) = &l.objects[0] else { panic!() };
        let rule = &anp.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0];
        assert_eq!((rule.name.as_deref(), rule.action.as_str()), (Some("r"), "Deny"));
        // Stored and read back, as the store keeps objects.
        let json = l.objects[2].to_json().unwrap();
        assert!(matches!(
            object_from_value("ClusterNetworkPolicy", json),
            Some(Ok(KubeObject::ClusterNetworkPolicy(_)))
        ));
        let inv = crate::inventory::Inventory::build(&l.objects);
        assert_eq!(inv.admin.len(), 3);
    }

    #[test]
    fn typed_lists_without_item_kind() {
        let json = r#"{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p","namespace":"n"}}]}"#;
        let l = parse_text(json, "pods.json");
        assert!(matches!(l.objects.as_slice(), [KubeObject::Pod(_)]), "{:?}", l.errors);
    }
}
