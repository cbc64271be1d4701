//! Vuoro's contact-centre simulator: what-if staffing in virtual time on the real engine.
//!
//! A [scenario](scenario) (pools, agents with shifts, traffic, the routing policy) is run as a
//! discrete-event simulation ([`sim`]) that drives the real [`vuoro_engine::Engine`] in virtual
//! milliseconds, for several independent replications ([`run`]); the figures come with 95 %
//! confidence intervals ([`stats`], [`report`]) and a chart over the day ([`chart`]).
//!
//! The simulator is validated against queueing theory ([`check`]): single-skill scenarios whose
//! answers are known in closed form ([`analytic`]: Erlang C, Erlang A, M/M/c with non-preemptive
//! priorities) must reproduce them within their confidence intervals.
//!
//! The `vuoro simulate` command is [`cli`]; the file format and how to read the output are in
//! `docs/simulate.md`.

pub mod analytic;
pub mod chart;
pub mod check;
pub mod cli;
pub mod dist;
pub mod model;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod stats;
