//! Names and labels of Kubernetes objects against the API server's rules ([`crate::model::names`]),
//! before an object is indexed or stored. Pure.
//!
//! An object whose own name or namespace breaks its kind's rule is rejected: nothing about it
//! could become a key, a URL or a selector. A bad label, owner reference, node name, Service
//! selector or EndpointSlice target is dropped from an object that is otherwise fine, so the
//! object still resolves its addresses. A Service selector with one bad entry is dropped whole:
//! what is left of it would select more pods than the Service does.
//!
//! [`check`] only looks (the common case, an object with nothing wrong, costs no copy);
//! [`clean`] applies what it found.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::KubeObject;
use crate::model::names::{CheckedLabels, NameRule, check_labels, excerpt, labels_valid};
use crate::model::{Labels, Name};

/// Where a label map sits in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Metadata,
    /// The pod template's labels (Deployment, StatefulSet, DaemonSet, ReplicaSet,
    /// ReplicationController, Job, CronJob).
    Template,
}

/// One thing to drop from an object; the `String`s say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Replace the labels at `Site` by the valid ones.
    Labels(Site, CheckedLabels),
    /// Remove `metadata.ownerReferences[i]`.
    OwnerReference(usize, String),
    /// Clear a Pod's `spec.nodeName`.
    NodeName(String),
    /// Clear a Service's `spec.selector`.
    Selector(String),
    /// Clear `endpoints[i].targetRef` of an EndpointSlice (the endpoint still resolves by address).
    SliceTarget(usize, String),
}

impl Fix {
    /// What is dropped and why, one line per dropped thing.
    fn describe(&self) -> Vec<String> {
        match self {
            Fix::Labels(site, c) => {
                let at = match site {
                    Site::Metadata => "label",
                    Site::Template => "pod template label",
                };
                c.dropped.iter().map(|why| format!("{at} dropped: {why}")).collect()
            }
            Fix::OwnerReference(_, why) => vec![format!("owner reference dropped: {why}")],
            Fix::NodeName(why) => vec![format!("spec.nodeName dropped: {why}")],
            Fix::Selector(why) => {
                vec![format!("spec.selector dropped (what is left of it would select more pods): {why}")]
            }
            Fix::SliceTarget(i, why) => vec![format!("endpoints[{i}].targetRef dropped: {why}")],
        }
    }
}

/// What [`check`] found in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    /// Why the object cannot be used at all; it is skipped.
    pub reject: Option<String>,
    pub fixes: Vec<Fix>,
}

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.reject.is_none() && self.fixes.is_empty()
    }
}

/// `Deployment "shop/web"`: how warnings name an object (escaped, and cut short when long).
pub fn who(obj: &KubeObject) -> String {
    let m = obj.metadata();
    let name = m.name.as_deref().unwrap_or("(no name)");
    let full = match m.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    format!("{} {:?}", obj.kind(), excerpt(&full))
}

macro_rules! template_meta {
    ($obj:expr, $as:ident) => {
        match $obj {
            KubeObject::Deployment(o) => o.spec.template.metadata.$as(),
            KubeObject::StatefulSet(o) => o.spec.template.metadata.$as(),
            KubeObject::DaemonSet(o) => o.spec.template.metadata.$as(),
            KubeObject::ReplicaSet(o) => o.spec.template.$as().and_then(|t| t.metadata.$as()),
            KubeObject::ReplicationController(o) => {
                o.spec.$as().and_then(|s| s.template.$as()).and_then(|t| t.metadata.$as())
            }
            KubeObject::Job(o) => o.spec.$as().and_then(|s| s.template.metadata.$as()),
            KubeObject::CronJob(o) => o.spec.job_template.spec.$as().and_then(|s| s.template.metadata.$as()),
            _ => None,
        }
    };
}

fn template_meta(obj: &KubeObject) -> Option<&ObjectMeta> {
    template_meta!(obj, as_ref)
}

fn template_meta_mut(obj: &mut KubeObject) -> Option<&mut ObjectMeta> {
    template_meta!(obj, as_mut)
}

fn label_fix(site: Site, labels: Option<&Labels>) -> Option<Fix> {
    let labels = labels?;
    (!labels_valid(labels))
        .then(|| Fix::Labels(site, check_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))))
}

/// Looks at an object's names and labels; changes nothing.
pub fn check(obj: &KubeObject) -> Problems {
    let mut p = Problems::default();
    let meta = obj.metadata();
    if let Some(name) = &meta.name
        && let Err(e) = Name::of_kind(obj.kind(), name)
    {
        p.reject = Some(format!("metadata.name: {e}"));
        return p;
    }
    if let Some(ns) = &meta.namespace
        && let Err(e) = Name::namespace(ns)
    {
        p.reject = Some(format!("metadata.namespace: {e}"));
        return p;
    }
    p.fixes.extend(label_fix(Site::Metadata, meta.labels.as_ref()));
    p.fixes.extend(label_fix(Site::Template, template_meta(obj).and_then(|m| m.labels.as_ref())));
    for (i, r) in meta.owner_references.iter().flatten().enumerate() {
        if let Err(e) = NameRule::for_kind(&r.kind).check(&r.name) {
            p.fixes.push(Fix::OwnerReference(i, format!("{} {e}", r.kind)));
        }
    }
    match obj {
        KubeObject::Pod(pod) => {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                && let Err(e) = Name::of_kind("Node", node)
            {
                p.fixes.push(Fix::NodeName(e.to_string()));
            }
        }
        KubeObject::Service(svc) => {
            if let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref())
                && !labels_valid(sel)
            {
                let c = check_labels(sel.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                p.fixes.push(Fix::Selector(c.dropped.join("; ")));
            }
        }
        KubeObject::EndpointSlice(slice) => {
            for (i, ep) in slice.endpoints.iter().flatten().enumerate() {
                let Some(r) = &ep.target_ref else { continue };
                let kind = r.kind.as_deref().unwrap_or("Pod");
                let bad = r
                    .name
                    .as_deref()
                    .map(|n| NameRule::for_kind(kind).check(n))
                    .and_then(Result::err)
                    .or_else(|| r.namespace.as_deref().map(Name::namespace).and_then(Result::err));
                if let Some(e) = bad {
                    p.fixes.push(Fix::SliceTarget(i, e.to_string()));
                }
            }
        }
        _ => {}
    }
    p
}

fn apply(obj: &mut KubeObject, fixes: Vec<Fix>) {
    let mut owner_refs = Vec::new();
    for fix in fixes {
        match fix {
            Fix::Labels(Site::Metadata, c) => obj.metadata_mut().labels = Some(c.labels),
            Fix::Labels(Site::Template, c) => {
                if let Some(m) = template_meta_mut(obj) {
                    m.labels = Some(c.labels);
                }
            }
            Fix::OwnerReference(i, _) => owner_refs.push(i),
            Fix::NodeName(_) => {
                if let KubeObject::Pod(pod) = obj
                    && let Some(s) = pod.spec.as_mut()
                {
                    s.node_name = None;
                }
            }
            Fix::Selector(_) => {
                if let KubeObject::Service(svc) = obj
                    && let Some(s) = svc.spec.as_mut()
                {
                    s.selector = None;
                }
            }
            Fix::SliceTarget(i, _) => {
                if let KubeObject::EndpointSlice(slice) = obj
                    && let Some(ep) = slice.endpoints.as_mut().and_then(|e| e.get_mut(i))
                {
                    ep.target_ref = None;
                }
            }
        }
    }
    if let Some(refs) = obj.metadata_mut().owner_references.as_mut() {
        let mut i = 0;
        refs.retain(|_| {
            i += 1;
            !owner_refs.contains(&(i - 1))
        });
    }
}

/// The object with what [`check`] found dropped, and one line per dropped thing; or why the
/// whole object is rejected.
pub fn clean(mut obj: KubeObject) -> Result<(KubeObject, Vec<String>), String> {
    let p = check(&obj);
    if let Some(why) = p.reject {
        return Err(why);
    }
    let notes = p.fixes.iter().flat_map(Fix::describe).collect();
    apply(&mut obj, p.fixes);
    Ok((obj, notes))
}

/// What [`clean_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects rejected.
    pub skipped: usize,
    /// One line per rejected object or dropped thing: `Deployment "shop/web": why`.
    pub warnings: Vec<String>,
}

/// Every object that passes, cleaned, in order; borrowed as it came when nothing needed cleaning.
pub fn clean_all(objects: &[KubeObject]) -> (Cow<'_, [KubeObject]>, Report) {
    let problems: Vec<Problems> = objects.iter().map(check).collect();
    if problems.iter().all(Problems::is_empty) {
        return (Cow::Borrowed(objects), Report::default());
    }
    let mut report = Report::default();
    let mut out = Vec::with_capacity(objects.len());
    for (obj, p) in objects.iter().zip(problems) {
        if p.is_empty() {
            out.push(obj.clone());
            continue;
        }
        let who = who(obj);
        if let Some(why) = p.reject {
            report.skipped += 1;
            report.warnings.push(format!("{who}: {why}; the object is skipped"));
            continue;
        }
        report.warnings.extend(p.fixes.iter().flat_map(Fix::describe).map(|d| format!("{who}: {d}")));
        let mut obj = obj.clone();
        apply(&mut obj, p.fixes);
        out.push(obj);
    }
    (Cow::Owned(out), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::parse_text;

    fn one(yaml: &str) -> KubeObject {
        let mut l = crate::inventory::load::parse_unchecked(yaml, "t.yaml");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.objects.len(), 1);
        l.objects.remove(0)
    }

    #[test]
    fn names_per_kind_reject_the_object() {
        let cases = [
            ("kind: Deployment\nmetadata: {name: UPPER_case, namespace: shop}", false),
            ("kind: Deployment\nmetadata: {name: web.v2, namespace: shop}", true),
            ("kind: Deployment\nmetadata: {name: web, namespace: sh.op}", false),
            ("kind: StatefulSet\nmetadata: {name: db.v2, namespace: shop}", false),
            ("kind: Service\nmetadata: {name: 1web, namespace: shop}", false),
            ("kind: Service\nmetadata: {name: web, namespace: shop}", true),
            ("kind: Pod\nmetadata: {name: \"a/b\", namespace: shop}", false),
            ("kind: Pod\nmetadata: {name: \"<img src=x onerror=alert(1)>\", namespace: shop}", false),
            ("kind: Pod\nmetadata: {name: \"web\\u202e\", namespace: shop}", false),
            ("kind: Namespace\nmetadata: {name: shop}", true),
            ("kind: Namespace\nmetadata: {name: sh.op}", false),
        ];
        for (yaml, ok) in cases {
            let obj = one(&format!("{yaml}\n"));
            assert_eq!(check(&obj).reject.is_none(), ok, "{yaml}: {:?}", check(&obj));
        }
        let long =
            one(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: shop}}\n", "a".repeat(300)));
        let why = clean(long).unwrap_err();
        assert!(why.contains("longer than 253 characters") && why.len() < 200, "{why}");
    }

    #[test]
    fn bad_labels_owner_references_and_fields_are_dropped() {
        let pod = one(r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  labels: {app: web, tier: "<img src=x onerror=alert(1)>", "": x, "a:b": c, rtl: "x\u202e"}
  ownerReferences:
  - {apiVersion: apps/v1, kind: StatefulSet, name: "Web", uid: "1", controller: true}
  - {apiVersion: v1, kind: Node, name: n1, uid: "2"}
spec: {nodeName: "n1/x", containers: [{name: c}]}
"#);
        let (pod, notes) = clean(pod).unwrap();
        assert_eq!(notes.len(), 6, "{notes:#?}");
        assert!(notes.iter().any(|n| n.contains(r#"label value "x\u{202e}""#)), "{notes:#?}");
        let KubeObject::Pod(pod) = pod else { panic!() };
        assert_eq!(pod.metadata.labels, Some(Labels::from([("app".into(), "web".into())])));
        let refs = pod.metadata.owner_references.unwrap();
        assert_eq!(refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["n1"]);
        assert_eq!(pod.spec.unwrap().node_name, None);

        let svc = one(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web, \"a:b\": c}}\n",
        );
        let (KubeObject::Service(svc), notes) = clean(svc).unwrap() else { panic!() };
        assert_eq!(svc.spec.unwrap().selector, None);
        assert_eq!(notes.len(), 1);

        let dep = one(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {selector: {}, template: {metadata: {labels: {app: web, bad: \"a b\"}}}}\n",
        );
        let (KubeObject::Deployment(dep), notes) = clean(dep).unwrap() else { panic!() };
        assert_eq!(dep.spec.template.metadata.unwrap().labels, Some(Labels::from([("app".into(), "web".into())])));
        assert!(notes[0].starts_with("pod template label dropped: label value \"a b\""), "{notes:?}");
    }

    #[test]
    fn clean_all_borrows_when_nothing_is_wrong_and_names_each_problem() {
        let good = parse_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n", "g.yaml").objects;
        assert!(matches!(clean_all(&good), (Cow::Borrowed(_), r) if r == Report::default()));
        let mixed = crate::inventory::load::parse_unchecked(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: UPPER_case, namespace: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b, labels: {\"a:b\": c}}\n",
            "m.yaml",
        )
        .objects;
        let (kept, report) = clean_all(&mixed);
        assert_eq!(kept.len(), 2);
        assert_eq!(report.skipped, 1);
        assert_eq!(report.warnings.len(), 2, "{:#?}", report.warnings);
        assert!(
            report.warnings[0].starts_with(r#"Deployment "shop/UPPER_case": metadata.name: "UPPER_case""#),
            "{report:?}"
        );
        assert!(report.warnings[1].starts_with(r#"Namespace "b": label dropped: label key "a:b""#), "{report:?}");
    }
}
