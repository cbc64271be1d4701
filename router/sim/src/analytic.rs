//! Analytic (exact, closed-form or exactly solvable) queueing models.
//!
//! These are the reference figures the simulator is validated against: run
//! under the same assumptions, its long-run averages must converge to them.
//!
//! Conventions, shared by every item here:
//!
//! * all quantities are `f64`; times are in **seconds**, rates **per second**;
//! * arrivals are Poisson, handle (service) times exponential, agents
//!   identical and the queue is served first-come-first-served (within a
//!   class, for the priority model);
//! * "wait" always means time spent in the queue before an agent picks the
//!   contact up (or, in Erlang A, before the customer gives up); handle time
//!   is never included.
//!
//! Models:
//!
//! * [`erlang_b`]: the loss probability of M/M/c/c, used internally as the
//!   numerically stable building block of Erlang C;
//! * [`ErlangC`]: M/M/c with infinitely patient customers;
//! * [`ErlangA`]: M/M/c+M, customers abandon after an exponential patience;
//! * [`priority_mean_waits`]: M/M/c with non-preemptive priority classes.
//!
//! Numerical stability: nothing here evaluates `a^c` or `c!`. Erlang B/C use
//! the recursion `B(0) = 1`, `B(k) = a·B(k−1) / (k + a·B(k−1))`, whose terms
//! stay in `[0, 1]`, and Erlang A solves its birth–death chain starting from
//! the most likely state with all weights `≤ 1`. Results are accurate to a
//! few ulps relative for thousands of agents and loads up to (and, for
//! Erlang A, beyond) 100 %; probabilities smaller than about `1e-308` are
//! flushed to zero.

use std::fmt;

/// Names the input an [`AnalyticError`] complains about.
///
/// A typed value rather than a string so callers (and tests) can match on
/// exactly which argument was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameter {
    /// The arrival rate λ of a single-class model, in contacts per second.
    ArrivalRate,
    /// The arrival rate of one class of [`priority_mean_waits`].
    ClassArrivalRate {
        /// Index of the class in the slice passed in (0 = highest priority).
        class: usize,
    },
    /// The sum of all class arrival rates of [`priority_mean_waits`].
    TotalArrivalRate,
    /// The mean handle time `1/μ`, in seconds.
    MeanHandleTime,
    /// The mean patience `1/θ` of [`ErlangA`], in seconds.
    MeanPatience,
    /// The offered load `a = λ/μ`, in Erlangs.
    OfferedLoad,
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ArrivalRate => f.write_str("arrival rate"),
            Self::ClassArrivalRate { class } => write!(f, "arrival rate of class {class}"),
            Self::TotalArrivalRate => f.write_str("total arrival rate"),
            Self::MeanHandleTime => f.write_str("mean handle time"),
            Self::MeanPatience => f.write_str("mean patience"),
            Self::OfferedLoad => f.write_str("offered load"),
        }
    }
}

/// Why an analytic model could not be built from its inputs.
///
/// Every constructor validates its inputs up front, so a successfully built
/// model always yields finite figures; this enum says what was wrong
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum AnalyticError {
    /// The number of agents was zero; every model needs at least one server.
    #[error("at least one agent is required")]
    NoAgents,
    /// An input was NaN or infinite.
    #[error("{parameter} must be finite, got {value}")]
    NonFinite {
        /// The offending input.
        parameter: Parameter,
        /// The value that was passed.
        value: f64,
    },
    /// An input that must be strictly positive was zero or negative.
    #[error("{parameter} must be positive, got {value}")]
    NonPositive {
        /// The offending input.
        parameter: Parameter,
        /// The value that was passed.
        value: f64,
    },
    /// An input that may be zero but not negative was negative.
    #[error("{parameter} must not be negative, got {value}")]
    Negative {
        /// The offending input.
        parameter: Parameter,
        /// The value that was passed.
        value: f64,
    },
    /// The occupancy `ρ = λ/(cμ)` was not below 1. Without abandonment the
    /// queue then grows without bound and has no steady state.
    #[error("occupancy {occupancy} is not below 1: without abandonment the queue has no steady state")]
    Unstable {
        /// The occupancy `ρ` that was computed from the inputs.
        occupancy: f64,
    },
    /// [`priority_mean_waits`] was given no classes.
    #[error("at least one priority class is required")]
    NoClasses,
    /// The Erlang A chain would need more states than can be handled
    /// (overload with an extremely long mean patience). Use a shorter
    /// patience, or [`ErlangC`] if the system is not overloaded.
    #[error("the Erlang A birth-death chain needs more than {limit} states")]
    StateSpaceTooLarge {
        /// The state (or step) limit that would have been exceeded.
        limit: u64,
    },
}

/// Rejects NaN/infinite and non-positive values.
fn check_positive(parameter: Parameter, value: f64) -> Result<f64, AnalyticError> {
    if !value.is_finite() {
        Err(AnalyticError::NonFinite { parameter, value })
    } else if value <= 0.0 {
        Err(AnalyticError::NonPositive { parameter, value })
    } else {
        Ok(value)
    }
}

/// Erlang B recursion; `a` must be finite and non-negative.
fn erlang_b_unchecked(agents: u32, a: f64) -> f64 {
    let mut b = 1.0_f64;
    for k in 1..=agents {
        let ab = a * b;
        b = ab / (f64::from(k) + ab);
    }
    b
}

/// Erlang B: probability that an arrival finds all `agents` busy in a loss
/// system (M/M/c/c, blocked contacts are lost), with `offered_load` Erlangs.
///
/// Exposed because it is a useful figure on its own (trunk or channel
/// dimensioning) and because it is how [`ErlangC`] is computed: it uses the
/// recursion `B(0) = 1`, `B(k) = a·B(k−1) / (k + a·B(k−1))`, which is stable
/// for any number of agents.
///
/// # Errors
///
/// [`AnalyticError::NoAgents`] for `agents == 0`; [`AnalyticError::NonFinite`]
/// or [`AnalyticError::NonPositive`] for an offered load that is not a
/// positive finite number.
pub fn erlang_b(agents: u32, offered_load: f64) -> Result<f64, AnalyticError> {
    if agents == 0 {
        return Err(AnalyticError::NoAgents);
    }
    let a = check_positive(Parameter::OfferedLoad, offered_load)?;
    Ok(erlang_b_unchecked(agents, a))
}

/// Erlang C model: M/M/c, FIFO, customers never abandon.
///
/// The classic staffing model for a contact centre with a single queue. It
/// is the reference for a simulation with infinite patience; build it with
/// [`ErlangC::new`], which validates the inputs and computes the probability
/// of waiting once, so every accessor is O(1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangC {
    agents: u32,
    arrival_rate: f64,
    mean_handle_time: f64,
    offered_load: f64,
    prob_wait: f64,
}

impl ErlangC {
    /// Builds the model for `agents` agents, Poisson arrivals at
    /// `arrival_rate` per second and exponential handle times with mean
    /// `mean_handle_time` seconds.
    ///
    /// Runs the Erlang B recursion (O(`agents`)) and converts it with
    /// `C = B / (1 − ρ(1 − B))`.
    ///
    /// # Errors
    ///
    /// [`AnalyticError::NoAgents`] for zero agents,
    /// [`AnalyticError::NonFinite`] / [`AnalyticError::NonPositive`] for a
    /// rate or handle time that is not a positive finite number, and
    /// [`AnalyticError::Unstable`] when the occupancy `λ/(cμ)` is 1 or more.
    pub fn new(agents: u32, arrival_rate: f64, mean_handle_time: f64) -> Result<Self, AnalyticError> {
        if agents == 0 {
            return Err(AnalyticError::NoAgents);
        }
        let arrival_rate = check_positive(Parameter::ArrivalRate, arrival_rate)?;
        let mean_handle_time = check_positive(Parameter::MeanHandleTime, mean_handle_time)?;
        let offered_load = arrival_rate * mean_handle_time;
        let occupancy = offered_load / f64::from(agents);
        if occupancy.is_nan() || occupancy >= 1.0 {
            return Err(AnalyticError::Unstable { occupancy });
        }
        let b = erlang_b_unchecked(agents, offered_load);
        let prob_wait = b / (1.0 - occupancy * (1.0 - b));
        Ok(Self { agents, arrival_rate, mean_handle_time, offered_load, prob_wait })
    }

    /// Number of agents `c`.
    #[must_use]
    pub fn agents(&self) -> u32 {
        self.agents
    }

    /// Arrival rate λ, per second.
    #[must_use]
    pub fn arrival_rate(&self) -> f64 {
        self.arrival_rate
    }

    /// Mean handle time `1/μ`, in seconds.
    #[must_use]
    pub fn mean_handle_time(&self) -> f64 {
        self.mean_handle_time
    }

    /// Offered load `a = λ/μ` in Erlangs: the mean number of busy agents.
    #[must_use]
    pub fn offered_load(&self) -> f64 {
        self.offered_load
    }

    /// Occupancy `ρ = a/c`: the long-run fraction of time an agent is busy.
    /// Always below 1 for a successfully built model.
    #[must_use]
    pub fn occupancy(&self) -> f64 {
        self.offered_load / f64::from(self.agents)
    }

    /// Probability that an arriving contact has to wait, `P(W > 0)`: the
    /// Erlang C formula `C(c, a)`.
    #[must_use]
    pub fn prob_wait(&self) -> f64 {
        self.prob_wait
    }

    /// Average speed of answer, `E[W] = C(c, a) / (cμ − λ)`, in seconds,
    /// averaged over all contacts (those answered at once count as zero).
    #[must_use]
    pub fn mean_wait(&self) -> f64 {
        self.prob_wait * self.mean_handle_time / (f64::from(self.agents) - self.offered_load)
    }

    /// Service level: probability that a contact waits at most `t` seconds,
    /// `P(W ≤ t) = 1 − C(c, a)·e^{−(cμ − λ)t}`.
    ///
    /// Returns 0 for negative `t` (nobody waits a negative time), tends to 1
    /// as `t → ∞`, and propagates a NaN `t` as NaN.
    #[must_use]
    pub fn service_level(&self, t: f64) -> f64 {
        if t < 0.0 {
            return 0.0;
        }
        let decay_rate = (f64::from(self.agents) - self.offered_load) / self.mean_handle_time;
        1.0 - self.prob_wait * (-decay_rate * t).exp()
    }

    /// Mean number of contacts waiting in the queue,
    /// `E[L_q] = C(c, a)·ρ/(1 − ρ)` (equals `λ·E[W]` by Little's law).
    #[must_use]
    pub fn mean_queue_length(&self) -> f64 {
        self.prob_wait * self.offered_load / (f64::from(self.agents) - self.offered_load)
    }
}

/// Erlang A model: M/M/c+M, FIFO, and every waiting customer abandons after
/// an exponentially distributed patience with mean `1/θ`.
///
/// Real callers hang up, so this is the reference for a simulation with
/// abandonment. Unlike [`ErlangC`] it has a steady state for any load,
/// including occupancies of 100 % and more.
///
/// # Method
///
/// The number of contacts in the system is a birth–death chain on
/// `n = 0, 1, 2, …` with birth rate λ and death rate
/// `min(n, c)·μ + max(n − c, 0)·θ`. [`ErlangA::new`] solves it exactly rather
/// than through the incomplete-gamma closed form (Mandelbaum & Zeltyn; Garnett,
/// Mandelbaum & Reiman 2002), which is harder to evaluate stably:
///
/// 1. the chain is unimodal, so it starts at the most likely state with
///    weight 1 and walks outwards with the ratios
///    `p_{n+1}/p_n = λ / death(n + 1)`, keeping every weight in `(0, 1]`;
/// 2. each walk stops once a geometric bound on everything beyond is below
///    `1e-17` of what has been accumulated (relative to the waiting mass on
///    the upper side, so small waiting probabilities stay accurate) or the
///    weights underflow;
/// 3. with `p` normalised, and PASTA: `P(W > 0) = Σ_{n≥c} p_n`,
///    `E[L_q] = Σ (n − c)⁺ p_n`, abandonment rate `θ·E[L_q]`,
///    `P(Ab) = θ·E[L_q]/λ`, and by Little's law `E[W] = E[L_q]/λ`
///    (so `P(Ab) = θ·E[W]`).
///
/// The work is proportional to the width of the distribution (a few hundred
/// states for thousands of agents), not to the number of agents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangA {
    agents: u32,
    arrival_rate: f64,
    mean_handle_time: f64,
    mean_patience: f64,
    prob_wait: f64,
    mean_queue_length: f64,
    mean_busy_agents: f64,
}

/// Upper limit on the index of the most likely state of the Erlang A chain;
/// beyond it `n + 1` is no longer computed exactly in `f64`.
const MAX_MODE: f64 = 1.0e15;
/// Upper limit on the number of states the Erlang A solver visits.
const MAX_CHAIN_STEPS: u64 = 20_000_000;
/// Relative size of the neglected tails of the Erlang A chain.
const TAIL_TOLERANCE: f64 = 1.0e-17;

/// Unnormalised sums over the Erlang A chain.
#[derive(Debug, Default)]
struct ChainSums {
    total: f64,
    waiting: f64,
    queue: f64,
    busy: f64,
}

impl ChainSums {
    fn add(&mut self, n: f64, c: f64, weight: f64) {
        self.total += weight;
        self.busy += weight * n.min(c);
        if n >= c {
            self.waiting += weight;
            self.queue += weight * (n - c);
        }
    }
}

/// Solves the M/M/c+M chain in units of the mean handle time: offered load
/// `a = λ/μ`, relative abandonment rate `kappa = θ/μ`.
fn solve_erlang_a_chain(agents: u32, a: f64, kappa: f64) -> Result<ChainSums, AnalyticError> {
    let c = f64::from(agents);
    // Death rate of state n divided by μ.
    let death = |n: f64| if n <= c { n } else { c + (n - c) * kappa };
    // Most likely state: the largest n with death(n) ≤ a.
    let mode = if a < c { a.floor() } else { c + ((a - c) / kappa).floor() };
    if mode.is_nan() || mode > MAX_MODE {
        return Err(AnalyticError::StateSpaceTooLarge { limit: MAX_MODE as u64 });
    }

    let mut sums = ChainSums::default();
    sums.add(mode, c, 1.0);
    let mut steps: u64 = 0;
    let mut count_step = || {
        steps += 1;
        if steps > MAX_CHAIN_STEPS {
            Err(AnalyticError::StateSpaceTooLarge { limit: MAX_CHAIN_STEPS })
        } else {
            Ok(())
        }
    };

    // Upwards from the mode. Ratios only decrease from here on (death() is
    // increasing), so with r = the next ratio the rest of the tail is bounded
    // by the geometric series weight·(r + r² + …).
    let (mut n, mut weight) = (mode, 1.0_f64);
    loop {
        let r = a / death(n + 1.0);
        if n >= c && r < 1.0 {
            let geometric = r / (1.0 - r);
            let tail_total = weight * geometric;
            let tail_queue = weight * ((n - c) * geometric + geometric / (1.0 - r));
            if tail_total <= TAIL_TOLERANCE * sums.waiting && tail_queue <= TAIL_TOLERANCE * sums.queue {
                break;
            }
        }
        weight *= r;
        n += 1.0;
        if weight < f64::MIN_POSITIVE {
            break;
        }
        sums.add(n, c, weight);
        count_step()?;
    }

    // Downwards from the mode: p_{n-1} = p_n·death(n)/a, ratios decrease too.
    let (mut n, mut weight) = (mode, 1.0_f64);
    while n > 0.0 {
        let r = death(n) / a;
        if r < 1.0 && weight * r / (1.0 - r) <= TAIL_TOLERANCE * sums.total {
            break;
        }
        weight *= r;
        n -= 1.0;
        if weight < f64::MIN_POSITIVE {
            break;
        }
        sums.add(n, c, weight);
        count_step()?;
    }
    Ok(sums)
}

impl ErlangA {
    /// Builds the model for `agents` agents, Poisson arrivals at
    /// `arrival_rate` per second, exponential handle times with mean
    /// `mean_handle_time` seconds and exponential patience with mean
    /// `mean_patience` seconds, and solves its birth–death chain (see the
    /// type-level docs).
    ///
    /// # Errors
    ///
    /// [`AnalyticError::NoAgents`] for zero agents;
    /// [`AnalyticError::NonFinite`] / [`AnalyticError::NonPositive`] for a
    /// rate, handle time or patience that is not a positive finite number
    /// (for infinite patience use [`ErlangC`]), or an offered load that
    /// under- or overflows; [`AnalyticError::StateSpaceTooLarge`] when an
    /// overloaded system has so long a patience that its queue would hold
    /// an astronomic number of customers.
    pub fn new(
        agents: u32,
        arrival_rate: f64,
        mean_handle_time: f64,
        mean_patience: f64,
    ) -> Result<Self, AnalyticError> {
        if agents == 0 {
            return Err(AnalyticError::NoAgents);
        }
        let arrival_rate = check_positive(Parameter::ArrivalRate, arrival_rate)?;
        let mean_handle_time = check_positive(Parameter::MeanHandleTime, mean_handle_time)?;
        let mean_patience = check_positive(Parameter::MeanPatience, mean_patience)?;
        let a = check_positive(Parameter::OfferedLoad, arrival_rate * mean_handle_time)?;
        let kappa = mean_handle_time / mean_patience;
        let sums = solve_erlang_a_chain(agents, a, kappa)?;
        Ok(Self {
            agents,
            arrival_rate,
            mean_handle_time,
            mean_patience,
            prob_wait: sums.waiting / sums.total,
            mean_queue_length: sums.queue / sums.total,
            mean_busy_agents: sums.busy / sums.total,
        })
    }

    /// Number of agents `c`.
    #[must_use]
    pub fn agents(&self) -> u32 {
        self.agents
    }

    /// Arrival rate λ, per second.
    #[must_use]
    pub fn arrival_rate(&self) -> f64 {
        self.arrival_rate
    }

    /// Mean handle time `1/μ`, in seconds.
    #[must_use]
    pub fn mean_handle_time(&self) -> f64 {
        self.mean_handle_time
    }

    /// Mean patience `1/θ`, in seconds.
    #[must_use]
    pub fn mean_patience(&self) -> f64 {
        self.mean_patience
    }

    /// Offered load `a = λ/μ` in Erlangs. May exceed the number of agents:
    /// abandonment keeps the system stable.
    #[must_use]
    pub fn offered_load(&self) -> f64 {
        self.arrival_rate * self.mean_handle_time
    }

    /// Occupancy: long-run fraction of time an agent is busy,
    /// `E[busy agents]/c`. Below the offered `a/c` because abandoned
    /// contacts are never handled; always below 1.
    #[must_use]
    pub fn occupancy(&self) -> f64 {
        self.mean_busy_agents / f64::from(self.agents)
    }

    /// Probability that an arriving contact finds all agents busy and has to
    /// wait, `P(W > 0)` (equal to the time-stationary probability of
    /// `n ≥ c`, by PASTA).
    #[must_use]
    pub fn prob_wait(&self) -> f64 {
        self.prob_wait
    }

    /// Probability that an arriving contact abandons before being answered,
    /// `P(Ab) = θ·E[L_q]/λ`.
    #[must_use]
    pub fn prob_abandon(&self) -> f64 {
        self.mean_queue_length / (self.arrival_rate * self.mean_patience)
    }

    /// Mean time in queue over all arrivals, `E[W] = E[L_q]/λ`, in seconds:
    /// the wait until answer for served contacts and until hang-up for
    /// abandoning ones, zero for those answered at once.
    #[must_use]
    pub fn mean_wait(&self) -> f64 {
        self.mean_queue_length / self.arrival_rate
    }

    /// Mean number of contacts waiting in the queue, `E[L_q]`.
    #[must_use]
    pub fn mean_queue_length(&self) -> f64 {
        self.mean_queue_length
    }
}

/// Mean waiting time in queue, in seconds, of each class of an M/M/c queue
/// with non-preemptive priorities.
///
/// `arrival_rates[k]` is the Poisson arrival rate (per second) of class `k`;
/// index 0 is the highest priority. All classes share one exponential
/// handle time with mean `mean_handle_time`; a freed agent takes the oldest
/// contact of the highest non-empty class, and never interrupts a contact in
/// progress. Cobham's formula (Gross & Harris, *Fundamentals of Queueing
/// Theory*, non-preemptive priorities with many servers):
///
/// `W_k = (C(c, a)/(cμ)) / ((1 − σ_{k−1})(1 − σ_k))`,
/// `σ_k = Σ_{i≤k} λ_i/(cμ)`,
///
/// where `C(c, a)` is the Erlang C probability for the **total** load
/// `a = Σλ_i/μ`. The λ-weighted mean of the `W_k` equals the FIFO
/// [`ErlangC::mean_wait`] (the conservation law): priorities only
/// redistribute waiting.
///
/// Classes with a zero rate are allowed (they get the wait a first contact
/// of that class would see).
///
/// # Errors
///
/// [`AnalyticError::NoAgents`] for zero agents, [`AnalyticError::NoClasses`]
/// for an empty slice, [`AnalyticError::NonFinite`] /
/// [`AnalyticError::Negative`] (with [`Parameter::ClassArrivalRate`]) for a
/// bad class rate, [`AnalyticError::NonPositive`] with
/// [`Parameter::TotalArrivalRate`] when all rates are zero, plus the errors
/// of [`ErlangC::new`] for the handle time and for a total occupancy `≥ 1`.
pub fn priority_mean_waits(
    agents: u32,
    arrival_rates: &[f64],
    mean_handle_time: f64,
) -> Result<Vec<f64>, AnalyticError> {
    if agents == 0 {
        return Err(AnalyticError::NoAgents);
    }
    if arrival_rates.is_empty() {
        return Err(AnalyticError::NoClasses);
    }
    for (class, &value) in arrival_rates.iter().enumerate() {
        let parameter = Parameter::ClassArrivalRate { class };
        if !value.is_finite() {
            return Err(AnalyticError::NonFinite { parameter, value });
        }
        if value < 0.0 {
            return Err(AnalyticError::Negative { parameter, value });
        }
    }
    let total: f64 = arrival_rates.iter().sum();
    if total <= 0.0 {
        return Err(AnalyticError::NonPositive { parameter: Parameter::TotalArrivalRate, value: total });
    }
    let fifo = ErlangC::new(agents, total, mean_handle_time)?;
    let c = f64::from(agents);
    // Mean time until the first agent frees up, times P(all busy).
    let base_wait = fifo.prob_wait() * mean_handle_time / c;
    let mut sigma_before = 0.0_f64;
    Ok(arrival_rates
        .iter()
        .map(|&rate| {
            let sigma = sigma_before + rate * mean_handle_time / c;
            let wait = base_wait / ((1.0 - sigma_before) * (1.0 - sigma));
            sigma_before = sigma;
            wait
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `actual` is within `rel` relative error of `expected`.
    #[track_caller]
    fn assert_rel(actual: f64, expected: f64, rel: f64) {
        let err = ((actual - expected) / expected).abs();
        assert!(err <= rel, "actual {actual:e}, expected {expected:e}, relative error {err:e} > {rel:e}");
    }

    /// Asserts `actual` is within `abs` of `expected`.
    #[track_caller]
    fn assert_abs(actual: f64, expected: f64, abs: f64) {
        let err = (actual - expected).abs();
        assert!(err <= abs, "actual {actual}, expected {expected}, absolute error {err:e} > {abs:e}");
    }

    /// `a^k / k!` for small `k`, by the textbook formula.
    fn poisson_term(a: f64, k: u32) -> f64 {
        (1..=k).fold(1.0, |acc, i| acc * a / f64::from(i))
    }

    // ---- Erlang B -------------------------------------------------------

    #[test]
    fn erlang_b_recursion_matches_direct_formula_for_small_c() {
        for c in 1..=10_u32 {
            for a in [0.1, 0.5, 1.0, 2.5, 7.0, 10.0, 15.0] {
                let denominator: f64 = (0..=c).map(|k| poisson_term(a, k)).sum();
                let direct = poisson_term(a, c) / denominator;
                assert_rel(erlang_b(c, a).unwrap(), direct, 1e-13);
            }
        }
    }

    #[test]
    fn erlang_b_matches_published_traffic_table() {
        // Standard Erlang B table (e.g. any teletraffic engineering handbook):
        // traffic in Erlangs offered to N trunks for a given grade of service.
        // The table rounds traffic to 0.01 E, which moves B by well under 1 %.
        for (trunks, traffic, grade) in [
            (1, 0.0101, 0.01),
            (5, 1.36, 0.01),
            (10, 3.09, 0.001),
            (10, 4.46, 0.01),
            (10, 5.08, 0.02),
            (10, 6.22, 0.05),
            (20, 12.03, 0.01),
        ] {
            assert_rel(erlang_b(trunks, traffic).unwrap(), grade, 0.01);
        }
    }

    // ---- Erlang C -------------------------------------------------------

    #[test]
    fn erlang_c_matches_published_worked_example() {
        // Call Centre Helper, "Erlang C Formula – Made Simple With an Easy
        // Worked Example" (https://www.callcentrehelper.com/erlang-c-formula-example-121281.htm):
        // 100 calls per 30 minutes, AHT 180 s, 11 agents, 20 s target.
        // Published: traffic intensity 10 Erlangs, occupancy 90.9 %,
        // probability of waiting 68.21 %, ASA 122.8 s, 31.8 % answered
        // immediately. The service level there is
        // 1 − 0.6821·e^{−(11−10)·20/180} = 0.3896 (39 %).
        let model = ErlangC::new(11, 100.0 / 1800.0, 180.0).unwrap();
        assert_rel(model.offered_load(), 10.0, 1e-12);
        assert_abs(model.occupancy(), 0.909, 0.0005);
        assert_abs(model.prob_wait(), 0.6821, 0.00005);
        // Answered immediately, in percent as published.
        assert_abs(100.0 * (1.0 - model.prob_wait()), 31.8, 0.05);
        assert_abs(model.mean_wait(), 122.8, 0.05);
        assert_abs(model.service_level(20.0), 0.3896, 0.00005);
        // Reference values from the direct formula at 60 digits (mpmath).
        assert_rel(model.prob_wait(), 0.682_118_204_689_332_4, 1e-13);
        assert_rel(model.mean_wait(), 122.781_276_844_079_83, 1e-13);
        assert_rel(model.service_level(20.0), 0.389_613_811_729_153_4, 1e-13);
        assert_rel(model.mean_queue_length(), 6.821_182_046_893_323, 1e-13);
    }

    #[test]
    fn erlang_c_matches_direct_formula_for_small_c() {
        for c in 1..=10_u32 {
            for rho in [0.05, 0.3, 0.7, 0.95, 0.99] {
                let a = rho * f64::from(c);
                let tail = poisson_term(a, c) / (1.0 - rho);
                let head: f64 = (0..c).map(|k| poisson_term(a, k)).sum();
                let direct = tail / (head + tail);
                let model = ErlangC::new(c, a / 60.0, 60.0).unwrap();
                assert_rel(model.prob_wait(), direct, 1e-12);
            }
        }
    }

    #[test]
    fn erlang_c_single_agent_is_mm1() {
        // M/M/1: P(W>0) = ρ, E[W] = ρ/(μ − λ), E[Lq] = ρ²/(1 − ρ).
        let (lambda, h) = (0.004, 200.0);
        let rho = lambda * h;
        let model = ErlangC::new(1, lambda, h).unwrap();
        assert_rel(model.prob_wait(), rho, 1e-14);
        assert_rel(model.mean_wait(), rho / (1.0 / h - lambda), 1e-13);
        assert_rel(model.mean_queue_length(), rho * rho / (1.0 - rho), 1e-13);
    }

    #[test]
    fn erlang_c_internal_relations_hold() {
        let model = ErlangC::new(37, 0.15, 230.0).unwrap();
        // Little's law.
        assert_rel(model.mean_queue_length(), model.arrival_rate() * model.mean_wait(), 1e-13);
        // Service level: 1 − C at t = 0, 1 at t = ∞, 0 for negative t, and
        // increasing in t.
        assert_rel(model.service_level(0.0), 1.0 - model.prob_wait(), 1e-15);
        assert_eq!(model.service_level(f64::INFINITY), 1.0);
        assert_eq!(model.service_level(-1.0), 0.0);
        let levels: Vec<f64> = (0..50).map(|t| model.service_level(f64::from(t))).collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]));
        // E[W] = ∫₀^∞ P(W > t) dt, by the trapezoidal rule on a fine grid.
        let (dt, steps) = (0.01, 200_000);
        let integral: f64 = (0..steps)
            .map(|i| {
                let t = f64::from(i) * dt;
                0.5 * dt * ((1.0 - model.service_level(t)) + (1.0 - model.service_level(t + dt)))
            })
            .sum();
        assert_rel(integral, model.mean_wait(), 1e-6);
    }

    #[test]
    fn erlang_c_is_stable_for_thousands_of_agents() {
        // References: direct formula evaluated at 60 digits (mpmath).
        for (agents, rho, expected) in [
            (500, 0.95, 0.176_963_831_964_531),
            (2000, 0.95, 0.013_406_437_303_190_343),
            (2000, 0.99, 0.546_074_117_897_237_2),
            (1000, 0.5, 3.304_830_255_502_684e-86),
        ] {
            let h = 300.0;
            let model = ErlangC::new(agents, rho * f64::from(agents) / h, h).unwrap();
            let p = model.prob_wait();
            assert!(p > 0.0 && p < 1.0 && model.mean_wait().is_finite());
            assert_rel(p, expected, 1e-10);
        }
    }

    #[test]
    fn erlang_c_approaches_halfin_whitt_limit() {
        // With a = c − β√c, P(W>0) → [1 + βΦ(β)/φ(β)]⁻¹ as c → ∞.
        fn phi(x: f64) -> f64 {
            (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        // Φ(β) = ½ + ∫₀^β φ, by Simpson's rule (error ~1e-15 here).
        fn big_phi(beta: f64) -> f64 {
            let n = 2000;
            let h = beta / f64::from(n);
            let inner: f64 = (1..n)
                .map(|i| {
                    let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
                    weight * phi(f64::from(i) * h)
                })
                .sum();
            0.5 + h / 3.0 * (phi(0.0) + inner + phi(beta))
        }
        let halfin_whitt = |beta: f64| 1.0 / (1.0 + beta * big_phi(beta) / phi(beta));
        let relative_gap = |agents: u32, beta: f64| {
            let c = f64::from(agents);
            let a = c - beta * c.sqrt();
            let exact = ErlangC::new(agents, a / 60.0, 60.0).unwrap().prob_wait();
            (exact - halfin_whitt(beta)).abs() / exact
        };
        for beta in [0.5, 1.0] {
            assert!(relative_gap(2000, beta) < 0.01, "beta {beta}");
            // The O(1/√c) error shrinks as c grows.
            assert!(relative_gap(2000, beta) < relative_gap(500, beta));
        }
        // At ρ = 0.95, c = 2000 (β ≈ 2.24, outside the QED regime) the limit
        // is only a rough guide: about 9 % off.
        assert!(relative_gap(2000, 100.0 / 2000.0_f64.sqrt()) < 0.15);
    }

    #[test]
    fn erlang_c_rejects_invalid_input() {
        assert_eq!(ErlangC::new(0, 1.0, 1.0), Err(AnalyticError::NoAgents));
        for (rate, h, parameter) in [
            (0.0, 10.0, Parameter::ArrivalRate),
            (-1.0, 10.0, Parameter::ArrivalRate),
            (0.1, 0.0, Parameter::MeanHandleTime),
            (0.1, -5.0, Parameter::MeanHandleTime),
        ] {
            assert_eq!(
                ErlangC::new(3, rate, h),
                Err(AnalyticError::NonPositive {
                    parameter,
                    value: if parameter == Parameter::ArrivalRate { rate } else { h },
                })
            );
        }
        assert!(matches!(
            ErlangC::new(3, f64::NAN, 10.0),
            Err(AnalyticError::NonFinite { parameter: Parameter::ArrivalRate, .. })
        ));
        assert_eq!(
            ErlangC::new(3, 0.1, f64::INFINITY),
            Err(AnalyticError::NonFinite { parameter: Parameter::MeanHandleTime, value: f64::INFINITY })
        );
        // ρ exactly 1 and above.
        assert_eq!(ErlangC::new(4, 0.4, 10.0), Err(AnalyticError::Unstable { occupancy: 1.0 }));
        assert!(matches!(
            ErlangC::new(4, 0.5, 10.0),
            Err(AnalyticError::Unstable { occupancy }) if occupancy > 1.0
        ));
        // Finite inputs whose product overflows.
        assert!(matches!(ErlangC::new(4, 1e200, 1e200), Err(AnalyticError::Unstable { .. })));
        assert_eq!(erlang_b(0, 1.0), Err(AnalyticError::NoAgents));
        assert_eq!(
            erlang_b(2, -1.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::OfferedLoad, value: -1.0 })
        );
        assert!(matches!(
            erlang_b(2, f64::NAN),
            Err(AnalyticError::NonFinite { parameter: Parameter::OfferedLoad, .. })
        ));
    }

    // ---- Erlang A -------------------------------------------------------

    #[test]
    fn erlang_a_matches_closed_form_references() {
        // Reference values from the Mandelbaum–Zeltyn closed form
        // (P(W>0) = A·E / (1 + (A−1)·E), A = x·e^y·γ(x, y)/y^x, x = cμ/θ,
        // y = λ/θ, E = Erlang B; P(Ab|W>0) = 1/(ρA) + 1 − 1/ρ), evaluated
        // with mpmath at 50 digits, i.e. independently of the chain solver.
        // (agents, λ, 1/μ, 1/θ, P(W>0), P(Ab))
        for (agents, lambda, h, patience, wait, abandon) in [
            (20, 0.1, 180.0, 120.0, 0.319_717_648_934_267_9, 0.057_147_376_630_262_75),
            (30, 0.2, 180.0, 300.0, 0.924_212_178_953_911, 0.173_610_578_969_292_4),
            (500, 2.0, 240.0, 60.0, 0.131_770_796_088_237_86, 0.007_654_170_858_468_082),
            (2000, 2000.0 * 1.05 / 240.0, 240.0, 180.0, 0.971_174_122_952_749_1, 0.047_842_516_137_348_31),
        ] {
            let model = ErlangA::new(agents, lambda, h, patience).unwrap();
            assert_rel(model.prob_wait(), wait, 1e-10);
            assert_rel(model.prob_abandon(), abandon, 1e-10);
            // P(Ab) = θ·E[W] for exponential patience.
            assert_rel(model.mean_wait(), abandon * patience, 1e-10);
        }
    }

    #[test]
    fn erlang_a_with_patience_equal_to_handle_time_is_poisson() {
        // When θ = μ every contact in the system leaves at rate μ whether
        // waiting or served, so the number in system is Poisson(a) (M/M/∞).
        // Then P(W>0) = P(N ≥ c) and E[Lq] = E[(N−c)⁺] = a − c + Σ_{k<c} (c−k) p_k.
        let a: f64 = 3.0;
        for agents in [1_u32, 2, 5, 8] {
            let p = |k: u32| (-a).exp() * poisson_term(a, k);
            let below: f64 = (0..agents).map(p).sum();
            let lq = a - f64::from(agents) + (0..agents).map(|k| f64::from(agents - k) * p(k)).sum::<f64>();
            let model = ErlangA::new(agents, a / 100.0, 100.0, 100.0).unwrap();
            assert_rel(model.prob_wait(), 1.0 - below, 1e-12);
            assert_rel(model.mean_queue_length(), lq, 1e-12);
            // θ/λ = 1/a.
            assert_rel(model.prob_abandon(), lq / a, 1e-12);
        }
        // c = 1 in closed form: P(W>0) = 1 − e^{−a}, P(Ab) = (a − 1 + e^{−a})/a.
        let model = ErlangA::new(1, a / 100.0, 100.0, 100.0).unwrap();
        assert_rel(model.prob_wait(), 1.0 - (-a).exp(), 1e-13);
        assert_rel(model.prob_abandon(), (a - 1.0 + (-a).exp()) / a, 1e-13);
    }

    #[test]
    fn erlang_a_matches_naive_truncated_chain() {
        // Small chain solved the obvious way, from state 0 with plain
        // products, truncated far beyond where weights matter.
        let (agents, lambda, h, patience) = (3_u32, 0.02, 120.0, 300.0);
        let (mu, theta) = (1.0 / h, 1.0 / patience);
        let mut weights = vec![1.0_f64];
        for n in 1..400_u32 {
            let death = f64::from(n.min(agents)) * mu + f64::from(n.saturating_sub(agents)) * theta;
            let last = *weights.last().unwrap();
            weights.push(last * lambda / death);
        }
        let total: f64 = weights.iter().sum();
        let wait: f64 = weights[agents as usize..].iter().sum::<f64>() / total;
        let lq: f64 = weights
            .iter()
            .enumerate()
            .skip(agents as usize)
            .map(|(n, w)| (n as f64 - f64::from(agents)) * w)
            .sum::<f64>()
            / total;
        let model = ErlangA::new(agents, lambda, h, patience).unwrap();
        assert_rel(model.prob_wait(), wait, 1e-13);
        assert_rel(model.mean_queue_length(), lq, 1e-13);
        assert_rel(model.prob_abandon(), theta * lq / lambda, 1e-13);
        assert_rel(model.mean_wait(), lq / lambda, 1e-13);
    }

    #[test]
    fn erlang_a_converges_to_erlang_c_without_abandonment() {
        for (agents, rho) in [(20_u32, 0.9), (200, 0.97), (2000, 0.99)] {
            let h = 180.0;
            let lambda = rho * f64::from(agents) / h;
            let c_model = ErlangC::new(agents, lambda, h).unwrap();
            let a_model = ErlangA::new(agents, lambda, h, 1e9).unwrap();
            assert_rel(a_model.prob_wait(), c_model.prob_wait(), 1e-5);
            assert_rel(a_model.mean_wait(), c_model.mean_wait(), 1e-5);
            assert_rel(a_model.mean_queue_length(), c_model.mean_queue_length(), 1e-5);
            assert_rel(a_model.occupancy(), c_model.occupancy(), 1e-5);
            assert!(a_model.prob_abandon() > 0.0 && a_model.prob_abandon() < 1e-5);
        }
    }

    #[test]
    fn erlang_a_is_valid_at_any_load_and_abandonment_grows_with_it() {
        let (agents, h, patience) = (25_u32, 200.0, 90.0);
        let mut last_abandon = 0.0;
        let mut last_wait = 0.0;
        for rho in [0.3, 0.6, 0.8, 0.95, 1.0, 1.1, 1.5, 3.0, 10.0] {
            let lambda = rho * f64::from(agents) / h;
            let model = ErlangA::new(agents, lambda, h, patience).unwrap();
            let (ab, wait) = (model.prob_abandon(), model.prob_wait());
            assert!(ab > 0.0 && ab < 1.0, "rho {rho}: P(Ab) = {ab}");
            // Far into overload P(W>0) rounds to exactly 1.
            assert!(wait > 0.0 && wait <= 1.0, "rho {rho}: P(W>0) = {wait}");
            assert!(ab > last_abandon && wait >= last_wait, "not increasing at rho {rho}");
            assert!(model.mean_wait().is_finite() && model.mean_wait() > 0.0);
            // Agents can serve at most cμ: λ(1 − P(Ab)) ≤ cμ.
            assert!(ab >= 1.0 - 1.0 / rho - 1e-12);
            // Flow balance, from independently accumulated sums: handled
            // rate λ(1 − P(Ab)) equals μ·E[busy agents].
            assert_rel(model.occupancy(), lambda * (1.0 - ab) * h / f64::from(agents), 1e-12);
            assert!(model.occupancy() < 1.0);
            last_abandon = ab;
            last_wait = wait;
        }
    }

    #[test]
    fn erlang_a_rejects_invalid_input() {
        assert_eq!(ErlangA::new(0, 0.1, 10.0, 10.0), Err(AnalyticError::NoAgents));
        assert_eq!(
            ErlangA::new(2, 0.0, 10.0, 10.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::ArrivalRate, value: 0.0 })
        );
        assert_eq!(
            ErlangA::new(2, 0.1, -1.0, 10.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::MeanHandleTime, value: -1.0 })
        );
        assert_eq!(
            ErlangA::new(2, 0.1, 10.0, 0.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::MeanPatience, value: 0.0 })
        );
        assert_eq!(
            ErlangA::new(2, 0.1, 10.0, f64::INFINITY),
            Err(AnalyticError::NonFinite { parameter: Parameter::MeanPatience, value: f64::INFINITY })
        );
        assert!(matches!(
            ErlangA::new(2, f64::NAN, 10.0, 10.0),
            Err(AnalyticError::NonFinite { parameter: Parameter::ArrivalRate, .. })
        ));
        // The offered load underflows to zero.
        assert_eq!(
            ErlangA::new(2, 1e-200, 1e-200, 10.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::OfferedLoad, value: 0.0 })
        );
        // Overloaded with a practically infinite patience: the queue would
        // settle around 10¹⁶ customers.
        assert!(matches!(ErlangA::new(1, 2.0, 1.0, 1e16), Err(AnalyticError::StateSpaceTooLarge { .. })));
    }

    // ---- Priorities -----------------------------------------------------

    #[test]
    fn priority_waits_conserve_fifo_mean_wait() {
        for (agents, rates, h) in [
            (10_u32, vec![0.01, 0.02, 0.015], 180.0),
            (1, vec![0.001, 0.002], 250.0),
            (300, vec![0.2, 0.5, 0.3, 0.1, 0.05], 250.0),
        ] {
            let waits = priority_mean_waits(agents, &rates, h).unwrap();
            let total: f64 = rates.iter().sum();
            let weighted: f64 = rates.iter().zip(&waits).map(|(r, w)| r * w).sum::<f64>() / total;
            let fifo = ErlangC::new(agents, total, h).unwrap();
            assert_rel(weighted, fifo.mean_wait(), 1e-12);
            // Higher priority (lower index) waits strictly less.
            assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
        }
    }

    #[test]
    fn priority_with_one_class_is_erlang_c() {
        let waits = priority_mean_waits(12, &[0.05], 200.0).unwrap();
        assert_eq!(waits.len(), 1);
        assert_rel(waits[0], ErlangC::new(12, 0.05, 200.0).unwrap().mean_wait(), 1e-13);
    }

    #[test]
    fn priority_single_server_matches_hand_computed_cobham() {
        // M/M/1 is M/G/1 with E[S²] = 2h², so Cobham's W₀ = λE[S²]/2 = λh².
        // h = 10 s, rates 0.02, 0.03, 0.04 /s: λ = 0.09, W₀ = 9 s,
        // σ = 0.2, 0.5, 0.9, so W = 9/(1·0.8), 9/(0.8·0.5), 9/(0.5·0.1).
        let waits = priority_mean_waits(1, &[0.02, 0.03, 0.04], 10.0).unwrap();
        assert_rel(waits[0], 11.25, 1e-12);
        assert_rel(waits[1], 22.5, 1e-12);
        assert_rel(waits[2], 180.0, 1e-12);
        // A top class with no traffic of its own waits just W₀ (the residual
        // handle time of a busy agent, times P(all busy)).
        let waits = priority_mean_waits(1, &[0.0, 0.09], 10.0).unwrap();
        assert_rel(waits[0], 9.0, 1e-12);
        assert_rel(waits[1], 90.0, 1e-12);
    }

    #[test]
    fn priority_rejects_invalid_input() {
        assert_eq!(priority_mean_waits(0, &[0.1], 10.0), Err(AnalyticError::NoAgents));
        assert_eq!(priority_mean_waits(2, &[], 10.0), Err(AnalyticError::NoClasses));
        assert_eq!(
            priority_mean_waits(2, &[0.01, -0.02], 10.0),
            Err(AnalyticError::Negative {
                parameter: Parameter::ClassArrivalRate { class: 1 },
                value: -0.02,
            })
        );
        assert_eq!(
            priority_mean_waits(2, &[f64::INFINITY], 10.0),
            Err(AnalyticError::NonFinite {
                parameter: Parameter::ClassArrivalRate { class: 0 },
                value: f64::INFINITY,
            })
        );
        assert_eq!(
            priority_mean_waits(2, &[0.0, 0.0], 10.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::TotalArrivalRate, value: 0.0 })
        );
        assert_eq!(
            priority_mean_waits(2, &[0.1], 0.0),
            Err(AnalyticError::NonPositive { parameter: Parameter::MeanHandleTime, value: 0.0 })
        );
        assert!(matches!(
            priority_mean_waits(2, &[0.1, 0.1], 10.0),
            Err(AnalyticError::Unstable { occupancy }) if occupancy >= 1.0
        ));
    }

    #[test]
    fn errors_have_readable_messages() {
        let err = ErlangC::new(4, 0.5, 10.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "occupancy 1.25 is not below 1: without abandonment the queue has no steady state"
        );
        let err = priority_mean_waits(2, &[0.01, -0.5], 10.0).unwrap_err();
        assert_eq!(err.to_string(), "arrival rate of class 1 must not be negative, got -0.5");
    }
}
