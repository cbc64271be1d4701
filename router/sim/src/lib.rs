//! Vuoro's contact-centre simulator.
//!
//! For now this crate holds only [`analytic`]: closed-form and exactly
//! solvable queueing models (Erlang B/C, Erlang A, multi-server
//! non-preemptive priorities). They are the ground truth the future
//! discrete-event simulator is checked against: when the simulator is run
//! under the same assumptions (Poisson arrivals, exponential handle times and
//! patience) its long-run averages must converge to these figures.

pub mod analytic;
