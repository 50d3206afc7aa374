//! GalacticFlow's neural spline flow ("NSFlow", arXiv 2312.06017): `layers` repeats of
//! [LU-decomposed linear map, double rational-quadratic spline coupling]. With a = x[:D/2], b = x[D/2:]:
//! b' = spline(b; θ1), θ1 = net_cond1(c) * net1(a);  a' = spline(a; θ2), θ2 = net_cond2(c) * net2(b').
//! Every net is `depth` Linear layers of width `hidden` with LeakyReLU(0.2) after each, the last included.
use super::{add_logdet, check_inputs, Flow};
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::nn::{LuLinear, Mlp, Module};
use crate::ops::spline::SplineCfg;
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NsfConfig {
    pub dim: usize,
    pub cond_dim: usize,
    pub layers: usize,
    pub hidden: usize,
    /// Linear layers per net.
    pub depth: usize,
    pub slope: f32,
    pub spline: SplineCfg,
    /// Seeds the initial weights, LU permutations and signs.
    pub seed: u64,
}

impl NsfConfig {
    /// GalacticFlow's defaults for `dim` star columns and `cond_dim` conditions.
    pub fn galacticflow(dim: usize, cond_dim: usize) -> NsfConfig {
        NsfConfig {
            dim,
            cond_dim,
            layers: 14,
            hidden: 128,
            depth: 4,
            slope: 0.2,
            spline: SplineCfg::default(),
            seed: 0,
        }
    }
}

/// One half-coupling: θ = net_cond(c) * net(x_other), reshaped to [B, D_half, 3K-1].
struct Half {
    net: Mlp,
    cond: Mlp,
    dims: usize,
}

impl Half {
    fn theta(&self, other: &Tensor, c: &Tensor, per: usize) -> Result<Tensor> {
        let t = self.net.forward(other)?.mul(&self.cond.forward(c)?)?;
        t.reshape(&[other.shape()[0], self.dims, per])
    }
}

struct Step {
    lu: LuLinear,
    first: Half,
    second: Half,
}

pub struct Nsf {
    cfg: NsfConfig,
    steps: Vec<Step>,
}

impl Nsf {
    pub fn new(cfg: NsfConfig, dev: &Device) -> Result<Nsf> {
        if cfg.dim < 2 || cfg.layers == 0 || cfg.depth == 0 || cfg.hidden == 0 {
            return Err(Error::Usage(format!("invalid NSF configuration {cfg:?}")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let (da, db) = (cfg.dim / 2, cfg.dim - cfg.dim / 2);
        // Sizes below saturate: settings may hold any number, and the build budget refuses what they reach.
        let per = cfg.spline.params_per_dim();
        let net = |name: &str, fin: usize, fout: usize, rng: &mut rand::rngs::StdRng| {
            crate::build_budget::take(cfg.depth as u64)?;
            let mut sizes = vec![fin];
            sizes.extend(std::iter::repeat_n(cfg.hidden, cfg.depth - 1));
            sizes.push(fout);
            Mlp::new(name, &sizes, cfg.slope, true, rng, dev)
        };
        crate::build_budget::take(cfg.layers as u64)?;
        let mut steps = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = format!("nsf.{i}");
            steps.push(Step {
                lu: LuLinear::new(&format!("{p}.lu"), cfg.dim, &mut rng, dev)?,
                first: Half {
                    net: net(&format!("{p}.net1"), da, db.saturating_mul(per), &mut rng)?,
                    cond: net(&format!("{p}.cond1"), cfg.cond_dim, db.saturating_mul(per), &mut rng)?,
                    dims: db,
                },
                second: Half {
                    net: net(&format!("{p}.net2"), db, da.saturating_mul(per), &mut rng)?,
                    cond: net(&format!("{p}.cond2"), cfg.cond_dim, da.saturating_mul(per), &mut rng)?,
                    dims: da,
                },
            });
        }
        Ok(Nsf { cfg, steps })
    }

    pub fn cfg(&self) -> &NsfConfig {
        &self.cfg
    }
}

impl Module for Nsf {
    fn vars(&self) -> Vec<Var> {
        let mut v = Vec::new();
        for s in &self.steps {
            v.extend(s.lu.vars());
            for h in [&s.first, &s.second] {
                v.extend(h.net.vars());
                v.extend(h.cond.vars());
            }
        }
        v
    }
    fn buffers(&self) -> Vec<Var> {
        self.steps.iter().flat_map(|s| s.lu.buffers()).collect()
    }
}

impl Flow for Nsf {
    fn dim(&self) -> usize {
        self.cfg.dim
    }
    fn cond_dim(&self) -> usize {
        self.cfg.cond_dim
    }

    fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        check_inputs("nsf", x, c, self.cfg.dim, self.cfg.cond_dim)?;
        let (da, db) = (self.cfg.dim / 2, self.cfg.dim - self.cfg.dim / 2);
        let per = self.cfg.spline.params_per_dim();
        let mut h = x.clone();
        let mut logdet: Option<Tensor> = None;
        for (i, s) in self.steps.iter().enumerate() {
            let _layer = crate::autodiff::anomaly::scope_with(|| format!("nsf.{i}"));
            let (y, ld) = s.lu.forward(&h)?;
            add_logdet(&mut logdet, ld)?;
            let parts = y.split(&[da, db], 1)?;
            let (b2, ldb) = parts[1].rq_spline(&s.first.theta(&parts[0], c, per)?, &self.cfg.spline, false)?;
            let (a2, lda) = parts[0].rq_spline(&s.second.theta(&b2, c, per)?, &self.cfg.spline, false)?;
            add_logdet(&mut logdet, ldb.sum(-1)?.add(&lda.sum(-1)?)?)?;
            h = Tensor::concat(&[&a2, &b2], 1)?;
        }
        let ld = logdet.expect("at least one layer").broadcast_to(&[x.shape()[0]])?;
        Ok((h, ld))
    }

    fn inverse(&self, z: &Tensor, c: &Tensor) -> Result<Tensor> {
        check_inputs("nsf", z, c, self.cfg.dim, self.cfg.cond_dim)?;
        let (da, db) = (self.cfg.dim / 2, self.cfg.dim - self.cfg.dim / 2);
        let per = self.cfg.spline.params_per_dim();
        no_grad(|| {
            let mut h = z.clone();
            for s in self.steps.iter().rev() {
                let parts = h.split(&[da, db], 1)?;
                let (a, _) = parts[0].rq_spline(&s.second.theta(&parts[1], c, per)?, &self.cfg.spline, true)?;
                let (b, _) = parts[1].rq_spline(&s.first.theta(&a, c, per)?, &self.cfg.spline, true)?;
                h = Tensor::concat(&[&a, &b], 1)?.matmul(&s.lu.inverse_weight()?)?;
            }
            Ok(h)
        })
    }
}
