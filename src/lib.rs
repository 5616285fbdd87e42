//! ssal: semi-supervised active learning with diversity-based sampling — experiments, sweeps and
//! statistics. The binary (`src/main.rs`) is a thin wrapper over [`cli`].
pub mod analysis;
pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod data;
pub mod embed;
pub mod experiment;
pub mod interrupt;
pub mod metrics;
pub mod models;
pub mod queries;
pub mod report;
pub mod result;
pub mod scheduler;
pub mod select;
pub mod stats;
pub mod store;
pub mod sweep;
pub mod train;
