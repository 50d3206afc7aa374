//! Element-wise unary ops: y = f(x), dx = g * f'(x) (f' may use y). Kernels: kernels/unary.ptx, wgsl/unary.wgsl.
//!
//! | op | f(x) | f'(x) |
//! |---|---|---|
//! | exp | e^x | y |
//! | log | ln x | 1/x |
//! | tanh | tanh x | 1 - y^2 |
//! | sigmoid | 1/(1+e^-x) | y(1-y) |
//! | softplus | ln(1+e^x) = max(x,0) + ln(1+e^-abs(x)) | sigmoid(x) |
//! | relu | max(x,0) | [x>0] |
//! | leaky_relu(a) | x>0 ? x : a x | x>0 ? 1 : a |
//! | square | x^2 | 2x |
//! | sqrt | sqrt x | 1/(2y) |
//! | affine(a,b) | a x + b | a |
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Device, Launch};
use crate::error::Result;
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Softplus,
    Relu,
    LeakyRelu(f32),
    Square,
    Sqrt,
    Affine(f32, f32),
}

kernel_params! {
    /// Mirrors `Params` of the unary kernels.
    pub struct Params for [("unary", "unary_fwd"), ("unary", "unary_bwd")] {
        pub n: u32,
        pub op: u32,
        pub alpha: f32,
        pub beta: f32,
    }
}

impl UnaryOp {
    /// The op's name in anomaly reports.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Square => "square",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Affine(..) => "affine",
        }
    }

    /// The kernel parameters for `n` elements.
    pub fn params(self, n: usize) -> Result<Params> {
        let (op, alpha, beta) = match self {
            UnaryOp::Exp => (0, 0.0, 0.0),
            UnaryOp::Log => (1, 0.0, 0.0),
            UnaryOp::Tanh => (2, 0.0, 0.0),
            UnaryOp::Sigmoid => (3, 0.0, 0.0),
            UnaryOp::Softplus => (4, 0.0, 0.0),
            UnaryOp::Relu => (5, 0.0, 0.0),
            UnaryOp::LeakyRelu(a) => (6, a, 0.0),
            UnaryOp::Square => (7, 0.0, 0.0),
            UnaryOp::Sqrt => (8, 0.0, 0.0),
            UnaryOp::Affine(a, b) => (9, a, b),
        };
        let [n] = u32s("unary", [n])?;
        Ok(Params { n, op, alpha, beta })
    }
}

/// dx = g * f'(x), given x and y = f(x).
fn backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let storage = match (x.storage().cpu(), y.storage().cpu(), g.storage().cpu()) {
        (Some(x), Some(y), Some(g)) => crate::backend::Storage::Cpu(cpu::backward(op, x, y, g)),
        _ => {
            let p = op.params(x.numel())?;
            launch_out(
                dev,
                &Launch::elementwise("unary", "unary_bwd", &p, x.numel()),
                &[x.storage(), y.storage(), g.storage()],
                x.numel(),
            )?
        }
    };
    Tensor::from_storage(storage, x.shape(), dev)
}

impl Tensor {
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let n = self.numel();
        let dev: &Device = self.device();
        let storage = match self.storage().cpu() {
            Some(x) => crate::backend::Storage::Cpu(cpu::forward(op, x)),
            None => {
                let p = op.params(n)?;
                launch_out(dev, &Launch::elementwise("unary", "unary_fwd", &p, n), &[self.storage()], n)?
            }
        };
        Tensor::from_op(op.name(), storage, self.shape().to_vec(), dev, &[self], move |inp, out, g| {
            Ok(vec![Some(backward(op, &inp[0], out, g)?)])
        })
    }

    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Softplus)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// a * x + b.
    pub fn affine(&self, a: f32, b: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine(a, b))
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.affine(-1.0, 0.0)
    }
    pub fn scale(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    pub fn add_scalar(&self, b: f32) -> Result<Tensor> {
        self.affine(1.0, b)
    }
}
