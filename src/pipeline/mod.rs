//! The star-flow pipeline: data preparation (load, clean, conditions, standardise, split), training with
//! checkpoints and resume, streaming sampling in physical units, and evaluation (NLL, exact KL, MMD,
//! Wasserstein distances, plots); the image autoencoder's training, encoding and linear probes. The
//! `gforge flow ...`, `gforge ae ...` and `gforge forge` commands are thin wrappers. HIGlow's stages:
//! [`glow`] (training, sampling) and [`hi_eval`] (held-out NLL, exact KL, P(k), parameter inference).
pub mod ae;
mod epoch;
pub mod eval;
pub mod forge;
pub mod glow;
pub mod hi_eval;
pub mod higlow;
pub mod interop;
pub mod interrupt;
pub mod model;
pub mod prepare;
pub mod probe;
#[cfg_attr(not(feature = "cli"), path = "progress_absent.rs")]
mod progress;
pub mod sample;
pub mod train;

pub use model::{build_flow, Conditions, FlowSpec, SavedModel};
pub use prepare::{prepare, PrepareConfig, Prepared};
pub use train::{train, TrainConfig, TrainSummary};
