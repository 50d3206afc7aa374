//! MADE (Germain et al. 2015): a masked MLP whose output k depends only on inputs of lower order, with
//! a context vector feeding every first-layer unit. Degrees of hidden units are drawn from a seeded RNG
//! (degree 0, context only, included when there is a context), and the masks are kept as buffers (saved in
//! checkpoints), so a model is rebuilt exactly.
use super::Module;
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::ops::linear::Act;
use crate::tensor::Tensor;
use rand::RngExt;

/// act(x (W * M) + c Wc + b), the context term only where a context is given: one layer of MADE, as one
/// `made_layer` op (fused on the CPU; W ⊙ M is never materialised on a GPU).
pub struct MaskedLinear {
    pub w: Var,
    pub mask: Var,
    pub b: Var,
    pub wc: Option<Var>,
}

impl MaskedLinear {
    pub fn forward(&self, x: &Tensor, c: Option<&Tensor>, act: Act) -> Result<Tensor> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.w);
        let wc = self.wc.as_ref().map(Var::get);
        let context = c.zip(wc.as_ref());
        x.made_layer(&self.w.get(), &self.mask.get(), &self.b.get(), context, act)
    }
}

pub struct Made {
    pub layers: Vec<MaskedLinear>,
    /// Outputs per input feature (e.g. 2 for a shift and a log-scale).
    pub per: usize,
    pub dim: usize,
}

impl Made {
    /// `order[i]` in 1..=D is the autoregressive position of feature i; outputs are laid out [per, D].
    pub fn new(
        name: &str,
        order: &[usize],
        cond_dim: usize,
        hidden: &[usize],
        per: usize,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<Made> {
        let d = order.len();
        let mut degrees: Vec<Vec<usize>> = vec![order.to_vec()];
        // Hidden degrees in 1..D-1 (a unit of degree D would connect to no output), and 0 with a context:
        // such a unit sees the context alone, and is the only path from the context to the first
        // feature's parameters (as in zuko's MADE, whose hidden units cover the context-only row).
        let lo = usize::from(cond_dim == 0);
        for &h in hidden {
            crate::build_budget::take(h as u64)?;
            degrees.push((0..h).map(|_| rng.random_range(lo..d.max(2))).collect());
        }
        crate::build_budget::take_shape(&[per, d])?;
        let out_deg: Vec<usize> = (0..per).flat_map(|_| order.iter().copied()).collect();
        degrees.push(out_deg);
        let mut layers = Vec::new();
        for l in 0..degrees.len() - 1 {
            let (din, dout) = (&degrees[l], &degrees[l + 1]);
            let last = l + 2 == degrees.len();
            crate::build_budget::take_shape(&[din.len(), dout.len()])?;
            // Hidden units see inputs of degree <= theirs; outputs only strictly lower degrees.
            let m: Vec<f32> = din
                .iter()
                .flat_map(|&a| dout.iter().map(move |&b| if (last && b > a) || (!last && b >= a) { 1.0 } else { 0.0 }))
                .collect();
            let bound = 1.0 / (din.len() as f32).sqrt();
            let p = format!("{name}.{l}");
            let (fi, fo) = (din.len(), dout.len());
            layers.push(MaskedLinear {
                w: Var::new(&format!("{p}.w"), Tensor::rand_uniform(&[fi, fo], -bound, bound, rng, dev)?),
                mask: Var::new(&format!("{p}.mask"), Tensor::from_vec(m, &[fi, fo], dev)?),
                b: Var::new(&format!("{p}.b"), Tensor::rand_uniform(&[fo], -bound, bound, rng, dev)?),
                wc: if l == 0 && cond_dim > 0 {
                    let cb = 1.0 / (cond_dim as f32).sqrt();
                    Some(Var::new(&format!("{p}.wc"), Tensor::rand_uniform(&[cond_dim, fo], -cb, cb, rng, dev)?))
                } else {
                    None
                },
            });
        }
        Ok(Made { layers, per, dim: d })
    }

    /// x [B, D], c [B or 1, C] -> [B, per * D] (ReLU between layers).
    pub fn forward(&self, x: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i + 1 < self.layers.len() { Act::Relu } else { Act::Identity };
            h = l.forward(&h, if i == 0 { c } else { None }, act)?;
        }
        Ok(h)
    }
}

impl Module for Made {
    fn vars(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|l| [Some(l.w.clone()), Some(l.b.clone()), l.wc.clone()]).flatten().collect()
    }
    fn buffers(&self) -> Vec<Var> {
        self.layers.iter().map(|l| l.mask.clone()).collect()
    }
}
