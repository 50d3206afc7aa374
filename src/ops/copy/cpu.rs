//! CPU reference of the layout ops.
use super::SliceParams;

pub fn slice_copy(src: &[f32], dst: &mut [f32], p: &SliceParams) {
    let (inner, len) = (p.inner as usize, p.len as usize);
    for o in 0..p.outer as usize {
        let s = (o * p.src_n as usize + p.src_off as usize) * inner;
        let d = (o * p.dst_n as usize + p.dst_off as usize) * inner;
        dst[d..d + len * inner].copy_from_slice(&src[s..s + len * inner]);
    }
}

pub fn transpose(x: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for b in 0..batch {
        let (xb, yb) = (&x[b * rows * cols..], &mut y[b * rows * cols..(b + 1) * rows * cols]);
        for r in 0..rows {
            for c in 0..cols {
                yb[c * rows + r] = xb[r * cols + c];
            }
        }
    }
    y
}
