//! The hot path's reader of a Hubble record: a strict JSON scanner over the line that builds the
//! same borrowed [`Flow`] serde's derive would, without serde's per-value machinery.
//!
//! It answers only for what it fully understands and leaves everything else to serde: a `None`
//! means "let serde_json decide", never "bad input". So the contract is one-sided and simple to
//! check (the `the_fast_reader_*` tests in `hubble`, and the `hubble_line` fuzz target): whenever
//! this returns a record, serde would have returned the same one. The field names (and aliases)
//! below are serde's attributes on the structs in `hubble`, written a second time: a name only
//! serde knows would be skipped here, so the two lists change together. Anything unusual (an escaped string
//! that is kept, a `null`, a number that is not a plain unsigned integer where one is read, a
//! field given twice, nesting deeper than real records go, a type serde would coerce or refuse)
//! goes to serde, which then produces the result or the exact error message it always did.
//!
//! The skipped parts are still validated as serde_json's own skipping does (string escapes and
//! control characters, number grammar, literals, nesting, commas), so a line this accepts is one
//! serde accepts. Input is `&str`: UTF-8 was checked before.

use std::borrow::Cow;

use super::{Dns, Flow, Ip, L4, L7, Ports, Service, Side, TcpFlags};
use crate::flows::json::{Scalar, Str};

/// Records nest four deep (`flow.l4.TCP.flags`, `flow.source.workloads[]`); serde_json refuses
/// past 128. Deeper input is rare and left to serde.
const MAX_DEPTH: u32 = 16;

/// A record as read: the top-level object and, for an envelope, its `flow` (kept apart, where
/// serde's struct boxes it).
pub(super) struct Top<'a> {
    pub outer: Flow<'a>,
    pub inner: Option<Flow<'a>>,
}

/// A whole record, or `None` for serde to decide.
pub(super) fn flow(text: &str) -> Option<Top<'_>> {
    let mut r = Reader { s: text, b: text.as_bytes(), i: 0, depth: 0 };
    let mut inner = None;
    let outer = r.flow(Some(&mut inner))?;
    r.ws();
    (r.i == r.b.len()).then_some(Top { outer, inner })
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte at or after `i` that ends a run of plain string bytes (`"`, `\`,
/// or a control character), or `b.len()`. Eight bytes at a time: each test is exact for the
/// lowest flagged byte, which is the one taken.
#[inline]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = v ^ (ONES * u64::from(b'"'));
        let slash = v ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        let hits = hits & HIGHS;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Sets a field once; a second occurrence is serde's "duplicate field" error, so it is left to it.
#[inline]
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

impl<'a> Reader<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string without escapes, borrowed. One with escapes is left to serde.
    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = plain_run(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        // `end` is an ASCII quote, so both ends are character boundaries.
        self.s.get(start..end)
    }

    /// Skips the rest of a string whose opening quote was read, checking its escapes.
    fn skip_str(&mut self) -> Option<()> {
        loop {
            self.i = plain_run(self.b, self.i);
            match self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => match self.b.get(self.i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                    b'u' => {
                        let hex = self.b.get(self.i + 2..self.i + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 6;
                    }
                    _ => return None,
                },
                _ => return None, // a control character
            }
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Skips any value, validating it.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.skip_str()
            }
            b'{' => self.object(|r, _| r.skip()),
            b'[' => self.array(|r| r.skip()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// A number in JSON's grammar, without an exponent (Hubble writes none; serde takes those).
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        self.digits()?;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let start = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
        }
        match self.b.get(self.i) {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    /// `0` or digits not starting with `0`; their value, if it fits.
    fn digits(&mut self) -> Option<u64> {
        match self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                // "01" is not JSON; leave it to serde's error.
                (!self.b.get(self.i).is_some_and(u8::is_ascii_digit)).then_some(0)
            }
            b'1'..=b'9' => {
                let mut n: u64 = 0;
                while let Some(&c) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
                    n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                    self.i += 1;
                }
                Some(n)
            }
            _ => None,
        }
    }

    /// An unsigned integer where serde reads a `u64`: a fraction or exponent is serde's business.
    fn u64(&mut self) -> Option<u64> {
        self.ws();
        let n = self.digits()?;
        match self.b.get(self.i) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(n),
        }
    }

    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Str<'a>> {
        self.str().map(|s| Str(Cow::Borrowed(s)))
    }

    /// An enum field: a name or a proto number.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.str().map(|s| Scalar::Str(Cow::Borrowed(s))),
            b'0'..=b'9' => self.u64().map(Scalar::Uint),
            _ => None,
        }
    }

    fn strings(&mut self) -> Option<Vec<Str<'a>>> {
        let mut out = Vec::new();
        self.array(|r| {
            out.push(r.string()?);
            Some(())
        })?;
        Some(out)
    }

    /// An object, calling `field` with each key (escaped keys are left to serde) once the reader
    /// stands before its value; `field` must read the value.
    #[inline]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.enter()?;
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                let key = self.str()?;
                self.eat(b':')?;
                field(self, key)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.enter()?;
        if self.peek()? == b']' {
            self.i += 1;
        } else {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An endpoint's JSON text, exactly as serde's `RawValue` captures it (from the value's first
    /// byte to its last); only an object, the one shape that can convert.
    fn raw_object(&mut self) -> Option<Side<'a>> {
        if self.peek()? != b'{' {
            return None;
        }
        let start = self.i;
        self.skip()?;
        let text = self.s.get(start..self.i)?;
        Some(Side::Raw(text))
    }

    /// A flow object; `envelope` is where its `flow` goes, if it may hold one.
    fn flow(&mut self, mut envelope: Option<&mut Option<Flow<'a>>>) -> Option<Flow<'a>> {
        let mut f = Flow {
            time: None,
            uuid: None,
            verdict: None,
            ip: None,
            l4: None,
            source: None,
            destination: None,
            kind: None,
            l7: None,
            node_name: None,
            is_reply: None,
            reply: None,
            destination_service: None,
            traffic_direction: None,
            destination_names: None,
            source_names: None,
            flow: None,
        };
        self.object(|r, key| match key {
            "time" => once(&mut f.time, r.string()?),
            "uuid" => once(&mut f.uuid, r.string()?),
            "verdict" => once(&mut f.verdict, r.scalar()?),
            "IP" => once(&mut f.ip, r.ip()?),
            "l4" => once(&mut f.l4, r.l4()?),
            "source" => once(&mut f.source, r.raw_object()?),
            "destination" => once(&mut f.destination, r.raw_object()?),
            "Type" | "type" => once(&mut f.kind, r.scalar()?),
            "l7" => once(&mut f.l7, r.l7()?),
            "node_name" | "nodeName" => once(&mut f.node_name, r.string()?),
            "is_reply" | "isReply" => once(&mut f.is_reply, r.bool()?),
            "reply" => once(&mut f.reply, r.bool()?),
            "destination_service" | "destinationService" => once(&mut f.destination_service, r.service()?),
            "traffic_direction" | "trafficDirection" => once(&mut f.traffic_direction, r.scalar()?),
            "destination_names" | "destinationNames" => once(&mut f.destination_names, r.strings()?),
            "source_names" | "sourceNames" => once(&mut f.source_names, r.strings()?),
            // An envelope holds one flow; a flow inside that is left to serde.
            "flow" => {
                let slot = envelope.as_deref_mut()?;
                let inner = r.flow(None)?;
                once(slot, inner)
            }
            _ => r.skip(),
        })?;
        Some(f)
    }

    fn ip(&mut self) -> Option<Ip<'a>> {
        let mut ip = Ip { source: None, destination: None };
        self.object(|r, key| match key {
            "source" => once(&mut ip.source, r.string()?),
            "destination" => once(&mut ip.destination, r.string()?),
            _ => r.skip(),
        })?;
        Some(ip)
    }

    fn l4(&mut self) -> Option<L4> {
        let mut l4 = L4 { TCP: None, UDP: None, SCTP: None };
        self.object(|r, key| match key {
            "TCP" => once(&mut l4.TCP, r.ports()?),
            "UDP" => once(&mut l4.UDP, r.ports()?),
            "SCTP" => once(&mut l4.SCTP, r.ports()?),
            _ => r.skip(),
        })?;
        Some(l4)
    }

    fn ports(&mut self) -> Option<Ports> {
        let mut p = Ports { source_port: None, destination_port: None, flags: None };
        self.object(|r, key| match key {
            "source_port" | "sourcePort" => once(&mut p.source_port, r.u64()?),
            "destination_port" | "destinationPort" => once(&mut p.destination_port, r.u64()?),
            "flags" => once(&mut p.flags, r.flags()?),
            _ => r.skip(),
        })?;
        Some(p)
    }

    fn flags(&mut self) -> Option<TcpFlags> {
        let (mut syn, mut ack) = (None, None);
        self.object(|r, key| match key {
            "SYN" => once(&mut syn, r.bool()?),
            "ACK" => once(&mut ack, r.bool()?),
            _ => r.skip(),
        })?;
        Some(TcpFlags { SYN: syn.unwrap_or(false), ACK: ack.unwrap_or(false) })
    }

    fn l7(&mut self) -> Option<L7<'a>> {
        let mut l7 = L7 { kind: None, dns: None };
        self.object(|r, key| match key {
            "type" => once(&mut l7.kind, r.scalar()?),
            "dns" => once(&mut l7.dns, r.dns()?),
            _ => r.skip(),
        })?;
        Some(l7)
    }

    fn dns(&mut self) -> Option<Dns<'a>> {
        let mut d = Dns { query: None, ips: None, rcode: None };
        self.object(|r, key| match key {
            "query" => once(&mut d.query, r.string()?),
            "ips" => once(&mut d.ips, r.strings()?),
            "rcode" => once(&mut d.rcode, r.u64()?),
            _ => r.skip(),
        })?;
        Some(d)
    }

    fn service(&mut self) -> Option<Service<'a>> {
        let mut s = Service { name: None, namespace: None };
        self.object(|r, key| match key {
            "name" => once(&mut s.name, r.string()?),
            "namespace" => once(&mut s.namespace, r.string()?),
            _ => r.skip(),
        })?;
        Some(s)
    }
}
