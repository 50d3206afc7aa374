//! CPU reference of softmax along an axis of [outer, n, inner].
use rayon::prelude::*;

pub fn forward(x: &[f32], outer: usize, n: usize, inner: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), outer * n * inner);
    let mut y = vec![0.0; x.len()];
    y.par_chunks_mut((n * inner).max(1)).enumerate().for_each(|(o, yo)| {
        let xo = &x[o * n * inner..(o + 1) * n * inner];
        for r in 0..inner {
            let m = (0..n).map(|j| xo[j * inner + r]).fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = (0..n).map(|j| f64::from(xo[j * inner + r] - m).exp()).sum();
            for j in 0..n {
                yo[j * inner + r] = (f64::from(xo[j * inner + r] - m).exp() / s) as f32;
            }
        }
    });
    y
}
