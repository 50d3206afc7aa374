//! HIGlow's evaluation on held-out parameter sets:
//! - NLL per dimension (nats and bits, model units) and per map in the data's own units (the Jacobian of
//!   log10 and the scaling included, so it is comparable across scalings and with other models);
//! - on synthetic maps, the exact KL(p || q) per map: the mean over held-out maps of log p(x | theta) -
//!   log q(x | theta), both in data units (the maps are draws from p, so this is the Monte Carlo estimate);
//! - power spectra of samples against data per parameter set, with HIGlow's R^2 on the mean P(k) of the
//!   log10 maps (data/power_spectrum.rs);
//! - parameter inference: the flow's exact log-likelihood over an n x n grid of normalised conditions, the
//!   posterior under a uniform prior, its mean and standard deviation; on synthetic maps the same from the
//!   exact density, the flow's posterior-mean error in units of the exact posterior's sigma, and how often the
//!   68% / 95% regions of both hold the true parameters.
use super::glow::{log_probs, sample_maps, GlowMeta, HiSet};
use crate::autodiff::no_grad;
use crate::backend::Device;
use crate::data::hi_generator::{HiTruth, PosteriorGrid};
use crate::data::hi_maps::{dihedral, HiMaps, BOX_SIZE};
use crate::data::power_spectrum::r2;
use crate::data::stats::median;
use crate::error::{Error, Result};
use crate::models::CondGlow;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HiEvalConfig {
    /// Samples drawn per held-out parameter set for the power spectra.
    pub samples_per_set: usize,
    /// Held-out maps whose posteriors are computed (spread over the parameter sets; 0: none).
    pub infer_maps: usize,
    /// Grid points per axis of the posterior grid.
    pub grid: usize,
    /// Symmetries of the square the flow's likelihood is averaged over for inference (1: the flow as it is;
    /// see [`flow_posterior`]).
    #[serde(default = "one")]
    pub symmetries: usize,
    pub temp: f32,
    pub seed: u64,
}

impl Default for HiEvalConfig {
    fn default() -> Self {
        HiEvalConfig { samples_per_set: 15, infer_maps: 40, grid: 30, symmetries: 1, temp: 1.0, seed: 0 }
    }
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetSpectrum {
    pub omega_m: f64,
    pub sigma_8: f64,
    pub k: Vec<f64>,
    pub data_mean: Vec<f64>,
    pub data_std: Vec<f64>,
    pub sample_mean: Vec<f64>,
    pub sample_std: Vec<f64>,
    pub r2: f64,
    /// The same R^2 for as many fresh maps from the exact generator as samples (synthetic data only): what a
    /// perfect model scores, since the means of 15 maps still scatter at large scales.
    pub r2_generator: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapPosterior {
    /// Index of the map in the data set.
    pub map: usize,
    pub truth: [f64; 2],
    pub flow: PosteriorGrid,
    pub exact: Option<PosteriorGrid>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InferenceSummary {
    pub maps: usize,
    pub grid: usize,
    /// Median posterior standard deviation per axis (normalised units), the flow's and the exact one.
    pub flow_std_median: [f64; 2],
    pub exact_std_median: Option<[f64; 2]>,
    /// |flow mean - exact mean| / exact std per axis, median over maps.
    pub mean_error_sigma_median: Option<[f64; 2]>,
    /// Fraction of maps whose flow posterior mean is within 0.5 exact sigma of the exact one on both axes.
    pub frac_within_half_sigma: Option<f64>,
    /// Fraction of maps whose true parameters lie in the flow's 68% / 95% highest-posterior regions.
    pub flow_coverage: [f64; 2],
    pub exact_coverage: Option<[f64; 2]>,
    /// Root-mean-square error of the flow's posterior mean against the truth (normalised units).
    pub flow_rmse: [f64; 2],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HiEvalReport {
    pub held_out_maps: usize,
    pub held_out_sets: usize,
    pub nll_nats_per_dim: f64,
    pub nll_bits_per_dim: f64,
    /// -log q(x | theta) per map in the data's units (nats).
    pub nll_data_per_map: f64,
    /// Exact KL(p || q) per map (nats) and its standard error, and per dimension (synthetic data only).
    pub exact_kl_per_map: Option<f64>,
    pub exact_kl_se: Option<f64>,
    pub exact_kl_per_dim: Option<f64>,
    pub pk_r2_median: f64,
    pub pk_r2_mean: f64,
    /// Median R^2 of the exact generator's own maps (the ceiling on synthetic data).
    pub pk_r2_generator_median: Option<f64>,
    pub spectra: Vec<SetSpectrum>,
    pub inference: Option<InferenceSummary>,
    pub posteriors: Vec<MapPosterior>,
}

/// Mean and standard deviation per bin of the P(k) of each log10 map.
fn spectra_stats(maps: &[Vec<f32>], side: usize) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let per: Vec<(Vec<f64>, Vec<f64>)> = maps
        .par_iter()
        .map(|m| {
            let u: Vec<f32> = m.iter().map(|v| v.log10()).collect();
            crate::data::power_spectrum::power_spectrum(&u, side, BOX_SIZE)
        })
        .collect::<Result<_>>()?;
    let k = per.first().map(|p| p.0.clone()).unwrap_or_default();
    let nb = k.len();
    let n = per.len().max(1) as f64;
    let mean: Vec<f64> = (0..nb).map(|b| per.iter().map(|p| p.1[b]).sum::<f64>() / n).collect();
    let std: Vec<f64> =
        (0..nb).map(|b| (per.iter().map(|p| (p.1[b] - mean[b]).powi(2)).sum::<f64>() / n).sqrt()).collect();
    Ok((k, mean, std))
}

/// The flow's log-likelihood of one map (model units) over an n x n grid of normalised conditions. With
/// `symmetries` > 1 it is the likelihood of the symmetrised flow, log (1/S) sum_g q(g x | c) over the first S
/// symmetries of the square ([`dihedral`]): a normalised density in its own right (each g is a permutation of
/// the pixels), and never further from a density the symmetries leave unchanged (as the exact one of
/// isotropic maps) than the flow itself, by convexity of the KL. It costs S times the flow's likelihood.
pub fn flow_posterior(
    model: &CondGlow,
    map: &[f32],
    n: usize,
    symmetries: usize,
    dev: &Device,
) -> Result<PosteriorGrid> {
    if !(1..=8).contains(&symmetries) {
        return Err(Error::Usage(format!("symmetries must be 1 to 8, got {symmetries}")));
    }
    let axis = PosteriorGrid::from_log_like(n, vec![0.0; n * n])?.axis;
    let cfg = &model.cfg;
    let conds: Vec<[f32; 2]> = (0..n * n).map(|i| [axis[i / n] as f32, axis[i % n] as f32]).collect();
    let plane = cfg.side * cfg.side;
    let mut per_g: Vec<Vec<f64>> = Vec::with_capacity(symmetries);
    const BATCH: usize = 128;
    for g in 0..symmetries {
        let image: Vec<f32> = map.chunks(plane).flat_map(|ch| dihedral(ch, cfg.side, g)).collect();
        let mut ll = Vec::with_capacity(n * n);
        no_grad(|| -> Result<()> {
            for chunk in conds.chunks(BATCH) {
                let b = chunk.len();
                let x = Tensor::from_slice(&image, &[1, cfg.channels, cfg.side, cfg.side], dev)?.broadcast_to(&[
                    b,
                    cfg.channels,
                    cfg.side,
                    cfg.side,
                ])?;
                let c = Tensor::from_vec(chunk.iter().flat_map(|c| c.iter().copied()).collect(), &[b, 2], dev)?;
                ll.extend(model.log_prob(&x, &c)?.to_vec()?.into_iter().map(f64::from));
            }
            Ok(())
        })?;
        per_g.push(ll);
    }
    let ll = (0..n * n)
        .map(|i| {
            let m = per_g.iter().map(|l| l[i]).fold(f64::NEG_INFINITY, f64::max);
            m + (per_g.iter().map(|l| (l[i] - m).exp()).sum::<f64>() / symmetries as f64).ln()
        })
        .collect();
    PosteriorGrid::from_log_like(n, ll)
}

/// Posteriors of the maps `idx` of `maps` on `ec`'s grid (model and exact, when `truth` is given).
pub fn infer(
    model: &CondGlow,
    meta: &GlowMeta,
    maps: &HiMaps,
    idx: &[usize],
    ec: &HiEvalConfig,
    truth: Option<&HiTruth>,
    dev: &Device,
) -> Result<Vec<MapPosterior>> {
    let grid = ec.grid;
    idx.iter()
        .map(|&i| {
            let v = meta.scaling.forward(maps.map(i));
            let p = maps.params[i];
            let exact = match truth {
                Some(t) => Some(t.model.exact_posterior(maps.map(i), maps.side, BOX_SIZE, &t.cond_scaling, grid)?),
                None => None,
            };
            Ok(MapPosterior {
                map: i,
                truth: meta.cond_scaling.forward([f64::from(p[0]), f64::from(p[1])]),
                flow: flow_posterior(model, &v, grid, ec.symmetries, dev)?,
                exact,
            })
        })
        .collect()
}

/// Summary statistics of a set of posteriors.
pub fn summarise(posts: &[MapPosterior], grid: usize) -> InferenceSummary {
    let n = posts.len().max(1) as f64;
    let axis = |f: &dyn Fn(&MapPosterior) -> f64| median(posts.iter().map(f).collect());
    let cover = |g: &PosteriorGrid, t: [f64; 2], q: f64| g.credibility(t) < q;
    let frac = |f: &dyn Fn(&MapPosterior) -> bool| posts.iter().filter(|p| f(p)).count() as f64 / n;
    let with_exact = posts.iter().all(|p| p.exact.is_some()) && !posts.is_empty();
    let err = |p: &MapPosterior, a: usize| {
        let e = p.exact.as_ref().unwrap();
        (p.flow.mean()[a] - e.mean()[a]).abs() / e.std()[a].max(1e-12)
    };
    let rmse = |a: usize| (posts.iter().map(|p| (p.flow.mean()[a] - p.truth[a]).powi(2)).sum::<f64>() / n).sqrt();
    InferenceSummary {
        maps: posts.len(),
        grid,
        flow_std_median: [axis(&|p| p.flow.std()[0]), axis(&|p| p.flow.std()[1])],
        exact_std_median: with_exact
            .then(|| [axis(&|p| p.exact.as_ref().unwrap().std()[0]), axis(&|p| p.exact.as_ref().unwrap().std()[1])]),
        mean_error_sigma_median: with_exact.then(|| [axis(&|p| err(p, 0)), axis(&|p| err(p, 1))]),
        frac_within_half_sigma: with_exact.then(|| frac(&|p| err(p, 0) < 0.5 && err(p, 1) < 0.5)),
        flow_coverage: [frac(&|p| cover(&p.flow, p.truth, 0.68)), frac(&|p| cover(&p.flow, p.truth, 0.95))],
        exact_coverage: with_exact.then(|| {
            [
                frac(&|p| cover(p.exact.as_ref().unwrap(), p.truth, 0.68)),
                frac(&|p| cover(p.exact.as_ref().unwrap(), p.truth, 0.95)),
            ]
        }),
        flow_rmse: [rmse(0), rmse(1)],
    }
}

/// Evaluates `model` on the held-out maps `val` of `maps` (whole parameter sets); `truth` enables the exact
/// KL and the exact posteriors.
pub fn evaluate(
    model: &CondGlow,
    meta: &GlowMeta,
    maps: &HiMaps,
    val: &[usize],
    truth: Option<&HiTruth>,
    ec: &HiEvalConfig,
    dev: &Device,
) -> Result<HiEvalReport> {
    if val.is_empty() {
        return Err(Error::Data("no held-out maps to evaluate".into()));
    }
    if !(1..=8).contains(&ec.symmetries) {
        return Err(Error::Usage(format!("symmetries must be 1 to 8, got {}", ec.symmetries)));
    }
    if maps.side != model.cfg.side {
        return Err(Error::Usage(format!("maps are {} pixels, the model wants {}", maps.side, model.cfg.side)));
    }
    let set: HiSet = super::glow::hi_set(maps, val, &meta.scaling, &meta.cond_scaling);
    let lp = log_probs(model, &set, dev)?;
    let dim = set.dim as f64;
    let nll = -lp.iter().sum::<f64>() / (lp.len() as f64 * dim);
    // Data units: log q(n) = log q(v) + log|dv/dn|.
    let lp_data: Vec<f64> = val.iter().zip(&lp).map(|(&i, l)| l + meta.scaling.log_abs_det(maps.map(i))).collect();
    let nll_data = -lp_data.iter().sum::<f64>() / lp_data.len() as f64;
    let (mut kl, mut kl_se) = (None, None);
    if let Some(t) = truth {
        let d: Vec<f64> = val
            .par_iter()
            .zip(&lp_data)
            .map(|(&i, lq)| {
                let p = maps.params[i];
                t.model.log_density(maps.map(i), maps.side, BOX_SIZE, f64::from(p[0]), f64::from(p[1])) - lq
            })
            .collect();
        let m = d.iter().sum::<f64>() / d.len() as f64;
        kl = Some(m);
        kl_se = Some((d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (d.len() as f64).powi(2)).sqrt());
    }
    // Held-out parameter sets, in order of first appearance.
    let mut sets: Vec<u32> = Vec::new();
    for &i in val {
        if !sets.contains(&maps.sim[i]) {
            sets.push(maps.sim[i]);
        }
    }
    let mut spectra = Vec::with_capacity(sets.len());
    for (si, &s) in sets.iter().enumerate() {
        let members: Vec<usize> = val.iter().copied().filter(|&i| maps.sim[i] == s).collect();
        let p = maps.params[members[0]];
        let theta = [f64::from(p[0]), f64::from(p[1])];
        let data: Vec<Vec<f32>> = members.iter().map(|&i| maps.map(i).to_vec()).collect();
        let samples = sample_maps(model, meta, &[theta], ec.samples_per_set, ec.temp, 64, ec.seed ^ si as u64, dev)?;
        let (k, dm, ds) = spectra_stats(&data, maps.side)?;
        let (_, sm, ss) = spectra_stats(&samples, maps.side)?;
        let r2_generator = match truth {
            Some(t) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(ec.seed ^ 0x6E6 ^ si as u64);
                let fresh: Vec<Vec<f32>> = (0..ec.samples_per_set)
                    .map(|_| t.model.sample_map(maps.side, BOX_SIZE, theta[0], theta[1], &mut rng))
                    .collect();
                Some(r2(&dm, &spectra_stats(&fresh, maps.side)?.1))
            }
            None => None,
        };
        spectra.push(SetSpectrum {
            omega_m: theta[0],
            sigma_8: theta[1],
            r2: r2(&dm, &sm),
            k,
            data_mean: dm,
            data_std: ds,
            sample_mean: sm,
            sample_std: ss,
            r2_generator,
        });
    }
    let r2s: Vec<f64> = spectra.iter().map(|s| s.r2).collect();
    // Posteriors of up to `infer_maps` held-out maps, spread over the sets.
    let pick: Vec<usize> = if ec.infer_maps == 0 {
        Vec::new()
    } else {
        let per = ec.infer_maps.div_ceil(sets.len()).max(1);
        let mut v: Vec<usize> =
            sets.iter().flat_map(|&s| val.iter().copied().filter(move |&i| maps.sim[i] == s).take(per)).collect();
        v.truncate(ec.infer_maps);
        v
    };
    let posteriors = infer(model, meta, maps, &pick, ec, truth, dev)?;
    Ok(HiEvalReport {
        held_out_maps: val.len(),
        held_out_sets: sets.len(),
        nll_nats_per_dim: nll,
        nll_bits_per_dim: nll / std::f64::consts::LN_2,
        nll_data_per_map: nll_data,
        exact_kl_per_map: kl,
        exact_kl_se: kl_se,
        exact_kl_per_dim: kl.map(|k| k / dim),
        pk_r2_median: median(r2s.clone()),
        pk_r2_mean: r2s.iter().sum::<f64>() / r2s.len().max(1) as f64,
        pk_r2_generator_median: truth.map(|_| median(spectra.iter().filter_map(|s| s.r2_generator).collect())),
        spectra,
        inference: (!posteriors.is_empty()).then(|| summarise(&posteriors, ec.grid)),
        posteriors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{GlowConfig, GlowPrior};
    use crate::nn::Module;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn the_symmetrised_likelihood_is_the_log_mean_of_the_flow_over_the_symmetries() {
        let dev = Device::Cpu;
        let cfg = GlowConfig {
            side: 8,
            blocks: 2,
            steps: 1,
            hidden: 4,
            prior: GlowPrior::Conditional { hidden: 4 },
            ..GlowConfig::higlow()
        };
        let model = CondGlow::new(&cfg, &dev).unwrap();
        // Random weights everywhere (the zero-initialised nets would make every symmetry score the same).
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for v in model.vars() {
            let shape = v.get().shape().to_vec();
            v.set(Tensor::randn(&shape, &mut rng, &dev).unwrap().scale(0.2).unwrap());
        }
        let map: Vec<f32> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
        let n = 3;
        let (plain, sym) =
            (flow_posterior(&model, &map, n, 1, &dev).unwrap(), flow_posterior(&model, &map, n, 4, &dev).unwrap());
        for i in 0..n * n {
            let c = Tensor::from_vec(vec![plain.axis[i / n] as f32, plain.axis[i % n] as f32], &[1, 2], &dev).unwrap();
            let lp: Vec<f64> = (0..4)
                .map(|g| {
                    let x = Tensor::from_vec(dihedral(&map, 8, g), &[1, 1, 8, 8], &dev).unwrap();
                    f64::from(model.log_prob(&x, &c).unwrap().to_vec().unwrap()[0])
                })
                .collect();
            assert!(lp.iter().any(|&l| (l - lp[0]).abs() > 1e-3), "the symmetries should score differently: {lp:?}");
            let top = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let want = top + (lp.iter().map(|l| (l - top).exp()).sum::<f64>() / 4.0).ln();
            assert!((sym.log_like[i] - want).abs() < 1e-4 * want.abs().max(1.0), "{} vs {want}", sym.log_like[i]);
            assert!((plain.log_like[i] - lp[0]).abs() < 1e-9, "{} vs {}", plain.log_like[i], lp[0]);
        }
        assert!(flow_posterior(&model, &map, n, 9, &dev).is_err() && flow_posterior(&model, &map, n, 0, &dev).is_err());
    }
}
