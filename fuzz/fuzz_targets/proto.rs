//! Fuzzes the control protocol's grammar: nothing a client or a server sends may panic the parser,
//! every request that parses is encoded back to a line that parses to the same request, and
//! escaping round-trips.
#![no_main]

use ankh::proto::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = proto::parse_request(data) {
        let line = req.encode();
        assert!(!line.contains('\n'));
        let again: Result<Request, _> = proto::parse_request(line.as_bytes());
        assert_eq!(again.as_ref(), Ok(&req), "{line:?}");
    }
    let _ = proto::parse_line(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let e = proto::escape(s);
        assert!(!e.contains([' ', '\n', '\r']), "{e:?}");
        assert_eq!(proto::unescape(&e).as_deref(), Some(s));
        // A reply line carrying the string must parse back to it.
        if let Ok(proto::Line::Msg(m)) = proto::parse_line(proto::encode_text("MSG", s).trim_end_matches('\n').as_bytes()) {
            assert_eq!(m, s.replace(['\n', '\r'], " "));
        }
    }
});
