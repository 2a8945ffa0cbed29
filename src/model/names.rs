//! Kubernetes names and labels, parsed: what the API server would accept, and nothing else.
//!
//! Everything named by the cluster or by a flow source (namespaces, object names, label keys and
//! values) becomes part of a store key, a URL, a selector in generated YAML or a page. A name that
//! Kubernetes itself would refuse (`UPPER_case`, `a/b`, 300 characters, `<img ...>`, U+202E) can
//! only come from a damaged or hostile input, so it is refused here, once, at the edge; the rest
//! of the crate then trusts what it holds.
//!
//! The rules are the API server's (`k8s.io/apimachinery/pkg/util/validation`): object names are
//! DNS-1123 subdomains, except namespaces and StatefulSets (DNS-1123 labels: StatefulSets since
//! Kubernetes 1.26, their pods' hostnames come from the name), Services (DNS-1035 labels: a letter
//! first) and CronJobs (subdomains of at most 52 characters: their Jobs append 11). Label keys are
//! qualified names (`[prefix/]name`), values at most 63 characters of the same alphabet or empty.
//!
//! One deliberate exception: a NetworkPolicy's name is never a key, a URL or a selector here (it
//! only labels `check`'s verdicts), and dropping a policy would change what `check` says is
//! allowed, so any printable ASCII name without `/` is kept (netpol-analyzer's cases, the
//! evaluator's oracle, name policies `use_common_labels_same_values`).

use std::fmt;

use super::{Labels, ModelError, WorkloadKind};

/// The longest DNS-1123 (or DNS-1035) label, and the longest label value or key name part.
pub const LABEL_MAX: usize = 63;
/// The longest DNS-1123 subdomain, and so the longest object name and label key prefix.
pub const SUBDOMAIN_MAX: usize = 253;
/// The longest CronJob name: its Jobs are named `<cronjob>-<minutes since the epoch>`, and a Job's
/// name must fit in a label value.
pub const CRONJOB_MAX: usize = 52;
/// Labels kept per object (or per flow endpoint). Real objects carry 5-20; an input with
/// thousands would make every selector computation and every page that lists them that much
/// larger. The rest are dropped with a warning.
pub const MAX_LABELS: usize = 64;

/// Which DNS rule a name follows. Kubernetes picks one per kind ([`NameRule::for_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// At most 63 of `[a-z0-9-]`, a letter or digit at both ends: namespaces, StatefulSets.
    Dns1123Label,
    /// At most 253 characters, DNS-1123 labels joined by `.`: most objects.
    Dns1123Subdomain,
    /// A DNS-1123 label that starts with a letter: Services.
    Dns1035Label,
    /// A DNS-1123 subdomain of at most 52 characters.
    CronJob,
    /// At most 253 of printable ASCII other than `/`: NetworkPolicies (see the module's notes).
    Printable,
}

impl NameRule {
    /// The rule for an object of this Kubernetes `kind` (its API spelling, `StatefulSet`).
    /// Kinds without a stricter rule are DNS-1123 subdomains.
    pub fn for_kind(kind: &str) -> NameRule {
        match kind {
            "Namespace" | "StatefulSet" => NameRule::Dns1123Label,
            "Service" => NameRule::Dns1035Label,
            "CronJob" => NameRule::CronJob,
            "NetworkPolicy" => NameRule::Printable,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    pub fn for_workload(kind: WorkloadKind) -> NameRule {
        NameRule::for_kind(kind.kube_kind())
    }

    pub fn describe(self) -> &'static str {
        match self {
            NameRule::Dns1123Label => "DNS-1123 label",
            NameRule::Dns1123Subdomain => "DNS-1123 subdomain",
            NameRule::Dns1035Label => "DNS-1035 label",
            NameRule::CronJob => "CronJob name (a DNS-1123 subdomain of at most 52 characters)",
            NameRule::Printable => "NetworkPolicy name (printable ASCII without '/')",
        }
    }

    fn max_len(self) -> usize {
        match self {
            NameRule::Dns1123Label | NameRule::Dns1035Label => LABEL_MAX,
            NameRule::Dns1123Subdomain | NameRule::Printable => SUBDOMAIN_MAX,
            NameRule::CronJob => CRONJOB_MAX,
        }
    }

    /// Why `s` breaks the rule, or `None`.
    fn problem(self, s: &str) -> Option<&'static str> {
        if s.is_empty() {
            return Some("empty");
        }
        if s.len() > self.max_len() {
            return Some(match self {
                NameRule::Dns1123Label | NameRule::Dns1035Label => "longer than 63 characters",
                NameRule::Dns1123Subdomain | NameRule::Printable => "longer than 253 characters",
                NameRule::CronJob => "longer than 52 characters",
            });
        }
        if self == NameRule::Printable {
            let ok = s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            return (!ok).then_some("only printable ASCII other than '/' is allowed");
        }
        let dots = matches!(self, NameRule::Dns1123Subdomain | NameRule::CronJob);
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.');
        if !s.bytes().all(allowed) {
            return Some(if dots {
                "only lowercase letters, digits, '-' and '.' are allowed"
            } else {
                "only lowercase letters, digits and '-' are allowed"
            });
        }
        // Each dot-separated part is a label: alphanumeric at both ends (so no `..`, `.-`, `-.`).
        if !s.split('.').all(|part| alnum_ends(part.as_bytes())) {
            return Some(if dots {
                "each '.'-separated part must start and end with a letter or digit"
            } else {
                "must start and end with a letter or digit"
            });
        }
        if self == NameRule::Dns1035Label && !s.as_bytes()[0].is_ascii_lowercase() {
            return Some("must start with a letter");
        }
        None
    }

    pub fn check(self, s: &str) -> Result<(), ModelError> {
        match self.problem(s) {
            None => Ok(()),
            Some(why) => Err(ModelError::Name(excerpt(s), self.describe(), why)),
        }
    }

    pub fn is_valid(self, s: &str) -> bool {
        self.problem(s).is_none()
    }
}

fn alnum_ends(b: &[u8]) -> bool {
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
}

/// At most 64 characters of untrusted text, for an error message or a warning (which quote it
/// with `{:?}`, escaping control, bidi and zero-width characters): a 1 MB name should not become a
/// 1 MB log line.
pub fn excerpt(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        None => s.to_string(),
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
    }
}

/// A namespace or object name that passed its kind's rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn parse(rule: NameRule, s: &str) -> Result<Name, ModelError> {
        rule.check(s)?;
        Ok(Name(s.to_string()))
    }

    /// A namespace: a DNS-1123 label.
    pub fn namespace(s: &str) -> Result<Name, ModelError> {
        Name::parse(NameRule::Dns1123Label, s)
    }

    /// The name of an object of this Kubernetes `kind`.
    pub fn of_kind(kind: &str, s: &str) -> Result<Name, ModelError> {
        Name::parse(NameRule::for_kind(kind), s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `[A-Za-z0-9._-]`, alphanumeric at both ends: a label value, or the name part of a key.
fn qualified_problem(s: &str) -> Option<&'static str> {
    if s.len() > LABEL_MAX {
        return Some("longer than 63 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Some("only letters, digits, '-', '_' and '.' are allowed");
    }
    if !alnum_ends(s.as_bytes()) {
        return Some("must start and end with a letter or digit");
    }
    None
}

/// A label key: `name` or `prefix/name`, the prefix a DNS-1123 subdomain (`app.kubernetes.io`),
/// the name at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey(String);

impl LabelKey {
    pub fn parse(s: &str) -> Result<LabelKey, ModelError> {
        let bad = |why| Err(ModelError::LabelKey(excerpt(s), why));
        let (prefix, name) = match s.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, s),
        };
        if let Some(p) = prefix {
            if p.is_empty() {
                return bad("the prefix before '/' is empty");
            }
            if !NameRule::Dns1123Subdomain.is_valid(p) {
                return bad("the prefix before '/' must be a DNS-1123 subdomain (lowercase, at most 253 characters)");
            }
        }
        if name.is_empty() {
            return bad("the name is empty");
        }
        if let Some(why) = qualified_problem(name) {
            return bad(why);
        }
        Ok(LabelKey(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelValue(String);

impl LabelValue {
    pub fn parse(s: &str) -> Result<LabelValue, ModelError> {
        if s.is_empty() {
            return Ok(LabelValue(String::new()));
        }
        match qualified_problem(s) {
            None => Ok(LabelValue(s.to_string())),
            Some(why) => Err(ModelError::LabelValue(excerpt(s), why)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One label, both halves checked.
pub fn parse_label(key: &str, value: &str) -> Result<(LabelKey, LabelValue), ModelError> {
    Ok((LabelKey::parse(key)?, LabelValue::parse(value)?))
}

/// A label map from untrusted input: the valid labels (at most [`MAX_LABELS`], the first in key
/// order), and why each other one was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckedLabels {
    pub labels: Labels,
    pub dropped: Vec<String>,
}

/// Keeps the valid labels of `raw`. Dropping a label is safer than dropping its object: the
/// object still resolves its addresses, and a selector is computed from the labels that remain
/// (which every pod of the workload shares, or not, as before).
pub fn check_labels<'a>(raw: impl IntoIterator<Item = (&'a str, &'a str)>) -> CheckedLabels {
    let mut out = CheckedLabels::default();
    for (k, v) in raw {
        match parse_label(k, v) {
            Ok(_) => {
                out.labels.insert(k.to_string(), v.to_string());
            }
            Err(e) => out.dropped.push(e.to_string()),
        }
    }
    if out.labels.len() > MAX_LABELS {
        // The first in key order, whatever order the input listed them in.
        let first_over = out.labels.keys().nth(MAX_LABELS).cloned().unwrap_or_default();
        let over = out.labels.split_off(&first_over).len();
        out.dropped.push(format!("{over} labels beyond the first {MAX_LABELS}"));
    }
    out
}

/// Whether every label is valid and there are at most [`MAX_LABELS`]: [`check_labels`] would keep
/// them all. Cheap, for the common case where nothing needs dropping.
pub fn labels_valid(labels: &Labels) -> bool {
    labels.len() <= MAX_LABELS && labels.iter().all(|(k, v)| parse_label(k, v).is_ok())
}

/// A DNS name as Flowgate keeps it and a policy may name it (Cilium's `toFQDNs.matchName`):
/// lowercase (DNS is case-insensitive), without the root's trailing dot, at most
/// [`SUBDOMAIN_MAX`] characters of labels of 1-[`LABEL_MAX`] `[a-z0-9_-]` (underscores appear in
/// service names such as `_sip._tcp`). Wildcards, spaces and anything else are refused: a name
/// comes from a DNS answer a pod received, so it is untrusted, and it ends up in YAML, a page and
/// a store key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

impl DnsName {
    pub fn parse(raw: &str) -> Result<DnsName, ModelError> {
        let err = |why| ModelError::DnsName(excerpt(raw), why);
        let s = raw.strip_suffix('.').unwrap_or(raw);
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > SUBDOMAIN_MAX {
            return Err(err("it is longer than 253 characters"));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(err("it has an empty label (two dots in a row, or a leading dot)"));
            }
            if label.len() > LABEL_MAX {
                return Err(err("a label is longer than 63 characters"));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(err("only letters, digits, '-', '_' and '.' may appear (no wildcards)"));
            }
        }
        Ok(DnsName(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DnsName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DnsName::parse(s)
    }
}

impl TryFrom<String> for DnsName {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DnsName::parse(&s)
    }
}

impl From<DnsName> for String {
    fn from(n: DnsName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_rule() {
        use NameRule::*;
        let long = |n: usize| "a".repeat(n);
        // (input, label, subdomain, 1035 label, CronJob, printable)
        let cases: &[(&str, [bool; 5])] = &[
            ("web", [true; 5]),
            ("example-java-app", [true; 5]),
            ("a.b-c", [false, true, false, true, true]),
            ("0day", [true, true, false, true, true]),
            (&long(52), [true; 5]),
            (&long(53), [true, true, true, false, true]),
            (&long(63), [true, true, true, false, true]),
            (&long(64), [false, true, false, false, true]),
            (&long(253), [false, true, false, false, true]),
            (&long(254), [false; 5]),
            ("", [false; 5]),
            ("-a", [false, false, false, false, true]),
            ("a-", [false, false, false, false, true]),
            ("a..b", [false, false, false, false, true]),
            ("a.-b", [false, false, false, false, true]),
            (".a", [false, false, false, false, true]),
            ("UPPER_case", [false, false, false, false, true]),
            ("A", [false, false, false, false, true]),
            ("a_b", [false, false, false, false, true]),
            ("a:b", [false, false, false, false, true]),
            ("<img>", [false, false, false, false, true]),
            ("a/b", [false; 5]),
            ("<img src=x onerror=alert(1)>", [false; 5]),
            ("web\u{202e}", [false; 5]),
            ("we\u{200b}b", [false; 5]),
            ("wéb", [false; 5]),
            ("bell\u{7}", [false; 5]),
        ];
        for (s, want) in cases {
            let got = [Dns1123Label, Dns1123Subdomain, Dns1035Label, CronJob, Printable].map(|r| r.check(s).is_ok());
            assert_eq!(got, *want, "{s:?}");
        }
        assert_eq!(NameRule::for_kind("Namespace"), Dns1123Label);
        assert_eq!(NameRule::for_kind("StatefulSet"), Dns1123Label);
        assert_eq!(NameRule::for_kind("Service"), Dns1035Label);
        assert_eq!(NameRule::for_kind("CronJob"), CronJob);
        assert_eq!(NameRule::for_kind("NetworkPolicy"), Printable);
        for kind in ["Pod", "Deployment", "DaemonSet", "ReplicaSet", "Job", "Node", "EndpointSlice"] {
            assert_eq!(NameRule::for_kind(kind), Dns1123Subdomain, "{kind}");
        }
    }

    #[test]
    fn errors_quote_a_short_escaped_excerpt() {
        let e = Name::namespace(&format!("\u{202e}{}", "x".repeat(1_000_000))).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("\\u{202e}") && e.contains("1000003 bytes"), "{e}");
        let e = Name::namespace("<img src=x>").unwrap_err().to_string();
        assert_eq!(
            e,
            r#""<img src=x>" is not a valid DNS-1123 label: only lowercase letters, digits and '-' are allowed"#
        );
    }

    #[test]
    fn label_keys_and_values() {
        for good in ["app", "app.kubernetes.io/name", "k8s-app", "A_b.c", "x/y", "a.b.c/Name_1"] {
            assert!(LabelKey::parse(good).is_ok(), "{good:?}");
        }
        let long_prefix = format!("{}/x", "a".repeat(254));
        let long_name = format!("p/{}", "a".repeat(64));
        for bad in [
            "",
            "a:b",
            "/a",
            "a/",
            "a/b/c",
            "UPPER.io/x",
            "-a",
            "a-",
            "<img>",
            "a\u{202e}",
            "a\u{200b}b",
            &long_prefix,
            &long_name,
        ] {
            assert!(LabelKey::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["", "web", "v1.2_3-x", "A", &"a".repeat(63)] {
            assert!(LabelValue::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["<img src=x onerror=alert(1)>", "a b", "-a", "a.", "\u{202e}a", "a\u{200b}", &"a".repeat(64)] {
            assert!(LabelValue::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn check_labels_drops_bad_ones_and_caps_the_count() {
        let raw = [("app", "web"), ("", "x"), ("a:b", "c"), ("tier", "<img src=x onerror=alert(1)>")];
        let c = check_labels(raw);
        assert_eq!(c.labels, Labels::from([("app".to_string(), "web".to_string())]));
        assert_eq!(c.dropped.len(), 3, "{:?}", c.dropped);
        assert!(!labels_valid(&Labels::from([("a:b".to_string(), String::new())])));

        let many: Vec<(String, String)> = (0..100).map(|i| (format!("k{i:03}"), "v".to_string())).collect();
        let c = check_labels(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(c.labels.len(), MAX_LABELS);
        assert_eq!(c.labels.keys().next().map(String::as_str), Some("k000"));
        assert_eq!(c.dropped, [format!("36 labels beyond the first {MAX_LABELS}")]);
        assert!(labels_valid(&c.labels));
        assert!(!labels_valid(&many.into_iter().collect()));
    }

    #[test]
    fn dns_names_are_lowercase_without_the_root_dot() {
        for (raw, want) in [
            ("api.example.com", "api.example.com"),
            ("API.Example.COM.", "api.example.com"),
            ("_sip._tcp.example.com", "_sip._tcp.example.com"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(DnsName::parse(raw).map(|n| n.to_string()), Ok(want.to_string()), "{raw:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = ["a".repeat(63).as_str(); 5].join(".");
        for bad in ["", ".", "*.example.com", "a..b", ".a", "a b", "a\u{202e}b", "<img>", &long_label, &long_name] {
            assert!(DnsName::parse(bad).is_err(), "{bad:?}");
        }
        let e = DnsName::parse("*.example.com").unwrap_err().to_string();
        assert!(e.contains("no wildcards"), "{e}");
    }
}
