//! Measures the Hubble parser's throughput: `cargo run --release --example flows_parse_speed [LINES]`.
//!
//! Builds the input in memory from the real samples in `tests/data/hubble/`: every L3_L4
//! TCP/UDP record (about 1.2 KB each), requests and replies alternating as in a live capture, with the
//! addresses and ports varied per copy so that no two lines are the same. Prints lines/s for the
//! bare line parser, the sequential reader and the parallel reader. A program, not a timed test:
//! numbers depend on the machine and belong in a report, not in an assertion.

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use flowgate::flows::{FlowFormat, FlowReader, Item, SkipReason, parse_hubble_line, read_parallel};

fn main() {
    let want: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for name in ["hubble-otel_basic-sample-10-flows.json", "hubble-otel_basic-sample-400-udp-flows.json"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("sample file");
        for l in text.lines().filter(|l| l.contains(r#""Type":"L3_L4""#)) {
            let is_reply = l.contains(r#""reply":true"#) || l.contains(r#""is_reply":true"#);
            if is_reply { &mut replies } else { &mut requests }.push(l.to_string());
        }
    }
    // Alternate requests and replies: half of a live capture is replies.
    let base: Vec<String> = (0..requests.len().max(replies.len()) * 2)
        .map(|i| if i % 2 == 0 { &requests } else { &replies })
        .enumerate()
        .map(|(i, v)| v[(i / 2) % v.len()].clone())
        .collect();
    let mut input = Vec::with_capacity(want * 1300);
    for i in 0..want {
        let line = &base[i % base.len()];
        let copy = i / base.len();
        // Vary addresses and ports per copy; the shape of the line stays real.
        let line = line.replace("10.244.0.", &format!("10.{}.{}.", 1 + copy % 250, copy / 250 % 250));
        let line = line.replace(r#""source_port":5"#, &format!(r#""source_port":{}"#, 1 + copy % 5));
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mb = input.len() as f64 / 1e6;
    println!("{} lines, {:.1} MB, {:.0} bytes/line", lines.len(), mb, input.len() as f64 / lines.len() as f64);

    // Twice: the first pass also pays for warming the allocator and caches.
    for _ in 0..2 {
        let t = start();
        let (mut flows, mut replies, mut other) = (0u64, 0u64, 0u64);
        for l in &lines {
            match parse_hubble_line(l) {
                Ok(Item::Flow(..)) => flows += 1,
                Ok(Item::Skipped(SkipReason::Reply)) => replies += 1,
                _ => other += 1,
            }
        }
        report("parse_hubble_line, 1 thread", lines.len(), mb, t);
        println!("  {flows} flows, {replies} replies, {other} other");
    }
    let t = start();
    let n = FlowReader::new(Cursor::new(&input), FlowFormat::Auto).count();
    report("FlowReader (sequential)", n, mb, t);

    for threads in [2, 3, 4] {
        let t = start();
        let mut n = 0;
        read_parallel(Cursor::new(&input), FlowFormat::Auto, threads, |_| n += 1);
        report(&format!("read_parallel, {threads} workers"), n, mb, t);
    }
}

/// Wall-clock rate, and lines per CPU-second of the whole process: on a shared machine the first
/// drops when others compete for the cores, the second much less.
fn report(what: &str, n: usize, mb: f64, (t, cpu): (Instant, Option<f64>)) {
    let s = t.elapsed().as_secs_f64();
    let per_cpu = match (cpu, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => format!("{:>10.0} lines/CPU-s", n as f64 / (b - a)),
        _ => String::new(),
    };
    println!("{what:32} {:>10.0} lines/s {:>7.0} MB/s {per_cpu}", n as f64 / s, mb / s);
}

fn start() -> (Instant, Option<f64>) {
    (Instant::now(), cpu_seconds())
}

/// User + system time of this process (Linux `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
