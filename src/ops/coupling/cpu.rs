//! CPU reference of the coupling transform (maths: mod.rs; ABI: kernels/README.md, "coupling"). One row at a
//! time in f32, the log-det summed in feature order like the kernels.
use super::{Params, PASS};
use rayon::prelude::*;

/// Rows per rayon task: a row is ~D exps, so only large batches are worth splitting.
const CHUNK: usize = 4096;

/// The log-scale from its raw value: C tanh(r / C) when clamped.
fn log_scale(p: &Params, r: f32) -> f32 {
    if p.clamp > 0.0 {
        p.clamp * (r * p.inv_clamp).tanh()
    } else {
        r
    }
}

/// (shift, raw log-scale) of feature column `c` in a theta row.
fn params(p: &Params, th: &[f32], c: usize) -> (f32, f32) {
    (th[c], if p.affine != 0 { th[p.p as usize + c] } else { 0.0 })
}

/// Packed output [y (rows * d values), ld (rows values)].
pub fn forward(p: &Params, x: &[f32], theta: &[f32], slot: &[u32]) -> Vec<f32> {
    let (rows, d) = (p.rows as usize, p.d as usize);
    let w = theta.len() / rows.max(1);
    let mut out = vec![0.0f32; rows * d + rows];
    let (y, ld) = out.split_at_mut(rows * d);
    let (affine, inverse) = (p.affine != 0, p.inverse != 0);
    let row = |(b, (yr, l)): (usize, (&mut [f32], &mut f32))| {
        let (xr, th) = (&x[b * d..(b + 1) * d], &theta[b * w..(b + 1) * w]);
        let mut acc = 0.0f32;
        for i in 0..d {
            if slot[i] == PASS {
                yr[i] = xr[i];
                continue;
            }
            let (t, r) = params(p, th, slot[i] as usize);
            yr[i] = match (affine, inverse) {
                (false, false) => xr[i] + t,
                (false, true) => xr[i] - t,
                (true, false) => {
                    let s = log_scale(p, r);
                    acc += s;
                    xr[i] * s.exp() + t
                }
                (true, true) => {
                    let s = log_scale(p, r);
                    acc -= s;
                    (xr[i] - t) * (-s).exp()
                }
            };
        }
        *l = acc;
    };
    if d == 0 {
        return out;
    }
    if rows > CHUNK {
        y.par_chunks_mut(d).zip(ld.par_iter_mut()).enumerate().with_min_len(CHUNK).for_each(row);
    } else {
        y.chunks_mut(d).zip(ld.iter_mut()).enumerate().for_each(row);
    }
    out
}

/// (gx, gtheta) of the forward direction from the packed upstream gradient g = [gy, gld].
pub fn backward(p: &Params, x: &[f32], theta: &[f32], slot: &[u32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (rows, d) = (p.rows as usize, p.d as usize);
    let w = theta.len() / rows.max(1);
    let (gy, gld) = g.split_at(rows * d);
    let mut gx = vec![0.0f32; rows * d];
    let mut gth = vec![0.0f32; rows * w];
    let affine = p.affine != 0;
    let pc = p.p as usize;
    let row = |(b, (gxr, gtr)): (usize, (&mut [f32], &mut [f32]))| {
        let (xr, th, gyr) = (&x[b * d..(b + 1) * d], &theta[b * w..(b + 1) * w], &gy[b * d..(b + 1) * d]);
        for i in 0..d {
            if slot[i] == PASS {
                gxr[i] = gyr[i];
                continue;
            }
            let c = slot[i] as usize;
            gtr[c] = gyr[i];
            if !affine {
                gxr[i] = gyr[i];
                continue;
            }
            let r = th[pc + c];
            let e = log_scale(p, r).exp();
            gxr[i] = gyr[i] * e;
            let gs = gyr[i] * xr[i] * e + gld[b];
            gtr[pc + c] = if p.clamp > 0.0 {
                let u = (r * p.inv_clamp).tanh();
                gs * (1.0 - u * u)
            } else {
                gs
            };
        }
    };
    if d > 0 && w > 0 {
        if rows > CHUNK {
            gx.par_chunks_mut(d).zip(gth.par_chunks_mut(w)).enumerate().with_min_len(CHUNK).for_each(row);
        } else {
            gx.chunks_mut(d).zip(gth.chunks_mut(w)).enumerate().for_each(row);
        }
    } else if d > 0 {
        gx.copy_from_slice(gy);
    }
    (gx, gth)
}
