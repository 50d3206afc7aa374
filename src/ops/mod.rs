//! The primitive ops. One folder per family: `mod.rs` holds the shape checks, the forward maths, the
//! backward rule right under it and the GPU launch; `cpu.rs` the CPU reference. The GPU kernels are
//! `kernels/<family>.ptx` and `wgsl/<family>.wgsl` (ABI in kernels/README.md). Composite ops (MLPs, flows)
//! are built from these, so a new backend is a bounded amount of work.
pub mod binary;
pub mod copy;
pub mod gather;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod sos;
pub mod spline;
pub mod unary;

use crate::backend::{Device, Launch, Storage};
use crate::error::Result;

/// Runs one GPU kernel that writes one new buffer of `out_len` values.
pub(crate) fn launch_out(dev: &Device, l: &Launch, inputs: &[&Storage], out_len: usize) -> Result<Storage> {
    let out = dev.alloc(out_len)?;
    if out_len > 0 {
        dev.launch(l, inputs, &[&out])?;
    }
    Ok(out)
}

/// Splits `shape` around `axis` into (outer, n, inner) for kernels that work along one axis.
pub(crate) fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}
