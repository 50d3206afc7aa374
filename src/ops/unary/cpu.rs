//! CPU reference of the unary ops (parallel over chunks for large tensors).
use super::UnaryOp;
use rayon::prelude::*;

// Large enough that a [1024, 128] activation is two tasks (one per core here): smaller chunks cost more
// in thread wake-ups than they gain.
const CHUNK: usize = 1 << 16;

pub fn f(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        UnaryOp::Square => x * x,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Affine(a, b) => a * x + b,
    }
}

pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// f'(x) given y = f(x).
pub fn df(op: UnaryOp, x: f32, y: f32) -> f32 {
    match op {
        UnaryOp::Exp => y,
        UnaryOp::Log => 1.0 / x,
        UnaryOp::Tanh => 1.0 - y * y,
        UnaryOp::Sigmoid => y * (1.0 - y),
        UnaryOp::Softplus => sigmoid(x),
        UnaryOp::Relu => (x > 0.0) as u8 as f32,
        UnaryOp::LeakyRelu(a) => {
            if x > 0.0 {
                1.0
            } else {
                a
            }
        }
        UnaryOp::Square => 2.0 * x,
        UnaryOp::Sqrt => 0.5 / y,
        UnaryOp::Affine(a, _) => a,
    }
}

/// Collected, not zero-filled and then overwritten: the outputs are written once.
fn map<F: Fn(f32) -> f32 + Sync>(g: F, x: &[f32]) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    x.par_iter().with_min_len(CHUNK).map(|&v| g(v)).collect_into_vec(&mut y);
    y
}

pub fn forward(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    // The cheap ops get their own monomorphised (vectorised) loop; the rest share one.
    match op {
        UnaryOp::LeakyRelu(a) => map(move |x| if x > 0.0 { x } else { a * x }, x),
        UnaryOp::Relu => map(|x| x.max(0.0), x),
        UnaryOp::Square => map(|x| x * x, x),
        UnaryOp::Affine(a, b) => map(move |x| a * x + b, x),
        _ => map(move |x| f(op, x), x),
    }
}

fn map_bwd<F: Fn(f32, f32) -> f32 + Sync>(d: F, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = Vec::with_capacity(x.len());
    x.par_iter()
        .zip(y.par_iter())
        .zip(g.par_iter())
        .with_min_len(CHUNK)
        .map(|((&x, &y), &g)| g * d(x, y))
        .collect_into_vec(&mut dx);
    dx
}

pub fn backward(op: UnaryOp, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    match op {
        UnaryOp::LeakyRelu(a) => map_bwd(move |x, _| if x > 0.0 { 1.0 } else { a }, x, y, g),
        _ => map_bwd(move |x, y| df(op, x, y), x, y, g),
    }
}
