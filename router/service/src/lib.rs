//! Vuoro's router service: the gRPC API over Kafka around the routing engine.
//!
//! Writes enter through [`grpc`] and become inputs on Kafka ([`kafka`]); the [`shard`] applies
//! them to the engine and appends every decision to the partition's decision log; [`delivery`]
//! reads the log back, so decisions take effect only once they are durable. [`serve`] wires it
//! all together with [`config`], [`metrics`] and the [`admin_http`] port.

pub mod admin_http;
pub mod config;
pub mod convert;
pub mod delivery;
pub mod directory;
pub mod domain;
pub mod grpc;
pub mod kafka;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod shard;
pub mod snapshots;
