//! Squeeze (2x2 space-to-depth, RealNVP/Glow) and its inverse, as HIGlow's Squeeze orders the channels:
//!
//! ```text
//! squeeze:   y[n, 4c + 2i + j, a, b] = x[n, c, 2a + i, 2b + j]      x [N, C, H, W] -> y [N, 4C, H/2, W/2]
//! unsqueeze: the inverse permutation                                y -> x
//! ```
//! A permutation: log-determinant 0, and each direction's backward is the other direction.
//! Kernels: kernels/squeeze.ptx, wgsl/squeeze.wgsl (`squeeze_fwd`, `unsqueeze_fwd`), one thread per output
//! element; both read `Params` in the full-resolution geometry (C, H, W of x).
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the squeeze kernels: x's [batch, c, h, w] (h, w even).
    #[derive(Default)]
    pub struct Params for [("squeeze", "squeeze_fwd"), ("squeeze", "unsqueeze_fwd")] {
        pub batch: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
    }
}

impl Params {
    /// The full-resolution side [batch, c, h, w] of either direction.
    pub(crate) fn new([batch, c, h, w]: [usize; 4]) -> Result<Params> {
        let [_, batch, c, h, w] = u32s("squeeze", [batch * c * h * w, batch, c, h, w])?;
        Ok(Params { batch, c, h, w })
    }
}

fn run(p: Params, x: &Tensor, to_depth: bool) -> Result<Tensor> {
    let n = x.numel();
    let storage = match x.storage().cpu() {
        Some(xv) => Storage::Cpu(if to_depth { cpu::squeeze(&p, xv) } else { cpu::unsqueeze(&p, xv) }),
        None => {
            let entry = if to_depth { "squeeze_fwd" } else { "unsqueeze_fwd" };
            launch_out(x.device(), &Launch::elementwise("squeeze", entry, &p, n), &[x.storage()], n)?
        }
    };
    let (b, c, h, w) = (p.batch as usize, p.c as usize, p.h as usize, p.w as usize);
    let shape = if to_depth { vec![b, 4 * c, h / 2, w / 2] } else { vec![b, c, h, w] };
    Tensor::from_op("squeeze", storage, shape, x.device(), &[x], move |_, _, g| Ok(vec![Some(run(p, g, !to_depth)?)]))
}

impl Tensor {
    /// [N, C, H, W] -> [N, 4C, H/2, W/2] (H and W even).
    pub fn squeeze2x2(&self) -> Result<Tensor> {
        let s = self.shape();
        if self.rank() != 4 || !s[2].is_multiple_of(2) || !s[3].is_multiple_of(2) {
            return Err(Error::shape("squeeze", format!("needs [N, C, H, W] with H, W even, got {s:?}")));
        }
        run(Params::new([s[0], s[1], s[2], s[3]])?, self, true)
    }

    /// [N, 4C, H, W] -> [N, C, 2H, 2W], the inverse of [`Tensor::squeeze2x2`].
    pub fn unsqueeze2x2(&self) -> Result<Tensor> {
        let s = self.shape();
        if self.rank() != 4 || !s[1].is_multiple_of(4) {
            return Err(Error::shape("unsqueeze", format!("needs [N, 4C, H, W], got {s:?}")));
        }
        run(Params::new([s[0], s[1] / 4, 2 * s[2], 2 * s[3]])?, self, false)
    }
}
