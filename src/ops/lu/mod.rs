//! The weight of an LU-decomposed invertible matrix (Kingma & Dhariwal 2018; nn::LuLinear), assembled in one
//! launch from its raw parameters, with its log-determinant:
//!
//!   L = unit lower triangular with L[k, m] = lower[k, m] for m < k   (other entries of `lower` are ignored)
//!   U = upper[m, j] for j > m, sign[m] exp(log_s[m]) on the diagonal  (other entries of `upper` are ignored)
//!   W = P L U,   ld = log|det W| = sum_m log_s[m]   (|det P| = |sign| = 1)
//!
//! P is the permutation buffer as a [D, D] 0/1 matrix; the kernels skip its zeros, so a row of W costs one
//! row of L U. Backward, with G = dW and A = L U (perm and sign are buffers and get no gradient):
//!   GA = P^T G;  dlower = (GA U^T) strictly below the diagonal;  dupper = (L^T GA) strictly above it;
//!   dlog_s[m] = (L^T GA)[m, m] sign[m] exp(log_s[m]) + g_ld.
//! Kernels: kernels/lu.ptx, wgsl/lu.wgsl; one thread per entry of W (and one for ld) forward, one per
//! (row, column) of the parameter gradients backward. The batch work (x W) stays one matmul.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the lu kernels.
    pub struct Params for [("lu", "lu_fwd"), ("lu", "lu_bwd")] {
        pub d: u32,
        pub pad0: u32,
        pub pad1: u32,
        pub pad2: u32,
    }
}

impl Params {
    /// D x D factors; the backward packs [dlower, dupper, dlog_s] into 2 D^2 + D values.
    pub(crate) fn new(d: usize) -> Result<Params> {
        let [_, d] = u32s("lu_weight", [2 * d * d + d, d])?;
        Ok(Params { d, pad0: 0, pad1: 0, pad2: 0 })
    }
}

/// (W [D, D], log|det W| as a scalar tensor) from lower, upper, perm [D, D] and log_s, sign [D];
/// differentiable in lower, upper and log_s.
pub fn lu_weight(
    lower: &Tensor,
    upper: &Tensor,
    log_s: &Tensor,
    perm: &Tensor,
    sign: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let d = log_s.numel();
    for t in [upper, log_s, perm, sign] {
        lower.check_same_device(t)?;
    }
    let square = [d, d];
    if lower.shape() != square
        || upper.shape() != square
        || perm.shape() != square
        || log_s.shape() != [d]
        || sign.shape() != [d]
    {
        return Err(Error::shape(
            "lu_weight",
            format!(
                "lower {:?}, upper {:?}, log_s {:?}, perm {:?}, sign {:?}",
                lower.shape(),
                upper.shape(),
                log_s.shape(),
                perm.shape(),
                sign.shape()
            ),
        ));
    }
    let p = Params::new(d)?;
    let dev = lower.device();
    let inputs = [lower, upper, log_s, perm, sign];
    let storage = match (
        lower.storage().cpu(),
        upper.storage().cpu(),
        log_s.storage().cpu(),
        perm.storage().cpu(),
        sign.storage().cpu(),
    ) {
        (Some(l), Some(u), Some(s), Some(pm), Some(sg)) => Storage::Cpu(cpu::forward(d, l, u, s, pm, sg)),
        _ => {
            let st: Vec<&Storage> = inputs.iter().map(|t| t.storage()).collect();
            launch_out(dev, &Launch::elementwise("lu", "lu_fwd", &p, d * d + 1), &st, d * d + 1)?
        }
    };
    let packed = Tensor::from_op("lu", storage, vec![d * d + 1], dev, &inputs, move |inp, _, g| {
        let dev = inp[0].device();
        let cpu: Option<Vec<&[f32]>> = inp.iter().map(|t| t.storage().cpu()).collect();
        let (gl, gu, gs) = match (cpu, g.storage().cpu()) {
            (Some(v), Some(gv)) => {
                let (a, b, c) = cpu::backward(d, v[0], v[1], v[2], v[3], v[4], gv);
                (Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c))
            }
            _ => {
                // One packed gradient buffer [dlower, dupper, dlog_s] keeps the kernel at 7 storage buffers
                // (WebGPU guarantees 8 per stage); split here, off the tape.
                let out = dev.alloc(2 * d * d + d)?;
                let mut st: Vec<&Storage> = inp.iter().map(|t| t.storage()).collect();
                st.push(g.storage());
                dev.launch(&Launch::elementwise("lu", "lu_bwd", &p, d * d), &st, &[&out])?;
                let all = Tensor::from_storage(out, &[2 * d * d + d], dev)?;
                let part = |o: usize, n: usize| all.narrow(0, o, n).and_then(|t| t.storage_owned());
                (part(0, d * d)?, part(d * d, d * d)?, part(2 * d * d, d)?)
            }
        };
        Ok(vec![
            Some(Tensor::from_storage(gl, &[d, d], dev)?),
            Some(Tensor::from_storage(gu, &[d, d], dev)?),
            Some(Tensor::from_storage(gs, &[d], dev)?),
            None,
            None,
        ])
    })?;
    Ok((packed.narrow(0, 0, d * d)?.reshape(&[d, d])?, packed.narrow(0, d * d, 1)?.reshape(&[])?))
}
