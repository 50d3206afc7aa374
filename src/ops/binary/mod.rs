//! Element-wise binary ops with NumPy broadcasting: out = a (op) b. Kernels: kernels/binary.ptx,
//! wgsl/binary.wgsl. The host merges dimensions so any broadcast reaches the kernel with rank <= 8 and
//! per-operand strides (0 along a broadcast dimension).
//!
//! Backward (then summed over the broadcast dimensions back to each input's shape):
//! add: (g, g); sub: (g, -g); mul: (g b, g a); div: (g / b, -g out / b); maximum: g to the larger
//! (ties to a), minimum likewise; eq: no gradient.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

pub const MAX_RANK: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// 1.0 where a == b, else 0.0.
    Eq,
    Maximum,
    Minimum,
    /// out = a broadcast to the output shape (b unused): the kernel behind `broadcast_to`.
    CopyA,
}

impl BinaryOp {
    /// The op's name in anomaly reports.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Eq => "eq",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::CopyA => "broadcast_to",
        }
    }

    fn code(self) -> u32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
            BinaryOp::Div => 3,
            BinaryOp::Eq => 4,
            BinaryOp::Maximum => 5,
            BinaryOp::Minimum => 6,
            BinaryOp::CopyA => 7,
        }
    }
}

kernel_params! {
    /// Mirrors `Params` of the binary kernel.
    pub struct Params for [("binary", "binary_fwd")] {
        pub n: u32,
        pub op: u32,
        pub rank: u32,
        pub pad: u32,
        pub shape: [u32; MAX_RANK],
        pub a_strides: [u32; MAX_RANK],
        pub b_strides: [u32; MAX_RANK],
    }
}

/// The broadcast shape of two shapes (NumPy rules).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::shape("broadcast", format!("{a:?} and {b:?} do not broadcast"))),
        };
    }
    Ok(out)
}

/// Strides of `shape` read as `out` (right-aligned; 0 along broadcast dimensions).
fn strides_in(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let off = out.len() - shape.len();
    let mut s = vec![0; out.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] != 1 || out[i + off] == 1 {
            s[i + off] = acc;
        }
        acc *= shape[i];
    }
    s
}

/// Output dimensions with the two operands' strides, adjacent dimensions merged where both operands
/// allow it, size-1 dimensions dropped.
pub(crate) fn layout(a: &[usize], b: &[usize], out: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (sa, sb) = (strides_in(a, out), strides_in(b, out));
    let (mut dims, mut ra, mut rb): (Vec<usize>, Vec<usize>, Vec<usize>) = (vec![], vec![], vec![]);
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        if let (Some(&d), Some(&pa), Some(&pb)) = (dims.last(), ra.last(), rb.last()) {
            let ok = |prev: usize, cur: usize| (prev == 0 && cur == 0) || (cur != 0 && prev == cur * out[i]);
            if ok(pa, sa[i]) && ok(pb, sb[i]) {
                let k = dims.len() - 1;
                dims[k] = d * out[i];
                ra[k] = sa[i];
                rb[k] = sb[i];
                continue;
            }
        }
        dims.push(out[i]);
        ra.push(sa[i]);
        rb.push(sb[i]);
    }
    (dims, ra, rb)
}

/// The kernel parameters of `op` on operands shaped `a` and `b` broadcast to `out`.
pub(crate) fn params(op: BinaryOp, a: &[usize], b: &[usize], out: &[usize]) -> Result<Params> {
    let (dims, sa, sb) = layout(a, b, out);
    if dims.len() > MAX_RANK {
        return Err(Error::shape("binary", format!("broadcast of {a:?} and {b:?} needs more than {MAX_RANK} dims")));
    }
    let numel = |s: &[usize]| s.iter().product::<usize>();
    let [n, ..] = u32s("binary", [numel(out), numel(a), numel(b)])?;
    let mut p = Params {
        n,
        op: op.code(),
        rank: dims.len() as u32,
        pad: 0,
        shape: [1; MAX_RANK],
        a_strides: [0; MAX_RANK],
        b_strides: [0; MAX_RANK],
    };
    for i in 0..dims.len() {
        [p.shape[i], p.a_strides[i], p.b_strides[i]] = u32s("binary", [dims[i], sa[i], sb[i]])?;
    }
    Ok(p)
}

fn run(op: BinaryOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Storage> {
    let n: usize = out_shape.iter().product();
    if let (Some(x), Some(y)) = (a.storage().cpu(), b.storage().cpu()) {
        let (dims, sa, sb) = layout(a.shape(), b.shape(), out_shape);
        return Ok(Storage::Cpu(cpu::forward(op, x, y, &dims, &sa, &sb)));
    }
    let p = params(op, a.shape(), b.shape(), out_shape)?;
    let l = Launch::elementwise("binary", "binary_fwd", &p, n);
    launch_out(a.device(), &l, &[a.storage(), b.storage()], n)
}

impl Tensor {
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        self.check_same_device(other)?;
        let shape = broadcast_shape(self.shape(), other.shape())?;
        let storage = run(op, self, other, &shape)?;
        Tensor::from_op(op.name(), storage, shape, self.device(), &[self, other], move |inp, out, g| {
            let (a, b) = (&inp[0], &inp[1]);
            let (ga, gb) = match op {
                BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
                BinaryOp::Sub => (Some(g.clone()), Some(g.neg()?)),
                BinaryOp::Mul => (Some(g.mul(b)?), Some(g.mul(a)?)),
                BinaryOp::Div => (Some(g.div(b)?), Some(g.mul(out)?.div(b)?.neg()?)),
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let to_a = out.binary(a, BinaryOp::Eq)?;
                    let to_b = to_a.affine(-1.0, 1.0)?;
                    (Some(g.mul(&to_a)?), Some(g.mul(&to_b)?))
                }
                BinaryOp::Eq | BinaryOp::CopyA => (None, None),
            };
            let ga = match ga {
                Some(t) if a.tracks() => Some(t.sum_to_shape(a.shape())?),
                _ => None,
            };
            let gb = match gb {
                Some(t) if b.tracks() => Some(t.sum_to_shape(b.shape())?),
                _ => None,
            };
            Ok(vec![ga, gb])
        })
    }

    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add)
    }
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub)
    }
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul)
    }
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div)
    }
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Maximum)
    }
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Minimum)
    }
    /// 1.0 where equal, 0.0 elsewhere (no gradient).
    pub fn eq_mask(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Eq)
    }

    /// This tensor repeated along broadcast dimensions to `shape`. Backward: sum back.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if broadcast_shape(self.shape(), shape)? != shape {
            return Err(Error::shape("broadcast_to", format!("{:?} -> {shape:?}", self.shape())));
        }
        let storage = run(BinaryOp::CopyA, self, self, shape)?;
        Tensor::from_op("broadcast_to", storage, shape.to_vec(), self.device(), &[self], |inp, _, g| {
            Ok(vec![Some(g.sum_to_shape(inp[0].shape())?)])
        })
    }

    /// Sums over the dimensions along which `shape` was broadcast to this tensor's shape.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self
            .rank()
            .checked_sub(shape.len())
            .ok_or_else(|| Error::shape("sum_to_shape", format!("{:?} -> {shape:?}", self.shape())))?;
        let mut t = self.clone();
        for d in 0..self.rank() {
            let target = if d < lead { 1 } else { shape[d - lead] };
            if target == 1 && t.shape()[d] != 1 {
                t = t.sum_keepdim(d as isize)?;
            } else if target != t.shape()[d] {
                return Err(Error::shape("sum_to_shape", format!("{:?} -> {shape:?}", self.shape())));
            }
        }
        t.reshape(shape)
    }
}
