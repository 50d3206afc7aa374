//! CPU reference of the soft-clip (maths: mod.rs). The expressions and their order match the kernels:
//! a = |x| (1 / B) + 1, y = x / a, ld = log(a) (-2).
use super::{Params, EDGE};

/// Packed [y (n values), ld (n values)].
pub fn forward(p: &Params, x: &[f32]) -> Vec<f32> {
    let n = x.len();
    let mut out = vec![0.0f32; 2 * n];
    let (y, ld) = out.split_at_mut(n);
    let edge = p.bound * EDGE;
    for ((y, ld), &v) in y.iter_mut().zip(ld.iter_mut()).zip(x) {
        if p.inverse == 0 {
            let a = v.abs() * p.inv_bound + 1.0;
            *y = v / a;
            *ld = a.ln() * -2.0;
        } else {
            let v = v.clamp(-edge, edge);
            let a = v.abs() * -p.inv_bound + 1.0;
            *y = v / a;
            *ld = a.ln() * -2.0;
        }
    }
    out
}

/// gx of the forward direction from the packed upstream gradient g = [gy, gld].
pub fn backward(p: &Params, x: &[f32], g: &[f32]) -> Vec<f32> {
    let n = x.len();
    let (gy, gld) = g.split_at(n);
    x.iter()
        .zip(gy.iter().zip(gld))
        .map(|(&v, (&gy, &gld))| {
            let a = v.abs() * p.inv_bound + 1.0;
            let sign = if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            };
            gy / (a * a) - 2.0 * gld * sign * p.inv_bound / a
        })
        .collect()
}
