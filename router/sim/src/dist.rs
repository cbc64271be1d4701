//! Random durations and mixes, sampled from a seeded, portable generator.
//!
//! The generator is xoshiro256++ (`rand::rngs::Xoshiro256PlusPlus`), a named algorithm whose
//! output is fixed, so the same seed gives the same simulation on every platform and version.

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Exp1, StandardNormal};

/// The simulator's random generator.
pub type SimRng = Xoshiro256PlusPlus;

/// A distribution of durations, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum Duration {
    /// Always the same.
    Constant(f64),
    /// Exponential with this mean.
    Exponential {
        /// Mean, seconds.
        mean: f64,
    },
    /// Log-normal with this mean and standard deviation (of the duration itself).
    LogNormal {
        /// Mean, seconds.
        mean: f64,
        /// Standard deviation, seconds.
        sd: f64,
        /// μ of the underlying normal.
        mu: f64,
        /// σ of the underlying normal.
        sigma: f64,
    },
    /// One of the observed values, each equally likely (a bootstrap of real data).
    Empirical(Vec<f64>),
}

impl Duration {
    /// A log-normal distribution with the given mean and standard deviation (both > 0).
    pub fn log_normal(mean: f64, sd: f64) -> Duration {
        let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
        Duration::LogNormal { mean, sd, mu: mean.ln() - sigma2 / 2.0, sigma: sigma2.sqrt() }
    }

    /// The distribution's mean, in seconds.
    pub fn mean(&self) -> f64 {
        match self {
            Duration::Constant(v) => *v,
            Duration::Exponential { mean } | Duration::LogNormal { mean, .. } => *mean,
            Duration::Empirical(values) => values.iter().sum::<f64>() / values.len().max(1) as f64,
        }
    }

    /// One sample, in seconds.
    #[inline]
    pub fn sample_seconds(&self, rng: &mut SimRng) -> f64 {
        match self {
            Duration::Constant(v) => *v,
            Duration::Exponential { mean } => {
                let e: f64 = Exp1.sample(rng);
                e * mean
            }
            Duration::LogNormal { mu, sigma, .. } => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            Duration::Empirical(values) => values[rng.random_range(0..values.len())],
        }
    }

    /// One sample, in milliseconds, scaled by `factor` and rounded to the nearest millisecond.
    #[inline]
    pub fn sample_ms(&self, rng: &mut SimRng, factor: f64) -> u64 {
        let ms = self.sample_seconds(rng) * factor * 1000.0;
        if ms.is_finite() && ms > 0.0 { ms.round() as u64 } else { 0 }
    }
}

/// A discrete mix: values with cumulative probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix<T> {
    /// Values with the cumulative probability up to and including each; the last is 1.
    items: Vec<(T, f64)>,
}

impl<T: Copy> Mix<T> {
    /// A mix of one value.
    pub fn one(value: T) -> Self {
        Mix { items: vec![(value, 1.0)] }
    }

    /// A mix from non-negative weights (normalised); `None` when they do not sum to a positive
    /// finite number.
    pub fn from_weights(weights: &[(T, f64)]) -> Option<Self> {
        let total: f64 = weights.iter().map(|w| w.1).sum();
        if !(total.is_finite() && total > 0.0) || weights.iter().any(|w| w.1 < 0.0) {
            return None;
        }
        let mut acc = 0.0;
        let mut items: Vec<(T, f64)> = weights
            .iter()
            .filter(|w| w.1 > 0.0)
            .map(|&(v, w)| {
                acc += w / total;
                (v, acc)
            })
            .collect();
        if let Some(last) = items.last_mut() {
            last.1 = 1.0;
        }
        Some(Mix { items })
    }

    /// The values with their probabilities.
    pub fn entries(&self) -> impl Iterator<Item = (T, f64)> + '_ {
        let mut before = 0.0;
        self.items.iter().map(move |&(v, cum)| {
            let p = cum - before;
            before = cum;
            (v, p)
        })
    }

    /// One value (draws no random number when there is only one).
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> T {
        if self.items.len() == 1 {
            return self.items[0].0;
        }
        let u: f64 = rng.random();
        self.items.iter().find(|i| u < i.1).unwrap_or(&self.items[self.items.len() - 1]).0
    }
}

/// An exponential sample with rate `rate` per millisecond, in (fractional) milliseconds.
#[inline]
pub fn exponential_ms(rng: &mut SimRng, rate_per_ms: f64) -> f64 {
    let e: f64 = Exp1.sample(rng);
    e / rate_per_ms
}

/// A uniform sample in `[0, 1)`.
#[inline]
pub fn uniform(rng: &mut SimRng) -> f64 {
    rng.random()
}

/// A generator seeded from a scenario seed and a stream number (a replication), decorrelated
/// by SplitMix64.
pub fn rng_for(seed: u64, stream: u64) -> SimRng {
    use rand::SeedableRng;
    let mut state = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut seed_bytes = [0u8; 32];
    for chunk in seed_bytes.chunks_mut(8) {
        chunk.copy_from_slice(&next().to_le_bytes());
    }
    SimRng::from_seed(seed_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of(d: &Duration, n: usize) -> (f64, f64) {
        let mut rng = rng_for(7, 0);
        let xs: Vec<f64> = (0..n).map(|_| d.sample_seconds(&mut rng)).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
        (m, v.sqrt())
    }

    #[test]
    fn samples_have_the_configured_mean_and_spread() {
        let (m, sd) = mean_of(&Duration::Exponential { mean: 180.0 }, 200_000);
        assert!((m / 180.0 - 1.0).abs() < 0.01 && (sd / 180.0 - 1.0).abs() < 0.01, "{m} {sd}");
        let (m, sd) = mean_of(&Duration::log_normal(240.0, 120.0), 200_000);
        assert!((m / 240.0 - 1.0).abs() < 0.01 && (sd / 120.0 - 1.0).abs() < 0.03, "{m} {sd}");
        let (m, _) = mean_of(&Duration::Empirical(vec![10.0, 20.0, 60.0]), 90_000);
        assert!((m - 30.0).abs() < 0.5, "{m}");
        assert_eq!(Duration::Constant(5.0).sample_ms(&mut rng_for(1, 1), 2.0), 10_000);
    }

    #[test]
    fn mixes_follow_their_weights_and_streams_are_reproducible() {
        let mix = Mix::from_weights(&[('a', 1.0), ('b', 3.0), ('c', 0.0)]).unwrap();
        assert_eq!(mix.entries().collect::<Vec<_>>(), vec![('a', 0.25), ('b', 0.75)]);
        let mut rng = rng_for(3, 9);
        let n = 100_000;
        let a = (0..n).filter(|_| mix.sample(&mut rng) == 'a').count() as f64 / n as f64;
        assert!((a - 0.25).abs() < 0.01, "{a}");
        assert!(Mix::<u8>::from_weights(&[(1, 0.0)]).is_none());
        assert!(Mix::<u8>::from_weights(&[(1, -1.0), (2, 2.0)]).is_none());
        let draw = |seed, stream| {
            let mut r = rng_for(seed, stream);
            (0..4).map(|_| uniform(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2), draw(1, 2));
        assert_ne!(draw(1, 2), draw(1, 3));
        assert_ne!(draw(1, 2), draw(2, 2));
    }
}
