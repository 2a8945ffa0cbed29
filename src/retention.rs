//! Which flows the store takes: those younger than the retention and not from the future. Pure:
//! "now" is a value the caller passes in, so tests (and replays) decide what time it is.
//!
//! Both bounds protect the aggregates. The store keeps `conn_hourly`/`conn_daily` after the
//! retention has passed, and a flow is recognised as already counted only by the ingest ledger,
//! whose entries go with the retention; so a flow older than the retention, stored again, would
//! be counted twice. It is `Expired` instead, and never stored. Raw rows (`--keep-flows`) may go
//! sooner ([`Retention::with_raw_flows`]): they decide nothing. A flow from far in the future (a broken clock, a typo) would otherwise sit in the store
//! as its newest flow, which windows such as "the last 3 hours" count back from; it is `Future`,
//! a rejected line.

use jiff::{SignedDuration, Timestamp};

/// `--retention`'s default.
pub const DEFAULT_KEEP: SignedDuration = SignedDuration::from_hours(7 * 24);
/// `--max-skew`'s default: how far a collector's clock may run ahead of ours.
pub const DEFAULT_SKEW: SignedDuration = SignedDuration::from_mins(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("the retention must be positive, not {0}")]
    Keep(SignedDuration),
    #[error("the clock skew allowance must not be negative, not {0}")]
    Skew(SignedDuration),
    #[error("hourly aggregates must be kept at least a day, not {0}")]
    Hourly(SignedDuration),
    #[error("raw flows are kept a positive time no longer than the retention ({keep}), not {raw}")]
    Raw { raw: SignedDuration, keep: SignedDuration },
}

/// How long hourly aggregates are kept; past it a window reads whole days.
pub const DEFAULT_HOURLY: SignedDuration = SignedDuration::from_hours(30 * 24);

/// How long flows are kept, and how far ahead of now a flow's time may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    keep: SignedDuration,
    skew: SignedDuration,
    hourly: SignedDuration,
    /// Raw flow rows (`--keep-flows=RETENTION`) are removed past this; `None`: with the retention.
    raw: Option<SignedDuration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep: DEFAULT_KEEP, skew: DEFAULT_SKEW, hourly: DEFAULT_HOURLY, raw: None }
    }
}

impl Retention {
    pub fn new(keep: SignedDuration, skew: SignedDuration) -> Result<Retention, RetentionError> {
        if !keep.is_positive() {
            return Err(RetentionError::Keep(keep));
        }
        if skew.is_negative() {
            return Err(RetentionError::Skew(skew));
        }
        Ok(Retention { keep, skew, hourly: DEFAULT_HOURLY, raw: None })
    }

    /// Hourly aggregates kept this long (at least a day); older days are read whole from the
    /// daily ones.
    pub fn with_hourly(self, hourly: SignedDuration) -> Result<Retention, RetentionError> {
        if hourly < SignedDuration::from_hours(24) {
            return Err(RetentionError::Hourly(hourly));
        }
        Ok(Retention { hourly, ..self })
    }

    pub fn hourly(&self) -> SignedDuration {
        self.hourly
    }

    /// Raw flow rows kept only this long (positive, at most the retention): forensics for the
    /// last hours or days, while the aggregates keep the whole retention.
    pub fn with_raw_flows(self, raw: SignedDuration) -> Result<Retention, RetentionError> {
        if !raw.is_positive() || raw > self.keep {
            return Err(RetentionError::Raw { raw, keep: self.keep });
        }
        Ok(Retention { raw: Some(raw), ..self })
    }

    /// How long raw flow rows are kept: their own time, or the retention.
    pub fn raw_flows(&self) -> SignedDuration {
        self.raw.unwrap_or(self.keep)
    }

    pub fn keep(&self) -> SignedDuration {
        self.keep
    }

    pub fn skew(&self) -> SignedDuration {
        self.skew
    }

    /// The flow times accepted at `now`. Saturates at the ends of time rather than failing: a
    /// retention of 10,000 years keeps everything.
    pub fn window(&self, now: Timestamp) -> Window {
        Window {
            oldest: now.checked_sub(self.keep).unwrap_or(Timestamp::MIN),
            newest: now.checked_add(self.skew).unwrap_or(Timestamp::MAX),
        }
    }
}

/// Flow times from `oldest` (inclusive) to `newest` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub oldest: Timestamp,
    pub newest: Timestamp,
}

/// Where a flow's time falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    Current,
    /// Older than the window: counted, never stored.
    Expired,
    /// After the window: a rejected line.
    Future,
}

impl Window {
    /// Raises the start of the window to `floor` (when later): before it, the store may have
    /// removed raw flows already, under a longer-ago cutoff of a shorter retention.
    pub fn not_before(self, floor: Option<Timestamp>) -> Window {
        Window { oldest: floor.map_or(self.oldest, |f| f.max(self.oldest)), ..self }
    }

    pub fn age(&self, time: Timestamp) -> Age {
        if time < self.oldest {
            Age::Expired
        } else if time > self.newest {
            Age::Future
        } else {
            Age::Current
        }
    }

    /// Why a flow of `time` is rejected, for its line in the report.
    pub fn future_reason(&self, time: Timestamp) -> String {
        format!(
            "time {time} is in the future: more than the allowed clock skew past now (the newest time accepted is {})",
            self.newest
        )
    }
}

/// The first day (UTC, as days since the epoch) whose flows a cutoff keeps: the day partitions
/// before it hold only older flows. Flows of the cutoff's own day are kept until all of it is past.
pub fn first_kept_day(cutoff: Timestamp) -> i64 {
    const DAY_SECS: i64 = 86_400;
    cutoff.as_second().div_euclid(DAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn flows_are_current_expired_or_future() {
        let r = Retention::default();
        let w = r.window(ts("2026-12-01T12:00:00Z"));
        let cases = [
            ("2026-12-01T12:00:00Z", Age::Current),
            ("2026-11-24T12:00:00Z", Age::Current), // exactly the retention ago
            ("2026-11-24T11:59:59.999Z", Age::Expired),
            ("2026-12-01T12:10:00Z", Age::Current), // exactly the skew ahead
            ("2026-12-01T12:10:00.001Z", Age::Future),
            ("2999-01-01T00:00:00Z", Age::Future),
            ("1970-01-01T00:00:00Z", Age::Expired),
        ];
        for (t, want) in cases {
            assert_eq!(w.age(ts(t)), want, "{t}");
        }
        assert!(w.future_reason(ts("2999-01-01T00:00:00Z")).contains("2026-12-01T12:10:00Z"));
    }

    #[test]
    fn a_floor_only_ever_raises_the_start() {
        let w = Retention::default().window(ts("2026-12-01T12:00:00Z"));
        assert_eq!(w.not_before(None), w);
        assert_eq!(w.not_before(Some(ts("2026-11-01T00:00:00Z"))), w);
        let raised = w.not_before(Some(ts("2026-11-28T00:00:00Z")));
        assert_eq!(raised.oldest, ts("2026-11-28T00:00:00Z"));
        assert_eq!(raised.age(ts("2026-11-27T23:59:59Z")), Age::Expired);
    }

    #[test]
    fn bounds_are_checked_and_saturate() {
        assert_eq!(Retention::new(SignedDuration::ZERO, DEFAULT_SKEW), Err(RetentionError::Keep(SignedDuration::ZERO)));
        let minus = SignedDuration::from_secs(-1);
        assert_eq!(Retention::new(DEFAULT_KEEP, minus), Err(RetentionError::Skew(minus)));
        let forever = Retention::new(SignedDuration::from_hours(24 * 365 * 20_000), SignedDuration::ZERO).unwrap();
        let w = forever.window(ts("2026-12-01T12:00:00Z"));
        assert_eq!(w.oldest, Timestamp::MIN);
        assert_eq!(w.age(ts("2026-12-01T12:00:00.001Z")), Age::Future);
    }

    #[test]
    fn raw_flows_are_kept_at_most_the_retention() {
        let r = Retention::default();
        assert_eq!(r.raw_flows(), DEFAULT_KEEP);
        let day = SignedDuration::from_hours(24);
        assert_eq!(r.with_raw_flows(day).unwrap().raw_flows(), day);
        assert_eq!(r.with_raw_flows(DEFAULT_KEEP).unwrap().raw_flows(), DEFAULT_KEEP);
        let long = DEFAULT_KEEP + day;
        assert_eq!(r.with_raw_flows(long), Err(RetentionError::Raw { raw: long, keep: DEFAULT_KEEP }));
        assert!(r.with_raw_flows(SignedDuration::ZERO).is_err());
        // The window of flows taken is the retention's either way.
        let now = ts("2026-12-01T12:00:00Z");
        assert_eq!(r.with_raw_flows(day).unwrap().window(now), r.window(now));
    }

    #[test]
    fn the_first_kept_day_is_the_cutoffs_own() {
        assert_eq!(first_kept_day(ts("1970-01-02T00:00:00Z")), 1);
        assert_eq!(first_kept_day(ts("1970-01-02T23:59:59Z")), 1);
        assert_eq!(first_kept_day(ts("1969-12-31T23:59:59Z")), -1);
    }
}
