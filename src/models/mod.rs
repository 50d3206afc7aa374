//! Models over images: GalacticForge's galaxy-image autoencoder and HIGlow's conditional Glow.
mod autoencoder;
mod glow;

pub use autoencoder::{AeConfig, Autoencoder};
pub use glow::{CondGlow, GlowConfig, GlowPrior};
