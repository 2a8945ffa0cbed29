//! The Cilium dialect end to end: `flowgate generate --dialect cilium` on the seed app (the external
//! API trusted by name, and by range), the Bookinfo proxy capture and the real DNS sample, as
//! snapshots; every document checked against the CiliumNetworkPolicy CRD; every set verified
//! against the traffic it came from.
//!
//! The CRD check is the published CRD's own `openAPIV3Schema` (`cilium.io/v2`, cilium/cilium
//! commit 02904c9bb255, vendored with its descriptions removed in tests/data/cilium), applied by
//! `tests/support/schema.rs`: known fields at every level, types, the protocol and entity enums,
//! the port, label and FQDN patterns and lengths, CIDR formats, item counts, `spec`'s oneOf
//! (an endpoint or a node selector) and anyOf (some rule), `toFQDNs`' and `rules`' oneOfs.
//! Every run here is checked against it, and [`every_document_passes_the_published_crd_schema`]
//! counts the documents of every case above and of the demo cluster. The schema has no CEL rules.
//!
//! [`crd_check`] keeps what the schema cannot say, from the CRD's descriptions and Cilium's own
//! validation: a rule holds one kind of peer, L7 rules need ports, `metadata.name` is a DNS-1123
//! subdomain (the API server's rule for every object); and it lists the fields Flowgate writes,
//! so that a new one is looked at first.

use std::net::IpAddr;

use serde_json::{Map, Value};

#[path = "support/bin.rs"]
mod bin;
use bin::{Run, flowgate};
#[path = "support/schema.rs"]
mod schema;

const JAVA: &str = "tests/fixtures/java-app";

fn path(rel: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).to_str().unwrap().to_string()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap_or_else(|e| panic!("bad YAML ({e}):\n{yaml}"))
}

fn cilium(args: &[&str]) -> Run {
    let mut all = vec!["generate", "--dialect", "cilium"];
    all.extend_from_slice(args);
    let run = flowgate(&all);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains(" 0 mismatches"), "verification:\n{}", run.stderr);
    for doc in docs(&run.stdout) {
        if let Err(e) = crd_check(&doc) {
            panic!("{} breaks the CRD: {e}\n{}", doc["metadata"]["name"], run.stdout);
        }
        let (errors, _) = schema::validate(&doc, crd());
        assert!(errors.is_empty(), "{} breaks the CRD's schema: {errors:#?}\n{}", doc["metadata"]["name"], run.stdout);
    }
    run
}

/// The published CRD's `openAPIV3Schema` of `cilium.io/v2`, vendored (descriptions removed) in
/// tests/data/cilium.
fn crd() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let yaml = std::fs::read_to_string(path("tests/data/cilium/ciliumnetworkpolicies.v2.schema.yaml")).unwrap();
        schema::crd_schema(&yaml, "v2")
    })
}

fn java(extra: &[&str]) -> Run {
    let (inv, flows, dns) = (
        path(&format!("{JAVA}/inventory.json")),
        path(&format!("{JAVA}/flows.ndjson")),
        path(&format!("{JAVA}/dns.json")),
    );
    let mut args = vec!["--inventory", &inv, "--flows", &flows, &dns, "--namespace", "example-java-app"];
    args.extend_from_slice(&["--exclude", "deployment/example-java-app/example-java-app-cassandra"]);
    args.extend_from_slice(extra);
    cilium(&args)
}

#[test]
fn java_app_by_name_is_a_fqdn_rule_with_the_dns_proxy() {
    let run = java(&["--trust-name", "api.example.com"]);
    insta::assert_snapshot!("cilium_java_app_by_name", run.stdout);
    let docs = docs(&run.stdout);
    let javaapp = docs.iter().find(|d| d["metadata"]["name"] == "example-java-app-javaapp").unwrap();
    let egress = javaapp["spec"]["egress"].as_array().unwrap();
    let fqdn: Vec<&Value> = egress.iter().filter(|r| r.get("toFQDNs").is_some()).collect();
    assert_eq!(fqdn.len(), 1, "{egress:?}");
    assert_eq!(fqdn[0]["toFQDNs"], serde_json::json!([{"matchName": "api.example.com"}]));
    assert_eq!(fqdn[0]["toPorts"][0]["ports"], serde_json::json!([{"port": "443", "protocol": "TCP"}]));
    // The DNS server's rule sends javaapp's lookups through Cilium's proxy, which is how toFQDNs
    // learns the name's addresses; policies without FQDN rules do not.
    let proxied = |d: &Value| {
        d["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["toPorts"][0]["rules"]["dns"][0]["matchPattern"] == "*")
    };
    assert!(proxied(javaapp));
    assert!(docs.iter().filter(|d| d["metadata"]["name"] != "example-java-app-javaapp").all(|d| !proxied(d)));
    // No address of the API is written: the name stands for it.
    assert!(!run.stdout.contains("192.229.173"), "{}", run.stdout);
    // Kubelet probes (from the node) get Cilium's node entities, never the node's address.
    let ingress = javaapp["spec"]["ingress"].as_array().unwrap();
    assert!(ingress.iter().any(|r| r["fromEntities"] == serde_json::json!(["host", "remote-node"])), "{ingress:?}");
    assert!(!run.stdout.contains("172.18.0.2"));
}

#[test]
fn java_app_by_cidr_is_a_cidr_rule_and_the_kubernetes_dialect_lists_a_names_addresses() {
    let run = java(&["--trust", "192.229.173.0/24"]);
    insta::assert_snapshot!("cilium_java_app_by_cidr", run.stdout);
    assert!(run.stdout.contains("toCIDR:\n    - 192.229.173.0/24"), "{}", run.stdout);
    assert!(!run.stdout.contains("toFQDNs") && !run.stdout.contains("matchPattern"), "{}", run.stdout);

    // NetworkPolicy cannot name a host: the trusted name becomes the addresses it was seen for
    // (both answers', not only the one connected to), with a warning.
    let (inv, flows, dns) = (
        path(&format!("{JAVA}/inventory.json")),
        path(&format!("{JAVA}/flows.ndjson")),
        path(&format!("{JAVA}/dns.json")),
    );
    let knp = flowgate(&[
        "generate",
        "--inventory",
        &inv,
        "--flows",
        &flows,
        &dns,
        "--namespace",
        "example-java-app",
        "--trust-name",
        "api.example.com",
    ]);
    assert_eq!(knp.code, Some(0), "{}", knp.stderr);
    assert!(
        knp.stdout.contains("cidr: 192.229.173.207/32") && knp.stdout.contains("cidr: 192.229.173.208/32"),
        "{}",
        knp.stdout
    );
    assert!(knp.stderr.contains("NetworkPolicy cannot name hosts: the trusted name api.example.com"), "{}", knp.stderr);
    assert!(knp.stderr.contains(" 0 mismatches"), "{}", knp.stderr);
    // Excluding one of its addresses: Cilium cannot leave it out of toFQDNs, so the name is written
    // as its other addresses, with a warning; NetworkPolicy leaves it out.
    let run = java(&["--trust-name", "api.example.com", "--exclude", "192.229.173.208"]);
    assert!(!run.stdout.contains("toFQDNs") && run.stdout.contains("192.229.173.207/32"), "{}", run.stdout);
    assert!(!run.stdout.contains("192.229.173.208"), "{}", run.stdout);
    assert!(run.stderr.contains("toFQDNs cannot leave out its excluded addresses"), "{}", run.stderr);
}

#[test]
fn bookinfo_behind_the_proxy_in_the_cilium_dialect() {
    let run = cilium(&["--flows", &path("tests/fixtures/bookinfo-proxy/flows.json"), "--namespace", "bookinfo"]);
    insta::assert_snapshot!("cilium_bookinfo_proxy", run.stdout);
    let docs = docs(&run.stdout);
    let productpage = docs.iter().find(|d| d["metadata"]["name"] == "productpage-v1").unwrap();
    // The three versions of reviews collapse into their app label, as in NetworkPolicy.
    assert!(
        productpage["spec"]["egress"].to_string().contains(r#"{"matchLabels":{"app":"reviews"}}"#),
        "{productpage}"
    );
}

#[test]
fn the_real_dns_sample_in_the_cilium_dialect() {
    let sample = path("tests/data/hubble/hubble-otel_basic-sample-330-dns-flows.json");
    let run = cilium(&["--flows", &sample, "--all-namespaces"]);
    insta::assert_snapshot!("cilium_dns_sample", run.stdout);
    // The DNS server admits every pod of every namespace.
    let docs = docs(&run.stdout);
    let kube_dns = docs.iter().find(|d| d["metadata"]["name"] == "kube-dns").unwrap();
    assert_eq!(
        kube_dns["spec"]["ingress"][0]["fromEndpoints"],
        serde_json::json!([{"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]}])
    );
    // Its answers were read: 55 of them, each a name a pod looked up.
    assert!(run.stderr.contains("330 lines: 165 flows, 55 DNS answers, 110 skipped"), "{}", run.stderr);
}

#[test]
fn every_real_capture_gives_valid_verified_cilium_policies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            n += docs(&cilium(&["--flows", p.to_str().unwrap(), "--all-namespaces"]).stdout).len();
        }
    }
    assert!(n > 10, "the samples give policies ({n})");
}

// ---------------------------------------------------------------------------------------------
// What Cilium asks beyond its schema, and the fields Flowgate writes
// ---------------------------------------------------------------------------------------------

/// `Err` names the first place a CiliumNetworkPolicy breaks what Cilium asks beyond its schema,
/// or writes a field Flowgate is not known to write (see the module's notes): a new field in the
/// output must be added here, against the CRD, first.
fn crd_check(doc: &Value) -> Result<(), String> {
    let top = object(doc, "")?;
    only(top, "", &["apiVersion", "kind", "metadata", "spec"])?;
    expect(top.get("apiVersion") == Some(&Value::from("cilium.io/v2")), "apiVersion: not cilium.io/v2")?;
    expect(top.get("kind") == Some(&Value::from("CiliumNetworkPolicy")), "kind: not CiliumNetworkPolicy")?;
    let meta = object(&doc["metadata"], "metadata")?;
    only(meta, "metadata", &["name", "namespace", "labels", "annotations"])?;
    let name = doc["metadata"]["name"].as_str().ok_or("metadata.name: missing")?;
    dns_subdomain(name, "metadata.name")?;
    let spec = object(&doc["spec"], "spec")?;
    only(spec, "spec", &["endpointSelector", "ingress", "egress", "description"])?;
    // oneOf endpointSelector / nodeSelector; anyOf ingress / ingressDeny / egress / egressDeny.
    selector(&doc["spec"]["endpointSelector"], "spec.endpointSelector")?;
    expect(spec.contains_key("ingress") || spec.contains_key("egress"), "spec: needs ingress or egress")?;
    for (dir, peers) in [
        ("ingress", &["fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities"][..]),
        ("egress", &["toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toFQDNs"][..]),
    ] {
        let Some(rules) = spec.get(dir) else { continue };
        for (i, rule) in array(rules, &format!("spec.{dir}"))?.iter().enumerate() {
            let at = format!("spec.{dir}[{i}]");
            let r = object(rule, &at)?;
            let mut allowed = peers.to_vec();
            allowed.push("toPorts");
            only(r, &at, &allowed)?;
            // ToEndpoints, ToCIDR, ToCIDRSet, ToEntities, ... are mutually exclusive (the CRD's
            // description; Cilium's validation refuses the policy otherwise).
            let present: Vec<&&str> = peers.iter().filter(|p| r.contains_key(**p)).collect();
            expect(present.len() <= 1, &format!("{at}: combines {present:?}"))?;
            for (field, v) in r {
                let at = format!("{at}.{field}");
                match field.as_str() {
                    "fromEndpoints" | "toEndpoints" => {
                        for (j, s) in array(v, &at)?.iter().enumerate() {
                            selector(s, &format!("{at}[{j}]"))?;
                        }
                    }
                    "fromCIDR" | "toCIDR" => {
                        for (j, c) in array(v, &at)?.iter().enumerate() {
                            cidr(c, &format!("{at}[{j}]"))?;
                        }
                    }
                    "fromCIDRSet" | "toCIDRSet" => {
                        for (j, c) in array(v, &at)?.iter().enumerate() {
                            let at = format!("{at}[{j}]");
                            let o = object(c, &at)?;
                            only(o, &at, &["cidr", "except"])?;
                            cidr(&c["cidr"], &format!("{at}.cidr"))?;
                            if let Some(ex) = o.get("except") {
                                for (k, e) in array(ex, &format!("{at}.except"))?.iter().enumerate() {
                                    cidr(e, &format!("{at}.except[{k}]"))?;
                                }
                            }
                        }
                    }
                    "fromEntities" | "toEntities" => {
                        const ENTITIES: &[&str] = &[
                            "all",
                            "world",
                            "cluster",
                            "host",
                            "init",
                            "ingress",
                            "unmanaged",
                            "remote-node",
                            "health",
                            "none",
                            "kube-apiserver",
                        ];
                        for e in array(v, &at)? {
                            expect(e.as_str().is_some_and(|e| ENTITIES.contains(&e)), &format!("{at}: entity {e}"))?;
                        }
                    }
                    "toFQDNs" => {
                        for (j, f) in array(v, &at)?.iter().enumerate() {
                            fqdn(f, &format!("{at}[{j}]"))?;
                        }
                    }
                    "toPorts" => {
                        for (j, p) in array(v, &at)?.iter().enumerate() {
                            port_rule(p, &format!("{at}[{j}]"))?;
                        }
                    }
                    _ => unreachable!("only() let {field} through"),
                }
            }
        }
    }
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{at}: not an object"))
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| format!("{at}: not an array"))
}

fn only(o: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}: unknown field {k}")),
        None => Ok(()),
    }
}

/// A label selector: `matchLabels` values `^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$` of at
/// most 63; `matchExpressions` with `key`, `operator` In/NotIn/Exists/DoesNotExist and `values`.
fn selector(v: &Value, at: &str) -> Result<(), String> {
    let o = object(v, at)?;
    only(o, at, &["matchLabels", "matchExpressions"])?;
    if let Some(m) = o.get("matchLabels") {
        for (k, val) in object(m, &format!("{at}.matchLabels"))? {
            let val = val.as_str().ok_or_else(|| format!("{at}.matchLabels.{k}: not a string"))?;
            let b = val.as_bytes();
            let ok = val.len() <= 63
                && (b.is_empty()
                    || (b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))));
            expect(ok, &format!("{at}.matchLabels.{k}: value {val:?}"))?;
            expect(!k.is_empty(), &format!("{at}.matchLabels: empty key"))?;
        }
    }
    if let Some(exprs) = o.get("matchExpressions") {
        for (i, e) in array(exprs, &format!("{at}.matchExpressions"))?.iter().enumerate() {
            let at = format!("{at}.matchExpressions[{i}]");
            only(object(e, &at)?, &at, &["key", "operator", "values"])?;
            expect(e["key"].is_string(), &format!("{at}.key: missing"))?;
            let op = e["operator"].as_str().unwrap_or_default();
            expect(["In", "NotIn", "Exists", "DoesNotExist"].contains(&op), &format!("{at}.operator: {op:?}"))?;
        }
    }
    Ok(())
}

/// `format: cidr`: an address/prefix.
fn cidr(v: &Value, at: &str) -> Result<(), String> {
    let s = v.as_str().ok_or_else(|| format!("{at}: not a string"))?;
    let ok = s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<IpAddr>().is_ok_and(|ip| len.parse::<u8>().is_ok_and(|l| l <= if ip.is_ipv4() { 32 } else { 128 }))
    });
    expect(ok, &format!("{at}: {s:?} is not a CIDR"))
}

/// `matchName`: `^([-a-zA-Z0-9_]+[.]?)+$`, at most 255; `matchPattern`:
/// `^([-a-zA-Z0-9_*]+[.]?)+$`; one of them.
fn fqdn(v: &Value, at: &str) -> Result<(), String> {
    let o = object(v, at)?;
    only(o, at, &["matchName", "matchPattern"])?;
    expect(o.len() == 1, &format!("{at}: needs exactly one of matchName and matchPattern"))?;
    let (field, extra) = if o.contains_key("matchName") { ("matchName", "") } else { ("matchPattern", "*") };
    let s = o[field].as_str().ok_or_else(|| format!("{at}.{field}: not a string"))?;
    let ok = s.len() <= 255
        && !s.is_empty()
        && s.split_inclusive('.').all(|label| {
            let l = label.strip_suffix('.').unwrap_or(label);
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b) || extra.as_bytes().contains(&b))
        });
    expect(ok, &format!("{at}.{field}: {s:?}"))
}

/// `toPorts[]`: `ports` of `port` (`^(6553[0-5]|...|[0-9]{1,4})|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$`),
/// `protocol` (TCP, UDP, SCTP, VRRP, IGMP, ANY: the CRD has no ICMP), `endPort`; `rules.dns[]` as FQDN
/// selectors. At most 40 ports.
fn port_rule(v: &Value, at: &str) -> Result<(), String> {
    let o = object(v, at)?;
    only(o, at, &["ports", "rules"])?;
    if let Some(ports) = o.get("ports") {
        let ports = array(ports, &format!("{at}.ports"))?;
        expect(ports.len() <= 40, &format!("{at}.ports: more than 40"))?;
        for (i, p) in ports.iter().enumerate() {
            let at = format!("{at}.ports[{i}]");
            only(object(p, &at)?, &at, &["port", "protocol", "endPort"])?;
            let port = p["port"].as_str().ok_or_else(|| format!("{at}.port: not a string"))?;
            expect(port.parse::<u16>().is_ok(), &format!("{at}.port: {port:?} is not 0-65535"))?;
            let proto = p["protocol"].as_str().unwrap_or("ANY");
            expect(
                ["TCP", "UDP", "SCTP", "VRRP", "IGMP", "ANY"].contains(&proto),
                &format!("{at}.protocol: {proto:?}"),
            )?;
        }
    }
    if let Some(rules) = o.get("rules") {
        let r = object(rules, &format!("{at}.rules"))?;
        only(r, &format!("{at}.rules"), &["dns"])?;
        for (i, d) in array(&rules["dns"], &format!("{at}.rules.dns"))?.iter().enumerate() {
            fqdn(d, &format!("{at}.rules.dns[{i}]"))?;
        }
        expect(o.contains_key("ports"), &format!("{at}: L7 rules need ports"))?;
    }
    Ok(())
}

fn dns_subdomain(s: &str, at: &str) -> Result<(), String> {
    let ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    expect(ok, &format!("{at}: {s:?} is not a DNS-1123 subdomain"))
}

#[test]
fn the_crd_check_refuses_what_the_crd_refuses() {
    let good: Value = serde_json::json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{}],
            "egress": [{"toFQDNs": [{"matchName": "api.example.com"}], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]
        }
    });
    assert_eq!(crd_check(&good), Ok(()));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        crd_check(&v).unwrap_err()
    };
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|v| v["spec"]["egress"][0]["toCIDR"] = serde_json::json!(["1.2.3.0/24"])), "combines"),
        (Box::new(|v| v["spec"]["egress"][0]["toPorts"][0]["ports"][0]["protocol"] = "tcp".into()), "protocol"),
        (Box::new(|v| v["spec"]["egress"][0]["toPorts"][0]["ports"][0]["port"] = 443.into()), "not a string"),
        (Box::new(|v| v["spec"]["egress"][0]["toFQDNs"][0]["matchName"] = "*.example.com".into()), "matchName"),
        (
            Box::new(|v| v["spec"]["ingress"] = serde_json::json!([{"toEntities": ["host"]}])),
            "unknown field toEntities",
        ),
        (Box::new(|v| v["spec"]["ingress"] = serde_json::json!([{"fromEntities": ["node"]}])), "entity"),
        (Box::new(|v| v["spec"]["ingress"] = serde_json::json!([{"fromCIDR": ["10.0.0.1"]}])), "not a CIDR"),
        (Box::new(|v| v["spec"]["endpointSelector"]["matchLabels"]["app"] = "-web".into()), "value"),
        (Box::new(|v| v["spec"]["podSelector"] = serde_json::json!({})), "unknown field podSelector"),
        (Box::new(|v| v["apiVersion"] = "cilium.io/v1".into()), "apiVersion"),
    ];
    for (change, want) in cases {
        let e = broken(&*change);
        assert!(e.contains(want), "{e} (wanted {want})");
    }
}

// ---------------------------------------------------------------------------------------------
// The published CRD's schema
// ---------------------------------------------------------------------------------------------

/// The demo cluster (`serve --demo`) as files: its inventory and 24 hours of its feed, as
/// `tests/guardrails.rs` builds them.
fn demo_cluster() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let now: jiff::Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
    let mut flows = String::new();
    let mut t = now - jiff::SignedDuration::from_hours(24);
    while t <= now {
        flows += &flowgate::web::demo::tick(t, now);
        t += jiff::SignedDuration::from_mins(10);
    }
    let (inv, fl) = (dir.path().join("inventory.json"), dir.path().join("flows.ndjson"));
    std::fs::write(&inv, flowgate::web::demo::INVENTORY).unwrap();
    std::fs::write(&fl, flows).unwrap();
    let (inv, fl) = (inv.to_str().unwrap().to_string(), fl.to_str().unwrap().to_string());
    (dir, inv, fl)
}

#[test]
fn the_vendored_crd_schema_is_cilium_s_whole_schema() {
    let s = crd();
    let text = serde_json::to_string(s).unwrap();
    // `specs` is a list of what `spec` is.
    assert_eq!(s["properties"]["specs"]["items"], s["properties"]["spec"]);
    let spec = &s["properties"]["spec"]["properties"];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(spec),
        [
            "description",
            "egress",
            "egressDeny",
            "enableDefaultDeny",
            "endpointSelector",
            "ingress",
            "ingressDeny",
            "labels",
            "log",
            "nodeSelector"
        ]
    );
    let egress = &spec["egress"]["items"]["properties"];
    assert_eq!(
        keys(egress),
        [
            "authentication",
            "icmps",
            "toCIDR",
            "toCIDRSet",
            "toEndpoints",
            "toEntities",
            "toFQDNs",
            "toGroups",
            "toNodes",
            "toPorts",
            "toRequires",
            "toServices"
        ]
    );
    let ingress = &spec["ingress"]["items"]["properties"];
    assert_eq!(
        keys(ingress),
        [
            "authentication",
            "fromCIDR",
            "fromCIDRSet",
            "fromEndpoints",
            "fromEntities",
            "fromGroups",
            "fromNodes",
            "fromRequires",
            "icmps",
            "toPorts"
        ]
    );
    assert_eq!(
        egress["toEntities"]["items"]["enum"],
        serde_json::json!([
            "all",
            "world",
            "cluster",
            "host",
            "init",
            "ingress",
            "unmanaged",
            "remote-node",
            "health",
            "none",
            "kube-apiserver"
        ])
    );
    assert_eq!(ingress["fromEntities"], egress["toEntities"]);
    let port = &egress["toPorts"]["items"]["properties"]["ports"]["items"]["properties"];
    assert_eq!(
        port["port"]["pattern"],
        "^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})|([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$"
    );
    assert_eq!(port["protocol"]["enum"], serde_json::json!(["TCP", "UDP", "SCTP", "VRRP", "IGMP", "ANY"]));
    assert_eq!(egress["toPorts"]["items"]["properties"]["ports"]["maxItems"], 40);
    assert_eq!(ingress["toPorts"], egress["toPorts"]);
    assert_eq!(
        spec["egressDeny"]["items"]["properties"]["toPorts"],
        spec["ingressDeny"]["items"]["properties"]["toPorts"]
    );
    assert_eq!(
        egress["toFQDNs"]["items"],
        egress["toPorts"]["items"]["properties"]["rules"]["properties"]["dns"]["items"]
    );
    assert_eq!(egress["toFQDNs"]["items"]["properties"]["matchName"]["pattern"], "^([-a-zA-Z0-9_]+[.]?)+$");
    // Every selector is the same EndpointSelector.
    for sel in [
        &spec["endpointSelector"],
        &spec["nodeSelector"],
        &egress["toEndpoints"]["items"],
        &egress["toNodes"]["items"],
        &ingress["fromEndpoints"]["items"],
        &ingress["fromNodes"]["items"],
        &egress["toCIDRSet"]["items"]["properties"]["cidrGroupSelector"],
        &egress["toServices"]["items"]["properties"]["k8sServiceSelector"]["properties"]["selector"],
    ] {
        assert_eq!(sel, &spec["endpointSelector"]);
    }
    assert_eq!(
        spec["endpointSelector"]["properties"]["matchLabels"]["additionalProperties"]["pattern"],
        "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
    );
    // The ICMP type's pattern is one line, as YAML folds it (upstream's "ExtendedEcho Reply").
    let icmp = &egress["icmps"]["items"]["properties"]["fields"]["items"]["properties"]["type"]["pattern"];
    assert!(icmp.as_str().unwrap().contains("|ExtendedEchoRequest|ExtendedEcho Reply|PacketTooBig|"), "{icmp}");
    // Every pattern compiles; no description is left.
    fn walk(v: &Value, at: &str, patterns: &mut usize) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    // A property may be called `description`; a schema's own description may not.
                    assert!(k != "description" || x.get("type").is_some(), "{at}.description");
                    if k == "pattern" {
                        regex::Regex::new(x.as_str().unwrap()).unwrap();
                        *patterns += 1;
                    }
                    walk(x, &format!("{at}.{k}"), patterns);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, at, patterns)),
            _ => {}
        }
    }
    let mut patterns = 0;
    walk(s, "", &mut patterns);
    assert!(patterns > 50, "{patterns}");
    assert!(text.len() > 50_000, "{}", text.len());
}

/// Every CiliumNetworkPolicy the tests above write (the seed app by name, by range and with an
/// excluded address; Bookinfo; every real capture, the DNS sample among them) and the demo
/// cluster's, validated against the published CRD's `openAPIV3Schema` (tests/data/cilium).
#[test]
fn every_document_passes_the_published_crd_schema() {
    let (_dir, inv, fl) = demo_cluster();
    let mut runs = vec![
        java(&["--trust-name", "api.example.com"]),
        java(&["--trust", "192.229.173.0/24"]),
        java(&["--trust-name", "api.example.com", "--exclude", "192.229.173.208"]),
        cilium(&["--flows", &path("tests/fixtures/bookinfo-proxy/flows.json"), "--namespace", "bookinfo"]),
        cilium(&["--inventory", &inv, "--flows", &fl, "--all-namespaces"]),
    ];
    let mut captures: Vec<_> = std::fs::read_dir(path("tests/data/hubble"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    captures.sort();
    for p in &captures {
        runs.push(cilium(&["--flows", p.to_str().unwrap(), "--all-namespaces"]));
    }
    let (mut documents, mut cel_total) = (0, 0);
    for run in &runs {
        for doc in docs(&run.stdout) {
            let (errors, cel) = schema::validate(&doc, crd());
            assert!(errors.is_empty(), "{}: {errors:#?}", doc["metadata"]["name"]);
            documents += 1;
            cel_total += cel;
        }
    }
    let demo = docs(&runs[4].stdout).len();
    assert!(demo >= 5 && documents > 40, "{demo} of the demo's, {documents} in all");
    println!(
        "CRD schema check: {documents} CiliumNetworkPolicies of {} runs valid ({demo} of the demo cluster's); CEL rules met but not evaluated: {cel_total}",
        runs.len()
    );
}

/// The schema check refuses what the API server would.
#[test]
fn the_published_schema_refuses_what_the_api_server_refuses() {
    let run = java(&["--trust-name", "api.example.com"]);
    let docs = docs(&run.stdout);
    let good = docs.iter().find(|d| d["metadata"]["name"] == "example-java-app-javaapp").unwrap();
    assert_eq!(schema::validate(good, crd()).0, Vec::<String>::new());
    let fqdn = good["spec"]["egress"].as_array().unwrap().iter().position(|r| r.get("toFQDNs").is_some()).unwrap();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Change, String)> = vec![
        (
            Box::new(|v| v["spec"]["ingress"][0]["fromEntities"] = serde_json::json!(["node"])),
            r#".spec.ingress[0].fromEntities[0]: "node" is not one of"#.into(),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["colour"] = "red".into()),
            format!(".spec.egress[{fqdn}].colour: unknown field"),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["toPorts"][0]["ports"][0]["port"] = "https-".into()),
            format!(r#".spec.egress[{fqdn}].toPorts[0].ports[0].port: "https-" does not match"#),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["toPorts"][0]["ports"][0]["port"] = 443.into()),
            format!(".spec.egress[{fqdn}].toPorts[0].ports[0].port: expected string, found integer"),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["toPorts"][0]["ports"][0]["protocol"] = "ICMP".into()),
            format!(r#".spec.egress[{fqdn}].toPorts[0].ports[0].protocol: "ICMP" is not one of"#),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["toFQDNs"][0]["matchPattern"] = "*.example.com".into()),
            format!(".spec.egress[{fqdn}].toFQDNs[0]: matches 2 of oneOf's 2 alternatives"),
        ),
        (
            Box::new(move |v| v["spec"]["egress"][fqdn]["toCIDR"] = serde_json::json!(["10.0.0.1"])),
            format!(r#".spec.egress[{fqdn}].toCIDR[0]: "10.0.0.1" is not a CIDR"#),
        ),
        (
            Box::new(|v| v["spec"]["endpointSelector"]["matchLabels"]["app"] = "-web".into()),
            r#".spec.endpointSelector.matchLabels.app: "-web" does not match"#.into(),
        ),
        (
            Box::new(|v| v["spec"]["nodeSelector"] = serde_json::json!({})),
            ".spec: matches 2 of oneOf's 2 alternatives".into(),
        ),
        (
            Box::new(|v| {
                let spec = v["spec"].as_object_mut().unwrap();
                spec.remove("ingress");
                spec.remove("egress");
            }),
            ".spec: matches none of anyOf's 4 alternatives".into(),
        ),
        (Box::new(|v| v["spec"]["podSelector"] = serde_json::json!({})), ".spec.podSelector: unknown field".into()),
    ];
    for (change, want) in cases {
        let mut bad = good.clone();
        change(&mut bad);
        let (errors, _) = schema::validate(&bad, crd());
        assert!(errors.iter().any(|e| e.starts_with(&want)), "{want} not refused: {errors:#?}");
    }
}
