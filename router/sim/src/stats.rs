//! Confidence intervals over independent replications.
//!
//! Every figure the simulator reports is computed once per replication; the replications are
//! independent (each has its own random stream), so their values are i.i.d. and the usual
//! Student-t interval applies: `mean ± t(0.975, n − 1) · s / √n`.
//!
//! The 97.5 % quantiles come from a small table ([`T_975`]); other levels (the theory check
//! widens its intervals for the number of figures it compares) from [`t_quantile`], which inverts
//! the Student-t distribution function numerically and is tested against the table.

use serde::Serialize;

/// `t(0.975, df)` for `df = 1..=30` (index `df − 1`), from any statistics table.
pub const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// `t(0.975, df)` for larger `df`, as `(df, t)`; beyond the last entry the normal quantile.
const T_975_TAIL: [(f64, f64); 5] =
    [(40.0, 2.021), (60.0, 2.000), (80.0, 1.990), (120.0, 1.980), (f64::INFINITY, 1.960)];

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (`df ≥ 1`), from the table;
/// between table entries it interpolates linearly in `1/df`, which is accurate to 0.001.
pub fn t_975(df: u32) -> f64 {
    assert!(df >= 1, "t quantile needs at least one degree of freedom");
    if let Some(&t) = T_975.get(df as usize - 1) {
        return t;
    }
    let x = 1.0 / f64::from(df);
    let mut lower = (30.0, T_975[29]);
    for &(d, t) in &T_975_TAIL {
        if f64::from(df) <= d {
            let (x0, x1) = (1.0 / lower.0, 1.0 / d);
            return lower.1 + (t - lower.1) * (x - x0) / (x1 - x0);
        }
        lower = (d, t);
    }
    1.960
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, relative error below 1e-14).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function `I_x(a, b)`.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// Distribution function of Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `df` degrees of freedom, for `0.5 ≤ p < 1`, by
/// bisection on [`t_cdf`] (to 1e-10).
pub fn t_quantile(p: f64, df: u32) -> f64 {
    assert!((0.5..1.0).contains(&p) && df >= 1, "t_quantile({p}, {df})");
    let df = f64::from(df);
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    while hi - lo > 1e-10 * hi.max(1.0) {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// A figure estimated over replications: its mean and a 95 % confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Mean over the replications in which the figure was defined.
    pub mean: f64,
    /// Half the width of the 95 % confidence interval; `None` with fewer than two values.
    pub half_width: Option<f64>,
    /// Sample standard deviation over replications; `None` with fewer than two values.
    #[serde(skip)]
    pub sd: Option<f64>,
    /// Replications in which the figure was defined (a ratio with a zero denominator is not).
    pub n: u32,
}

impl Estimate {
    /// The estimate from per-replication values; `None` values are skipped.
    /// `None` when no replication defined the figure.
    pub fn from_values(values: impl IntoIterator<Item = Option<f64>>) -> Option<Estimate> {
        let values: Vec<f64> = values.into_iter().flatten().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let (sd, half_width) = if n >= 2 {
            let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            let sd = var.sqrt();
            (Some(sd), Some(t_975(n as u32 - 1) * sd / (n as f64).sqrt()))
        } else {
            (None, None)
        };
        Some(Estimate { mean, half_width, sd, n: n as u32 })
    }

    /// Lower end of the 95 % interval (the mean with fewer than two values).
    pub fn low(&self) -> f64 {
        self.mean - self.half_width.unwrap_or(0.0)
    }

    /// Upper end of the 95 % interval (the mean with fewer than two values).
    pub fn high(&self) -> f64 {
        self.mean + self.half_width.unwrap_or(0.0)
    }

    /// Half the width of the two-sided interval at confidence `1 − alpha`.
    pub fn half_width_at(&self, alpha: f64) -> Option<f64> {
        let sd = self.sd?;
        let df = self.n - 1;
        Some(t_quantile(1.0 - alpha / 2.0, df) * sd / f64::from(self.n).sqrt())
    }

    /// The same estimate scaled by `factor` (units: ratio to percent, ms to seconds).
    pub fn scaled(&self, factor: f64) -> Estimate {
        Estimate {
            mean: self.mean * factor,
            half_width: self.half_width.map(|h| h * factor.abs()),
            sd: self.sd.map(|s| s * factor.abs()),
            n: self.n,
        }
    }
}

/// `numerator / denominator`, or `None` for a zero denominator.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_table_interpolation_matches_known_values() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(9), 2.262);
        // Published: t(0.975, 50) = 2.009, t(0.975, 100) = 1.984, t(0.975, 1000) = 1.962.
        assert!((t_975(50) - 2.009).abs() < 0.002, "{}", t_975(50));
        assert!((t_975(100) - 1.984).abs() < 0.002, "{}", t_975(100));
        assert!((t_975(1000) - 1.962).abs() < 0.002, "{}", t_975(1000));
        assert!((t_975(u32::MAX) - 1.960).abs() < 1e-3);
    }

    #[test]
    fn numerical_quantile_agrees_with_the_table() {
        for df in 1..=30u32 {
            let q = t_quantile(0.975, df);
            assert!((q - t_975(df)).abs() < 6e-4, "df {df}: {q} vs {}", t_975(df));
        }
        // Other published quantiles: t(0.995, 10) = 3.169, t(0.9995, 9) = 4.781, t(0.95, 4) = 2.132.
        assert!((t_quantile(0.995, 10) - 3.169).abs() < 1e-3);
        assert!((t_quantile(0.9995, 9) - 4.781).abs() < 1e-3);
        assert!((t_quantile(0.95, 4) - 2.132).abs() < 1e-3);
        // t with one degree of freedom is Cauchy: quantile tan(π(p − ½)).
        let p: f64 = 0.9;
        assert!((t_quantile(p, 1) - (std::f64::consts::PI * (p - 0.5)).tan()).abs() < 1e-8);
    }

    #[test]
    fn estimates_have_student_t_intervals() {
        let e = Estimate::from_values([1.0, 2.0, 3.0, 4.0].map(Some)).unwrap();
        assert_eq!(e.mean, 2.5);
        assert_eq!(e.n, 4);
        let sd = (5.0_f64 / 3.0).sqrt();
        assert!((e.half_width.unwrap() - 3.182 * sd / 2.0).abs() < 1e-12);
        assert!(e.low() < 2.5 && e.high() > 2.5);
        let one = Estimate::from_values([Some(7.0), None]).unwrap();
        assert_eq!((one.mean, one.half_width, one.n), (7.0, None, 1));
        assert!(Estimate::from_values([None, None]).is_none());
        let wider = e.half_width_at(0.01).unwrap();
        assert!(wider > e.half_width.unwrap());
    }
}
