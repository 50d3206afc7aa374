//! GalacticForge: conditional normalizing flows and autoencoders for astrophysics, on NVIDIA GPUs (CUDA,
//! hand-written PTX), any other GPU (WGPU, hand-written WGSL) and the CPU, with no deep-learning framework.
//!
//! Layers, bottom to top: `kernels/` and `wgsl/` (GPU kernels, embedded by build.rs) -> [`backend`]
//! (devices and buffers) -> [`ops`] (primitive ops: maths, CPU reference, GPU launch, backward rule)
//! -> [`autodiff`] (the tape) -> [`optim`] -> models, flows and the `gforge` command line.
pub mod alloc;
pub mod autodiff;
pub mod backend;
pub mod build_budget;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod flows;
pub mod io;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod npy;
pub mod ops;
pub mod optim;
pub mod pipeline;
#[cfg_attr(not(feature = "cli"), path = "plot_absent.rs")]
pub mod plot;
pub mod pool;
pub mod selftest;
mod sync;
pub mod tensor;

pub use autodiff::{backward, no_grad, Grads, Var};
pub use backend::Device;
pub use error::{Error, ErrorKind, Result};
pub use pool::on_pool;
pub use tensor::Tensor;
