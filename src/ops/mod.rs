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
use crate::error::Result;
use crate::tensor::Tensor;

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

/// CPU backward of a packed transform: (params, x, theta, packed g) -> (gx, gtheta).
type PackedBwd<P> = fn(&P, &[f32], &[f32], &[f32]) -> (Vec<f32>, Vec<f32>);

/// An element-wise transform of `x` with per-element parameters `theta` whose kernels follow the packed
/// convention of kernels/README.md (spline, sos): `<family>_fwd(x, theta, out)` writes y and the
/// log-determinant as one [2, ..x] buffer, and `<family>_bwd(x, theta, g, gx, gtheta)` takes the packed
/// upstream gradient. One packed output means the tape sees one op with both upstream gradients at once:
/// one backward launch, not two. Returns (y, ld), both shaped like `x`.
pub(crate) fn packed_transform<P: bytemuck::Pod + Send + Sync>(
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
    let packed = Tensor::from_op(storage, packed_shape, dev, &[x, theta], move |inp, _, g| {
        let (x, th) = (&inp[0], &inp[1]);
        let dev = x.device();
        let (gx, gth) = match (x.storage().cpu(), th.storage().cpu(), g.storage().cpu()) {
            (Some(xv), Some(tv), Some(gv)) => {
                let (a, b) = cpu_bwd(&p, xv, tv, gv);
                (Storage::Cpu(a), Storage::Cpu(b))
            }
            _ => {
                let (gx, gth) = (dev.alloc(x.numel())?, dev.alloc(th.numel())?);
                if n > 0 {
                    let l = Launch::elementwise(family, bwd, &p, n);
                    dev.launch(&l, &[x.storage(), th.storage(), g.storage()], &[&gx, &gth])?;
                }
                (gx, gth)
            }
        };
        Ok(vec![Some(Tensor::from_storage(gx, x.shape(), dev)?), Some(Tensor::from_storage(gth, th.shape(), dev)?)])
    });
    Ok((packed.narrow(0, 0, 1)?.reshape(x.shape())?, packed.narrow(0, 1, 1)?.reshape(x.shape())?))
}
