//! The IO edge: splitting a byte stream into records and handing them to the line parsers.
//!
//! A file is either lines (one JSON object each) or one JSON array (first non-blank byte `[`), whose
//! elements are streamed one by one: nothing ever holds more than one record, or one batch of
//! records, in memory. A record's line number is its line, or for an array element the line on
//! which the element starts. A record longer than the bound, invalid UTF-8 or bad JSON is an error
//! for that record only.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use memchr::{memchr, memchr2};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::json::{is_blank, json_reason};
use super::{FlowFormat, FlowsError, Item, LineError, Summary, parse_hubble_line, parse_ndjson_line};
use crate::model::FlowRecord;

/// Longest record accepted. Real flows are 1-3 KB; a longer "line" is a truncated or concatenated
/// file, and bounding it keeps one bad input from taking the process's memory.
pub const MAX_RECORD_LEN: usize = 1 << 20;

/// A batch for the parallel reader is cut at whichever comes first. Big enough that channel and
/// wake-up costs vanish next to parsing (~3 ms of work), small enough to keep memory and latency low.
const BATCH_BYTES: usize = 1 << 20;
// Tests use small batches so that a few thousand records cross many batch boundaries.
const BATCH_RECORDS: usize = if cfg!(test) { 64 } else { 4096 };

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parser {
    Hubble,
    Ndjson,
}

impl Parser {
    fn parse(self, record: &[u8]) -> Result<Item, String> {
        match self {
            Parser::Hubble => parse_hubble_line(record),
            Parser::Ndjson => parse_ndjson_line(record),
        }
    }
}

/// What the splitter found next.
enum Piece {
    /// A record; its bytes were appended to the caller's buffer.
    Record { line: u64, parser: Parser },
    /// A record that never reached a parser (too long, unreadable, format unknown).
    Error(LineError),
}

impl Piece {
    /// The record's outcome; `record` is its bytes.
    fn parse(self, record: &[u8]) -> Result<Item, LineError> {
        match self {
            Piece::Record { line, parser } => parser.parse(record).map_err(|reason| LineError { line, reason }),
            Piece::Error(e) => Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Before the first non-blank byte: lines or an array?
    Start,
    Lines,
    Array(Between),
    /// Inside an array element.
    Element(Scan),
    Done,
}

/// Where the array scanner is between elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Between {
    /// After `[`: an element or `]`.
    First,
    /// After `,`: an element (or, leniently, `]`).
    Next,
    /// After an element: `,` or `]`.
    AfterElement,
    /// After `]`: only whitespace, or another array.
    End,
}

/// A line without the `\r` of a CRLF ending.
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The state of the scan through one array element: enough JSON structure to find its end
/// (strings, escapes, nesting), no more; the parser checks the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    line: u64,
    depth: u32,
    in_str: bool,
    escape: bool,
    len: usize,
    too_long: bool,
}

/// Splits a stream into records, detecting the format on the way.
struct Splitter<R> {
    reader: R,
    /// `Auto` until the first record decides it.
    format: FlowFormat,
    layout: Layout,
    /// How much of a UTF-8 byte order mark has been skipped at the start; `None` once past it.
    bom: Option<usize>,
    /// 1-based line of the next unread byte.
    line: u64,
    max_len: usize,
    /// [`Splitter::fill_lines`]: the start of a line that the last batch ended inside.
    carry: Vec<u8>,
    /// [`Splitter::fill_lines`]: inside a line longer than `max_len`, whose bytes are dropped.
    too_long: bool,
}

impl<R: BufRead> Splitter<R> {
    fn new(reader: R, format: FlowFormat, max_len: usize) -> Self {
        Splitter {
            reader,
            format,
            layout: Layout::Start,
            bom: Some(0),
            line: 1,
            max_len,
            carry: Vec::new(),
            too_long: false,
        }
    }

    /// Whether the rest of the input is lines of a known format, which [`Splitter::fill_lines`]
    /// reads a batch at a time.
    fn in_lines(&self) -> bool {
        self.layout == Layout::Lines && self.format != FlowFormat::Auto
    }

    /// Fills a batch with whole lines read straight into `buf` (`pieces` are their ranges), the
    /// same records [`Splitter::next_piece`] would make one at a time: one copy of the input (the
    /// kernel's into the batch) where the line-at-a-time path made two (into the reader's buffer,
    /// then into the batch), and no call per line. A read of at least the reader's capacity
    /// bypasses a `BufReader`'s buffer once it is drained. `buf` is scratch whose length never
    /// shrinks, so that its bytes are zeroed once, not on every read; a line the batch ends inside
    /// goes on to the next one. Returns whether the input ended.
    fn fill_lines(&mut self, buf: &mut Vec<u8>, pieces: &mut Vec<(Piece, usize, usize)>) -> bool {
        const READ: usize = 256 * 1024;
        let parser = if self.format == FlowFormat::Ndjson { Parser::Ndjson } else { Parser::Hubble };
        let mut len = self.carry.len();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        // `start`: the current line's first byte; before `scanned` it has no newline.
        let (mut start, mut scanned) = (0, 0);
        loop {
            while pieces.len() < BATCH_RECORDS
                && let Some(i) = memchr(b'\n', &buf[scanned..len])
            {
                let end = scanned + i;
                self.push_line(pieces, parser, &buf[..end], start);
                start = end + 1;
                scanned = start;
            }
            if pieces.len() >= BATCH_RECORDS || start >= BATCH_BYTES {
                self.carry.extend_from_slice(&buf[start..len]);
                return false;
            }
            if self.too_long || len - start > self.max_len {
                // Keep none of a line too long to accept; its newline ends it.
                self.too_long = true;
                len = start;
            }
            scanned = len;
            if buf.len() < len + READ {
                buf.resize(len + READ, 0);
            }
            let n = loop {
                match self.reader.read(&mut buf[len..len + READ]) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match n {
                Ok(0) => {
                    if len > start || self.too_long {
                        self.push_line(pieces, parser, &buf[..len], start);
                    }
                    self.layout = Layout::Done;
                    return true;
                }
                Ok(n) => len += n,
                Err(e) => {
                    pieces.push((self.broken(e), 0, 0));
                    return true;
                }
            }
        }
    }

    /// The error of a line longer than `max_len`, whichever path split it.
    /// Fills one batch for the parallel readers: whole lines straight into `buf` once the input
    /// has shown it is lines ([`Splitter::fill_lines`]), else record by record, up to
    /// [`BATCH_BYTES`] or [`BATCH_RECORDS`]. Returns whether the input ended.
    fn fill_batch(&mut self, buf: &mut Vec<u8>, pieces: &mut Vec<(Piece, usize, usize)>) -> bool {
        pieces.clear();
        if self.in_lines() {
            return self.fill_lines(buf, pieces);
        }
        buf.clear();
        buf.reserve(BATCH_BYTES + 4096);
        while buf.len() < BATCH_BYTES && pieces.len() < BATCH_RECORDS {
            let start = buf.len();
            match self.next_piece(buf) {
                Some(p) => pieces.push((p, start, buf.len())),
                None => return true,
            }
        }
        false
    }

    fn too_long_error(&self, line: u64) -> LineError {
        LineError { line, reason: format!("line longer than {} bytes", self.max_len) }
    }

    /// The line `buf[start..]` (its newline left out) as [`Splitter::next_line`] makes it: a
    /// record without a trailing `\r`, or the error of a line too long.
    fn push_line(&mut self, pieces: &mut Vec<(Piece, usize, usize)>, parser: Parser, buf: &[u8], start: usize) {
        let line = self.line;
        self.line += 1;
        if std::mem::take(&mut self.too_long) || buf.len() - start > self.max_len {
            pieces.push((Piece::Error(self.too_long_error(line)), start, start));
            return;
        }
        pieces.push((Piece::Record { line, parser }, start, start + without_cr(&buf[start..]).len()));
    }

    /// `fill_buf`, retried on EINTR (only `read_until` and friends do that themselves).
    fn fill(&mut self) -> io::Result<&[u8]> {
        loop {
            match self.reader.fill_buf() {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                // Asking again returns the same buffered bytes without reading; it is how the
                // borrow checker accepts returning a borrow from inside this loop.
                Ok(_) => return self.reader.fill_buf(),
            }
        }
    }

    /// The next record (appended to `out`) or error; `None` at the end of the stream.
    fn next_piece(&mut self, out: &mut Vec<u8>) -> Option<Piece> {
        match self.step(out) {
            Ok(p) => p,
            Err(e) => Some(self.broken(e)),
        }
    }

    /// The stream is broken: the error says where, and nothing more is read.
    fn broken(&mut self, e: io::Error) -> Piece {
        self.layout = Layout::Done;
        Piece::Error(LineError { line: self.line, reason: format!("read failed: {e}") })
    }

    fn step(&mut self, out: &mut Vec<u8>) -> io::Result<Option<Piece>> {
        loop {
            match self.layout {
                Layout::Done => return Ok(None),
                Layout::Start => {
                    if let Some(p) = self.start()? {
                        return Ok(Some(p));
                    }
                }
                Layout::Lines => return self.next_line(out),
                Layout::Array(between) => {
                    if let Some(p) = self.between(between)? {
                        return Ok(Some(p));
                    }
                }
                Layout::Element(scan) => {
                    if let Some(p) = self.element(scan, out)? {
                        return Ok(Some(p));
                    }
                }
            }
        }
    }

    /// Looks at the first non-blank byte of the stream. Blank lines before it are records of their
    /// own (counted as blank); a `[` opens an array; anything else starts line mode.
    fn start(&mut self) -> io::Result<Option<Piece>> {
        // Byte by byte: the reader's buffer may be shorter than the mark.
        while let Some(k) = self.bom {
            let buf = self.fill()?;
            if buf.first().is_some_and(|&b| b == BOM[k]) {
                self.reader.consume(1);
                self.bom = (k + 1 < BOM.len()).then_some(k + 1);
            } else {
                self.bom = None;
            }
        }
        let buf = self.fill()?;
        if buf.is_empty() {
            self.layout = Layout::Done;
            return Ok(None);
        }
        let pos = buf.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r'));
        match pos.map(|p| (p, buf[p])) {
            Some((p, b'\n')) => {
                self.reader.consume(p + 1);
                self.line += 1;
                return Ok(Some(Piece::Record { line: self.line - 1, parser: Parser::Hubble }));
            }
            Some((p, b'[')) => {
                self.reader.consume(p + 1);
                self.layout = Layout::Array(Between::First);
                if self.format == FlowFormat::Auto {
                    self.format = FlowFormat::Hubble;
                }
            }
            Some((p, _)) => {
                self.reader.consume(p);
                self.layout = Layout::Lines;
            }
            // Only spaces so far, on the first line: drop them and look further.
            None => {
                let n = buf.len();
                self.reader.consume(n);
            }
        }
        Ok(None)
    }

    fn next_line(&mut self, out: &mut Vec<u8>) -> io::Result<Option<Piece>> {
        let start = out.len();
        let mut seen = false;
        let mut too_long = false;
        loop {
            let max = self.max_len;
            let buf = self.fill()?;
            if buf.is_empty() {
                if !seen {
                    self.layout = Layout::Done;
                    return Ok(None);
                }
                break;
            }
            seen = true;
            let (take, used, found) = match memchr(b'\n', buf) {
                Some(i) => (i, i + 1, true),
                None => (buf.len(), buf.len(), false),
            };
            if !too_long {
                if out.len() - start + take > max {
                    too_long = true;
                    out.truncate(start);
                } else {
                    out.extend_from_slice(&buf[..take]);
                }
            }
            self.reader.consume(used);
            if found {
                break;
            }
        }
        let line = self.line;
        self.line += 1;
        if too_long {
            return Ok(Some(Piece::Error(self.too_long_error(line))));
        }
        out.truncate(start + without_cr(&out[start..]).len());
        let parser = match self.format {
            FlowFormat::Hubble => Parser::Hubble,
            FlowFormat::Ndjson => Parser::Ndjson,
            // Blank lines do not decide the format; either parser skips them.
            FlowFormat::Auto if is_blank(&out[start..]) => Parser::Hubble,
            FlowFormat::Auto => match detect(&out[start..]) {
                Ok(p) => {
                    self.format = if p == Parser::Hubble { FlowFormat::Hubble } else { FlowFormat::Ndjson };
                    p
                }
                Err(reason) => {
                    out.truncate(start);
                    return Ok(Some(Piece::Error(LineError { line, reason })));
                }
            },
        };
        Ok(Some(Piece::Record { line, parser }))
    }

    fn between(&mut self, state: Between) -> io::Result<Option<Piece>> {
        let buf = self.fill()?;
        if buf.is_empty() {
            self.layout = Layout::Done;
            if state == Between::End {
                return Ok(None);
            }
            let reason = "the file ends before the JSON array is closed".to_string();
            return Ok(Some(Piece::Error(LineError { line: self.line, reason })));
        }
        let mut newlines = 0;
        let pos = buf.iter().position(|&b| {
            newlines += u64::from(b == b'\n');
            !b.is_ascii_whitespace()
        });
        let Some(p) = pos else {
            let n = buf.len();
            self.reader.consume(n);
            self.line += newlines;
            return Ok(None);
        };
        let b = buf[p];
        self.reader.consume(p);
        self.line += newlines;
        let element =
            Layout::Element(Scan { line: self.line, depth: 0, in_str: false, escape: false, len: 0, too_long: false });
        match (state, b) {
            (Between::First | Between::Next | Between::AfterElement, b']') => {
                // `[1,]` is not JSON, but nothing is lost by reading it.
                self.reader.consume(1);
                self.layout = Layout::Array(Between::End);
            }
            (Between::AfterElement, b',') => {
                self.reader.consume(1);
                self.layout = Layout::Array(Between::Next);
            }
            (Between::AfterElement, _) => {
                // Missing comma: report it, then read on from here as if it had been there.
                self.layout = Layout::Array(Between::Next);
                let reason = format!("expected ',' or ']' after an array element, found {:?}", b as char);
                return Ok(Some(Piece::Error(LineError { line: self.line, reason })));
            }
            (Between::First | Between::Next, b'}') => {
                // No element starts with `}`: the element scan would end before it, having read
                // nothing, and so on forever (`[}` never ended). Skip it and report it.
                self.reader.consume(1);
                let reason = "unexpected '}' in the JSON array".to_string();
                return Ok(Some(Piece::Error(LineError { line: self.line, reason })));
            }
            (Between::First | Between::Next, _) => self.layout = element,
            (Between::End, b'[') => {
                self.reader.consume(1);
                self.layout = Layout::Array(Between::First);
            }
            (Between::End, _) => {
                self.layout = Layout::Done;
                let reason = "unexpected content after the JSON array".to_string();
                return Ok(Some(Piece::Error(LineError { line: self.line, reason })));
            }
        }
        Ok(None)
    }

    fn element(&mut self, mut scan: Scan, out: &mut Vec<u8>) -> io::Result<Option<Piece>> {
        let max = self.max_len;
        let buf = self.fill()?;
        if buf.is_empty() {
            self.layout = Layout::Done;
            if !scan.too_long {
                out.truncate(out.len() - scan.len);
            }
            let reason = "the file ends inside this array element".to_string();
            return Ok(Some(Piece::Error(LineError { line: scan.line, reason })));
        }
        let (end, newlines, done) = scan_element(&mut scan, buf);
        if !scan.too_long {
            if scan.len + end > max {
                scan.too_long = true;
                out.truncate(out.len() - scan.len);
            } else {
                out.extend_from_slice(&buf[..end]);
                scan.len += end;
            }
        }
        self.reader.consume(end);
        self.line += newlines;
        if !done {
            self.layout = Layout::Element(scan);
            return Ok(None);
        }
        self.layout = Layout::Array(Between::AfterElement);
        if scan.too_long {
            let reason = format!("array element longer than {max} bytes");
            return Ok(Some(Piece::Error(LineError { line: scan.line, reason })));
        }
        let parser = if self.format == FlowFormat::Ndjson { Parser::Ndjson } else { Parser::Hubble };
        Ok(Some(Piece::Record { line: scan.line, parser }))
    }
}

/// Advances `scan` through `buf`. Returns how many bytes belong to the element, how many newlines
/// they hold, and whether the element ended. A scalar element ends before the `,`, `]` or
/// whitespace that follows it; a string or container ends with its closing byte.
fn scan_element(scan: &mut Scan, buf: &[u8]) -> (usize, u64, bool) {
    let mut i = 0;
    let mut newlines = 0;
    while i < buf.len() {
        if scan.in_str {
            if scan.escape {
                scan.escape = false;
                i += 1;
                continue;
            }
            // Strings are most of a flow's bytes; jump to the next byte that matters.
            match memchr2(b'"', b'\\', &buf[i..]) {
                None => {
                    i = buf.len();
                    break;
                }
                Some(k) => {
                    i += k;
                    if buf[i] == b'\\' {
                        scan.escape = true;
                    } else {
                        scan.in_str = false;
                        if scan.depth == 0 {
                            return (i + 1, newlines, true);
                        }
                    }
                    i += 1;
                    continue;
                }
            }
        }
        match buf[i] {
            b'"' => scan.in_str = true,
            b'{' | b'[' => scan.depth += 1,
            b'}' | b']' if scan.depth == 0 => return (i, newlines, true),
            b'}' | b']' => {
                scan.depth -= 1;
                if scan.depth == 0 {
                    return (i + 1, newlines, true);
                }
            }
            b',' | b' ' | b'\t' | b'\r' | b'\n' if scan.depth == 0 => return (i, newlines, true),
            b'\n' => newlines += 1,
            _ => {}
        }
        i += 1;
    }
    (i, newlines, false)
}

/// Decides a line file's format from its first non-blank record.
fn detect(record: &[u8]) -> Result<Parser, String> {
    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct Probe {
        src_ip: Option<IgnoredAny>,
        flow: Option<IgnoredAny>,
        IP: Option<IgnoredAny>,
        Type: Option<IgnoredAny>,
        l4: Option<IgnoredAny>,
        node_status: Option<IgnoredAny>,
        lost_events: Option<IgnoredAny>,
        agent_event: Option<IgnoredAny>,
        debug_event: Option<IgnoredAny>,
    }
    const HINT: &str = "cannot detect the format";
    let p: Probe = serde_json::from_slice(record).map_err(|e| format!("{HINT}: {}", json_reason(&e)))?;
    if p.src_ip.is_some() {
        Ok(Parser::Ndjson)
    } else if p.flow.is_some()
        || p.IP.is_some()
        || p.Type.is_some()
        || p.l4.is_some()
        || p.node_status.is_some()
        || p.lost_events.is_some()
        || p.agent_event.is_some()
        || p.debug_event.is_some()
    {
        Ok(Parser::Hubble)
    } else {
        Err(format!(
            "{HINT}: the object has neither `src_ip` (Flowgate NDJSON) nor `flow`, `IP` or `Type` (Hubble); \
             name the format to read it anyway"
        ))
    }
}

/// Reads records one at a time on the calling thread. Yields every record's outcome in order; a
/// read error ends the stream after one last `LineError`.
pub struct FlowReader<R> {
    split: Splitter<R>,
    buf: Vec<u8>,
}

impl<R: BufRead> FlowReader<R> {
    pub fn new(reader: R, format: FlowFormat) -> Self {
        FlowReader { split: Splitter::new(reader, format, MAX_RECORD_LEN), buf: Vec::new() }
    }

    /// Changes the record length bound (default [`MAX_RECORD_LEN`]).
    pub fn with_max_record_len(mut self, max: usize) -> Self {
        self.split.max_len = max;
        self
    }

    /// The format in use: as forced, or as detected so far (`Auto` before the first record).
    pub fn format(&self) -> FlowFormat {
        self.split.format
    }
}

impl<R: BufRead> Iterator for FlowReader<R> {
    type Item = Result<Item, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        let piece = self.split.next_piece(&mut self.buf)?;
        Some(piece.parse(&self.buf))
    }
}

struct Batch {
    seq: u64,
    buf: Vec<u8>,
    pieces: Vec<(Piece, usize, usize)>,
    /// Empty; filled by the worker that parses the batch.
    results: Results,
}

type Results = Vec<Result<Item, LineError>>;

/// A batch's two allocations, passed back to the reader to be filled again.
#[derive(Default)]
struct Buffers {
    buf: Vec<u8>,
    pieces: Vec<(Piece, usize, usize)>,
    results: Results,
}

/// Reads on one thread, parses on `threads` workers, and calls `sink` on the calling thread with
/// every record's outcome in input order, exactly as [`FlowReader`] would yield them.
///
/// JSON parsing is the expensive part (one core does not keep up with a busy cluster), so it is
/// what runs in parallel; splitting into lines is cheap enough for one thread. Memory is bounded:
/// at most `2 * threads + 2` batches of about 1 MiB exist at any time, whatever the input size.
/// With `threads <= 1` everything runs on the calling thread.
pub fn read_parallel<R: BufRead + Send>(
    reader: R,
    format: FlowFormat,
    threads: usize,
    sink: impl FnMut(Result<Item, LineError>),
) {
    read_parallel_with(reader, format, threads, MAX_RECORD_LEN, sink)
}

/// [`read_parallel`] with records of at most `max_len` bytes.
fn read_parallel_with<R: BufRead + Send>(
    reader: R,
    format: FlowFormat,
    threads: usize,
    max_len: usize,
    mut sink: impl FnMut(Result<Item, LineError>),
) {
    if threads <= 1 {
        FlowReader::new(reader, format).with_max_record_len(max_len).for_each(sink);
        return;
    }
    let in_flight = 2 * threads + 2;
    // Tokens cap the batches in existence: the reader takes one per batch, the calling thread gives
    // it back once the batch is delivered. Without it a slow batch would let the reorder buffer grow.
    // A token is a batch's buffers, emptied: reused, they cost no fresh pages (the kernel zeroes
    // each one it hands out, which a profile showed as a twentieth of the whole run).
    let (token_tx, token_rx) = sync_channel::<Buffers>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(Buffers::default());
    }
    let (work_tx, work_rx) = sync_channel::<Batch>(in_flight);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = sync_channel::<(u64, Buffers)>(in_flight);

    std::thread::scope(|s| {
        // Owned by this closure so that a panicking sink drops them while unwinding: the reader and
        // the workers then see closed channels and stop, instead of the scope waiting on them forever.
        let (token_tx, done_rx) = (token_tx, done_rx);
        s.spawn(move || {
            let mut split = Splitter::new(reader, format, max_len);
            let mut seq = 0;
            let mut finished = false;
            while !finished {
                let Ok(Buffers { mut buf, mut pieces, results }) = token_rx.recv() else {
                    return; // the consumer is gone
                };
                finished = split.fill_batch(&mut buf, &mut pieces);
                if pieces.is_empty() || work_tx.send(Batch { seq, buf, pieces, results }).is_err() {
                    return;
                }
                seq += 1;
            }
        });
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                loop {
                    // Hold the lock only to take a batch, not while parsing it.
                    let next = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(mut batch) = next else { return };
                    let buf = &batch.buf;
                    batch.results.extend(batch.pieces.drain(..).map(|(piece, from, to)| piece.parse(&buf[from..to])));
                    let buffers = Buffers { buf: batch.buf, pieces: batch.pieces, results: batch.results };
                    if done_tx.send((batch.seq, buffers)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut waiting: BTreeMap<u64, Buffers> = BTreeMap::new();
        let mut next = 0;
        for (seq, buffers) in done_rx {
            waiting.insert(seq, buffers);
            while let Some(mut buffers) = waiting.remove(&next) {
                buffers.results.drain(..).for_each(&mut sink);
                next += 1;
                let _ = token_tx.send(buffers);
            }
        }
    });
}

/// Reads on one thread, and parses *and folds* on `threads` workers: each worker folds the records
/// of the batches it takes into a fold of its own, made by `new`, calling `fold` with the fold,
/// the record's place in the input (a number that grows with it) and its outcome. Returns the
/// workers' folds in no defined order, for the caller to merge.
///
/// For folds whose result does not depend on the order records arrive in (sums, minima and
/// maxima, capped sets of the smallest values): unlike [`read_parallel`], no record crosses to
/// another thread, and nothing waits for the batches before it. On two cores that handoff cost
/// a fifth of the CPU of an offline run. Memory is bounded as in [`read_parallel`]. With
/// `threads <= 1` everything runs on the calling thread, in input order.
pub fn fold_parallel<R: BufRead + Send, F: Send>(
    reader: R,
    format: FlowFormat,
    threads: usize,
    new: impl Fn() -> F + Sync,
    fold: impl Fn(&mut F, u64, Result<Item, LineError>) + Sync,
) -> Vec<F> {
    fold_parallel_with(reader, format, threads, MAX_RECORD_LEN, new, fold)
}

/// [`fold_parallel`] with records of at most `max_len` bytes.
fn fold_parallel_with<R: BufRead + Send, F: Send>(
    reader: R,
    format: FlowFormat,
    threads: usize,
    max_len: usize,
    new: impl Fn() -> F + Sync,
    fold: impl Fn(&mut F, u64, Result<Item, LineError>) + Sync,
) -> Vec<F> {
    if threads <= 1 {
        let mut f = new();
        for (place, result) in FlowReader::new(reader, format).with_max_record_len(max_len).enumerate() {
            fold(&mut f, place as u64, result);
        }
        return vec![f];
    }
    let in_flight = 2 * threads;
    // As in `read_parallel`, tokens (a batch's emptied buffers) cap the batches in existence; here
    // a worker gives its batch's buffers straight back once it has folded them.
    let (token_tx, token_rx) = sync_channel::<Buffers>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(Buffers::default());
    }
    let (work_tx, work_rx) = sync_channel::<Batch>(in_flight);
    let work_rx = Mutex::new(work_rx);
    let (new, fold) = (&new, &fold);
    std::thread::scope(|s| {
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let token_tx = token_tx.clone();
            let work_rx = &work_rx;
            workers.push(s.spawn(move || {
                let mut f = new();
                loop {
                    let next = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(mut batch) = next else { return f };
                    let buf = &batch.buf;
                    // A batch holds fewer than 2^32 records (at most a line per byte of its
                    // buffer), so its place in the input and a record's in it make one number.
                    let base = batch.seq << 32;
                    for (i, (piece, from, to)) in batch.pieces.drain(..).enumerate() {
                        fold(&mut f, base | i as u64, piece.parse(&buf[from..to]));
                    }
                    let buffers = Buffers { buf: batch.buf, pieces: batch.pieces, results: batch.results };
                    if token_tx.send(buffers).is_err() {
                        return f;
                    }
                }
            }));
        }
        // Only the workers hold the token sender now: if they all stop (a panicking fold), the
        // reader sees the channel closed instead of waiting for a token forever.
        drop(token_tx);
        let mut split = Splitter::new(reader, format, max_len);
        let mut seq = 0;
        let mut finished = false;
        while !finished {
            let Ok(Buffers { mut buf, mut pieces, results }) = token_rx.recv() else { break };
            finished = split.fill_batch(&mut buf, &mut pieces);
            if pieces.is_empty() || work_tx.send(Batch { seq, buf, pieces, results }).is_err() {
                break;
            }
            seq += 1;
        }
        drop(work_tx);
        workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

/// Opens a flow file; `-` is standard input. With [`super::progress::enable`]d, reading it shows
/// its progress on standard error.
pub fn open(path: &str) -> Result<Box<dyn BufRead + Send>, FlowsError> {
    use super::progress::{Progress, enabled};
    const CAPACITY: usize = 256 * 1024;
    if path == "-" {
        let r = BufReader::with_capacity(CAPACITY, io::stdin());
        return Ok(if enabled() { Box::new(Progress::new(r, "standard input", None)) } else { Box::new(r) });
    }
    let file = File::open(path).map_err(|source| FlowsError::Open { path: path.to_string(), source })?;
    let total = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    let r = BufReader::with_capacity(CAPACITY, file);
    Ok(if enabled() { Box::new(Progress::new(r, path, total)) } else { Box::new(r) })
}

/// What a read hands on: a flow, or a DNS answer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Flow(FlowRecord),
    Names(crate::dns::DnsAnswer),
}

/// Reads one file (`-` for stdin) with `threads` parser threads, counts every record into
/// `summary` (errors as `FILE:LINE: reason`) and passes each flow and DNS answer to `sink`, in
/// file order.
pub fn read_path(
    path: &str,
    format: FlowFormat,
    threads: usize,
    summary: &mut Summary,
    mut sink: impl FnMut(Record),
) -> Result<(), FlowsError> {
    let reader = open(path)?;
    read_parallel(reader, format, threads, |result| {
        summary.record(path, &result);
        match result {
            Ok(Item::Flow(flow, _)) => sink(Record::Flow(flow)),
            Ok(Item::Names(answer)) => sink(Record::Names(answer)),
            _ => {}
        }
    });
    Ok(())
}

/// [`read_path`] for folds that do not depend on order ([`fold_parallel`]): reads one file (`-`
/// for stdin) with `threads` parser threads, each folding the flows and DNS answers it parses
/// into a fold of its own (`new`), and returns the folds for the caller to merge. Every record is
/// counted into `summary` as [`read_path`] counts it, with the same first errors in reading order.
pub fn fold_path<F: Send>(
    path: &str,
    format: FlowFormat,
    threads: usize,
    summary: &mut Summary,
    new: impl Fn() -> F + Sync,
    fold: impl Fn(&mut F, Record) + Sync,
) -> Result<Vec<F>, FlowsError> {
    let reader = open(path)?;
    // Each worker's summary, and the place of each error it kept.
    let parts = fold_parallel(
        reader,
        format,
        threads,
        || (new(), Summary::default(), Vec::new()),
        |(f, counted, places): &mut (F, Summary, Vec<u64>), place, result| {
            let kept = counted.first_errors.len();
            counted.record(path, &result);
            if counted.first_errors.len() > kept {
                places.push(place);
            }
            match result {
                Ok(Item::Flow(flow, _)) => fold(f, Record::Flow(flow)),
                Ok(Item::Names(answer)) => fold(f, Record::Names(answer)),
                _ => {}
            }
        },
    );
    let mut errors = Vec::new();
    let mut file = Summary::default();
    let mut folds = Vec::with_capacity(parts.len());
    for (f, mut counted, places) in parts {
        errors.extend(places.into_iter().zip(std::mem::take(&mut counted.first_errors)));
        file.merge(counted);
        folds.push(f);
    }
    // Each worker kept its first errors; the file's first are the first of those, by place.
    errors.sort_by_key(|(place, _)| *place);
    file.first_errors = errors.into_iter().map(|(_, e)| e).take(super::KEEP_ERRORS).collect();
    summary.merge(file);
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};
    use std::path::PathBuf;

    use super::*;
    use crate::flows::{KEEP_ERRORS, SkipReason};

    const CHUNKS: [usize; 5] = [1, 2, 7, 64, 64 * 1024];

    fn sample(name: &str) -> Vec<u8> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
        std::fs::read(dir.join(name)).unwrap()
    }

    /// Reads `data` through a `BufReader` of every size in `CHUNKS` (so records straddle buffer
    /// boundaries at every possible byte) and checks that all agree before returning one result.
    fn read_all(data: &[u8], format: FlowFormat, max: usize) -> Vec<Result<Item, LineError>> {
        read_in_chunks(data, format, max, &CHUNKS)
    }

    fn read_in_chunks(data: &[u8], format: FlowFormat, max: usize, chunks: &[usize]) -> Vec<Result<Item, LineError>> {
        let mut first: Option<Vec<_>> = None;
        for &chunk in chunks {
            let got: Vec<_> =
                FlowReader::new(BufReader::with_capacity(chunk, data), format).with_max_record_len(max).collect();
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(&got, f, "chunk size {chunk} differs"),
            }
        }
        first.unwrap()
    }

    /// One word per record, for compact expectations: `flow`, `reply`, `blank`, ... or `LINE: reason`.
    fn shape(results: &[Result<Item, LineError>]) -> Vec<String> {
        results
            .iter()
            .map(|r| match r {
                Ok(Item::Flow(..)) => "flow".to_string(),
                Ok(Item::Names(..)) => "dns".to_string(),
                Ok(Item::Skipped(reason)) => reason.to_string(),
                Err(e) => format!("{}: {}", e.line, e.reason),
            })
            .collect()
    }

    fn summary(results: &[Result<Item, LineError>]) -> Summary {
        let mut s = Summary::default();
        results.iter().for_each(|r| s.record("f", r));
        s
    }

    fn ndjson(dst_port: u32) -> String {
        format!(
            r#"{{"time":"2026-01-02T03:04:05Z","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","dst_port":{dst_port},"protocol":"TCP"}}"#
        )
    }

    /// Expected counts per sample file, computed independently with jq over the whole file:
    /// `jq -s '[.[].flow] | map(select(.Type != "L3_L4" and (.Type != "L7" or .l7.type != "REQUEST"))) | length'`
    /// for not-L3/L4 (L7 REQUEST records are flows), then among
    /// L3_L4 records `(.is_reply == true or .reply == true)` for replies, then among the rest
    /// `(.l4.TCP == null and .l4.UDP == null and .l4.SCTP == null)` for no-ports; flows are the
    /// remainder, and `jq -c . FILE | wc -l` gives the lines. DNS answers are the not-L3/L4 records
    /// `select(.Type == "L7" and .l7.type != "REQUEST" and (.l7.dns.ips | length) > 0 and
    /// (.l7.dns.rcode // 0) == 0)`, and leave the not-L3/L4 count.
    #[test]
    fn real_sample_counts() {
        // (file, lines, flows, reply, not L3/L4, no ports, DNS answers)
        let cases = [
            ("hubble-otel_basic-sample-10-flows.json", 10, 5, 5, 0, 0, 0),
            ("hubble-otel_basic-sample-330-dns-flows.json", 330, 165, 0, 110, 0, 55),
            ("hubble-otel_basic-sample-348-http-flows.json", 348, 175, 0, 173, 0, 0),
            ("hubble-otel_basic-sample-400-udp-flows.json", 400, 252, 74, 37, 0, 37),
            ("hubble-otel_basic-sample-400-icmpv4-flows.json", 18, 0, 4, 0, 14, 0),
        ];
        for (name, lines, flows, reply, not_l3l4, no_ports, dns) in cases {
            let data = sample(name);
            for format in [FlowFormat::Auto, FlowFormat::Hubble] {
                // Byte-sized buffers are covered by the other tests, and slow on half a megabyte.
                let results = read_in_chunks(&data, format, MAX_RECORD_LEN, &[7, 64 * 1024]);
                let s = summary(&results);
                assert_eq!(
                    (s.lines, s.flows, s.skipped(SkipReason::Reply), s.skipped(SkipReason::NotL3L4)),
                    (lines, flows, reply, not_l3l4),
                    "{name}"
                );
                assert_eq!(
                    (s.skipped(SkipReason::NoPorts), s.errors, s.dns_answers),
                    (no_ports, 0, dns),
                    "{name}: {s}"
                );
                let mut parallel = Vec::new();
                read_parallel(Cursor::new(&data), format, 2, |r| parallel.push(r));
                assert_eq!(parallel, results, "{name}: parallel differs");
            }
        }
        // The UDP sample's flows: 148 FORWARDED and 30 REDIRECTED (jq: group_by(.verdict)).
        let results =
            read_all(&sample("hubble-otel_basic-sample-400-udp-flows.json"), FlowFormat::Auto, MAX_RECORD_LEN);
        let redirected = results
            .iter()
            .filter(|r| matches!(r, Ok(Item::Flow(f, _)) if f.verdict == crate::model::Verdict::Redirected))
            .count();
        assert_eq!(redirected, 30);
    }

    #[test]
    fn bad_lines_cost_only_themselves() {
        let sample = sample("hubble-otel_basic-sample-10-flows.json");
        let good: Vec<&[u8]> = sample.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut data = Vec::new();
        for (i, line) in good.iter().enumerate() {
            match i {
                3 => data.extend_from_slice(&line[..200]), // truncated: line 4
                5 => data.extend_from_slice(b"{\"flow\":{\"IP\":\"\xff\"}}"), // bad UTF-8: line 6
                7 => data.extend_from_slice(&[b'x'; 3000]), // too long: line 8
                _ => data.extend_from_slice(line),
            }
            data.push(b'\n');
        }
        let results = read_all(&data, FlowFormat::Auto, 256 * 1024);
        assert_eq!(results.len(), 10);
        let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).map(|e| e.line).collect();
        assert_eq!(errors, [4, 6, 8]);
        // The sample's lines are 1.1-1.3 KB.
        let results = read_all(&data, FlowFormat::Auto, 2048);
        let s = shape(&results);
        assert!(s[3].starts_with("4: invalid JSON at column 200: EOF while parsing a string"), "{}", s[3]);
        assert_eq!(s[5], "6: invalid UTF-8 at byte 16");
        assert_eq!(s[7], "8: line longer than 2048 bytes");
        assert_eq!(summary(&results).flows, 3);
    }

    #[test]
    fn file_line_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.ndjson");
        let text = [ndjson(443), ndjson(0), String::new(), "not json".into(), ndjson(80)].join("\n");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        for threads in [1, 2] {
            let mut s = Summary::default();
            let mut ports = Vec::new();
            read_path(path, FlowFormat::Auto, threads, &mut s, |r| {
                if let Record::Flow(f) = r {
                    ports.push(f.dst_port.get())
                }
            })
            .unwrap();
            assert_eq!(ports, [443, 80]);
            assert_eq!((s.lines, s.flows, s.skipped(SkipReason::Blank), s.errors), (5, 2, 1, 2));
            let errors: Vec<String> = s.first_errors.iter().map(ToString::to_string).collect();
            assert_eq!(
                errors,
                [format!("{path}:2: dst_port: 0 is not a valid port"), format!("{path}:4: expected a JSON object")]
            );
        }
        let missing = dir.path().join("nope.json");
        let err = read_path(missing.to_str().unwrap(), FlowFormat::Auto, 1, &mut Summary::default(), |_| {});
        assert!(matches!(err, Err(FlowsError::Open { .. })));
    }

    #[test]
    fn format_detection() {
        let hubble_line = String::from_utf8(sample("hubble-otel_basic-sample-10-flows.json")).unwrap();
        let hubble_line = hubble_line.lines().nth(1).unwrap();
        let bare_flow = {
            let v: serde_json::Value = serde_json::from_str(hubble_line).unwrap();
            v["flow"].to_string()
        };
        // (input, format, shape of the results)
        let cases: Vec<(String, FlowFormat, Vec<&str>)> = vec![
            (ndjson(443), FlowFormat::Auto, vec!["flow"]),
            (hubble_line.to_string(), FlowFormat::Auto, vec!["flow"]),
            (bare_flow.clone(), FlowFormat::Auto, vec!["flow"]),
            (r#"{"node_status":{}}"#.to_string() + "\n" + hubble_line, FlowFormat::Auto, vec!["not a flow", "flow"]),
            (
                format!("\n  \n{}\r\n\r\n{}", ndjson(1), ndjson(2)),
                FlowFormat::Auto,
                vec!["blank", "blank", "flow", "blank", "flow"],
            ),
            (format!("\u{feff}{}\n", ndjson(1)), FlowFormat::Auto, vec!["flow"]),
            (
                format!("oops\n{{\"x\":1}}\n{}\n{}", ndjson(1), hubble_line),
                FlowFormat::Auto,
                vec![
                    "1: cannot detect the format: invalid JSON at column 1: expected value",
                    "2: cannot detect the format: the object has neither `src_ip` (Flowgate NDJSON) nor `flow`, `IP` or `Type` (Hubble); name the format to read it anyway",
                    "flow",
                    // Decided by line 3: from here on everything is NDJSON.
                    "4: missing field src_ip",
                ],
            ),
            (hubble_line.to_string(), FlowFormat::Ndjson, vec!["1: missing field src_ip"]),
            (ndjson(443), FlowFormat::Hubble, vec!["not a flow"]),
        ];
        for (input, format, want) in cases {
            let got = shape(&read_all(input.as_bytes(), format, MAX_RECORD_LEN));
            assert_eq!(got, want, "{input:?} as {format}");
        }
        let mut r = FlowReader::new(Cursor::new(ndjson(1)), FlowFormat::Auto);
        assert_eq!(r.format(), FlowFormat::Auto);
        r.next();
        assert_eq!(r.format(), FlowFormat::Ndjson);
    }

    #[test]
    fn json_arrays_are_streamed() {
        let data = sample("hubble-otel_basic-sample-10-flows.json");
        let by_line = read_all(&data, FlowFormat::Auto, MAX_RECORD_LEN);
        let values: Vec<serde_json::Value> =
            data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();

        // Compact (one line) and pretty-printed arrays give the same items as the lines.
        let compact = serde_json::to_vec(&values).unwrap();
        let got = read_all(&compact, FlowFormat::Auto, MAX_RECORD_LEN);
        assert_eq!(got, by_line);
        let pretty = serde_json::to_vec_pretty(&values).unwrap();
        assert_eq!(read_all(&pretty, FlowFormat::Auto, MAX_RECORD_LEN), by_line);
        let mut parallel = Vec::new();
        read_parallel(Cursor::new(&pretty), FlowFormat::Auto, 3, |r| parallel.push(r));
        assert_eq!(parallel, by_line);

        // An element's line is the line where it starts.
        let bad = r#"{"flow":{"Type":"L3_L4","IP":{"source":"x"}}}"#;
        // Blank lines before the `[` are blank records, as in a line file.
        let text = format!("\n [\n{},\n\n  {bad} ,{}\n]\n", values[1], values[1]);
        let got = shape(&read_all(text.as_bytes(), FlowFormat::Auto, MAX_RECORD_LEN));
        assert_eq!(got, ["blank", "flow", "5: no l4 section", "flow"]);

        let flow = values[1].to_string();
        let cases: Vec<(String, Vec<String>)> = vec![
            ("[]".into(), vec![]),
            (" [ ] \n".into(), vec![]),
            (format!("[{flow}][{flow}]"), vec!["flow".into(), "flow".into()]),
            (format!("[{flow},]"), vec!["flow".into()]),
            (
                format!("[{flow} {flow}]"),
                vec!["flow".into(), "1: expected ',' or ']' after an array element, found '{'".into(), "flow".into()],
            ),
            (format!("[{flow}\n,"), vec!["flow".into(), "2: the file ends before the JSON array is closed".into()]),
            (
                format!("[{flow},\n{}", &flow[..100]),
                vec!["flow".into(), "2: the file ends inside this array element".into()],
            ),
            (format!("[{flow}] junk"), vec!["flow".into(), "1: unexpected content after the JSON array".into()]),
            ("[1, \"x\", null]".into(), vec!["1: expected a JSON object".into(); 3]),
            (
                // Brackets and escaped quotes inside strings do not end an element.
                r#"[{"flow":{"Summary":"a \"}]\" [b","Type":"L7"}}, {"node_status":{"s":"]"}}]"#.into(),
                vec!["not L3/L4".into(), "not a flow".into()],
            ),
        ];
        for (input, want) in cases {
            let got = shape(&read_all(input.as_bytes(), FlowFormat::Auto, MAX_RECORD_LEN));
            assert_eq!(got, want, "{input}");
        }

        // Forced NDJSON reads an array of NDJSON objects; a too-long element costs only itself.
        let pad = "x".repeat(500);
        let text = format!(r#"[{}, {{"pad":"{pad}"}}, {}]"#, ndjson(1), ndjson(3));
        let got = shape(&read_all(text.as_bytes(), FlowFormat::Ndjson, 300));
        assert_eq!(got, ["flow", "1: array element longer than 300 bytes", "flow"]);
    }

    /// Found by `scripts/fuzz flow_reader`: `[}` made the reader yield empty records and
    /// missing-comma errors forever (the `}` was never consumed), so an ingest of it never ended.
    #[test]
    fn a_stray_brace_in_an_array_is_skipped() {
        let cases: &[(&str, &[FlowFormat], &[&str])] = &[
            (
                "[}",
                &[FlowFormat::Auto, FlowFormat::Hubble, FlowFormat::Ndjson],
                &["1: unexpected '}' in the JSON array", "1: the file ends before the JSON array is closed"],
            ),
            ("[},{}]", &[FlowFormat::Auto], &["1: unexpected '}' in the JSON array", "blank", "not a flow"]),
            (
                "[{}}]",
                &[FlowFormat::Auto],
                &[
                    "not a flow",
                    "1: expected ',' or ']' after an array element, found '}'",
                    "1: unexpected '}' in the JSON array",
                ],
            ),
        ];
        for &(input, formats, want) in cases {
            for &format in formats {
                // Bounded, so that a reader that never ends fails the test instead of hanging it.
                let got: Vec<_> = FlowReader::new(input.as_bytes(), format).take(want.len() + 1).collect();
                assert_eq!(shape(&got), want, "{input} as {format}");
                assert_eq!(read_all(input.as_bytes(), format, MAX_RECORD_LEN), got, "{input} as {format}");
            }
        }
    }

    /// 3,000 lines of a real capture, every `every`th from the 13th a `broken` line and every
    /// `every`th from the `blank`th blank: enough for many (test-sized) batches, with errors and
    /// skips spread through them.
    fn mixed(every: usize, blank: usize, broken: impl Fn(usize) -> String) -> String {
        let lines: Vec<String> = sample("hubble-otel_basic-sample-400-udp-flows.json")
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8(l.to_vec()).unwrap())
            .collect();
        let mut text = String::new();
        for i in 0..3_000 {
            match i % every {
                13 => text.push_str(&broken(i)),
                b if b == blank => text.push_str("   "),
                _ => text.push_str(&lines[i % lines.len()]),
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn folding_in_the_parsers_counts_what_the_ordered_reader_counts() {
        // Errors in many (test-sized) batches, more than are kept: the kept ones must be the
        // first, in reading order, whichever worker met them.
        let text = mixed(97, 50, |i| format!("{{\"flow\": broken {i}"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.json");
        std::fs::write(&path, &text).unwrap();
        let path = path.to_str().unwrap();
        let flow_text = |r: Record| match r {
            Record::Flow(f) => format!("{f:?}"),
            Record::Names(a) => format!("{a:?}"),
        };
        let mut ordered = Summary::default();
        let mut want = Vec::new();
        read_path(path, FlowFormat::Auto, 1, &mut ordered, |r| want.push(flow_text(r))).unwrap();
        assert!(ordered.errors as usize > KEEP_ERRORS && want.len() > 2_000);
        want.sort();
        for threads in [1, 2, 3] {
            let mut summary = Summary::default();
            let folds =
                fold_path(path, FlowFormat::Auto, threads, &mut summary, Vec::new, |seen, r| seen.push(flow_text(r)))
                    .unwrap();
            assert_eq!(folds.len(), threads);
            let mut got: Vec<String> = folds.into_iter().flatten().collect();
            got.sort();
            assert!(got == want, "{threads} threads fold other records");
            assert_eq!(summary.to_string(), ordered.to_string(), "{threads} threads");
        }
        // Places grow with the input within each worker, and each record has its own.
        let folds =
            fold_parallel(Cursor::new(&text), FlowFormat::Auto, 2, Vec::new, |places, place, _| places.push(place));
        let mut all = Vec::new();
        for places in folds {
            assert!(places.windows(2).all(|w| w[0] < w[1]));
            all.extend(places);
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 3_000);
    }

    #[test]
    fn a_panicking_fold_does_not_hang_the_reader() {
        let text = (ndjson(443) + "\n").repeat(2_000);
        let run = std::panic::catch_unwind(|| {
            fold_parallel(
                Cursor::new(&text),
                FlowFormat::Auto,
                2,
                || (),
                |_, place, _| {
                    assert!(place < 100, "stop");
                },
            )
        });
        assert!(run.is_err());
    }

    #[test]
    fn parallel_matches_sequential() {
        // Enough records for many (test-sized) batches, with errors and skips spread through them.
        let text = mixed(251, 200, |_| "{\"flow\": broken".to_string());
        let sequential: Vec<_> = FlowReader::new(Cursor::new(&text), FlowFormat::Auto).collect();
        assert_eq!(sequential.len(), 3_000);
        for threads in [1, 2, 3] {
            let mut parallel = Vec::new();
            read_parallel(Cursor::new(&text), FlowFormat::Auto, threads, |r| parallel.push(r));
            assert!(parallel == sequential, "{threads} threads differ");
        }
        let s = summary(&sequential);
        assert_eq!((s.errors, s.skipped(SkipReason::Blank)), (12, 12));
        assert_eq!(s.first_errors[0].line, 14);
    }

    /// Hands out at most `sizes[i % len]` bytes per read, then fails after `fail_at` bytes.
    struct Trickle<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        reads: usize,
        fail_at: Option<usize>,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let limit = self.fail_at.unwrap_or(usize::MAX);
            if limit == 0 {
                return Err(io::Error::other("the disk went away"));
            }
            let n = buf.len().min(self.data.len()).min(self.sizes[self.reads % self.sizes.len()]).min(limit);
            self.reads += 1;
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.fail_at = self.fail_at.map(|f| f - n);
            Ok(n)
        }
    }

    #[test]
    fn whole_line_batches_split_as_the_line_reader_does() {
        // Lines of every awkward kind, past many (test-sized) batches and reads: CRLF, blank and
        // spaces-only lines, lines of exactly the limit, one byte over, and far over (across several
        // reads), a byte order mark first, and a last line without its newline.
        let max = 1500;
        let lines: Vec<Vec<u8>> = sample("hubble-otel_basic-sample-10-flows.json")
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let mut text = BOM.to_vec();
        for i in 0..700 {
            let line = &lines[i % lines.len()];
            match i % 37 {
                3 => text.extend_from_slice(b"   \t"),
                5 => {}
                7 => text.extend_from_slice(&[b'x'; 1500]),
                8 => text.extend_from_slice(&[b'x'; 1501]),
                9 => text.extend_from_slice(&vec![b'y'; 700_000]),
                11 => {
                    text.extend_from_slice(line);
                    text.push(b'\r');
                }
                13 => text.extend_from_slice(&line[..300]),
                _ => text.extend_from_slice(line),
            }
            text.push(b'\n');
        }
        text.extend_from_slice(&lines[0]);
        for format in [FlowFormat::Auto, FlowFormat::Hubble] {
            for sizes in [&[1 << 20][..], &[1, 7, 4096, 300_000, 3], &[65_536]] {
                let trickle = || Trickle { data: &text, sizes, reads: 0, fail_at: None };
                let reader = || BufReader::with_capacity(8192, trickle());
                let sequential: Vec<_> = FlowReader::new(reader(), format).with_max_record_len(max).collect();
                assert_eq!(sequential.len(), 701);
                let mut parallel = Vec::new();
                read_parallel_with(reader(), format, 2, max, |r| parallel.push(r));
                assert!(parallel == sequential, "{format:?}, reads of {sizes:?}: the two differ");
            }
        }
        let shapes =
            shape(&FlowReader::new(Cursor::new(&text), FlowFormat::Auto).with_max_record_len(max).collect::<Vec<_>>());
        assert_eq!(shapes[3], "blank");
        assert_eq!(shapes[7], "8: expected a JSON object", "a line of exactly the limit is read");
        assert_eq!(shapes[8], "9: line longer than 1500 bytes");
        assert_eq!(shapes[9], "10: line longer than 1500 bytes");
        assert!(shapes[13].starts_with("14: invalid JSON"), "{}", shapes[13]);
        assert_eq!(shapes[700], "reply", "the last line, without its newline, is read");

        // A read that fails ends the records where the line reader ends them, with its error.
        for fail_at in [1, 5_000, 800_000, text.len() - 10] {
            let reader = || {
                BufReader::with_capacity(
                    8192,
                    Trickle { data: &text, sizes: &[4096, 1 << 20], reads: 0, fail_at: Some(fail_at) },
                )
            };
            let sequential: Vec<_> = FlowReader::new(reader(), FlowFormat::Auto).with_max_record_len(max).collect();
            let mut parallel = Vec::new();
            read_parallel_with(reader(), FlowFormat::Auto, 2, max, |r| parallel.push(r));
            assert!(parallel == sequential, "failing at byte {fail_at}: the two differ");
            let last = sequential.last().unwrap().as_ref().unwrap_err();
            assert!(last.reason.contains("the disk went away"), "{}", last.reason);
        }
    }

    #[test]
    fn a_panicking_sink_does_not_hang_the_readers() {
        let text = (ndjson(1) + "\n").repeat(2_000);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_parallel(Cursor::new(&text), FlowFormat::Auto, 2, |_| panic!("sink gave up"));
        }));
        assert!(outcome.is_err());
    }

    #[test]
    fn formats_and_summary_text() {
        assert_eq!("HUBBLE".parse::<FlowFormat>().unwrap(), FlowFormat::Hubble);
        assert_eq!("ndjson".parse::<FlowFormat>().unwrap(), FlowFormat::Ndjson);
        assert_eq!("auto".parse::<FlowFormat>().unwrap(), FlowFormat::Auto);
        assert_eq!(
            "csv".parse::<FlowFormat>().unwrap_err().to_string(),
            r#"unknown flow format "csv" (expected auto, hubble or ndjson)"#
        );
        let text = [ndjson(1), ndjson(0), String::new(), ndjson(2)].join("\n");
        let mut s = Summary::default();
        FlowReader::new(Cursor::new(text), FlowFormat::Auto).for_each(|r| s.record("a.json", &r));
        assert_eq!(
            s.to_string(),
            "4 lines: 2 flows, 1 skipped (blank 1), 1 error\na.json:2: dst_port: 0 is not a valid port"
        );
        let mut total = Summary::default();
        for _ in 0..KEEP_ERRORS + 1 {
            total.merge(s.clone());
        }
        assert_eq!((total.lines, total.errors, total.first_errors.len()), (84, 21, KEEP_ERRORS));
        assert!(total.to_string().ends_with("... and 1 more errors"));
    }
}
