//! Batch body compression: gzip (OTLP/HTTP's one required encoding), zstd (native builds only)
//! or none.
//!
//! A batch is compressed once, when it is sealed, so every retry sends the same bytes. gzip is
//! pure Rust in Wasm (flate2 over miniz_oxide), zlib-rs natively. Compression never fails the
//! batch and never grows it: on any error, or when the result would not be smaller, the body
//! goes out as is, without `Content-Encoding` (fail open; the outbox's byte accounting relies
//! on it).
//!
//! zstd (the C library) is for the native module, whose default it is: with level 1 core's
//! per-request work falls from 49.6k to 41.7k instructions (`edge_request 5000 http/json zstd`)
//! and the body from 62 to 6 bytes per record on that harness's repeated request
//! (bench/README.md, "Lever: zstd bodies in the native module"). `meshlog serve`
//! and the OpenTelemetry Collector both accept `Content-Encoding: zstd`. The Wasm module has no
//! zstd: the only pure-Rust encoder (ruzstd 0.9, level "fastest") measured 2.6x slower than gzip
//! level 1 there (5.8 ms against 2.2 ms on the batch below) for a slightly larger body.

use flate2::Compression as Level;
use flate2::write::GzEncoder;
use std::io::Write;

/// How batch bodies are encoded on the wire (`collector.compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Sent as is, no `Content-Encoding`.
    None,
    /// `Content-Encoding: gzip` at `level`, 1 (fastest) to 9 (smallest).
    Gzip {
        /// 1 to 9; out-of-range values are clamped.
        level: u32,
    },
    /// `Content-Encoding: zstd` at `level` (1 to 9 as configured); native builds only.
    #[cfg(not(target_arch = "wasm32"))]
    Zstd {
        /// 1 to 9 (zstd's own scale goes further; the configuration stops at 9).
        level: i32,
    },
}

impl Default for Compression {
    /// gzip level 1. Measured in Wasm (Node's V8) on a 640 KB batch of 500 OTLP JSON records:
    /// level 1 took 2.2 ms (about 290 MB/s) for 10.9% of the size, level 6 took 7.4 ms for 8.1%.
    /// The filter compresses on its worker thread, so the fast level is the default.
    fn default() -> Self {
        Compression::Gzip { level: 1 }
    }
}

impl Compression {
    /// Whether this build has zstd (native builds do, the Wasm module does not).
    pub const ZSTD: bool = cfg!(not(target_arch = "wasm32"));

    /// zstd at `level`; where this build has no zstd (never asked: the configuration refuses
    /// it there), gzip at that level.
    pub fn zstd(level: u32) -> Compression {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Compression::Zstd {
                level: i32::try_from(level.clamp(1, 9)).unwrap_or(1),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            Compression::Gzip { level }
        }
    }

    /// The `Content-Encoding` a body compressed this way carries, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip { .. } => Some("gzip"),
            #[cfg(not(target_arch = "wasm32"))]
            Compression::Zstd { .. } => Some("zstd"),
        }
    }
}

/// A body ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The bytes to send.
    pub body: Vec<u8>,
    /// Its `Content-Encoding`; `None` when sent as is (also after a compression error).
    pub encoding: Option<&'static str>,
}

/// Compresses `raw` as `how` says; returns `raw` untouched when `how` is `None`, compression
/// fails or the result would not be smaller. The body returned is never longer than `raw`.
pub fn compress(raw: Vec<u8>, how: Compression) -> Encoded {
    match how {
        Compression::None => Encoded {
            body: raw,
            encoding: None,
        },
        Compression::Gzip { level } => {
            let out = gzip(&raw, level.clamp(1, 9));
            smaller(raw, out, how)
        }
        #[cfg(not(target_arch = "wasm32"))]
        Compression::Zstd { level } => {
            let out = zstd::bulk::compress(&raw, level);
            smaller(raw, out, how)
        }
    }
}

/// The compressed body if it is smaller than `raw`, else `raw` as is.
fn smaller(raw: Vec<u8>, out: std::io::Result<Vec<u8>>, how: Compression) -> Encoded {
    match out {
        Ok(body) if body.len() < raw.len() => Encoded {
            body,
            encoding: how.content_encoding(),
        },
        _ => Encoded {
            body: raw,
            encoding: None,
        },
    }
}

fn gzip(raw: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    // JSON batches shrink to a tenth or so: start there and let the Vec grow if needed.
    let mut enc = GzEncoder::new(Vec::with_capacity(raw.len() / 8 + 64), Level::new(level));
    enc.write_all(raw)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use proptest::prelude::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    /// 200 OTLP/JSON attributes, as repetitive as a batch's.
    fn attributes_json() -> Vec<u8> {
        (0..200)
            .flat_map(|i| {
                format!(r#"{{"key":"url.path","value":{{"stringValue":"/r/{i}"}}}},"#).into_bytes()
            })
            .collect()
    }

    #[test]
    fn gzip_round_trips_and_shrinks_json() {
        let raw = attributes_json();
        for level in [1, 6, 9] {
            let e = compress(raw.clone(), Compression::Gzip { level });
            assert_eq!(e.encoding, Some("gzip"));
            assert!(
                e.body.len() * 4 < raw.len(),
                "level {level}: {}",
                e.body.len()
            );
            assert_eq!(gunzip(&e.body), raw);
        }
    }

    // zstd is the native builds' (core's tests also run compiled to Wasm).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn zstd_round_trips_and_shrinks_json() {
        let raw = attributes_json();
        for level in [0, 1, 9, 50] {
            let how = Compression::zstd(level);
            let e = compress(raw.clone(), how);
            assert_eq!(e.encoding, Some("zstd"), "level {level}");
            assert!(
                e.body.len() * 4 < raw.len(),
                "level {level}: {}",
                e.body.len()
            );
            assert_eq!(zstd::bulk::decompress(&e.body, raw.len()).unwrap(), raw);
        }
        let e = compress(b"abc".to_vec(), Compression::zstd(1));
        assert_eq!(
            (e.body.as_slice(), e.encoding),
            (&b"abc"[..], None),
            "never larger"
        );
    }

    #[test]
    fn none_is_identity_and_levels_are_clamped() {
        let e = compress(b"abc".to_vec(), Compression::None);
        assert_eq!(e.body, b"abc");
        assert_eq!(e.encoding, None);
        let raw = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".to_vec();
        for level in [0, 10, u32::MAX] {
            let e = compress(raw.clone(), Compression::Gzip { level });
            assert_eq!(e.encoding, Some("gzip"));
            assert_eq!(gunzip(&e.body), raw);
        }
        assert_eq!(
            Compression::default().content_encoding(),
            Some("gzip"),
            "gzip is the default"
        );
    }

    #[test]
    fn never_larger_than_the_input() {
        let e = compress(b"abc".to_vec(), Compression::default());
        assert_eq!((e.body.as_slice(), e.encoding), (&b"abc"[..], None));
        let noise: Vec<u8> = (0u32..2000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = compress(noise.clone(), Compression::default());
        assert!(e.body.len() <= noise.len());
        if e.encoding.is_none() {
            assert_eq!(e.body, noise);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_bytes_round_trip(raw in proptest::collection::vec(any::<u8>(), 0..4096), level in 1u32..=9) {
            let e = compress(raw.clone(), Compression::Gzip { level });
            prop_assert!(e.body.len() <= raw.len());
            let back = if e.encoding.is_some() { gunzip(&e.body) } else { e.body };
            prop_assert_eq!(back, raw);
        }
    }
}
