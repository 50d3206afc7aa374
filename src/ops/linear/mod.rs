//! Dense layer y = act(x W + b), fused: x [m, k], W [k, n], b [n], act = identity, relu or leaky_relu(a).
//!
//! Backward, with g the upstream gradient and act' read off the output (both activations keep the sign of
//! their input, so y > 0 exactly where x W + b > 0):
//!   gp = g * act'(y);  db = sum over rows of gp;  dx = gp W^T;  dW = x^T gp.
//!
//! Why fused: every MLP layer of the flows is this op. On the CPU, three separate ops (matmul, broadcast add,
//! activation) cost three buffers and three passes over [batch, width]; here gemm's output gets the bias and
//! the activation in one in-place pass, and the backward makes one pass for act' and db before the two
//! gemms (cpu.rs). On GPUs the layer is the composite of the matmul, binary and unary kernels
//! (already one launch per step, each with its own backward), so there is no extra kernel to keep in step.
pub mod cpu;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The activation applied after the affine map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    LeakyRelu(f32),
}

impl Act {
    /// The activation as its own op (the composite path of the fused layers).
    pub(crate) fn apply(self, t: Tensor) -> Result<Tensor> {
        match self {
            Act::Identity => Ok(t),
            Act::Relu => t.relu(),
            Act::LeakyRelu(a) => t.leaky_relu(a),
        }
    }

    /// The slope for negative inputs (1 for identity), so act(t) = max(t, 0) + slope min(t, 0).
    pub(crate) fn slope(self) -> f32 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => 0.0,
            Act::LeakyRelu(a) => a,
        }
    }
}

impl Tensor {
    /// act(self W + b) for self [m, k], W [k, n], b [n].
    pub fn linear(&self, w: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
        self.check_same_device(w)?;
        self.check_same_device(b)?;
        let ok = self.rank() == 2 && w.rank() == 2 && b.rank() == 1 && self.shape()[1] == w.shape()[0];
        if !ok || b.shape()[0] != w.shape()[1] {
            return Err(Error::shape(
                "linear",
                format!("x {:?}, W {:?}, b {:?}: want [m, k], [k, n], [n]", self.shape(), w.shape(), b.shape()),
            ));
        }
        let (m, k, n) = (self.shape()[0], self.shape()[1], w.shape()[1]);
        let (Some(xv), Some(wv), Some(bv)) = (self.storage().cpu(), w.storage().cpu(), b.storage().cpu()) else {
            return act.apply(self.matmul(w)?.add(b)?);
        };
        let y = cpu::forward(xv, wv, bv, m, k, n, act);
        Tensor::from_op(
            "linear",
            crate::backend::Storage::Cpu(y),
            vec![m, n],
            self.device(),
            &[self, w, b],
            move |inp, y, g| {
                let (x, w, b) = (&inp[0], &inp[1], &inp[2]);
                let dev = x.device();
                let (Some(xv), Some(wv), Some(yv), Some(gv)) =
                    (x.storage().cpu(), w.storage().cpu(), y.storage().cpu(), g.storage().cpu())
                else {
                    return Err(Error::Usage("linear: CPU op given a non-CPU gradient".into()));
                };
                let (gp, db) = cpu::act_grad(yv, gv, n, act);
                let dx = x.tracks().then(|| cpu::matmul_t(&gp, wv, m, k, n, false, true));
                let dw = w.tracks().then(|| cpu::matmul_t(xv, &gp, k, n, m, true, false));
                let t = |v: Option<Vec<f32>>, shape: &[usize]| v.map(|v| Tensor::from_vec(v, shape, dev)).transpose();
                Ok(vec![t(dx, &[m, k])?, t(dw, &[k, n])?, t(b.tracks().then_some(db), &[n])?])
            },
        )
    }
}
