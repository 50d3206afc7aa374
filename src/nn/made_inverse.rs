//! The inverse of an autoregressive transform driven by a MADE, computing each hidden unit once.
//!
//! The textbook inverse runs the whole MADE once per feature: pass p fixes the features whose parameters
//! depend only on features fixed before it, so D features cost D full passes. But a hidden unit's value is
//! final as soon as every input it depends on is, and it never changes after that. So the units are
//! scheduled: each is computed in the first pass at which all its inputs are final, in the layer order,
//! and only the output layer runs every pass (from the units final so far). The hidden layers, most of
//! the work, then cost one forward pass in all instead of D.
//!
//! The schedule is read off the masks alone (so imported models with other orders work too): a unit's
//! dependencies are the inputs it reaches through unmasked weights, a feature is fixed in the pass after
//! all its output columns' dependencies are, and a unit is ready in the pass after its last dependency is
//! fixed. Sorting each hidden layer's units by that pass makes the units of one pass a contiguous block
//! of columns, so each pass is a made_layer on column slices of the permuted weights.
use super::Made;
use crate::autodiff::Var;
use crate::error::{Error, Result};
use crate::ops::gather::Indices;
use crate::ops::linear::Act;
use crate::tensor::Tensor;
use std::ops::Range;

/// When each unit of a MADE becomes final in an autoregressive inverse.
struct Schedule {
    passes: usize,
    /// Per hidden layer: its units sorted by the pass in which they are computed.
    perm: Vec<Vec<u32>>,
    /// Per hidden layer: ready[l][p] = how many of its units are final after pass p (p = 0..=passes).
    ready: Vec<Vec<usize>>,
}

/// One layer's weights with the hidden units in schedule order.
struct Sorted {
    w: Tensor,
    mask: Tensor,
    b: Tensor,
    wc: Option<Tensor>,
}

impl Made {
    /// The schedule of the inverse, from the masks (an error if they are not autoregressive).
    fn schedule(&self) -> Result<Schedule> {
        let d = self.dim;
        // deps[u][i]: unit u reaches input i.
        let mut deps: Vec<Vec<bool>> = (0..d).map(|i| (0..d).map(|j| i == j).collect()).collect();
        let mut layer_deps = Vec::new();
        for l in &self.layers {
            let mask = l.mask.get().to_vec()?;
            let n = l.mask.get().shape()[1];
            let mut next = vec![vec![false; d]; n];
            for (row, dep) in mask.chunks(n.max(1)).zip(&deps) {
                for (u, &m) in row.iter().enumerate() {
                    if m != 0.0 {
                        next[u].iter_mut().zip(dep).for_each(|(a, &b)| *a |= b);
                    }
                }
            }
            deps = next;
            layer_deps.push(deps.clone());
        }
        // A feature's dependencies: those of all its output columns ([per, D] layout: column j is feature j % D).
        let mut feature: Vec<Vec<bool>> = vec![vec![false; d]; d];
        for (j, dep) in deps.iter().enumerate() {
            feature[j % d.max(1)].iter_mut().zip(dep).for_each(|(a, &b)| *a |= b);
        }
        // fixed[i]: the pass that fixes feature i.
        let mut fixed = vec![0usize; d];
        let mut passes = 0;
        while fixed.contains(&0) {
            passes += 1;
            let now: Vec<usize> = (0..d)
                .filter(|&i| fixed[i] == 0 && (0..d).all(|j| !feature[i][j] || (fixed[j] > 0 && fixed[j] < passes)))
                .collect();
            if now.is_empty() {
                return Err(Error::Usage("MADE inverse: the masks are not autoregressive".into()));
            }
            now.into_iter().for_each(|i| fixed[i] = passes);
        }
        let hidden = self.layers.len() - 1;
        let (mut perm, mut ready) = (Vec::new(), Vec::new());
        for dep in &layer_deps[..hidden] {
            let pass: Vec<usize> =
                dep.iter().map(|u| 1 + (0..d).filter(|&i| u[i]).map(|i| fixed[i]).max().unwrap_or(0)).collect();
            let mut p: Vec<u32> = (0..pass.len() as u32).collect();
            p.sort_by_key(|&u| pass[u as usize]);
            ready.push((0..=passes).map(|q| pass.iter().filter(|&&r| r <= q).count()).collect());
            perm.push(p);
        }
        Ok(Schedule { passes, perm, ready })
    }

    /// x with x = step(MADE(input(x), c)) for every feature, from x0: the inverse of the autoregressive
    /// transform whose parameters this MADE gives (`step` applies the inverse transform to the MADE's
    /// output; columns of features not yet fixed hold partial sums, which `step` may use freely, as
    /// their features are recomputed in later passes).
    pub fn invert(
        &self,
        x0: &Tensor,
        c: Option<&Tensor>,
        input: impl Fn(&Tensor) -> Result<Tensor>,
        mut step: impl FnMut(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let s = self.schedule()?;
        let dev = x0.device();
        let hidden = self.layers.len() - 1;
        let idx: Vec<Indices> = s.perm.iter().map(|p| Indices::new(p, p.len(), dev)).collect::<Result<_>>()?;
        let mut sorted = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let (mut w, mut mask, mut b) = (layer.w.get(), layer.mask.get(), layer.b.get());
            let mut wc = layer.wc.as_ref().map(Var::get);
            if l > 0 {
                (w, mask) = (w.gather(0, &idx[l - 1])?, mask.gather(0, &idx[l - 1])?);
            }
            if l < hidden {
                (w, mask, b) = (w.gather(1, &idx[l])?, mask.gather(1, &idx[l])?, b.gather(0, &idx[l])?);
                wc = wc.map(|t| t.gather(1, &idx[l])).transpose()?;
            }
            sorted.push(Sorted { w, mask, b, wc });
        }
        let m = x0.shape()[0];
        let mut x = x0.clone();
        let mut h: Vec<Option<Tensor>> = vec![None; hidden];
        for p in 1..=s.passes {
            let u = input(&x)?;
            for l in 0..hidden {
                let (lo, hi) = (s.ready[l][p - 1], s.ready[l][p]);
                if hi > lo {
                    let inp = if l == 0 { Some(&u) } else { h[l - 1].as_ref() };
                    let blk = sorted[l].columns(inp, m, lo..hi, c.filter(|_| l == 0), Act::Relu)?;
                    h[l] = Some(match &h[l] {
                        Some(t) => Tensor::concat(&[t, &blk], 1)?,
                        None => blk,
                    });
                }
            }
            let inp = if hidden == 0 { Some(&u) } else { h[hidden - 1].as_ref() };
            let last = &sorted[hidden];
            let out = last.columns(inp, m, 0..last.b.shape()[0], c.filter(|_| hidden == 0), Act::Identity)?;
            x = step(&out)?;
        }
        Ok(x)
    }
}

impl Sorted {
    /// Columns `cols` of act(x (W ⊙ M) + c Wc + b) for x the first units of the layer below (all of them
    /// final): the weight rows past x's width belong to units not computed yet and are left out.
    fn columns(
        &self,
        x: Option<&Tensor>,
        m: usize,
        cols: Range<usize>,
        c: Option<&Tensor>,
        act: Act,
    ) -> Result<Tensor> {
        let (lo, len) = (cols.start, cols.len());
        let b = self.b.narrow(0, lo, len)?;
        let wc = self.wc.as_ref().map(|t| t.narrow(1, lo, len)).transpose()?;
        let context = c.zip(wc.as_ref());
        match x {
            Some(x) => {
                let rows = x.shape()[1];
                let w = self.w.narrow(0, 0, rows)?.narrow(1, lo, len)?;
                let mask = self.mask.narrow(0, 0, rows)?.narrow(1, lo, len)?;
                x.made_layer(&w, &mask, &b, context, act)
            }
            // No unit below is final yet: only the bias and the context.
            None => {
                let mut y = Tensor::zeros(&[m, len], b.device())?.add(&b)?;
                if let Some((c, wc)) = context {
                    y = y.add(&c.matmul(wc)?)?;
                }
                act.apply(y)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Device;
    use crate::selftest::rel_err;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// An affine autoregressive inverse step: x = (z - t) exp(-tanh(s)) from the MADE's [t | s] output.
    fn step(z: &Tensor, out: &Tensor, d: usize) -> Result<Tensor> {
        z.sub(&out.narrow(1, 0, d)?)?.mul(&out.narrow(1, d, d)?.tanh()?.neg()?.exp()?)
    }

    #[test]
    fn the_schedule_gives_the_textbook_inverse() {
        let dev = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(5);
        let (d, rows) = (6, 37);
        // A shuffled order, no hidden layer, one and two hidden layers; a context per row, one row, none.
        for (hidden, crows) in [(vec![], rows), (vec![9], 1), (vec![11, 7], rows), (vec![8, 8], 0)] {
            let made = Made::new("t", &[3, 6, 1, 5, 2, 4], 3, &hidden, 2, &mut rng, &dev).unwrap();
            let z = Tensor::randn(&[rows, d], &mut rng, &dev).unwrap();
            let c = (crows > 0).then(|| Tensor::randn(&[crows, 3], &mut rng, &dev).unwrap());
            let x0 = Tensor::zeros(&[rows, d], &dev).unwrap();
            let input = |x: &Tensor| x.tanh();
            let fast = made.invert(&x0, c.as_ref(), input, |out| step(&z, out, d)).unwrap();
            let mut slow = x0.clone();
            for _ in 0..d {
                slow = step(&z, &made.forward(&input(&slow).unwrap(), c.as_ref()).unwrap(), d).unwrap();
            }
            let e = rel_err(&fast.to_vec().unwrap(), &slow.to_vec().unwrap());
            assert!(e < 1e-5, "hidden {hidden:?}, context rows {crows}: relative error {e}");
        }
    }

    #[test]
    fn masks_that_are_not_autoregressive_are_refused() {
        let dev = Device::Cpu;
        let made = Made::new("t", &[1, 2, 3], 0, &[5], 2, &mut StdRng::seed_from_u64(1), &dev).unwrap();
        let m = &made.layers[1].mask;
        m.set(Tensor::from_vec(vec![1.0; m.get().numel()], m.get().shape(), &dev).unwrap());
        let x0 = Tensor::zeros(&[4, 3], &dev).unwrap();
        let e = made.invert(&x0, None, |x| Ok(x.clone()), |out| out.narrow(1, 0, 3)).err().unwrap();
        assert!(e.to_string().contains("not autoregressive"), "{e}");
    }
}
