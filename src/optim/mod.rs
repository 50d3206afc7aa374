//! Optimisers (Adam, AdamW, RAdam: one fused kernel, kernels/optim.ptx / wgsl/optim.wgsl), learning-rate
//! schedules and gradient-norm clipping. Updates run on the parameters' device; nothing is read back.
pub(crate) mod adam;
mod clip;
mod schedule;

pub use adam::{Adam, AdamConfig, AdamKind};
pub use clip::clip_grad_norm;
pub use schedule::{CosineLr, ExponentialLr, ReduceOnPlateau};
