//! Writes Hubble flows (`hubble observe -o json` lines) for one large namespace: `--workloads`
//! Deployments (2,000) in namespace `big`, each calling `--peers` (4) others picked at random on
//! one of four ports, `--flows` (5) flows a call, one second apart from `--start`
//! (2026-11-30T12:00:00Z), or
//! with `--span-hours H` each call's flows spread evenly over H hours from then (so a window of
//! days has aggregates in many hours). The flows carry their own pod metadata, so no inventory is
//! needed.
//!
//! `cargo run --release --example gen_namespace -- --out /var/tmp/flowgate-bench/namespace-2000.json`
//!
//! The input of BENCHMARKS.md's "Namespace review": every workload of the namespace gets a policy,
//! so a namespace's review generates and verifies 2,000 policies at once. Deterministic (`--seed`).

use std::io::{BufWriter, Write};

use anyhow::{Context, Result, bail};
use serde_json::json;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn main() -> Result<()> {
    let (mut workloads, mut peers, mut flows, mut seed, mut out) = (2000usize, 4usize, 5usize, 3u64, None);
    let mut span_hours = 0i64;
    let mut start: jiff::Timestamp = "2026-11-30T12:00:00Z".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--workloads" => workloads = value()?.parse()?,
            "--peers" => peers = value()?.parse()?,
            "--flows" => flows = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--span-hours" => span_hours = value()?.parse()?,
            "--start" => start = value()?.parse()?,
            "--out" => out = Some(value()?),
            _ => bail!("unknown argument {a} (see the comment at the top of examples/gen_namespace.rs)"),
        }
    }
    let out = out.context("--out FILE is required")?;
    if !(2..=60_000).contains(&workloads) {
        bail!("--workloads: between 2 and 60000");
    }
    let mut rng = Rng::new(seed);
    let ip = |i: usize| format!("10.1.{}.{}", i / 250, i % 250 + 1);
    let endpoint = |i: usize| {
        json!({
            "namespace": "big",
            "pod_name": format!("app-{i:05}-5d8f9c-x{i:05}"),
            "labels": [format!("k8s:app=app-{i:05}"), format!("k8s:team=t{}", i % 7)],
            "workloads": [{"name": format!("app-{i:05}"), "kind": "Deployment"}],
        })
    };
    // A flow's time: one second after the one before, or the call's `f`th of `flows` slots over
    // the span (plus the flow's own second, so that no two flows share an instant).
    let at = |n: u64, f: usize| -> jiff::SignedDuration {
        if span_hours <= 0 {
            return jiff::SignedDuration::from_secs(n as i64);
        }
        let slot = span_hours * 3600 / flows as i64;
        jiff::SignedDuration::from_secs(slot * f as i64 + (n as i64 % slot.max(1)))
    };
    let mut w = BufWriter::new(std::fs::File::create(&out).with_context(|| out.clone())?);
    let mut n = 0u64;
    for i in 0..workloads {
        for _ in 0..peers {
            let j = (i + 1 + rng.below(workloads - 1)) % workloads;
            let port = *rng.pick(&[8080u16, 5432, 6379, 9090]);
            for f in 0..flows {
                n += 1;
                let flow = json!({
                    "time": (start + at(n, f)).to_string(),
                    "uuid": rng.uuid(),
                    "verdict": "FORWARDED", "Type": "L3_L4", "is_reply": false,
                    "IP": {"source": ip(i), "destination": ip(j), "ipVersion": "IPv4"},
                    "l4": {"TCP": {"source_port": 40000 + f, "destination_port": port}},
                    "source": endpoint(i), "destination": endpoint(j),
                });
                writeln!(w, "{}", json!({ "flow": flow }))?;
            }
        }
    }
    w.flush()?;
    eprintln!("gen_namespace: {n} flows, {workloads} workloads in namespace big -> {out}");
    Ok(())
}
