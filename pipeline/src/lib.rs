//! ThermoAlert's stream processing.
//!
//! The core (always built, also for WASM) is pure: [`model`] types, [`parse`] of raw
//! messages, [`rules`] and [`episode`]s, the [`processor`] that ties them together, the
//! [`simulate`]d sensors, and the [`query`] parsers of the pages' URLs and the JSON API. It
//! performs no I/O and reads no clock; callers hand in time.
//!
//! I/O adapters sit behind features so the web app can share the core without them:
//! `kafka` (rdkafka source, sinks, embedded mock broker), `archive` / `hdfs` (the archive
//! writer with its local-directory and HDFS backends), `index` (the SQLite index and
//! history queries) and `runner` (the `runner` loop that ties them together: consume,
//! process, flush, deliver, commit, rebalance). The loop reaches the dashboard through the
//! [`live::LiveView`] trait.

pub mod downsample;
pub mod duration;
pub mod episode;
mod exact_f64;
pub mod live;
pub mod model;
pub mod notify;
pub mod offline;
pub mod parse;
pub mod processor;
pub mod query;
pub mod rules;
pub mod simulate;
pub mod topics;
pub mod window;

#[cfg(feature = "archive")]
pub mod archive;
#[cfg(any(feature = "archive", feature = "kafka"))]
pub mod clock;
#[cfg(feature = "index")]
pub mod history;
#[cfg(feature = "index")]
pub mod index;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "runner")]
pub mod runner;
#[cfg(feature = "index")]
pub mod upkeep;
