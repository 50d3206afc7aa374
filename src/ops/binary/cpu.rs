//! CPU reference of the broadcasting binary ops.
use super::BinaryOp;
use rayon::prelude::*;

// Large enough that a [1024, 128] activation is two tasks (one per core here): smaller chunks cost more
// in thread wake-ups than they gain.
const CHUNK: usize = 1 << 16;

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

/// Runs `body` with `op` as a compile-time closure, so each op's inner loop is monomorphised and
/// vectorised instead of matching on the op per element.
macro_rules! with_op {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |a: f32, b: f32| a + b;
                $body
            }
            BinaryOp::Sub => {
                let $f = |a: f32, b: f32| a - b;
                $body
            }
            BinaryOp::Mul => {
                let $f = |a: f32, b: f32| a * b;
                $body
            }
            BinaryOp::Div => {
                let $f = |a: f32, b: f32| a / b;
                $body
            }
            other => {
                let $f = move |a: f32, b: f32| f(other, a, b);
                $body
            }
        }
    };
}

/// Fast path: the innermost merged dimension is contiguous or broadcast (stride 1 or 0) in both operands,
/// so the output is a sequence of rows, each one tight loop.
fn rows<F: Fn(f32, f32) -> f32 + Sync>(
    f: F,
    a: &[f32],
    b: &[f32],
    dims: &[usize],
    sa: &[usize],
    sb: &[usize],
) -> Vec<f32> {
    let r = dims.len() - 1;
    let (len, (da, db)) = (dims[r], (sa[r], sb[r]));
    let n: usize = dims.iter().product();
    let mut out = vec![0.0; n];
    let rows_per_task = (CHUNK / len.max(1)).max(1);
    out.par_chunks_mut(rows_per_task * len).enumerate().for_each(|(c, chunk)| {
        for (k, o) in chunk.chunks_mut(len).enumerate() {
            // Offsets of this row in a and b from its outer coordinates.
            let mut rem = c * rows_per_task + k;
            let (mut ia, mut ib) = (0, 0);
            for d in (0..r).rev() {
                let cd = rem % dims[d];
                rem /= dims[d];
                ia += cd * sa[d];
                ib += cd * sb[d];
            }
            match (da, db) {
                (1, 1) => {
                    o.iter_mut().zip(&a[ia..ia + len]).zip(&b[ib..ib + len]).for_each(|((o, &x), &y)| *o = f(x, y))
                }
                (1, 0) => o.iter_mut().zip(&a[ia..ia + len]).for_each(|(o, &x)| *o = f(x, b[ib])),
                (0, 1) => o.iter_mut().zip(&b[ib..ib + len]).for_each(|(o, &y)| *o = f(a[ia], y)),
                _ => o.iter_mut().for_each(|o| *o = f(a[ia], b[ib])),
            }
        }
    });
    out
}

/// `dims`, `sa`, `sb`: merged output dimensions and operand strides (see `layout`).
pub fn forward(op: BinaryOp, a: &[f32], b: &[f32], dims: &[usize], sa: &[usize], sb: &[usize]) -> Vec<f32> {
    if dims.contains(&0) {
        return Vec::new();
    }
    if let (Some(&x), Some(&y)) = (sa.last(), sb.last()) {
        if x <= 1 && y <= 1 {
            return with_op!(op, |g| rows(g, a, b, dims, sa, sb));
        }
    }
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
