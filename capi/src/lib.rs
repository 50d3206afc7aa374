//! The C API of GalacticForge, declared in `include/gforge.h`: opaque handles to devices, star-particle
//! flows, the image autoencoder and HIGlow's conditional Glow, caller-owned buffers (row-major float32, lengths in elements as
//! size_t), and one error convention: every call that can fail returns a `gf_status` and leaves its message
//! for `gf_last_error()`. No panic crosses the boundary: every entry point runs under `catch_unwind`.
//!
//! Every `extern "C"` function is written with the C types its header declares (`*const c_char`,
//! `usize` for size_t, ...), and tests/capi.rs compares the two signature by signature.
mod ae;
mod args;
mod device;
mod flow;
mod glow;
mod status;
