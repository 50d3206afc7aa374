//! CPU reference of constant padding and its crop (maths: mod.rs).
use super::Params;

pub fn pad(p: &Params, x: &[f32]) -> Vec<f32> {
    let (h, w, k) = (p.h as usize, p.w as usize, p.pad as usize);
    let (ho, wo) = (h + 2 * k, w + 2 * k);
    let mut y = vec![p.value; p.planes as usize * ho * wo];
    // (Planes with no interior, h w = 0, are all padding: x is empty and the loop has nothing to copy.)
    for (yp, xp) in y.chunks_mut((ho * wo).max(1)).zip(x.chunks((h * w).max(1))) {
        for u in 0..h {
            yp[(u + k) * wo + k..(u + k) * wo + k + w].copy_from_slice(&xp[u * w..(u + 1) * w]);
        }
    }
    y
}

pub fn crop(p: &Params, g: &[f32]) -> Vec<f32> {
    let (h, w, k) = (p.h as usize, p.w as usize, p.pad as usize);
    let (ho, wo) = (h + 2 * k, w + 2 * k);
    let mut x = Vec::with_capacity(p.planes as usize * h * w);
    for gp in g.chunks((ho * wo).max(1)) {
        for u in 0..h {
            x.extend_from_slice(&gp[(u + k) * wo + k..(u + k) * wo + k + w]);
        }
    }
    x
}
