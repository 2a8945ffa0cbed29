//! Progress of reading a large flow file, on standard error when it is a terminal: bytes and lines
//! read, the rate, and (for a file of known size) how far along and how long still. The CLI turns
//! it on ([`enable`]); the library and the server never print it.

use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// Shows progress for files opened from now on (the CLI calls it when standard error is a
/// terminal).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The progress line: `flows.json: 120.0 of 547.0 MiB (22 %), 1,234,567 lines, 45.1 MiB/s,
/// about 9 s left`.
pub fn line(name: &str, bytes: u64, total: Option<u64>, lines: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { mib(bytes) / secs } else { 0.0 };
    let mut out = match total {
        Some(t) if t > 0 => {
            let pct = (bytes.min(t) as f64 * 100.0 / t as f64).floor();
            format!("{name}: {:.1} of {:.1} MiB ({pct:.0} %)", mib(bytes), mib(t))
        }
        _ => format!("{name}: {:.1} MiB", mib(bytes)),
    };
    out.push_str(&format!(", {} lines, {rate:.1} MiB/s", thousands(lines)));
    if let Some(t) = total.filter(|t| *t > bytes && rate > 0.0) {
        let left = mib(t - bytes) / rate;
        out.push_str(&format!(", about {} left", duration_words(left)));
    }
    out
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration_words(secs: f64) -> String {
    let s = secs.ceil() as u64;
    if s < 60 { format!("{s} s") } else { format!("{} min {} s", s / 60, s % 60) }
}

/// A reader that counts what passes through it and redraws the progress line.
pub struct Progress<R> {
    inner: R,
    name: String,
    total: Option<u64>,
    bytes: u64,
    lines: u64,
    started: Instant,
    shown: Instant,
    drawn: bool,
}

impl<R> Progress<R> {
    pub fn new(inner: R, name: &str, total: Option<u64>) -> Progress<R> {
        let now = Instant::now();
        Progress { inner, name: name.to_string(), total, bytes: 0, lines: 0, started: now, shown: now, drawn: false }
    }

    fn count(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.lines += memchr::memchr_iter(b'\n', data).count() as u64;
        if self.shown.elapsed() >= EVERY {
            self.shown = Instant::now();
            self.draw();
        }
    }

    fn draw(&mut self) {
        let text = line(&self.name, self.bytes, self.total, self.lines, self.started.elapsed());
        // Back to the line's start and clear it: one line, redrawn in place.
        let _ = write!(io::stderr(), "\r\x1b[K{text}");
        self.drawn = true;
    }
}

impl<R> Drop for Progress<R> {
    fn drop(&mut self) {
        // Only a read long enough to have shown progress leaves its final line.
        if self.drawn {
            self.draw();
            let _ = writeln!(io::stderr());
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Progress<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // What is consumed was filled just before: count it from the buffer, then pass it on.
        let counted = match self.inner.fill_buf() {
            Ok(buf) => {
                let n = amt.min(buf.len());
                (n as u64, memchr::memchr_iter(b'\n', &buf[..n]).count() as u64)
            }
            Err(_) => (amt as u64, 0),
        };
        self.inner.consume(amt);
        self.bytes += counted.0;
        self.lines += counted.1;
        if self.shown.elapsed() >= EVERY {
            self.shown = Instant::now();
            self.draw();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_how_fast_and_how_long() {
        let m = 1024 * 1024;
        assert_eq!(
            line("flows.json", 120 * m, Some(480 * m), 1_234_567, Duration::from_secs(4)),
            "flows.json: 120.0 of 480.0 MiB (25 %), 1,234,567 lines, 30.0 MiB/s, about 12 s left"
        );
        assert_eq!(line("-", 3 * m, None, 999, Duration::from_secs(2)), "-: 3.0 MiB, 999 lines, 1.5 MiB/s");
        assert_eq!(
            line("big", 10 * m, Some(1000 * m), 1000, Duration::from_secs(1)),
            "big: 10.0 of 1000.0 MiB (1 %), 1,000 lines, 10.0 MiB/s, about 1 min 39 s left"
        );
        // Done: no time left is said.
        assert!(!line("f", 5, Some(5), 1, Duration::from_secs(1)).contains("left"));
    }

    #[test]
    fn counting_passes_everything_through() {
        let data = b"one\ntwo\nthree\n".repeat(1000);
        let mut p = Progress::new(io::BufReader::with_capacity(7, &data[..]), "t", Some(data.len() as u64));
        let mut lines = 0;
        let mut buf = String::new();
        while p.read_line(&mut buf).unwrap() > 0 {
            lines += 1;
            buf.clear();
        }
        assert_eq!((lines, p.lines, p.bytes), (3000, 3000, data.len() as u64));
        let mut all = Vec::new();
        let mut p = Progress::new(&data[..], "t", None);
        p.read_to_end(&mut all).unwrap();
        assert_eq!((all.len(), p.lines), (data.len(), 3000));
    }
}
