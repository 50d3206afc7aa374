//! CPU reference of the image affine transforms (maths: mod.rs). Expressions in the kernels' order.
use super::Params;
use rayon::prelude::*;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Per-sample geometry: (channels, transformed channels, theta channels, pixels).
fn dims(p: &Params) -> (usize, usize, usize, usize) {
    let (c, pass, hw) = (p.c as usize, p.pass as usize, p.hw as usize);
    (c, c - pass, 2 * (c - pass), hw)
}

/// Packed [y (batch c hw), ls (batch c' hw)].
pub fn forward(p: &Params, x: &[f32], theta: &[f32]) -> Vec<f32> {
    let (c, ct, tc, hw) = dims(p);
    let (batch, pass) = (p.batch as usize, p.pass as usize);
    let mut out = vec![0.0f32; batch * (c + ct) * hw];
    let (y, ls) = out.split_at_mut(batch * c * hw);
    let (r_off, t_off) = (p.r_off as usize, p.t_off as usize);
    let (inverse, floor) = (p.inverse != 0, p.lo);
    let sample = |(n, (yn, lsn)): (usize, (&mut [f32], &mut [f32]))| {
        let xn = &x[n * c * hw..(n + 1) * c * hw];
        let th = &theta[n * tc * hw..(n + 1) * tc * hw];
        yn[..pass * hw].copy_from_slice(&xn[..pass * hw]);
        for j in 0..ct {
            let (xs, ys) = (&xn[(pass + j) * hw..(pass + j + 1) * hw], &mut yn[(pass + j) * hw..(pass + j + 1) * hw]);
            let (rs, ts) = (&th[(r_off + j) * hw..(r_off + j + 1) * hw], &th[(t_off + j) * hw..(t_off + j + 1) * hw]);
            let lss = &mut lsn[j * hw..(j + 1) * hw];
            for q in 0..hw {
                let (xv, r, t) = (xs[q], rs[q], ts[q]);
                if p.kind == 0 {
                    let s = r.clamp(p.lo, p.hi);
                    if inverse {
                        ys[q] = (xv - t) * (-s).exp();
                        lss[q] = -s;
                    } else {
                        ys[q] = xv * s.exp() + t;
                        lss[q] = s;
                    }
                } else {
                    let s = (1.0 - floor) * sigmoid(r + 2.0) + floor;
                    if inverse {
                        ys[q] = xv / s - t;
                        lss[q] = -s.ln();
                    } else {
                        ys[q] = (xv + t) * s;
                        lss[q] = s.ln();
                    }
                }
            }
        }
    };
    if c * hw > 0 {
        y.par_chunks_mut(c * hw).zip(ls.par_chunks_mut((ct * hw).max(1))).enumerate().for_each(sample);
    }
    out
}

/// (gx, gtheta) of the forward direction from the packed upstream gradient g = [gy, gls].
pub fn backward(p: &Params, x: &[f32], theta: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (c, ct, tc, hw) = dims(p);
    let (batch, pass) = (p.batch as usize, p.pass as usize);
    let (gy, gls) = g.split_at(batch * c * hw);
    let mut gx = vec![0.0f32; batch * c * hw];
    let mut gth = vec![0.0f32; batch * tc * hw];
    let (r_off, t_off, floor) = (p.r_off as usize, p.t_off as usize, p.lo);
    let sample = |(n, (gxn, gtn)): (usize, (&mut [f32], &mut [f32]))| {
        let xn = &x[n * c * hw..(n + 1) * c * hw];
        let th = &theta[n * tc * hw..(n + 1) * tc * hw];
        let gyn = &gy[n * c * hw..(n + 1) * c * hw];
        let glsn = &gls[n * ct * hw..(n + 1) * ct * hw];
        gxn[..pass * hw].copy_from_slice(&gyn[..pass * hw]);
        for j in 0..ct {
            for q in 0..hw {
                let i = (pass + j) * hw + q;
                let (ir, it) = ((r_off + j) * hw + q, (t_off + j) * hw + q);
                let (xv, r, t, gyv, gl) = (xn[i], th[ir], th[it], gyn[i], glsn[j * hw + q]);
                if p.kind == 0 {
                    let e = r.clamp(p.lo, p.hi).exp();
                    gxn[i] = gyv * e;
                    gtn[it] = gyv;
                    gtn[ir] = gyv * xv * e + gl;
                } else {
                    let u = sigmoid(r + 2.0);
                    let s = (1.0 - floor) * u + floor;
                    gxn[i] = gyv * s;
                    gtn[it] = gyv * s;
                    gtn[ir] = (gyv * (xv + t) + gl / s) * ((1.0 - floor) * u * (1.0 - u));
                }
            }
        }
    };
    if c * hw > 0 && tc > 0 {
        gx.par_chunks_mut(c * hw).zip(gth.par_chunks_mut(tc * hw)).enumerate().for_each(sample);
    } else {
        gx.copy_from_slice(gy);
    }
    (gx, gth)
}
