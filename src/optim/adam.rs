//! Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019: decoupled weight decay) and RAdam
//! (Liu et al. 2020: variance rectification), as one fused element-wise update (kernels/README.md):
//!
//! ```text
//! gg = g + (decoupled ? 0 : wd p)
//! m' = b1 m + (1 - b1) gg;   v' = b2 v + (1 - b2) gg^2
//! p' = (decoupled ? p (1 - lr wd) : p) - lr scale (use_v ? (m'/bc1) / (sqrt(v'/bc2) + eps) : m'/bc1)
//! ```
//! with bc1 = 1 - b1^t, bc2 = 1 - b2^t. RAdam: rho_inf = 2/(1-b2) - 1, rho_t = rho_inf - 2 t b2^t / bc2;
//! if rho_t > 5, use_v and scale = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)),
//! else plain momentum (use_v = 0, scale = 1), as torch.optim.RAdam.
use crate::autodiff::{no_grad, Grads, Var};
use crate::backend::{Launch, Storage};
use crate::error::Result;
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdamKind {
    Adam,
    AdamW,
    RAdam,
}

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub kind: AdamKind,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl AdamConfig {
    pub fn new(kind: AdamKind, lr: f32) -> Self {
        let weight_decay = if kind == AdamKind::AdamW { 1e-2 } else { 0.0 };
        AdamConfig { kind, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }
}

kernel_params! {
    /// Mirrors `Params` of `adam_step`.
    pub struct Params for [("optim", "adam_step")] {
        pub n: u32,
        pub lr: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub weight_decay: f32,
        pub bc1: f32,
        pub bc2: f32,
        pub scale: f32,
        pub use_v: u32,
        pub decoupled: u32,
        pub pad: u32,
    }
}

/// Elements per rayon task of the CPU step (large tensors only: the published autoencoder has 92 M).
const CHUNK: usize = 1 << 16;

/// CPU reference of `adam_step`: returns (p', m', v'). Outputs are written once (no zero-fill), in parallel
/// chunks, and the per-element branches on the kind are hoisted, so the loop vectorises.
pub fn step_cpu(p: &Params, x: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let n = x.len();
    let (mut xo, mut mo, mut vo) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    // AdamW decays the parameter; Adam and RAdam add the decay to the gradient.
    let decoupled = p.decoupled == 1;
    let wd = if decoupled { 0.0 } else { p.weight_decay };
    let keep = if decoupled { 1.0 - p.lr * p.weight_decay } else { 1.0 };
    let lrs = p.lr * p.scale;
    let (b1, b2, bc1, bc2, eps, use_v) = (p.beta1, p.beta2, p.bc1, p.bc2, p.eps, p.use_v == 1);
    // `move`, and every slice cut to one length: constants read through references and per-element bounds
    // checks kept this loop scalar.
    let task = move |((xo, mo), vo): ((&mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]), &mut [MaybeUninit<f32>]),
                     (((x, g), m), v): (((&[f32], &[f32]), &[f32]), &[f32])| {
        let len = x.len();
        let (xo, mo, vo, g, m, v) = (&mut xo[..len], &mut mo[..len], &mut vo[..len], &g[..len], &m[..len], &v[..len]);
        for i in 0..len {
            let gg = g[i] + wd * x[i];
            let m1 = b1 * m[i] + (1.0 - b1) * gg;
            let v1 = b2 * v[i] + (1.0 - b2) * gg * gg;
            let mhat = m1 / bc1;
            let step = if use_v { mhat / ((v1 / bc2).sqrt() + eps) } else { mhat };
            xo[i].write(x[i] * keep - lrs * step);
            mo[i].write(m1);
            vo[i].write(v1);
        }
    };
    let outs = xo.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .zip(mo.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
        .zip(vo.spare_capacity_mut()[..n].par_chunks_mut(CHUNK));
    let ins = x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks(CHUNK)).zip(v.par_chunks(CHUNK));
    outs.zip(ins).for_each(|(o, i)| task(o, i));
    // SAFETY: the chunks cover all n elements of each output and every element was written above.
    unsafe {
        xo.set_len(n);
        mo.set_len(n);
        vo.set_len(n);
    }
    (xo, mo, vo)
}

pub struct Adam {
    pub cfg: AdamConfig,
    vars: Vec<Var>,
    state: Vec<Option<(Tensor, Tensor)>>,
    t: u64,
}

impl Adam {
    pub fn new(vars: Vec<Var>, cfg: AdamConfig) -> Self {
        let state = vec![None; vars.len()];
        Adam { cfg, vars, state, t: 0 }
    }

    pub fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }
    pub fn lr(&self) -> f32 {
        self.cfg.lr
    }
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The step's kernel parameters for `n` elements at step `t` (1-based).
    pub fn params(c: &AdamConfig, n: usize, t: u64) -> Result<Params> {
        let (b1t, b2t) = (f64::from(c.beta1).powi(t as i32), f64::from(c.beta2).powi(t as i32));
        let (bc1, bc2) = (1.0 - b1t, 1.0 - b2t);
        let (scale, use_v) = match c.kind {
            AdamKind::RAdam => {
                let rho_inf = 2.0 / (1.0 - f64::from(c.beta2)) - 1.0;
                let rho = rho_inf - 2.0 * t as f64 * b2t / bc2;
                if rho > 5.0 {
                    (((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)).sqrt(), 1)
                } else {
                    (1.0, 0)
                }
            }
            _ => (1.0, 1),
        };
        let [n] = crate::ops::u32s("adam", [n])?;
        Ok(Params {
            n,
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            bc1: bc1 as f32,
            bc2: bc2 as f32,
            scale: scale as f32,
            use_v,
            decoupled: (c.kind == AdamKind::AdamW) as u32,
            pad: 0,
        })
    }

    /// The moments as named vars ("optim/m/<param>", "optim/v/<param>") for checkpoints; parameters never
    /// stepped have none.
    pub fn state_vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        for (var, st) in self.vars.iter().zip(&self.state) {
            if let Some((m, v)) = st {
                out.push(Var::new(&format!("optim/m/{}", var.name()), m.clone()));
                out.push(Var::new(&format!("optim/v/{}", var.name()), v.clone()));
            }
        }
        out
    }

    /// Restores the moments and the step count saved by [`Adam::state_vars`].
    pub fn load_state(&mut self, ck: &crate::checkpoint::Checkpoint, t: u64, dev: &crate::Device) -> Result<()> {
        self.t = t;
        for (var, st) in self.vars.iter().zip(self.state.iter_mut()) {
            let (m, v) = (
                ck.tensors.get(&format!("optim/m/{}", var.name())),
                ck.tensors.get(&format!("optim/v/{}", var.name())),
            );
            *st = match (m, v) {
                (Some(m), Some(v)) => Some((Tensor::from_ndarray(m, dev)?, Tensor::from_ndarray(v, dev)?)),
                _ => None,
            };
        }
        Ok(())
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &Grads) -> Result<()> {
        self.t += 1;
        let (cfg, t) = (self.cfg, self.t);
        no_grad(|| {
            for (var, state) in self.vars.iter().zip(self.state.iter_mut()) {
                let x = var.get();
                let Some(g) = grads.get(&x) else { continue };
                let dev = x.device();
                let (m, v) = match state.take() {
                    Some(s) => s,
                    None => (Tensor::zeros(x.shape(), dev)?, Tensor::zeros(x.shape(), dev)?),
                };
                let p = Self::params(&cfg, x.numel(), t)?;
                let (xo, mo, vo) = match (x.storage().cpu(), g.storage().cpu(), m.storage().cpu(), v.storage().cpu()) {
                    (Some(xs), Some(gs), Some(ms), Some(vs)) => {
                        let (a, b, c) = step_cpu(&p, xs, gs, ms, vs);
                        (Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c))
                    }
                    _ => {
                        let n = x.numel();
                        let (a, b, c) = (dev.alloc(n)?, dev.alloc(n)?, dev.alloc(n)?);
                        let l = Launch::elementwise("optim", "adam_step", &p, n);
                        dev.launch(&l, &[x.storage(), g.storage(), m.storage(), v.storage()], &[&a, &b, &c])?;
                        (a, b, c)
                    }
                };
                var.set(Tensor::from_storage(xo, x.shape(), dev)?);
                *state = Some((Tensor::from_storage(mo, x.shape(), dev)?, Tensor::from_storage(vo, x.shape(), dev)?));
            }
            Ok(())
        })
    }
}
