//! `gforge flow eval` and `gforge forge --demo`: the pipeline end to end into one output folder.
use super::eval::{galaxy_metrics, sample_physical, GalaxyMetrics};
use super::model::{FlowSpec, SavedModel};
use super::prepare::{prepare, PrepareConfig};
use super::train::{train, TrainConfig};
use crate::backend::Device;
use crate::data::synthetic::{self, SynthConfig, Truth};
use crate::data::MODELLED;
use crate::error::{Error, Result};
use crate::flows::NsfConfig;
use crate::ops::spline::SplineCfg;
use std::path::Path;
use std::time::Instant;

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
}

/// Evaluates the checkpoint on the galaxies it left out of training (re-cleaned from `data` with the
/// checkpoint's own settings), writing samples, metrics.json and plots into `out`.
pub fn evaluate(model_path: &Path, data: &Path, out: &Path, dev: &Device, seed: u64) -> Result<Vec<GalaxyMetrics>> {
    let (model, _) = SavedModel::load(model_path, dev)?;
    let prep: PrepareConfig = serde_json::from_value(model.config["prepare"].clone()).map_err(|e| {
        Error::Checkpoint { path: model_path.display().to_string(), msg: format!("data settings: {e}") }
    })?;
    let p = prepare(data, &prep)?;
    if p.val.is_empty() {
        return Err(Error::Data("this model left no galaxy out of training: nothing held out to evaluate".into()));
    }
    let truth_path = if data.is_dir() { data.join("truth.json") } else { data.with_file_name("truth.json") };
    let truth = if truth_path.exists() { Some(Truth::read(&truth_path)?) } else { None };
    std::fs::create_dir_all(out.join("samples")).map_err(|e| Error::file(out, e))?;
    let mut all = Vec::new();
    for (i, (g, c)) in p.val.iter().zip(&p.val_cond).enumerate() {
        let samples = sample_physical(&model, c, g.n(), seed.wrapping_add(i as u64), dev)?;
        let arr = ndarray::Array2::from_shape_vec((g.n(), MODELLED.len()), samples.clone())
            .map_err(|e| Error::Data(e.to_string()))?;
        crate::io::write_npy_f32(&out.join("samples").join(format!("{}.npy", g.id)), &arr.into_dyn())?;
        let r_cut = p.report.radial_cuts.iter().find(|(id, _)| id == &g.id).map(|(_, r)| *r);
        let t = truth.as_ref().and_then(|t| t.get(&g.id)).zip(r_cut);
        all.push(galaxy_metrics(&model, g, c, &samples, t, dev)?);
        plots(&out.join("plots"), &g.id, &g.modelled().iter().copied().collect::<Vec<f32>>(), &samples)?;
    }
    println!("{:<8} {:>7} {:>10} {:>16} {:>10} {:>10}", "galaxy", "stars", "NLL", "exact KL", "true NLL", "lin. MMD");
    for m in &all {
        let kl = m.kl.map_or("-".into(), |(k, se)| format!("{k:.4} ± {se:.4}"));
        let tn = m.true_nll.map_or("-".into(), |v| format!("{v:.4}"));
        println!("{:<8} {:>7} {:>10.4} {:>16} {:>10} {:>10.2e}", m.id, m.stars, m.nll, kl, tn, m.linear_mmd);
    }
    let mean = |f: &dyn Fn(&GalaxyMetrics) -> Option<f64>| {
        let v: Vec<f64> = all.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let summary = serde_json::json!({
        "model": model_path.display().to_string(),
        "flow": model.spec,
        "mean_nll_nats_per_star": mean(&|m| Some(m.nll)),
        "mean_exact_kl_nats_per_star": mean(&|m| m.kl.map(|k| k.0)),
        "mean_linear_mmd": mean(&|m| Some(m.linear_mmd)),
        "columns": crate::data::MODELLED.iter().map(|&c| crate::data::COLUMNS[c]).collect::<Vec<_>>(),
        "galaxies": all,
    });
    if let Some(k) = summary["mean_exact_kl_nats_per_star"].as_f64() {
        println!("mean exact KL(p || q): {k:.4} nats/star over {} held-out galaxies", all.len());
    }
    write_json(&out.join("metrics.json"), &summary)?;
    Ok(all)
}

/// GalacticFlow's evaluation figures for one galaxy: corner plot, 1-D histograms (300 bins) and x-y maps of
/// mean [Fe/H], [O/Fe] and age with the residual (data - flow) / data on pixels with >= 5 stars.
fn plots(dir: &Path, id: &str, data: &[f32], flow: &[f32]) -> Result<()> {
    use crate::plot;
    let names: Vec<&str> = plot::STAR_COLUMNS.to_vec();
    let d = names.len();
    let err = |e: plot::PlotError| Error::file(dir, e.to_string());
    let title = format!("galaxy {id}: data (blue) vs flow (orange)");
    plot::corner(dir.join(format!("{id}_corner.png")), data, flow, d, &names, &title).map_err(err)?;
    plot::histograms(dir.join(format!("{id}_histograms.png")), data, flow, d, &names, 300, &title).map_err(err)?;
    // A square x-y window holding 99% of the data's stars.
    let r: Vec<f32> = data.chunks(d).map(|s| s[0].abs().max(s[1].abs())).collect();
    let half = crate::data::stats::percentile(&r, 99.0).max(1e-3);
    let quantities = [(7, "[Fe/H]"), (8, "[O/Fe]"), (9, "age [Gyr]")];
    plot::xy_maps(dir.join(format!("{id}_xy_maps.png")), data, flow, d, &quantities, [-half, half, -half, half], 40, 5)
        .map_err(err)
}

/// The demo's flow: GalacticFlow's NSF made smaller so that it trains in minutes on 2 CPU cores
/// (GalacticFlow: 14 layers of 4 x 128; here 6 layers of 3 x 64, same spline).
pub fn demo_spec(cond_dim: usize) -> FlowSpec {
    FlowSpec::Nsf(NsfConfig {
        layers: 6,
        hidden: 64,
        depth: 3,
        spline: SplineCfg::default(),
        ..NsfConfig::galacticflow(10, cond_dim)
    })
}

/// The demo's schedule: Adam at 2e-3 decaying to ~1e-4, since GalacticFlow's 9e-5 needs ~18 GPU-hours.
pub fn demo_train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 1024,
        optimizer: "adam".into(),
        lr: 2e-3,
        gamma: 0.99,
        gamma_every: 5,
        ..TrainConfig::default()
    }
}

/// `gforge forge --demo`: synthetic galaxies -> cleaning -> NSF training -> samples of the left-out
/// galaxies -> metrics and plots, all under `out`.
pub fn demo(out: &Path, dev: &Device, epochs: Option<usize>) -> Result<()> {
    let t0 = Instant::now();
    let data = out.join("data");
    let (gals, truth) = synthetic::generate(&SynthConfig::default());
    synthetic::write(&data, &gals, &truth)?;
    println!(
        "[1/4] {} synthetic galaxies, {} stars -> {}",
        gals.len(),
        gals.iter().map(|g| g.n()).sum::<usize>(),
        data.display()
    );
    let prep = PrepareConfig::default();
    let p = prepare(&data, &prep)?;
    println!("[2/4] cleaning: {}; {} galaxies for training, {} held out", p.report, p.train.len(), p.val.len());
    let spec = demo_spec(p.standardizer.cond_names.len());
    let tc = demo_train(epochs.unwrap_or(12));
    let ckpt = out.join("model.npz");
    println!("[3/4] training the NSF on {dev}");
    let summary = train(&p, &spec, &prep, &tc, &ckpt, dev, false, true)?;
    write_json(&out.join("training.json"), &summary.state.history)?;
    let train_curve: Vec<(f64, f64)> = summary.state.history.iter().map(|h| (h.epoch as f64, h.train_nll)).collect();
    let val_curve: Vec<(f64, f64)> =
        summary.state.history.iter().filter_map(|h| h.val_nll.map(|v| (h.epoch as f64, v))).collect();
    crate::plot::curves(
        out.join("training.png"),
        &[("training", &train_curve), ("held-out galaxies", &val_curve)],
        "epoch",
        "NLL [nats/star, standardised]",
        "NSF training",
    )
    .map_err(|e| Error::file(out, e.to_string()))?;
    println!("[4/4] sampling and evaluating the held-out galaxies");
    evaluate(&ckpt, &data, &out.join("eval"), dev, 0)?;
    println!("done in {:.0} s: {}", t0.elapsed().as_secs_f64(), out.display());
    Ok(())
}
