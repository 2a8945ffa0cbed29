//! Counts of what a read produced, for the CLI to print and for tests to assert on.

use std::collections::BTreeMap;
use std::fmt;

use super::{Item, LineError, SkipReason};

/// How many errors a [`Summary`] keeps verbatim; the rest are only counted. A file with a broken
/// schema fails on every line, and a million copies of one message help nobody.
pub const KEEP_ERRORS: usize = 20;

/// A [`LineError`] with the file it came from; displays as `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLineError {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for FileLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// What reading one or more flow files produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records read: lines, or elements of a JSON array; blank lines and errors included.
    pub lines: u64,
    pub flows: u64,
    /// DNS answers read (records that name addresses, not flows).
    pub dns_answers: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub errors: u64,
    /// The first [`KEEP_ERRORS`] errors, in reading order.
    pub first_errors: Vec<FileLineError>,
    /// Flows some of whose fields were left out (bad names or labels) or cut short (a long
    /// process name); and how many fields of each.
    pub cleaned_flows: u64,
    pub dropped_fields: u64,
    pub truncated_fields: u64,
}

impl Summary {
    /// Counts one record's outcome; `file` names it in a kept error.
    pub fn record(&mut self, file: &str, result: &Result<Item, LineError>) {
        self.lines += 1;
        match result {
            Ok(Item::Flow(_, cleaned)) => {
                self.flows += 1;
                if !cleaned.is_empty() {
                    self.cleaned_flows += 1;
                    self.dropped_fields += u64::from(cleaned.dropped);
                    self.truncated_fields += u64::from(cleaned.truncated);
                }
            }
            Ok(Item::Names(_)) => self.dns_answers += 1,
            Ok(Item::Skipped(reason)) => *self.skipped.entry(*reason).or_default() += 1,
            Err(e) => {
                self.errors += 1;
                if self.first_errors.len() < KEEP_ERRORS {
                    self.first_errors.push(e.in_file(file));
                }
            }
        }
    }

    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }

    /// Adds another summary (e.g. of the next file), keeping the first errors in order.
    pub fn merge(&mut self, other: Summary) {
        self.lines += other.lines;
        self.flows += other.flows;
        self.dns_answers += other.dns_answers;
        for (reason, n) in other.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.errors += other.errors;
        self.cleaned_flows += other.cleaned_flows;
        self.dropped_fields += other.dropped_fields;
        self.truncated_fields += other.truncated_fields;
        let room = KEEP_ERRORS.saturating_sub(self.first_errors.len());
        self.first_errors.extend(other.first_errors.into_iter().take(room));
    }
}

/// `12 lines: 5 flows, 6 skipped (reply 4, no ports 2), 1 error` (with `, 3 DNS answers` after the
/// flows when there were any, and what was cleaned, if anything) and then the kept errors, one a
/// line.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped: u64 = self.skipped.values().sum();
        write!(f, "{} lines: {} flows", self.lines, self.flows)?;
        if self.dns_answers > 0 {
            write!(f, ", {} DNS answers", self.dns_answers)?;
        }
        write!(f, ", {skipped} skipped")?;
        if skipped > 0 {
            let parts: Vec<String> = self.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        write!(f, ", {} error{}", self.errors, if self.errors == 1 { "" } else { "s" })?;
        if self.cleaned_flows > 0 {
            let mut what = Vec::new();
            if self.dropped_fields > 0 {
                what.push(format!("{} fields with invalid names or labels left out", self.dropped_fields));
            }
            if self.truncated_fields > 0 {
                what.push(format!("{} process names cut to {} bytes", self.truncated_fields, super::MAX_PROCESS_LEN));
            }
            write!(f, "; {} flows cleaned ({})", self.cleaned_flows, what.join(", "))?;
        }
        for e in &self.first_errors {
            write!(f, "\n{e}")?;
        }
        if self.errors > self.first_errors.len() as u64 {
            write!(f, "\n... and {} more errors", self.errors - self.first_errors.len() as u64)?;
        }
        Ok(())
    }
}
