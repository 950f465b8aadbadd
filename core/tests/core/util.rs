//! Helpers the test modules share.

/// Parses a configuration type from JSON text, panicking with its error (which names the JSON
/// path) when the test wrote an invalid one: `from_json!(RedactionPolicy, r#"{...}"#)`.
macro_rules! from_json {
    ($ty:ty, $json:expr) => {
        match <$ty>::from_json(($json).as_bytes()) {
            Ok(v) => v,
            Err(e) => panic!("{}: {e}", stringify!($ty)),
        }
    };
}

/// SplitMix64: a fixed, well-known, seeded generator, so simulations and generated traffic
/// (and so the tests) are reproducible.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
