//! CPU reference of the reductions; sums accumulate in f64 so the reference is more exact than the GPUs.
use super::ReduceOp;
use rayon::prelude::*;

pub fn reduce_one(op: ReduceOp, v: impl Iterator<Item = f32> + Clone, n: usize) -> f32 {
    match op {
        ReduceOp::Sum => v.map(f64::from).sum::<f64>() as f32,
        ReduceOp::Mean => (v.map(f64::from).sum::<f64>() / n as f64) as f32,
        ReduceOp::Max => v.fold(f32::NEG_INFINITY, f32::max),
        ReduceOp::LogSumExp => {
            let m = v.clone().fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY {
                return m;
            }
            let s: f64 = v.map(|x| f64::from(x - m).exp()).sum();
            m + s.ln() as f32
        }
    }
}

pub fn forward(op: ReduceOp, x: &[f32], outer: usize, n: usize, inner: usize) -> Vec<f32> {
    let mut y = vec![0.0; outer * inner];
    y.par_chunks_mut(inner.max(1)).enumerate().for_each(|(o, yo)| {
        let base = o * n * inner;
        for (r, y) in yo.iter_mut().enumerate() {
            let col = (0..n).map(|j| x[base + j * inner + r]);
            *y = reduce_one(op, col, n);
        }
    });
    y
}
