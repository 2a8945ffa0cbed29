//! Guessing the token is slowed down: every attempt with a token (a login, a bearer request)
//! takes one from a small bucket per client address, a right token gives it back, and an empty
//! bucket answers 429 before the token is even compared. The bucket refills one attempt every
//! `every` up to `burst`. Pure: the caller passes the time.
//!
//! Per address, so one client's guesses do not lock out everyone; IPv6 clients count per /64, as
//! one host usually holds a whole one. Behind a reverse proxy every client has the proxy's
//! address, so the limit becomes a global one (whoever guesses can then make logins wait; a
//! browser already logged in is not affected). Requests whose address is unknown share a bucket.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

/// Five tries at once, then one more every ten seconds: a person mistyping the token never
/// notices; a guesser gets 8,640 tries a day per address.
pub const DEFAULT_BURST: u32 = 5;
pub const DEFAULT_EVERY: SignedDuration = SignedDuration::from_secs(10);

/// Addresses tracked at most; past this, new ones share one bucket (so memory stays bounded and
/// many addresses still cannot guess faster than that bucket allows).
const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Client(IpAddr),
    Shared,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// Refills are counted from here.
    since: Timestamp,
}

#[derive(Debug)]
pub struct LoginLimiter {
    burst: u32,
    every: SignedDuration,
    buckets: HashMap<Key, Bucket>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(DEFAULT_BURST, DEFAULT_EVERY)
    }
}

impl LoginLimiter {
    pub fn new(burst: u32, every: SignedDuration) -> LoginLimiter {
        LoginLimiter { burst: burst.max(1), every: every.max(SignedDuration::from_millis(1)), buckets: HashMap::new() }
    }

    /// Takes one attempt for `client`; when none is left, how long until the next one.
    pub fn take(&mut self, client: Option<IpAddr>, now: Timestamp) -> Result<(), SignedDuration> {
        let key = self.key(client, now);
        let (burst, every) = (self.burst, self.every);
        let b = self.buckets.entry(key).or_insert(Bucket { tokens: burst, since: now });
        b.refill(burst, every, now);
        if b.tokens == 0 {
            return Err(every - now.duration_since(b.since));
        }
        b.tokens -= 1;
        Ok(())
    }

    /// Gives back the attempt of a right token.
    pub fn give_back(&mut self, client: Option<IpAddr>, now: Timestamp) {
        let key = self.key(client, now);
        if let Some(b) = self.buckets.get_mut(&key) {
            b.tokens = (b.tokens + 1).min(self.burst);
            if b.tokens == self.burst {
                self.buckets.remove(&key);
            }
        }
    }

    /// Addresses currently tracked (those with attempts taken).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    fn key(&mut self, client: Option<IpAddr>, now: Timestamp) -> Key {
        let Some(ip) = client else { return Key::Shared };
        let key = Key::Client(normalize(ip));
        if self.buckets.len() >= MAX_CLIENTS && !self.buckets.contains_key(&key) {
            // A full bucket is the same as none: forget those first.
            let (burst, every) = (self.burst, self.every);
            self.buckets.retain(|_, b| {
                b.refill(burst, every, now);
                b.tokens < burst
            });
            if self.buckets.len() >= MAX_CLIENTS {
                return Key::Shared;
            }
        }
        key
    }
}

impl Bucket {
    fn refill(&mut self, burst: u32, every: SignedDuration, now: Timestamp) {
        let elapsed = now.duration_since(self.since);
        // Full, or the clock went back: count from now.
        if self.tokens >= burst || elapsed.is_negative() {
            self.since = now;
            return;
        }
        let n = elapsed.as_nanos() / every.as_nanos();
        if n > 0 {
            let added = u32::try_from(n).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(added).min(burst);
            self.since = if self.tokens == burst { now } else { self.since + every * added as i32 };
        }
    }
}

/// IPv4-mapped IPv6 as IPv4; other IPv6 addresses by their /64.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: SignedDuration) -> u64 {
    let nanos = wait.as_nanos().max(1);
    u64::try_from((nanos + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_burst_then_one_attempt_per_interval() {
        let mut l = LoginLimiter::new(3, SignedDuration::from_secs(10));
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        // (time, client, expected)
        let steps: &[(i64, Option<IpAddr>, Result<(), i64>)] = &[
            (0, a, Ok(())),
            (0, a, Ok(())),
            (1, a, Ok(())),
            (1, a, Err(9)),
            // Another address has its own bucket.
            (1, b, Ok(())),
            (9, a, Err(1)),
            (10, a, Ok(())),
            (10, a, Err(10)),
            (19, a, Err(1)),
            // A long pause refills up to the burst, not beyond.
            (1000, a, Ok(())),
            (1000, a, Ok(())),
            (1000, a, Ok(())),
            (1000, a, Err(10)),
        ];
        for (i, &(t, client, want)) in steps.iter().enumerate() {
            let got = l.take(client, at(t)).map_err(|w| w.as_secs());
            assert_eq!(got, want, "step {i} at {t} s");
        }
    }

    #[test]
    fn a_right_token_gives_its_attempt_back() {
        let mut l = LoginLimiter::new(2, SignedDuration::from_secs(10));
        let a = Some("2001:db8::1".parse().unwrap());
        for _ in 0..10 {
            l.take(a, at(0)).unwrap();
            l.give_back(a, at(0));
        }
        assert_eq!(l.tracked(), 0, "full buckets are not kept");
        l.take(a, at(0)).unwrap();
        l.take(a, at(0)).unwrap();
        // The same /64 is the same client; another /64 is not.
        assert!(l.take(Some("2001:db8::ffff".parse().unwrap()), at(0)).is_err());
        assert!(l.take(Some("2001:db8:0:1::1".parse().unwrap()), at(0)).is_ok());
        // IPv4 as IPv4-mapped IPv6 is that IPv4 address.
        l.take(Some("192.0.2.9".parse().unwrap()), at(0)).unwrap();
        l.take(Some("192.0.2.9".parse().unwrap()), at(0)).unwrap();
        assert!(l.take(Some("::ffff:192.0.2.9".parse().unwrap()), at(0)).is_err());
        // Unknown clients share one bucket.
        l.take(None, at(0)).unwrap();
        l.take(None, at(0)).unwrap();
        assert!(l.take(None, at(0)).is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let mut l = LoginLimiter::new(1, SignedDuration::from_secs(10));
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            let ip = IpAddr::V4((0x0a00_0000 + i).into());
            let _ = l.take(Some(ip), at(0));
        }
        assert_eq!(l.tracked(), MAX_CLIENTS + 1, "the clients past the limit share one bucket");
        // Once their buckets have refilled, they make room for new ones.
        l.take(Some("192.0.2.1".parse().unwrap()), at(60)).unwrap();
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(SignedDuration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(SignedDuration::from_secs(9)), 9);
        assert_eq!(retry_after_secs(SignedDuration::from_millis(9001)), 10);
        assert_eq!(retry_after_secs(SignedDuration::ZERO), 1);
    }
}
