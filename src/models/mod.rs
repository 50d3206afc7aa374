//! Models that are not flows: GalacticForge's galaxy-image autoencoder.
mod autoencoder;

pub use autoencoder::{AeConfig, Autoencoder};
