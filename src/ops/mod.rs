//! The primitive ops. One folder per family: `mod.rs` holds the shape checks, the forward maths, the
//! backward rule right under it and the GPU launch; `cpu.rs` the CPU reference. The GPU kernels are
//! `kernels/<family>.ptx` and `wgsl/<family>.wgsl` (ABI in kernels/README.md). Composite ops (MLPs, flows)
//! are built from these, so a new backend is a bounded amount of work.
pub mod binary;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod copy;
pub mod coupling;
pub mod gather;
pub mod image_affine;
pub mod inv_conv1x1;
pub mod linear;
pub mod lu;
pub mod made;
pub mod matmul;
pub mod pad2d;
pub mod reduce;
pub mod softclip;
pub mod softmax;
pub mod sos;
pub mod spline;
pub mod squeeze;
pub mod unary;

use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Runs one GPU kernel that writes one new buffer of `out_len` values (an empty one launches nothing).
pub(crate) fn launch_out(dev: &Device, l: &Launch, inputs: &[&Storage], out_len: usize) -> Result<Storage> {
    let out = dev.alloc(out_len)?;
    dev.launch(l, inputs, &[&out])?;
    Ok(out)
}

/// The one conversion of sizes into kernel parameters. The kernels index with u32 (kernels/README.md,
/// "Sizes"), so every family builds its parameters through here from the element counts of the tensors
/// its kernel touches and the sizes and offsets within them: a tensor past 2^32 elements is refused with
/// this error before anything is allocated or launched, instead of wrapping.
pub(crate) fn u32s<const N: usize>(op: &'static str, sizes: [usize; N]) -> Result<[u32; N]> {
    let mut out = [0; N];
    for (o, n) in out.iter_mut().zip(sizes) {
        *o = u32::try_from(n).map_err(|_| {
            Error::shape(
                op,
                format!("size {n}: the GPU kernels index with 32 bits, at most {} elements per tensor", u32::MAX),
            )
        })?;
    }
    Ok(out)
}

/// Splits `shape` around `axis` into (outer, n, inner) for kernels that work along one axis.
pub(crate) fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// CPU backward of a packed transform: (params, x, theta, packed g) -> (gx, gtheta).
type PackedBwd<P> = fn(&P, &[f32], &[f32], &[f32]) -> (Vec<f32>, Vec<f32>);

/// An element-wise transform of `x` with per-element parameters `theta` whose kernels follow the packed
/// convention of kernels/README.md (spline, sos): `<family>_fwd(x, theta, out)` writes y and the
/// log-determinant as one [2, ..x] buffer, and `<family>_bwd(x, theta, g, gx, gtheta)` takes the packed
/// upstream gradient. One packed output means the tape sees one op with both upstream gradients at once:
/// one backward launch, not two. Returns (y, ld), both shaped like `x`.
pub(crate) fn packed_transform<P: crate::kernels::KernelParams + Send + Sync>(
    x: &Tensor,
    theta: &Tensor,
    p: P,
    entries: (&'static str, &'static str, &'static str),
    cpu_fwd: fn(&P, &[f32], &[f32]) -> Vec<f32>,
    cpu_bwd: PackedBwd<P>,
) -> Result<(Tensor, Tensor)> {
    let (family, fwd, bwd) = entries;
    let n = x.numel();
    let dev = x.device();
    let storage = match (x.storage().cpu(), theta.storage().cpu()) {
        (Some(xv), Some(th)) => Storage::Cpu(cpu_fwd(&p, xv, th)),
        _ => launch_out(dev, &Launch::elementwise(family, fwd, &p, n), &[x.storage(), theta.storage()], 2 * n)?,
    };
    let mut packed_shape = vec![2];
    packed_shape.extend_from_slice(x.shape());
    let packed = Tensor::from_op(family, storage, packed_shape, dev, &[x, theta], move |inp, _, g| {
        let (x, th) = (&inp[0], &inp[1]);
        let dev = x.device();
        let (gx, gth) = match (x.storage().cpu(), th.storage().cpu(), g.storage().cpu()) {
            (Some(xv), Some(tv), Some(gv)) => {
                let (a, b) = cpu_bwd(&p, xv, tv, gv);
                (Storage::Cpu(a), Storage::Cpu(b))
            }
            _ => {
                let (gx, gth) = (dev.alloc(x.numel())?, dev.alloc(th.numel())?);
                let l = Launch::elementwise(family, bwd, &p, n);
                dev.launch(&l, &[x.storage(), th.storage(), g.storage()], &[&gx, &gth])?;
                (gx, gth)
            }
        };
        Ok(vec![Some(Tensor::from_storage(gx, x.shape(), dev)?), Some(Tensor::from_storage(gth, th.shape(), dev)?)])
    })?;
    Ok((packed.narrow(0, 0, 1)?.reshape(x.shape())?, packed.narrow(0, 1, 1)?.reshape(x.shape())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T>(what: &str, r: Result<T>) {
        match r {
            Err(e) => assert!(e.to_string().contains("index with 32 bits"), "{what}: {e}"),
            Ok(_) => panic!("{what}: a launch past 2^32 elements was accepted"),
        }
    }

    /// Every family's parameters for a launch past 2^32 elements are refused by the one conversion. Nothing is
    /// allocated: the parameters are built from sizes alone, as the ops do before allocating.
    #[test]
    fn sizes_past_u32_are_refused_by_every_family() {
        const BIG: usize = 1 << 32;
        refused("unary", unary::UnaryOp::Exp.params(BIG));
        let out = [1 << 17, 1 << 16];
        refused("binary", binary::params(binary::BinaryOp::Add, &[1 << 17, 1], &[1, 1 << 16], &out));
        refused("reduce", reduce::params(reduce::ReduceOp::Sum, 1 << 20, 1 << 12, 1));
        refused("softmax", softmax::params(1 << 20, 1 << 12, 1));
        refused("matmul", matmul::params((1, 1 << 17, 1 << 16, 1), (false, false), (0, 0)));
        refused("matmul batch", matmul::params((1 << 20, 64, 64, 1), (false, false), (64, 64)));
        refused("made", made::params((1 << 17, 1 << 16, 1), (false, false), (true, false), true));
        refused("slice", copy::SliceParams::new((1, 1 << 31), (4, 0), (2, 0), 2));
        refused("transpose", copy::TransposeParams::new(1 << 10, 1 << 12, 1 << 10));
        refused("fill", copy::FillParams::new(BIG, 0.0));
        refused("gather", gather::Params::new(1 << 16, 2, 1 << 16, 2));
        let conv = |op, x, y| conv2d::Params::new(op, x, y, [3, 3, 1, 1], true);
        refused("conv2d", conv("conv2d", [1 << 10, 1, 1 << 11, 1 << 11], [1, 1 << 11, 1 << 11]));
        refused("conv2d weight", conv("conv2d", [1, 1 << 16, 4, 4], [1 << 16, 2, 2]));
        refused("conv_transpose2d", conv("conv_transpose2d", [1, 1, 4, 4], [1 << 16, 1 << 9, 1 << 9]));
        refused("inv_conv1x1", inv_conv1x1::Params::new(1 << 10, 1 << 8, 1 << 14, false));
        refused("image_affine", image_affine::Params::new([1 << 10, 4, 1 << 20, 2], 1, (0, 2), (0.5, 0.0), false));
        refused("pad2d", pad2d::Params::new(1, 1, 1, 1 << 15, 0.0));
        refused("squeeze", squeeze::Params::new([1 << 10, 1 << 10, 1 << 6, 1 << 6]));
        refused("coupling", coupling::Params::new(1 << 29, 9, 5, true, false, 0.0));
        refused("lu", lu::Params::new(1 << 16));
        refused("softclip", softclip::Params::new(1 << 31, false, 1.0));
        refused("spline", spline::SplineCfg::default().params(1 << 28, false));
        refused("sos", sos::SosCfg::default().params(1 << 29, false));
        let adam = crate::optim::AdamConfig::new(crate::optim::AdamKind::Adam, 1e-3);
        refused("adam", crate::optim::Adam::params(&adam, BIG, 1));
        // Up to 2^32 - 1 elements fit.
        assert!(unary::UnaryOp::Exp.params(BIG - 1).is_ok());
        assert!(matmul::params((1, 1 << 16, (1 << 16) - 1, 1), (false, false), (0, 0)).is_ok());
    }
}
