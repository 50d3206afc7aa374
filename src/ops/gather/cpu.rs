//! CPU reference of gather and its scatter-add gradient.
use super::Params;

pub fn gather(x: &[f32], idx: &[u32], p: &Params) -> Vec<f32> {
    let (inner, idx_n, src_n) = (p.inner as usize, p.idx_n as usize, p.src_n as usize);
    let mut out = Vec::with_capacity(p.outer as usize * idx_n * inner);
    for o in 0..p.outer as usize {
        for &i in idx {
            let s = (o * src_n + i as usize) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    out
}

pub fn scatter_add(g: &[f32], idx: &[u32], dst: &mut [f32], p: &Params) {
    let (inner, idx_n, src_n) = (p.inner as usize, p.idx_n as usize, p.src_n as usize);
    for o in 0..p.outer as usize {
        for (j, &i) in idx.iter().enumerate() {
            let (s, d) = ((o * idx_n + j) * inner, (o * src_n + i as usize) * inner);
            for r in 0..inner {
                dst[d + r] += g[s + r];
            }
        }
    }
}
