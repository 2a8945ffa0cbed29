//! The login's `next=` parameter (`web::auth::login_redirect`), as the handler gets it (the query
//! string decoded once). Whatever comes in, what goes out is `/` or the input itself; it fits in a
//! `Location` header; and it is a local path as ARCHITECTURE.md states it: one leading `/`,
//! printable ASCII, no `\` and no control character, also after every further round of
//! percent-decoding (so no `//host` either, at any round).
#![no_main]

use libfuzzer_sys::fuzz_target;

use flowgate::web::auth::login_redirect;

/// A path no browser reads as another host: one `/`, not two, no `\`, no control character.
fn local(p: &[u8]) -> bool {
    p.first() == Some(&b'/') && p.get(1) != Some(&b'/') && !p.contains(&b'\\') && !p.iter().any(u8::is_ascii_control)
}

/// One round of `%XX` decoding, the way a proxy or the next server might apply it.
fn decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b))) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(next) = std::str::from_utf8(data) else { return };
    let to = login_redirect(Some(next));
    assert!(to == "/" || to == next, "{next:?} -> {to:?}");
    assert!(to.bytes().all(|b| b.is_ascii_graphic()), "{to:?}: not printable ASCII");
    assert!(http::HeaderValue::from_str(to).is_ok(), "{to:?} cannot be a Location header");
    let mut p = to.as_bytes().to_vec();
    loop {
        assert!(local(&p), "{next:?} -> {to:?}, which decodes to {:?}", String::from_utf8_lossy(&p));
        let d = decode(&p);
        if d == p {
            break;
        }
        p = d;
    }
    // A plain local path is never refused.
    if next.len() < 64 && next.starts_with('/') && next[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/') {
        if !next.starts_with("//") {
            assert_eq!(to, next);
        }
    }
});
