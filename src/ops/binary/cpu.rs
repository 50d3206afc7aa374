//! CPU reference of the broadcasting binary ops.
use super::BinaryOp;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

pub fn f(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Eq => (a == b) as u8 as f32,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::CopyA => a,
    }
}

/// `dims`, `sa`, `sb`: merged output dimensions and operand strides (see `layout`).
pub fn forward(op: BinaryOp, a: &[f32], b: &[f32], dims: &[usize], sa: &[usize], sb: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let mut out = vec![0.0; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        // Coordinates of the chunk's first element, then an odometer.
        let mut coord = vec![0; dims.len()];
        let mut rem = c * CHUNK;
        for d in (0..dims.len()).rev() {
            coord[d] = rem % dims[d];
            rem /= dims[d];
        }
        let mut ia: usize = coord.iter().zip(sa).map(|(c, s)| c * s).sum();
        let mut ib: usize = coord.iter().zip(sb).map(|(c, s)| c * s).sum();
        for o in out.iter_mut() {
            *o = f(op, a[ia], b[ib]);
            for d in (0..dims.len()).rev() {
                coord[d] += 1;
                ia += sa[d];
                ib += sb[d];
                if coord[d] < dims[d] {
                    break;
                }
                ia -= sa[d] * dims[d];
                ib -= sb[d] * dims[d];
                coord[d] = 0;
            }
        }
    });
    out
}
