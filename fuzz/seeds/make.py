#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/TARGET/) from the repository's own test data and
a few hand-written cases. Run from anywhere; it rewrites every seed folder. The Hubble captures are
cilium/hubble-otel's (Apache-2.0, see tests/data/hubble/README.md)."""
import hashlib, json, pathlib, shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"
HUBBLE = ROOT / "tests" / "data" / "hubble"
FIX = ROOT / "tests" / "fixtures"

def lines(path, n=None):
    out = [l for l in path.read_bytes().split(b"\n") if l.strip()]
    return out if n is None else out[:n]

def write(target, items):
    d = SEEDS / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    seen = set()
    for data in items:
        if isinstance(data, str):
            data = data.encode()
        h = hashlib.sha1(data).hexdigest()[:16]
        if h not in seen:
            seen.add(h)
            (d / h).write_bytes(data)

def compact(line):
    return json.dumps(json.loads(line), separators=(",", ":")).encode()

# Hubble: a few lines of every capture (exporter form and bare flows), the proxy fixture, and the
# shapes the parser handles: compact replies, jsonpb, node_status, L7, ICMP, IPv6, workloads.
hubble = []
for f in sorted(HUBBLE.glob("*.json")):
    ls = lines(f)
    hubble += ls[:2] + ls[len(ls) // 2: len(ls) // 2 + 1]
    inner = json.loads(ls[0]).get("flow")
    if inner:
        hubble.append(json.dumps(inner, separators=(",", ":")).encode())
hubble += lines(FIX / "bookinfo-proxy" / "flows.json", 4)
hubble += [
    '{"flow":{"time":"2026-11-25T10:00:00Z","verdict":"FORWARDED","IP":{"source":"10.0.0.2","destination":"10.0.0.1"},"l4":{"TCP":{"source_port":8080,"destination_port":40000}},"Type":"L3_L4","is_reply":true}}',
    '{"time":"2026-11-25T10:00:00Z","verdict":"DROPPED","IP":{"source":"fd00::1","destination":"fd00::2","ipVersion":"IPv6"},"l4":{"UDP":{"source_port":53000,"destination_port":53}},"Type":"L3_L4","source":{"namespace":"a","pod_name":"web-7d9f8b6c5d-x2x9q","labels":["k8s:app=web"],"workloads":[{"name":"web","kind":"Deployment"}]},"destination":{"identity":1,"labels":["reserved:host"]},"traffic_direction":"EGRESS","trace_observation_point":"TO_OVERLAY"}',
    '{"time":"2026-11-25T10:00:00Z","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"SCTP":{"source_port":1,"destination_port":9}},"reply":false}',
    '{"time":"2026-11-25T10:00:00Z","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"ICMPv4":{"type":8}},"Type":"L3_L4"}',
    '{"time":"2026-11-25T10:00:00Z","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":443,"destination_port":50000,"flags":{"SYN":true,"ACK":true}}}}',
    '{"time":"2026-11-25T10:00:00Z","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":4,"destination_port":80}},"Type":"L7","l7":{"type":"RESPONSE"}}',
    '{"node_status":{"state":"NODE_CONNECTED","node_names":["n1"]},"node_name":"n1","time":"2026-11-25T10:00:00Z"}',
    '{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"3"}}',
    '{"flow":{"time":"2026-11-25T10:00:00Z","uuid":"0b1e","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"source_port":"40000","destination_port":"80"}},"source":{"namespace":"x","labels":["k8s:app=a","k8s:io.kubernetes.pod.namespace=x"]},"destination":{"namespace":"y","pod_name":"db-0","labels":["k8s:app=db"]},"destination_service":{"name":"db","namespace":"y"},"is_reply":false}}',
    "", "  ", "[]", "{}", "null",
]
write("hubble_line", hubble)

ndjson = lines(FIX / "java-app" / "flows.ndjson", 4)
for f in ["malformed.ndjson", "timeline.ndjson", "unresolved.ndjson"]:
    ndjson += lines(FIX / "java-app-extra" / f)
ndjson += lines(FIX / "ip-recycling" / "flows.ndjson", 3)
ndjson += [
    '{"time":"2026-11-25T10:00:00Z","src_ip":"2001:db8::1","src_port":0,"dst_ip":"2001:db8::2","dst_port":65535,"protocol":"sctp","verdict":"DROPPED","cluster":"c","node":"n","bytes":"12","packets":1}',
    '{"time":"2026-11-25T10:00:00+01:00","src_ip":"10.0.0.1","src_port":40000,"dst_ip":"10.0.0.2","dst_port":80,"protocol":"TCP","is_reply":false,"tcp_flags":"SYN"}',
    '{"time":"2026-11-25T10:00:00Z","src_ip":"10.0.0.1","src_port":80,"dst_ip":"10.0.0.2","dst_port":40000,"protocol":"TCP","tcp_flags":"SYN,ACK"}',
    '{"time":"2026-11-25T10:00:00Z","src_ip":"10.0.0.1","src_port":80,"dst_ip":"10.0.0.2","dst_port":40000,"protocol":"UDP","is_reply":true}',
    '{"time":"2026-11-25T10:00:00Z","src_ip":"10.0.0.1","src_port":80,"dst_ip":"10.0.0.2","dst_port":40000,"protocol":"TCP","tcp_flags":"PSH"}',
    '{"time":null,"src_ip":1,"dst_port":0}',
    "", "\t", "[1]",
]
write("ndjson_line", ndjson)

# flow_reader: two prefix bytes (format and read size, record bound) and then a whole body.
hub = lines(HUBBLE / "hubble-otel_basic-sample-10-flows.json", 3)
nd = lines(FIX / "java-app" / "flows.ndjson", 3)
bodies = [
    b"\n".join(hub) + b"\n",
    b"\n".join(nd) + b"\n",
    b"[" + b",".join(hub) + b"]",
    b"\xef\xbb\xbf" + b"\n".join(nd),
    b"[\n  " + b",\n  ".join(json.dumps(json.loads(l), indent=2).encode() for l in hub[:2]) + b"\n]\n",
    b"\n\n" + nd[0] + b"\r\n" + b"not json\n" + nd[1],
    b'[{"flow":{"IP":{"source":"10.0.0.1"}}}, "x", [1], {"a":"]"}]',
    b"[",
]
reader = []
for i, body in enumerate(bodies):
    reader.append(bytes([i % 3 + 3 * (i % 5), 0xff]) + body)
    reader.append(bytes([i % 3, 4]) + body)
write("flow_reader", reader)

inv = [
    (FIX / "ip-recycling" / "inventory.json").read_bytes(),
    (FIX / "java-app" / "inventory.json").read_bytes(),
    (FIX / "broken-inventory" / "inventory.yaml").read_bytes(),
    (FIX / "java-app-extra" / "deny-all.yaml").read_bytes(),
]
NP = ROOT / "tests" / "data" / "netpol-analyzer" / "tests"
for case in ["ipblockstest", "one_ingress_multiple_services", "multiple_topology_resources_4"]:
    for f in sorted((NP / case).glob("*")):
        if f.is_file() and f.stat().st_size < 8000:
            inv.append(f.read_bytes())
inv += [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: a-0, namespace: x, labels: {app: a}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: http}]}\n",
    '{"kind":"Pod","metadata":{"name":"p"}}{"kind":"Node","metadata":{"name":"n"},"spec":{"podCIDR":"10.1.0.0/24"}}',
    "[]", "{}", "---\n---\n", "kind: List\nitems: [{kind: Namespace, metadata: {name: kube-system}}]\n",
]
write("inventory_text", inv)

write("model_text", [
    "deployment/shop/cassandra", "sts/shop/mongo", "deploy/a/b", "pod/x/y-0", "10.0.0.1", "10.0.0.1/32",
    "192.229.173.0/24", "192.229.173.7/24", "2001:db8::/32", "::ffff:10.0.0.1", "fe80::1%eth0", " 10.0.0.0/8 ",
    "0.0.0.0/0", "::/0", "node/node-1/172.18.0.2", "node/a/b/10.0.0.1", "external/2001:db8::1",
    "unresolved/10.244.9.9", "external/x", "3h", "30m", "7d", "2w", "99999999999999999d",
    "2026-11-25T10:00:00Z", "2026-11-25T10:00:00+05:30", "53", "0", "65536", "tcp", "UDP", "Sctp", "icmp",
    "widget/shop/x", "deployment/Shop/x", "a/b", "", "/", "//",
])

write("decisions_json", [
    '{}',
    '{"exclude":["deployment/shop/cassandra","10.0.0.0/8"],"trust":["192.229.173.0/24"],"include_unresolved":["10.244.9.9"],"version":3}',
    '{"exclude":[],"trust":["2001:db8::/32","10.0.0.1"],"include_unresolved":["::1"]}',
    '{"version":null}',
    '{"version":-1,"exclude":["sts/a/b"]}',
    '{"trust":["192.229.173.7/24"]}',
    '{"include_all_unresolved":true}',
    '{"exclude":["x"]}',
    '{"exclude":["deployment/a/b","deployment/a/b"]}',
    '{"bogus":1}',
    '[]', 'null',
])

redirect = [
    "/", "/clusters/demo", "/clusters/demo?ns=shop&since=2026-11-25T10%3A00%3A00Z", "", "clusters/demo",
    "//evil.example/x", "/\\evil.example", "https://evil.example", "javascript:alert(1)", "/\t/127.0.0.1:18302/",
    "/\x0b/x", "/\x00/x", "/a\r\nSet-Cookie: x=y", "/\x7f", "/a b", "/caf\u00e9", "/%2F%2Fevil", "/%2fevil",
    "/%5Cevil", "/%09/evil", "/%250A", "/%25252F%25252Fevil", "/a%2Fb", "/100%", "/%zz", "/%25%32%46",
]
write("login_redirect", redirect)

# pipeline: Hubble lines (a capture's first flows, the proxy fixture) and decision lines.
pipe = [
    b"\n".join(lines(HUBBLE / "hubble-otel_basic-sample-10-flows.json")),
    b"\n".join(lines(FIX / "bookinfo-proxy" / "flows.json")),
    b"\n".join(lines(HUBBLE / "hubble-otel_basic-sample-5-dns-flows.json")),
    b"\n".join(lines(HUBBLE / "hubble-otel_basic-sample-5-http-flows.json")),
    b"\n".join(lines(HUBBLE / "hubble-otel_basic-sample-400-udp-flows.json", 12)),
    b"\n".join(lines(FIX / "bookinfo-proxy" / "flows.json", 6))
    + b"\nX deployment/bookinfo/reviews-v2\nT 0.0.0.0/0\nA\nW deployment/bookinfo/productpage-v1 X deployment/bookinfo/details-v1",
    b"\n".join(lines(HUBBLE / "hubble-otel_basic-sample-10-flows.json", 5)) + b"\nN\nI 10.128.0.4\nT 10.0.0.0/8",
]
write("pipeline", pipe)
