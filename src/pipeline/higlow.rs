//! HIGlow's stages as the `gforge glow ...` and `gforge higlow` commands run them: load a CAMELS-layout
//! folder (maps.npy, params.csv, and truth.json when the maps are synthetic), split it by parameter set,
//! fit the scalings on the training maps, train (pipeline::glow), evaluate (pipeline::hi_eval), and the
//! demo that runs them all on the embedded default.
use super::glow::{self, hi_set, GlowMeta, GlowState, GlowTrainConfig};
use super::hi_eval::{self, HiEvalConfig, HiEvalReport};
use crate::backend::Device;
use crate::data::hi_generator::{self, HiGenConfig, HiTruth};
use crate::data::hi_maps::{load_camels, CondScaling, HiMaps, MapScaling, ScalingKind, MAPS_PER_SIM};
use crate::error::{Error, Result};
use crate::models::{CondGlow, GlowConfig, GlowPrior};
use crate::plot::{PkPanel, PosteriorPanel};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Maps with their parameters, and the generator's truth when they are synthetic.
pub struct HiData {
    pub maps: HiMaps,
    pub truth: Option<HiTruth>,
    pub source: String,
}

/// A folder written by `gforge synth hi-maps` or laid out the same way: maps.npy [N, H, W], params.csv
/// (one row per parameter set, `maps_per_sim` maps each), truth.json if synthetic.
pub fn load_folder(dir: &Path) -> Result<HiData> {
    if !dir.is_dir() {
        return Err(Error::file(dir, "no such folder (expected maps.npy and params.csv in it)"));
    }
    let truth_path = dir.join("truth.json");
    let truth = if truth_path.exists() { Some(HiTruth::read(&truth_path)?) } else { None };
    let mps = truth.as_ref().map_or(MAPS_PER_SIM, |t| t.config.maps_per_sim);
    load_files(&dir.join("maps.npy"), &dir.join("params.csv"), mps, truth)
}

/// Maps and a parameter table given as files (CAMELS' own layout), `maps_per_sim` maps per row.
pub fn load_files(maps: &Path, params: &Path, maps_per_sim: usize, truth: Option<HiTruth>) -> Result<HiData> {
    let m = load_camels(maps, params, maps_per_sim)?;
    if let Some(t) = &truth {
        if t.config.side != m.side {
            return Err(Error::file(maps, format!("maps are {} pixels but truth.json says {}", m.side, t.config.side)));
        }
    }
    Ok(HiData { maps: m, truth, source: maps.display().to_string() })
}

/// How the data was split: whole parameter sets held out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HiSplit {
    pub val_fraction: f64,
    pub seed: u64,
    pub maps: usize,
    pub held_out_sets: Vec<u32>,
}

impl HiSplit {
    pub fn new(maps: &HiMaps, val_fraction: f64, seed: u64) -> (HiSplit, Vec<usize>, Vec<usize>) {
        let (train, val) = maps.split_by_sim(val_fraction, seed);
        let mut sets: Vec<u32> = val.iter().map(|&i| maps.sim[i]).collect();
        sets.sort_unstable();
        sets.dedup();
        (HiSplit { val_fraction, seed, maps: maps.len(), held_out_sets: sets }, train, val)
    }

    /// The held-out maps of `maps` under this split (the data must be the one the model was trained on).
    pub fn held_out(&self, maps: &HiMaps) -> Result<Vec<usize>> {
        let (split, _, val) = HiSplit::new(maps, self.val_fraction, self.seed);
        if split != *self {
            return Err(Error::Usage(format!(
                "these maps are not the ones the model was trained on ({} maps, held-out sets {:?}; the model's: {} \
                 maps, sets {:?}); pass --val-fraction 1 to evaluate on every map",
                split.maps, split.held_out_sets, self.maps, self.held_out_sets
            )));
        }
        Ok(val)
    }
}

/// Trains on `data` (whole parameter sets held out by `split_fraction`), writing `ckpt` every epoch.
#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &HiData,
    cfg: &GlowConfig,
    tc: &GlowTrainConfig,
    scaling: ScalingKind,
    val_fraction: f64,
    ckpt: &Path,
    dev: &Device,
    resume: bool,
    progress: bool,
) -> Result<(CondGlow, GlowMeta, GlowState)> {
    if data.maps.side != cfg.side {
        return Err(Error::Usage(format!("maps are {} pixels, the model wants {}", data.maps.side, cfg.side)));
    }
    let (split, train_idx, val_idx) = HiSplit::new(&data.maps, val_fraction, tc.seed);
    let map_scaling = MapScaling::fit(scaling, train_idx.iter().map(|&i| data.maps.map(i)))?;
    let meta = GlowMeta {
        glow: cfg.clone(),
        scaling: map_scaling,
        cond_scaling: data.truth.as_ref().map_or_else(CondScaling::default, |t| t.cond_scaling),
        data: serde_json::json!({ "source": data.source, "split": split }),
    };
    let train = hi_set(&data.maps, &train_idx, &meta.scaling, &meta.cond_scaling);
    let val = hi_set(&data.maps, &val_idx, &meta.scaling, &meta.cond_scaling);
    if progress {
        println!(
            "{} maps of {} parameter sets: {} for training, {} held out ({} sets); {} trainable parameters",
            data.maps.len(),
            data.maps.len() / data.maps.maps_per_sim.max(1),
            train.len(),
            val.len(),
            split.held_out_sets.len(),
            cfg.parameter_count()
        );
    }
    let (model, state) = glow::train(&train, &val, &meta, tc, ckpt, dev, resume, progress)?;
    Ok((model, meta, state))
}

/// The held-out maps of a trained model's data (every map when the model's split does not apply and
/// `all` is set).
pub fn held_out(meta: &GlowMeta, maps: &HiMaps, all: bool) -> Result<Vec<usize>> {
    if all {
        return Ok((0..maps.len()).collect());
    }
    let split: HiSplit = serde_json::from_value(meta.data["split"].clone()).map_err(|_| {
        Error::Usage("the model does not record its data split; pass --all to evaluate every map".into())
    })?;
    split.held_out(maps)
}

/// Evaluates and writes `out/eval.json` (and the figures) for a trained model.
pub fn evaluate(
    model: &CondGlow,
    meta: &GlowMeta,
    data: &HiData,
    val: &[usize],
    ec: &HiEvalConfig,
    out: &Path,
    dev: &Device,
) -> Result<HiEvalReport> {
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    let report = hi_eval::evaluate(model, meta, &data.maps, val, data.truth.as_ref(), ec, dev)?;
    write_json(&out.join("eval.json"), &serde_json::to_value(&report).map_err(|e| Error::Data(e.to_string()))?)?;
    figures(model, meta, data, val, &report, ec.seed, out, dev)?;
    Ok(report)
}

/// pk.png (P(k) of samples against data, up to 6 parameter sets), posteriors.png (up to 9 maps: the flow's
/// posterior with its 68/95% contours, the exact contours, the truth) and samples.png (data beside samples
/// for up to 3 parameter sets, log10 N_HI).
#[allow(clippy::too_many_arguments)]
fn figures(
    model: &CondGlow,
    meta: &GlowMeta,
    data: &HiData,
    val: &[usize],
    r: &HiEvalReport,
    seed: u64,
    out: &Path,
    dev: &Device,
) -> Result<()> {
    let plot_err = |p: &Path, e: crate::plot::PlotError| Error::file(p, e.to_string());
    let panels: Vec<PkPanel> = r
        .spectra
        .iter()
        .take(6)
        .map(|s| PkPanel {
            title: format!("Ωm {:.2} σ8 {:.2}, R² {:.3}", s.omega_m, s.sigma_8, s.r2),
            k: &s.k,
            data_mean: &s.data_mean,
            data_std: &s.data_std,
            sample_mean: &s.sample_mean,
            sample_std: &s.sample_std,
        })
        .collect();
    let path = out.join("pk.png");
    if !panels.is_empty() {
        crate::plot::power_spectra(&path, &panels, 3).map_err(|e| plot_err(&path, e))?;
    }
    let cs = &meta.cond_scaling;
    let posts: Vec<(Vec<f64>, Option<Vec<f64>>)> =
        r.posteriors.iter().take(9).map(|p| (p.flow.posterior(), p.exact.as_ref().map(|e| e.posterior()))).collect();
    let panels: Vec<PosteriorPanel> = r
        .posteriors
        .iter()
        .zip(&posts)
        .map(|(p, (flow, exact))| {
            let [om, s8] = cs.inverse(p.truth);
            PosteriorPanel {
                title: format!("map {}: Ωm {om:.2} σ8 {s8:.2}", p.map),
                n: p.flow.n,
                axis: &p.flow.axis,
                flow,
                exact: exact.as_deref(),
                truth: Some(p.truth),
                labels: ["Ωm", "σ8"],
                ranges: Some([[cs.lo[0], cs.hi[0]], [cs.lo[1], cs.hi[1]]]),
            }
        })
        .collect();
    let path = out.join("posteriors.png");
    if !panels.is_empty() {
        crate::plot::posteriors(&path, &panels, 3).map_err(|e| plot_err(&path, e))?;
    }
    // Data beside samples for up to 3 held-out parameter sets, 5 maps each, in log10 N_HI.
    let maps = &data.maps;
    let mut sets: Vec<u32> = val.iter().map(|&i| maps.sim[i]).collect();
    sets.dedup();
    let log10 = |m: &[f32]| m.iter().map(|v| v.log10()).collect::<Vec<f32>>();
    let mut rows: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
    for (k, &set) in sets.iter().take(3).enumerate() {
        let members: Vec<usize> = val.iter().copied().filter(|&i| maps.sim[i] == set).take(5).collect();
        let p = maps.params[members[0]];
        let theta = [f64::from(p[0]), f64::from(p[1])];
        let samples = glow::sample_maps(model, meta, &[theta], members.len(), 1.0, 64, seed ^ 0xF16 ^ k as u64, dev)?;
        rows.push((
            format!("data Ωm {:.2} σ8 {:.2}", theta[0], theta[1]),
            members.iter().map(|&i| log10(maps.map(i))).collect(),
        ));
        rows.push(("samples".into(), samples.iter().map(|m| log10(m)).collect()));
    }
    if !rows.is_empty() {
        let mut all: Vec<f32> =
            rows.iter().step_by(2).flat_map(|r| r.1.iter().flatten().copied()).filter(|v| v.is_finite()).collect();
        all.sort_by(f32::total_cmp);
        let q = |f: f64| all[((all.len() - 1) as f64 * f) as usize];
        let (vmin, vmax) = (q(0.01), q(0.99));
        let refs: Vec<(&str, Vec<&[f32]>)> =
            rows.iter().map(|(l, m)| (l.as_str(), m.iter().map(|v| v.as_slice()).collect())).collect();
        let path = out.join("samples.png");
        crate::plot::map_rows(&path, &refs, maps.side, vmin, vmax.max(vmin + 1e-3)).map_err(|e| plot_err(&path, e))?;
    }
    Ok(())
}

pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
}

/// One line per headline number.
pub fn print_report(r: &HiEvalReport) {
    println!(
        "held-out NLL {:.4} nats/dim ({:.4} bits/dim) over {} maps of {} parameter sets; {:.1} nats/map in the data's units",
        r.nll_nats_per_dim, r.nll_bits_per_dim, r.held_out_maps, r.held_out_sets, r.nll_data_per_map
    );
    if let (Some(k), Some(se)) = (r.exact_kl_per_map, r.exact_kl_se) {
        println!("exact KL(p || q) {k:.2} ± {se:.2} nats/map ({:.5} nats/dim)", r.exact_kl_per_dim.unwrap_or(f64::NAN));
    }
    let ceiling =
        r.pk_r2_generator_median.map_or(String::new(), |g| format!(" (the exact generator's own maps: {g:.3})"));
    println!("P(k) R^2 of samples against data: median {:.3}, mean {:.3}{ceiling}", r.pk_r2_median, r.pk_r2_mean);
    if let Some(i) = &r.inference {
        println!(
            "inference on {} maps ({}x{} grid): flow posterior std (median) Omega_m {:.3} sigma_8 {:.3}; truth in the \
             flow's 68%/95% regions {:.0}%/{:.0}%",
            i.maps,
            i.grid,
            i.grid,
            i.flow_std_median[0],
            i.flow_std_median[1],
            100.0 * i.flow_coverage[0],
            100.0 * i.flow_coverage[1]
        );
        if let (Some(e), Some(f), Some(s)) = (i.mean_error_sigma_median, i.frac_within_half_sigma, i.exact_std_median) {
            println!(
                "  against the exact posterior (std {:.3}, {:.3}): mean error {:.2}, {:.2} exact sigma (median); {:.0}% of \
                 maps within 0.5 sigma on both",
                s[0],
                s[1],
                e[0],
                e[1],
                100.0 * f
            );
        }
    }
}

/// The demo's settings: a smaller model and data set that train in minutes on 2 CPU cores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoConfig {
    pub sims: usize,
    pub glow: GlowConfig,
    pub train: GlowTrainConfig,
    /// Parameter sets held out (at most half of them).
    pub held_out_sets: usize,
    pub eval: HiEvalConfig,
}

impl Default for DemoConfig {
    /// 600 parameter sets of 15 maps (20 held out), 4 blocks of K = 4 steps (266k parameters), 7 epochs at
    /// Adam 1e-3 with batch 32: a short run learns more from many parameter sets seen a few times than from
    /// few sets seen often, and a larger step than HIGlow's 3e-4 / 64 suits a run this short. About 7
    /// minutes on 2 CPU cores (4.5 training, 2.5 evaluating).
    fn default() -> Self {
        DemoConfig {
            sims: 600,
            glow: GlowConfig {
                blocks: 4,
                steps: 4,
                hidden: 16,
                prior: GlowPrior::Conditional { hidden: 8 },
                ..GlowConfig::higlow()
            },
            train: GlowTrainConfig { epochs: 7, lr: 1e-3, batch: 32, ..GlowTrainConfig::default() },
            held_out_sets: 20,
            // The flips the model trains with, averaged at inference: 4x the inference time (about two
            // minutes here) for a better posterior (BENCHMARKS.md, "HIGlow").
            eval: HiEvalConfig { symmetries: 4, ..HiEvalConfig::default() },
        }
    }
}

/// synthesise -> train -> evaluate (NLL, exact KL, P(k), inference) -> figures and summary.json, in `out`.
pub fn demo(out: &Path, dc: &DemoConfig, dev: &Device) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    let data_dir: PathBuf = out.join("data");
    let gen = HiGenConfig { sims: dc.sims, ..HiGenConfig::default() };
    let maps = hi_generator::generate(&gen);
    maps.save(&data_dir)?;
    HiTruth::new(&gen).write(&data_dir.join("truth.json"))?;
    println!("synthesised {} maps of {} parameter sets into {}", maps.len(), dc.sims, data_dir.display());
    let data = load_folder(&data_dir)?;
    let ckpt = out.join("glow.npz");
    let t_train = Instant::now();
    let val_fraction = (dc.held_out_sets as f64 / dc.sims as f64).min(0.5);
    let (model, meta, state) =
        train(&data, &dc.glow, &dc.train, ScalingKind::MinMax, val_fraction, &ckpt, dev, false, true)?;
    let train_s = t_train.elapsed().as_secs_f64();
    let curve = |f: &dyn Fn(&super::glow::GlowEpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
        state.history.iter().filter_map(|h| f(h).map(|v| (h.epoch as f64, v))).collect()
    };
    let (tr, va) = (curve(&|h| Some(h.train_nll)), curve(&|h| h.val_nll));
    let path = out.join("training.png");
    crate::plot::curves(&path, &[("train", &tr), ("held out", &va)], "epoch", "NLL [nats/dim]", "HIGlow training")
        .map_err(|e| Error::file(&path, e.to_string()))?;
    let val = held_out(&meta, &data.maps, false)?;
    let t_eval = Instant::now();
    let report = evaluate(&model, &meta, &data, &val, &dc.eval, out, dev)?;
    print_report(&report);
    let summary = serde_json::json!({
        "device": dev.to_string(),
        "config": dc,
        "parameters": dc.glow.parameter_count(),
        "train_seconds": train_s,
        "eval_seconds": t_eval.elapsed().as_secs_f64(),
        "total_seconds": t0.elapsed().as_secs_f64(),
        "final_train_nll": state.history.last().map(|h| h.train_nll),
        "final_val_nll": state.history.last().and_then(|h| h.val_nll),
        "maps_per_s": state.history.last().map(|h| h.maps_per_s),
        "nll_nats_per_dim": report.nll_nats_per_dim,
        "nll_bits_per_dim": report.nll_bits_per_dim,
        "exact_kl_per_map": report.exact_kl_per_map,
        "exact_kl_per_dim": report.exact_kl_per_dim,
        "pk_r2_median": report.pk_r2_median,
        "pk_r2_mean": report.pk_r2_mean,
        "pk_r2_generator_median": report.pk_r2_generator_median,
        "inference": report.inference,
    });
    write_json(&out.join("summary.json"), &summary)?;
    println!("wrote {} in {:.0} s", out.join("summary.json").display(), t0.elapsed().as_secs_f64());
    Ok(summary)
}
