//! CPU reference of squeeze / unsqueeze (maths: mod.rs): the same index map both ways.
use super::Params;

/// Index in x [batch, c, h, w] of every element of y [batch, 4c, h/2, w/2], in y's order.
fn source(p: &Params) -> impl Iterator<Item = usize> + '_ {
    let (b, c, h, w) = (p.batch as usize, p.c as usize, p.h as usize, p.w as usize);
    let (h2, w2) = (h / 2, w / 2);
    (0..b * 4 * c * h2 * w2).map(move |o| {
        let (bx, a) = (o % w2, (o / w2) % h2);
        let d = (o / (w2 * h2)) % (4 * c);
        let n = o / (w2 * h2 * 4 * c);
        let (ci, i, j) = (d / 4, (d / 2) % 2, d % 2);
        ((n * c + ci) * h + 2 * a + i) * w + 2 * bx + j
    })
}

pub fn squeeze(p: &Params, x: &[f32]) -> Vec<f32> {
    source(p).map(|s| x[s]).collect()
}

pub fn unsqueeze(p: &Params, y: &[f32]) -> Vec<f32> {
    let mut x = vec![0.0f32; y.len()];
    source(p).zip(y).for_each(|(s, &v)| x[s] = v);
    x
}
