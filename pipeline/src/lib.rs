//! ThermoAlert's stream processing.
//!
//! The core (always built, also for WASM) is pure: [`model`] types, [`parse`] of raw
//! messages, [`rules`] and [`episode`]s, the [`processor`] that ties them together, and the
//! [`simulate`]d sensors. It performs no I/O and reads no clock; callers hand in time.
//!
//! I/O adapters sit behind features so the web app can share the core without them:
//! `kafka` (rdkafka source, sinks, embedded mock broker, dead letters), `archive` / `hdfs` (the archive
//! writer with its local-directory and HDFS backends) and `index` (the SQLite index and
//! history queries).

pub mod downsample;
pub mod episode;
mod exact_f64;
pub mod model;
pub mod offline;
pub mod parse;
pub mod processor;
pub mod rules;
pub mod simulate;
pub mod topics;
pub mod window;

#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "kafka")]
pub mod dead_letter;
#[cfg(feature = "index")]
pub mod history;
#[cfg(feature = "index")]
pub mod index;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "index")]
pub mod upkeep;
