//! Seeded random streams.
//!
//! Every random choice in a run comes from ChaCha8 seeded from the run's seed, one
//! independent stream per purpose (mobility, traffic, ...), so that changing how
//! much traffic a scenario generates does not move the nodes, and a seed gives the
//! same run on every platform and every run.

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

/// The generator type used everywhere in the simulator.
pub type SimRng = ChaCha8Rng;

/// What a stream is used for; each gets its own ChaCha stream number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Mobility = 1,
    Traffic = 2,
    Routing = 3,
}

/// The generator for one purpose of one run.
pub fn stream(seed: u64, which: Stream) -> SimRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(which as u64);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn first(seed: u64, which: Stream) -> [u64; 4] {
        let mut r = stream(seed, which);
        [r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64()]
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        assert_eq!(first(7, Stream::Mobility), first(7, Stream::Mobility));
        assert_ne!(first(7, Stream::Mobility), first(7, Stream::Traffic));
        assert_ne!(first(7, Stream::Mobility), first(8, Stream::Mobility));
    }

    /// Pins the generator: if a dependency update changed ChaCha8's output, every
    /// published figure would silently move; this test says so instead.
    #[test]
    fn generator_output_is_pinned() {
        let got = first(42, Stream::Mobility)[0];
        assert_eq!(got, PINNED_FIRST, "ChaCha8 output changed: got {got:#x}");
    }
    const PINNED_FIRST: u64 = 0xb77f_a861_8dc9_e890;
}
