//! Request bodies to OTLP requests: gzip or zstd decoding under a size cap, then OTLP/JSON or
//! protobuf. Every check that can refuse a body runs here, before anything touches a store.

use super::Limits;
use super::error::{ApiError, WireFormat};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::borrow::Cow;
use std::io::Read;

/// `Content-Encoding` values we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No encoding.
    Identity,
    /// gzip.
    Gzip,
    /// zstd (what the meshlog filter may send).
    Zstd,
}

/// Reads a decoder to the end, refusing to produce more than `limit` bytes. `expect` is the
/// decoded size the body announces, if any: only a hint for the first allocation.
fn inflate(
    dec: impl Read,
    what: &str,
    body_len: usize,
    expect: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let guess = expect.unwrap_or(body_len.saturating_mul(4));
    let mut out = Vec::with_capacity(guess.min(limit));
    // One byte more than allowed tells "exactly at the limit" from "over it".
    let cap = (limit as u64).saturating_add(1);
    dec.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::Malformed(format!("invalid {what} body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "{what}-decoded body exceeds max_decoded_bytes ({limit} bytes)"
        )));
    }
    Ok(out)
}

/// Deflate cannot expand more than this (a 258-byte match per 2 bits, roughly).
const DEFLATE_MAX_RATIO: usize = 1032;

/// Gunzips `body`, refusing to produce more than `limit` bytes. The gzip trailer's size
/// (ISIZE, the last member's decoded size mod 2^32) sizes the output once instead of growing
/// it by doubling, when deflate could produce that much from the body.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let expect = body
        .last_chunk::<4>()
        .map(|b| u32::from_le_bytes(*b) as usize)
        .filter(|&n| n <= body.len().saturating_mul(DEFLATE_MAX_RATIO));
    inflate(
        flate2::read::MultiGzDecoder::new(body),
        "gzip",
        body.len(),
        expect,
        limit,
    )
}

/// Decompresses a zstd `body` (one or more frames), refusing to produce more than `limit`
/// bytes. The decoder's window is capped near the limit too: a frame header cannot make it
/// allocate more than a body may decode to, with an 8 MiB floor (the window zstd picks for a
/// stream of unknown size at any level up to 19).
pub fn unzstd(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let bad = |e: std::io::Error| ApiError::Malformed(format!("invalid zstd body: {e}"));
    let mut dec = zstd::stream::read::Decoder::new(body).map_err(bad)?;
    let window_log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    dec.window_log_max(window_log.clamp(23, 31)).map_err(bad)?;
    inflate(dec, "zstd", body.len(), None, limit)
}

/// Decodes a body into an OTLP request.
pub fn decode(
    body: &[u8],
    format: WireFormat,
    encoding: BodyEncoding,
    limits: Limits,
) -> Result<ExportLogsServiceRequest, ApiError> {
    parse(&decompress(body, encoding, limits)?, format)
}

/// Undoes the body's `encoding`, under `limits`.
pub fn decompress(
    body: &[u8],
    encoding: BodyEncoding,
    limits: Limits,
) -> Result<Cow<'_, [u8]>, ApiError> {
    Ok(match encoding {
        BodyEncoding::Identity => Cow::Borrowed(body),
        BodyEncoding::Gzip => Cow::Owned(gunzip(body, limits.max_decoded_bytes)?),
        BodyEncoding::Zstd => Cow::Owned(unzstd(body, limits.max_decoded_bytes)?),
    })
}

/// Parses decoded bytes as an OTLP request in `format`.
pub fn parse(bytes: &[u8], format: WireFormat) -> Result<ExportLogsServiceRequest, ApiError> {
    match format {
        WireFormat::Json => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::Malformed(format!("invalid OTLP/JSON ExportLogsServiceRequest: {e}"))
        }),
        WireFormat::Protobuf => ExportLogsServiceRequest::decode(bytes).map_err(|e| {
            ApiError::Malformed(format!(
                "invalid OTLP protobuf ExportLogsServiceRequest: {e}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        let data = vec![b'a'; 10_000];
        assert_eq!(gunzip(&gz(&data), 10_000).unwrap(), data);
        let e = gunzip(&gz(&data), 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.to_string().contains("max_decoded_bytes (9999 bytes)"),
            "{e}"
        );
        let e = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("invalid gzip body"), "{e}");
    }

    #[test]
    fn unzstd_stops_at_the_limit_and_reads_concatenated_frames() {
        let data = vec![b'z'; 10_000];
        let z = zstd::encode_all(data.as_slice(), 3).unwrap();
        assert_eq!(unzstd(&z, 10_000).unwrap(), data);
        let mut two = z.clone();
        two.extend_from_slice(&zstd::encode_all(&b"tail"[..], 3).unwrap());
        assert_eq!(unzstd(&two, 20_000).unwrap().len(), 10_004);
        let e = unzstd(&z, 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            e.to_string(),
            "zstd-decoded body exceeds max_decoded_bytes (9999 bytes)"
        );
        let e = unzstd(b"not zstd at all", 100).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("invalid zstd body"), "{e}");
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_not_allocated() {
        // Streamed (no content size), with a 128 MiB window: more than a 1 MiB limit allows.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(27).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&[b'w'; 1000]).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(unzstd(&z, 200 << 20).unwrap().len(), 1000);
        let e = unzstd(&z, 1 << 20).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("invalid zstd body"), "{e}");
    }
}
