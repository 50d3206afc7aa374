//! The masked linear layer of MADE (Germain et al. 2015): y = x (W ⊙ M) + b, x [.., k], W and M [k, n], b [n].
//! One tiled kernel (kernels/made.ptx, wgsl/made.wgsl; matmul's 64x64 tile, 4x4 per thread, k in chunks of 16
//! through shared memory) multiplies the mask into the W tile as it is staged, so W ⊙ M is never materialised,
//! and adds the bias when it stores. The CPU masks a copy of W and uses the `gemm` crate (cpu.rs).
//!
//! Backward (the mask is a constant and gets no gradient):
//!   dx = g (W ⊙ M)^T   the same kernel reading W transposed in place, masked on load, no bias;
//!   dW = (x^T g) ⊙ M   the same kernel reading x transposed, masked on store;
//!   db = sum of g over the rows (the reduce op).
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::ops::linear::{cpu as linear_cpu, Act};
use crate::tensor::Tensor;
use std::sync::Arc;

kernel_params! {
    /// Mirrors `Params` of the made kernel (kernels/README.md, "made").
    pub struct Params for [("made", "made")] {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub trans_a: u32,
        pub trans_b: u32,
        /// Multiply op(B) by the mask (stored like b) as its tile is loaded.
        pub mask_b: u32,
        /// Multiply C by the mask (stored [m, n] like c) as it is stored.
        pub mask_c: u32,
        /// Add bias[j] to C[i, j] as it is stored.
        pub bias: u32,
    }
}

/// The output tile of one block.
const TILE: usize = 64;

/// The kernel parameters of C [m, n] = (op(A) (op(B) ⊙ M?)) ⊙ M? + bias?.
pub(crate) fn params(
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (mask_b, mask_c): (bool, bool),
    bias: bool,
) -> Result<Params> {
    let [_, _, _, m, n, k] = u32s("masked_linear", [m * k, k * n, m * n, m, n, k])?;
    Ok(Params {
        m,
        n,
        k,
        trans_a: ta as u32,
        trans_b: tb as u32,
        mask_b: mask_b as u32,
        mask_c: mask_c as u32,
        bias: bias as u32,
    })
}

/// One launch of the made kernel: C [m, n] = (op(A) (op(B) ⊙ M?)) ⊙ M? + bias?, one block per 64 x 64
/// tile (columns fastest).
#[allow(clippy::too_many_arguments)]
fn launch(
    dev: &Device,
    a: &Storage,
    b: &Storage,
    mask: &Storage,
    bias: Option<&Storage>,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (mask_b, mask_c): (bool, bool),
) -> Result<Storage> {
    let p = params((m, n, k), (ta, tb), (mask_b, mask_c), bias.is_some())?;
    let l = Launch::tiled("made", "made", &p, [n.div_ceil(TILE), m.div_ceil(TILE), 1]);
    // The bias binding is never read without the flag; the mask stands in for it.
    launch_out(dev, &l, &[a, b, mask, bias.unwrap_or(mask)], m * n)
}

impl Tensor {
    /// (m, n, k) of x [.., k] (m rows), w and mask [k, n], b [n], on one device.
    fn check_masked_linear(
        &self,
        op: &'static str,
        w: &Tensor,
        mask: &Tensor,
        b: &Tensor,
    ) -> Result<(usize, usize, usize)> {
        for t in [w, mask, b] {
            self.check_same_device(t)?;
        }
        let ok = self.rank() >= 1
            && w.rank() == 2
            && mask.shape() == w.shape()
            && b.shape() == [w.shape()[1]]
            && self.shape()[self.rank() - 1] == w.shape()[0];
        if !ok {
            return Err(Error::shape(
                op,
                format!("x {:?}, w {:?}, mask {:?}, b {:?}", self.shape(), w.shape(), mask.shape(), b.shape()),
            ));
        }
        let (k, n) = (w.shape()[0], w.shape()[1]);
        Ok((self.numel() / k.max(1), n, k))
    }

    /// y = x (W ⊙ M) + b for x [.., k], w and mask [k, n], b [n] -> [.., n]. Differentiable in x, w and b.
    pub fn masked_linear(&self, w: &Tensor, mask: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (m, n, k) = self.check_masked_linear("masked_linear", w, mask, b)?;
        let dev = self.device();
        // The CPU keeps W ⊙ M for the backward's dx.
        let (storage, wm) = match (self.storage().cpu(), w.storage().cpu(), mask.storage().cpu(), b.storage().cpu()) {
            (Some(xv), Some(wv), Some(mv), Some(bv)) => {
                let (y, wm) = cpu::forward(xv, wv, mv, bv, m, n, k);
                (Storage::Cpu(y), Some(Arc::new(wm)))
            }
            _ => {
                let s = launch(
                    dev,
                    self.storage(),
                    w.storage(),
                    mask.storage(),
                    Some(b.storage()),
                    (m, n, k),
                    (false, false),
                    (true, false),
                )?;
                (s, None)
            }
        };
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = n;
        Tensor::from_op("made", storage, shape, dev, &[self, w, mask, b], move |inp, _, g| {
            let (x, w, mask, b) = (&inp[0], &inp[1], &inp[2], &inp[3]);
            let dev = x.device();
            let cpu = match (&wm, x.storage().cpu(), mask.storage().cpu(), g.storage().cpu()) {
                (Some(wm), Some(xv), Some(mv), Some(gv)) => Some((wm, xv, mv, gv)),
                _ => None,
            };
            let dx = if !x.tracks() {
                None
            } else {
                let s = match cpu {
                    Some((wm, _, _, gv)) => Storage::Cpu(cpu::grad_x(gv, wm, m, n, k)),
                    None => launch(
                        dev,
                        g.storage(),
                        w.storage(),
                        mask.storage(),
                        None,
                        (m, k, n),
                        (false, true),
                        (true, false),
                    )?,
                };
                Some(Tensor::from_storage(s, x.shape(), dev)?)
            };
            let dw = if !w.tracks() {
                None
            } else {
                let s = match cpu {
                    Some((_, xv, mv, gv)) => Storage::Cpu(cpu::grad_w(xv, gv, mv, m, n, k)),
                    None => launch(
                        dev,
                        x.storage(),
                        g.storage(),
                        mask.storage(),
                        None,
                        (k, n, m),
                        (true, false),
                        (false, true),
                    )?,
                };
                Some(Tensor::from_storage(s, w.shape(), dev)?)
            };
            let db = if b.tracks() { Some(g.reshape(&[m, n])?.sum(0)?) } else { None };
            Ok(vec![dx, dw, None, db])
        })
    }
}

/// The CPU data of a tensor, if it lives there.
fn on_cpu(t: &Tensor) -> Option<&[f32]> {
    t.storage().cpu()
}

impl Tensor {
    /// One MADE layer: act(x (W ⊙ M) + c Wc + b) for x [m, k], w and mask [k, n], b [n] and an optional
    /// context (c [m or 1, kc], Wc [kc, n]). Differentiable in x, w, b, c and Wc.
    ///
    /// On the CPU it is one op: W ⊙ M and Wc are stacked into one weight and [x | c] into one input (or, with
    /// one context row, c Wc is folded into the bias), so the layer is the dense layer's single gemm plus its
    /// one pass for bias and activation (ops::linear), and the backward is linear's one pass for act' and db
    /// plus two gemms. Elsewhere it is the composite of masked_linear (its kernel never materialises W ⊙ M),
    /// matmul, add and the activation, each with its own kernel and backward.
    pub fn made_layer(
        &self,
        w: &Tensor,
        mask: &Tensor,
        b: &Tensor,
        context: Option<(&Tensor, &Tensor)>,
        act: Act,
    ) -> Result<Tensor> {
        let (m, n, k) = self.check_masked_linear("made_layer", w, mask, b)?;
        if let Some((c, wc)) = context {
            self.check_same_device(c)?;
            self.check_same_device(wc)?;
            let ok = self.rank() == 2
                && c.rank() == 2
                && (c.shape()[0] == m || c.shape()[0] == 1)
                && wc.shape() == [c.shape()[1], n];
            if !ok {
                return Err(Error::shape(
                    "made_layer",
                    format!(
                        "x {:?}, context {:?}, Wc {:?}: want [m, k], [m or 1, kc], [kc, {n}]",
                        self.shape(),
                        c.shape(),
                        wc.shape()
                    ),
                ));
            }
        }
        let ctx = match context {
            None => Some(None),
            Some((c, wc)) => match (on_cpu(c), on_cpu(wc)) {
                (Some(cv), Some(wcv)) => Some(Some((cv, wcv, c.shape()[0], c.shape()[1]))),
                _ => None,
            },
        };
        let (Some(xv), Some(wv), Some(mv), Some(bv), Some(ctx)) =
            (on_cpu(self), on_cpu(w), on_cpu(mask), on_cpu(b), ctx)
        else {
            let mut y = self.masked_linear(w, mask, b)?;
            if let Some((c, wc)) = context {
                y = y.add(&c.matmul(wc)?)?;
            }
            return act.apply(y);
        };
        let f = cpu::fuse(xv, (wv, mv, bv), (m, n, k), ctx);
        let y = linear_cpu::forward(f.xa.as_deref().unwrap_or(xv), &f.wa, &f.ba, m, f.ka, n, act);
        let (wa, xa, ka) = (Arc::new(f.wa), Arc::new(f.xa), f.ka);
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = n;
        let mut inputs = vec![self, w, mask, b];
        if let Some((c, wc)) = context {
            inputs.extend([c, wc]);
        }
        Tensor::from_op("made_layer", Storage::Cpu(y), shape, self.device(), &inputs, move |inp, y, g| {
            let (x, w, mask, b) = (&inp[0], &inp[1], &inp[2], &inp[3]);
            let dev = x.device();
            let ctx = inp.get(4).zip(inp.get(5));
            let (Some(xv), Some(mv), Some(yv), Some(gv)) = (on_cpu(x), on_cpu(mask), on_cpu(y), on_cpu(g)) else {
                return Err(Error::Usage("made_layer: CPU op given a non-CPU gradient".into()));
            };
            let (gp, db) = linear_cpu::act_grad(yv, gv, n, act);
            let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, dev);
            // Stacked: [x | c] and [W ⊙ M; Wc] give dx, dc and dW, dWc from one gemm each.
            let stacked = xa.as_ref().is_some();
            let c_tracks = ctx.is_some_and(|(c, _)| c.tracks());
            let wc_tracks = ctx.is_some_and(|(_, wc)| wc.tracks());
            let (mut dx, mut dc) = (None, None);
            if stacked && c_tracks {
                let dxa = linear_cpu::matmul_t(&gp, &wa, m, ka, n, false, true);
                let (a, b) = cpu::split_cols(&dxa, m, k, ka - k);
                dx = x.tracks().then_some(a);
                dc = Some(b);
            } else if x.tracks() {
                dx = Some(linear_cpu::matmul_t(&gp, &wa[..k * n], m, k, n, false, true));
            }
            let (mut dw, mut dwc) = (None, None);
            if w.tracks() || (stacked && wc_tracks) {
                let xs = xa.as_ref().as_deref().unwrap_or(xv);
                let mut dwa = linear_cpu::matmul_t(xs, &gp, ka, n, m, true, false);
                dwc = (stacked && wc_tracks).then(|| dwa.split_off(k * n));
                dwa.truncate(k * n);
                dwa.iter_mut().zip(mv).for_each(|(d, m)| *d *= m);
                dw = w.tracks().then_some(dwa);
            }
            if let (false, Some((c, wc))) = (stacked, ctx) {
                // One context row folded into the bias: d(c Wc) = db, so dWc = c^T db and dc = db Wc^T.
                let (cv, wcv) = (on_cpu(c).unwrap_or_default(), on_cpu(wc).unwrap_or_default());
                if wc.tracks() {
                    dwc = Some(cv.iter().flat_map(|&ci| db.iter().map(move |&d| ci * d)).collect());
                }
                if c.tracks() {
                    dc = Some(wcv.chunks(n.max(1)).map(|r| r.iter().zip(&db).map(|(w, d)| w * d).sum()).collect());
                }
            }
            let mut grads = vec![
                dx.map(|v| t(v, x.shape())).transpose()?,
                dw.map(|v| t(v, w.shape())).transpose()?,
                None,
                b.tracks().then(|| t(db, &[n])).transpose()?,
            ];
            if let Some((c, wc)) = ctx {
                grads.push(dc.map(|v| t(v, c.shape())).transpose()?);
                grads.push(dwc.map(|v| t(v, wc.shape())).transpose()?);
            }
            Ok(grads)
        })
    }
}
