//! Differential: the in-place OTLP/JSON reader (`ingest::json_view`) against serde into
//! prost's structs. Whatever bytes arrive, the reader never panics; when it takes a body, serde
//! takes it too and the frames are byte for byte those of serde's decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlog_server::WireFormat;
use meshlog_server::ingest::Limits;
use meshlog_server::ingest::decode::parse;
use meshlog_server::ingest::pipeline::{OneClass, Redaction, prepare_json_view, prepare_request};

fuzz_target!(|data: &[u8]| {
    let off = Redaction::off();
    let limits = Limits::default();
    let Some(viewed) = prepare_json_view(data, None, limits, 1, None, None, &off) else {
        return;
    };
    let req = parse(data, WireFormat::Json)
        .unwrap_or_else(|e| panic!("the reader took a body serde refuses: {e}"));
    let mapped = prepare_request(&req, limits, 1, None, None, &OneClass, &off);
    match (viewed, mapped) {
        (Ok(v), Ok(m)) => {
            assert_eq!(v.len(), m.len());
            for ((_, a), (_, b)) in v.iter().zip(&m) {
                assert_eq!(a.bytes(), b.bytes(), "frames differ");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (v, m) => panic!("reader {:?} vs serde {:?}", v.is_ok(), m.is_ok()),
    }
});
