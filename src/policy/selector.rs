//! Stable selectors: the smallest set of a workload's stable labels that selects all of its pods
//! and no pod of any other workload in the namespace.
//!
//! Labels that change with every rollout or name one pod (pod-template-hash, job-name,
//! statefulset.kubernetes.io/pod-name, ...) are never used: a policy that names them stops
//! selecting the workload at its next rollout.

use std::collections::BTreeSet;

use crate::model::{Labels, WorkloadRef};

/// Keys Kubernetes controllers set per revision, per job run or per pod.
const UNSTABLE_KEYS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "job-name",
    "controller-uid",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// Keys that name what a workload is, in the order they are preferred: the ones people and charts
/// use to mean "this app".
pub const IDENTITY_KEYS: &[&str] = &["app.kubernetes.io/name", "app", "k8s-app", "name"];
/// Keys that tell apart the instances or parts of one app; tried right after the identity keys.
const QUALIFIER_KEYS: &[&str] = &["app.kubernetes.io/instance", "app.kubernetes.io/component", "component"];
/// Keys many apps share (a version, a tier, an environment, the chart or tool that deployed it,
/// a mesh's bookkeeping). A selector made only of these would grant a pod that appears tomorrow
/// with `version: v2` whatever the workload with `version: v2` may do, so they only ever
/// qualify an identity key, unless nothing else exists (and then with a warning).
const SHARED_KEYS: &[&str] = &[
    "version",
    "app.kubernetes.io/version",
    "tier",
    "env",
    "environment",
    "stage",
    "track",
    "release",
    "chart",
    "helm.sh/chart",
    "heritage",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "security.istio.io/tlsMode",
    "service.istio.io/canonical-revision",
    "sidecar.istio.io/inject",
    "sidecar.opentelemetry.io/injected",
];

/// Label sets up to this many candidate labels are searched exhaustively (2^12 subsets).
const MAX_SEARCH: usize = 12;

pub fn is_stable_key(key: &str) -> bool {
    !UNSTABLE_KEYS.contains(&key) && !key.starts_with("batch.kubernetes.io/")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{0} has no stable labels its pods share; no selector can pick it out")]
    NoLabels(WorkloadRef),
    #[error("no set of {workload}'s stable labels excludes the pods of {other}")]
    Ambiguous { workload: WorkloadRef, other: WorkloadRef },
}

pub(crate) fn matches(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What a key says about the pods that carry it; the order is the order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyClass {
    Identity(usize),
    Qualifier(usize),
    Other,
    Shared,
}

fn class(key: &str) -> KeyClass {
    if let Some(i) = IDENTITY_KEYS.iter().position(|k| *k == key) {
        KeyClass::Identity(i)
    } else if let Some(i) = QUALIFIER_KEYS.iter().position(|k| *k == key) {
        KeyClass::Qualifier(i)
    } else if SHARED_KEYS.contains(&key) {
        KeyClass::Shared
    } else {
        KeyClass::Other
    }
}

pub fn is_identity_key(key: &str) -> bool {
    matches!(class(key), KeyClass::Identity(_))
}

/// Whether a selector names only labels many apps share (see [`SHARED_KEYS`]).
pub fn only_shared(selector: &Labels) -> bool {
    !selector.is_empty() && selector.keys().all(|k| class(k) == KeyClass::Shared)
}

/// The stable labels every one of the workload's label sets carries.
pub fn common_stable_labels(sets: &BTreeSet<Labels>) -> Labels {
    let mut iter = sets.iter();
    let Some(first) = iter.next() else { return Labels::new() };
    let mut common: Labels =
        first.iter().filter(|(k, _)| is_stable_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    for s in iter {
        common.retain(|k, v| s.get(k) == Some(v));
    }
    common
}

/// Finds the selector for `target` given the label sets of the other workloads of its namespace.
///
/// Among the subsets of its common stable labels that select exactly its pods, the first that
/// exists of: one with an identity key (`app.kubernetes.io/name`, `app`, `k8s-app`, `name`), one
/// with any key that is not widely shared, one of shared keys only (which [`only_shared`] tells,
/// for a warning). Within each, the smallest, then the most preferred keys: a distinguishing
/// label is added to the identity only when needed (`app: api, tier: backend`).
/// Deterministic for the same input.
pub fn select_exactly<'a>(
    target: &WorkloadRef,
    sets: &BTreeSet<Labels>,
    others: impl IntoIterator<Item = (&'a WorkloadRef, &'a BTreeSet<Labels>)>,
) -> Result<Labels, SelectorError> {
    let others: Vec<(&WorkloadRef, &Labels)> =
        others.into_iter().filter(|(w, _)| *w != target).flat_map(|(w, ls)| ls.iter().map(move |l| (w, l))).collect();
    select_exactly_with(target, sets, |sel| others.iter().find(|(_, l)| matches(sel, l)).map(|(w, _)| *w))
}

/// [`select_exactly`] with the other workloads behind a question: `selected(sel)` is the first
/// other workload (in catalog order) with a pod `sel` selects, if any. An index of who carries
/// which label answers it without comparing against every workload of the namespace.
pub fn select_exactly_with<'a>(
    target: &WorkloadRef,
    sets: &BTreeSet<Labels>,
    selected: impl Fn(&Labels) -> Option<&'a WorkloadRef>,
) -> Result<Labels, SelectorError> {
    let common = common_stable_labels(sets);
    if common.is_empty() {
        return Err(SelectorError::NoLabels(target.clone()));
    }
    let mut keys: Vec<(&String, &String)> = common.iter().collect();
    keys.sort_by(|a, b| (class(a.0), a.0).cmp(&(class(b.0), b.0)));
    let n = keys.len().min(MAX_SEARCH);
    // The best exact subset found per tier: 0 has an identity key, 1 a key not widely shared,
    // 2 only shared keys. Sizes grow, so the first found per tier is its smallest.
    let mut best: [Option<Labels>; 3] = [None, None, None];
    'sizes: for size in 1..=n {
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            let tier = if idx.iter().any(|&i| matches!(class(keys[i].0), KeyClass::Identity(_))) {
                0
            } else if idx.iter().any(|&i| class(keys[i].0) != KeyClass::Shared) {
                1
            } else {
                2
            };
            if best[tier].is_none() {
                let sel: Labels = idx.iter().map(|&i| (keys[i].0.clone(), keys[i].1.clone())).collect();
                if selected(&sel).is_none() {
                    best[tier] = Some(sel);
                    if tier == 0 {
                        break 'sizes;
                    }
                }
            }
            // Next combination in lexicographic order of indices.
            let mut i = size;
            while i > 0 && idx[i - 1] == n - size + i - 1 {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            idx[i - 1] += 1;
            for j in i..size {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    if let Some(sel) = best.into_iter().flatten().next() {
        return Ok(sel);
    }
    // Even all common labels select another workload's pods (or there were too many to search).
    match selected(&common) {
        Some(w) => Err(SelectorError::Ambiguous { workload: target.clone(), other: w.clone() }),
        None => Ok(common),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn w(name: &str) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "ns", name)
    }

    #[test]
    fn picks_smallest_stable_exact_selector() {
        let java = (
            w("javaapp"),
            BTreeSet::from([l(&[
                ("app.kubernetes.io/instance", "example-java-app"),
                ("app.kubernetes.io/name", "example-java-app-javaapp"),
                ("pod-template-hash", "5d4f"),
            ])]),
        );
        let redis = (
            w("redis"),
            BTreeSet::from([l(&[
                ("app.kubernetes.io/instance", "example-java-app"),
                ("app.kubernetes.io/name", "example-java-app-redis"),
            ])]),
        );
        let web_v1 = (
            w("web-v1"),
            BTreeSet::from([l(&[("app", "web"), ("version", "v1"), ("batch.kubernetes.io/job-name", "x")])]),
        );
        let web_v2 = (w("web-v2"), BTreeSet::from([l(&[("app", "web"), ("version", "v2")])]));
        let all = [java.clone(), redis.clone(), web_v1.clone(), web_v2.clone()];
        let others = || all.iter().map(|(w, s)| (w, s));

        let cases = [
            (&java, Ok(l(&[("app.kubernetes.io/name", "example-java-app-javaapp")]))),
            (&redis, Ok(l(&[("app.kubernetes.io/name", "example-java-app-redis")]))),
            // Never `version` alone: a future pod of another app with `version: v1` must not match.
            (&web_v1, Ok(l(&[("app", "web"), ("version", "v1")]))),
            (&web_v2, Ok(l(&[("app", "web"), ("version", "v2")]))),
        ];
        for (target, want) in cases {
            assert_eq!(select_exactly(&target.0, &target.1, others()), want, "{}", target.0);
        }
    }

    #[test]
    fn needs_two_labels_or_fails_clearly() {
        let a = (w("a"), BTreeSet::from([l(&[("app", "x"), ("tier", "db")])]));
        let b = (w("b"), BTreeSet::from([l(&[("app", "x"), ("tier", "web")])]));
        let c = (w("c"), BTreeSet::from([l(&[("app", "y"), ("tier", "db")])]));
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(select_exactly(&a.0, &a.1, all.iter().map(|(w, s)| (w, s))), Ok(l(&[("app", "x"), ("tier", "db")])));

        let twin = (w("twin"), BTreeSet::from([l(&[("app", "x"), ("tier", "db")])]));
        let all = [a.clone(), twin.clone()];
        assert!(matches!(
            select_exactly(&a.0, &a.1, all.iter().map(|(w, s)| (w, s))),
            Err(SelectorError::Ambiguous { .. })
        ));
        let bare = (w("bare"), BTreeSet::from([l(&[("pod-template-hash", "1")])]));
        assert!(matches!(select_exactly(&bare.0, &bare.1, std::iter::empty()), Err(SelectorError::NoLabels(_))));
    }

    #[test]
    fn identity_first_shared_keys_only_qualify() {
        // (target's labels, the other workloads' labels, the selector)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a [(&'a str, &'a str)]], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            // Bookinfo: reviews-v2 beside v1 and v3.
            (
                &[("app", "reviews"), ("version", "v2")],
                &[&[("app", "reviews"), ("version", "v1")], &[("app", "reviews"), ("version", "v3")]],
                &[("app", "reviews"), ("version", "v2")],
            ),
            // ratings is alone with its app label: the version is not needed.
            (
                &[("app", "ratings"), ("version", "v1")],
                &[&[("app", "reviews"), ("version", "v1")]],
                &[("app", "ratings")],
            ),
            (
                &[("app", "api"), ("tier", "backend")],
                &[&[("app", "api"), ("tier", "canary")], &[("app", "web"), ("tier", "backend")]],
                &[("app", "api"), ("tier", "backend")],
            ),
            // A custom key beats shared ones when there is no identity key.
            (&[("team-app", "x"), ("tier", "db")], &[&[("team-app", "y"), ("tier", "db")]], &[("team-app", "x")]),
            // Only shared keys exist: they are used (the caller warns).
            (&[("tier", "db"), ("env", "prod")], &[&[("tier", "db"), ("env", "dev")]], &[("env", "prod")]),
            // The preferred identity key wins over another identity key.
            (&[("app.kubernetes.io/name", "x"), ("app", "y")], &[], &[("app.kubernetes.io/name", "x")]),
        ];
        for (mine, theirs, want) in cases {
            let target = (w("target"), BTreeSet::from([l(mine)]));
            let others: Vec<(WorkloadRef, BTreeSet<Labels>)> =
                theirs.iter().enumerate().map(|(i, t)| (w(&format!("o{i}")), BTreeSet::from([l(t)]))).collect();
            let got = select_exactly(&target.0, &target.1, others.iter().map(|(w, s)| (w, s)));
            assert_eq!(got, Ok(l(want)), "{mine:?}");
        }
        assert!(only_shared(&l(&[("env", "prod")])));
        assert!(!only_shared(&l(&[("app", "x"), ("env", "prod")])));
    }

    #[test]
    fn uses_only_labels_every_pod_shares() {
        let sets = BTreeSet::from([l(&[("app", "x"), ("zone", "a")]), l(&[("app", "x"), ("zone", "b")])]);
        assert_eq!(common_stable_labels(&sets), l(&[("app", "x")]));
    }
}
