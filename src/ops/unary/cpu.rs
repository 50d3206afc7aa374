//! CPU reference of the unary ops (parallel over chunks for large tensors).
use super::UnaryOp;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

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

pub fn forward(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = f(op, x);
        }
    });
    y
}

pub fn backward(op: UnaryOp, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; x.len()];
    dx.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dx)| {
        let o = c * CHUNK;
        for (i, d) in dx.iter_mut().enumerate() {
            *d = g[o + i] * df(op, x[o + i], y[o + i]);
        }
    });
    dx
}
