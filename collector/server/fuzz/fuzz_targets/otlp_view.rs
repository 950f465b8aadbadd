//! Differential: the in-place protobuf reader (`ingest::view`) against prost. Whatever bytes
//! arrive, the view never panics; when it takes a message, prost takes it too and the frames
//! are byte for byte those of prost's decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshlog_server::ingest::Limits;
use meshlog_server::ingest::pipeline::{OneClass, Redaction, prepare_request, prepare_view};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let off = Redaction::off();
    let limits = Limits::default();
    let Some(viewed) = prepare_view(data, None, limits, 1, None, None, &off) else {
        return;
    };
    let req = ExportLogsServiceRequest::decode(data)
        .unwrap_or_else(|e| panic!("the view read a message prost refuses: {e}"));
    let mapped = prepare_request(&req, limits, 1, None, None, &OneClass, &off);
    match (viewed, mapped) {
        (Ok(v), Ok(m)) => {
            assert_eq!(v.len(), m.len());
            for ((_, a), (_, b)) in v.iter().zip(&m) {
                assert_eq!(a.bytes(), b.bytes(), "frames differ");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (v, m) => panic!("view {:?} vs prost {:?}", v.is_ok(), m.is_ok()),
    }
});
