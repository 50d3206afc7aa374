//! `gforge flow eval` and `gforge forge`: the pipeline end to end into one output folder.
use super::ae::{self, AeTrainConfig, ImageSet};
use super::eval::{galaxy_metrics, sample_physical, GalaxyMetrics};
use super::model::{FlowSpec, SavedModel};
use super::prepare::{prepare, PrepareConfig};
use super::probe;
use super::train::{kept_summary, train, Keep, TrainConfig};
use crate::backend::Device;
use crate::data::images::{load_folder, render_folder, RenderConfig, Views};
use crate::data::synthetic::{self, SynthConfig, Truth};
use crate::data::MODELLED;
use crate::error::{Error, Result};
use crate::flows::NsfConfig;
use crate::models::AeConfig;
use crate::ops::spline::SplineCfg;
use std::path::Path;
use std::time::Instant;

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
}

/// Evaluates the checkpoint (the epoch it keeps) on the galaxies it left out of training (re-cleaned from
/// `data` with the checkpoint's own settings), writing samples, metrics.json and plots into `out`.
pub fn evaluate(model_path: &Path, data: &Path, out: &Path, dev: &Device, seed: u64) -> Result<Vec<GalaxyMetrics>> {
    let (model, _) = SavedModel::load(model_path, dev)?;
    if model.path != model_path {
        println!("evaluating the best held-out epoch the checkpoint keeps: {}", model.path.display());
    }
    if !model.config["imported"].is_null() {
        return Err(Error::Usage(format!(
            "{}: imported from PyTorch ({}), it keeps no data settings or held-out galaxies to evaluate on; \
             `gforge flow log-prob` scores stars you give it",
            model_path.display(),
            model.config["imported"]["source"].as_str().unwrap_or("?")
        )));
    }
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
    println!(
        "{:<8} {:>7} {:>10} {:>16} {:>10} {:>10} {:>7} {:>7} {:>8}",
        "galaxy", "stars", "NLL", "exact KL", "true NLL", "lin. MMD", ">10 sd", ">30 sd", "max sd"
    );
    for m in &all {
        let kl = m.kl.map_or("-".into(), |(k, se)| format!("{k:.4} ± {se:.4}"));
        let tn = m.true_nll.map_or("-".into(), |v| format!("{v:.4}"));
        println!(
            "{:<8} {:>7} {:>10.4} {:>16} {:>10} {:>10.2e} {:>7} {:>7} {:>8.1}",
            m.id, m.stars, m.nll, kl, tn, m.linear_mmd, m.beyond_10_sd, m.beyond_30_sd, m.max_sd
        );
    }
    let (far10, far30) =
        (all.iter().map(|m| m.beyond_10_sd).sum::<usize>(), all.iter().map(|m| m.beyond_30_sd).sum::<usize>());
    if far30 > 0 {
        eprintln!(
            "warning: {far30} samples lie beyond 30 standard deviations of their galaxy's data ({far10} beyond 10): \
             the flow's tails are exploding"
        );
    }
    let mean = |f: &dyn Fn(&GalaxyMetrics) -> Option<f64>| {
        let v: Vec<f64> = all.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let summary = serde_json::json!({
        "model": model.path.display().to_string(),
        "epoch": model.config["state"]["epoch"],
        "flow": model.spec,
        "mean_nll_nats_per_star": mean(&|m| Some(m.nll)),
        "mean_exact_kl_nats_per_star": mean(&|m| m.kl.map(|k| k.0)),
        "star_weighted_exact_kl_nats_per_star": star_weighted_kl(&all),
        "mean_linear_mmd": mean(&|m| Some(m.linear_mmd)),
        "samples_beyond_10_sd": far10,
        "samples_beyond_30_sd": far30,
        "columns": crate::data::MODELLED.iter().map(|&c| crate::data::COLUMNS[c]).collect::<Vec<_>>(),
        "galaxies": all,
    });
    if let (Some(k), Some(w)) = (summary["mean_exact_kl_nats_per_star"].as_f64(), star_weighted_kl(&all)) {
        println!(
            "exact KL(p || q) over {} held-out galaxies: {w:.4} nats/star (all their stars), {k:.4} (mean of galaxies)",
            all.len()
        );
    }
    write_json(&out.join("metrics.json"), &summary)?;
    Ok(all)
}

/// The exact KL per star over all held-out stars (each galaxy weighted by its star count), if known.
pub fn star_weighted_kl(all: &[GalaxyMetrics]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for m in all {
        let (k, _) = m.kl?;
        sum += k * m.stars as f64;
        n += m.stars;
    }
    (n > 0).then(|| sum / n as f64)
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
pub fn demo_nsf(cond_dim: usize) -> NsfConfig {
    NsfConfig { layers: 6, hidden: 64, depth: 3, spline: SplineCfg::default(), ..NsfConfig::galacticflow(10, cond_dim) }
}

/// The demo's schedule: Adam at 2e-3 decaying to ~1e-4, since GalacticFlow's 9e-5 needs ~18 GPU-hours;
/// conditions jittered by 0.1 standard deviations (on the demo's 77 training galaxies this lowered the
/// held-out exact KL by 0.02-0.04 nats/star in paired runs of two seeds; BENCHMARKS.md); the best held-out
/// epoch kept, since held-out NLL jumps by tenths of a nat between late epochs.
pub fn demo_train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 1024,
        optimizer: "adam".into(),
        lr: 2e-3,
        gamma: 0.99,
        gamma_every: 5,
        cond_noise: 0.1,
        keep: Keep::Best,
        ..TrainConfig::default()
    }
}

/// Settings of `gforge forge`: the autoencoder, its training, and the flow's training.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForgeSettings {
    pub ae: AeConfig,
    pub ae_train: AeTrainConfig,
    /// The flow (its `cond_dim` is set from the data) and its training.
    pub nsf: NsfConfig,
    pub flow_train: TrainConfig,
    /// Also train the same flow on the 4 galaxy parameters alone, to measure what the latents add.
    pub without_latents: bool,
    /// How the star files are read, cleaned and conditioned (the split and the latents are set by `forge`).
    pub prepare: PrepareConfig,
}

impl ForgeSettings {
    /// The demo's: 64 x 64 images through 3-16-32-64-128 channels to 16 latents (the published layer types
    /// and latent count at a size that trains in about a minute on 2 CPU cores), Adam at 1e-3.
    pub fn demo(flow_epochs: Option<usize>) -> ForgeSettings {
        ForgeSettings {
            ae: AeConfig { image: 64, channels: vec![3, 16, 32, 64, 128], latents: 16, seed: 0 },
            ae_train: AeTrainConfig { epochs: 200, batch: 8, lr: 1e-3, seed: 0 },
            nsf: demo_nsf(0),
            flow_train: demo_train(flow_epochs.unwrap_or(12)),
            without_latents: true,
            prepare: PrepareConfig::default(),
        }
    }
}

/// Trains the NSF on `prep`'s split and conditions into `ckpt`, plots its curve, evaluates it into `eval`.
/// Returns the exact KL per held-out star, when the data has a synthetic truth.
fn flow_stage(
    data: &Path,
    prep: &PrepareConfig,
    s: &ForgeSettings,
    ckpt: &Path,
    eval: &Path,
    dev: &Device,
) -> Result<Option<f64>> {
    let p = prepare(data, prep)?;
    let spec = FlowSpec::Nsf(NsfConfig { cond_dim: p.standardizer.cond_names.len(), ..s.nsf.clone() });
    println!(
        "      NSF conditioned on {} ({} training galaxies, {} held out)",
        p.standardizer.cond_names.join(", "),
        p.train.len(),
        p.val.len()
    );
    let summary = train(&p, &spec, prep, &s.flow_train, ckpt, dev, false, true)?;
    println!("      {}", kept_summary(&summary.state, s.flow_train.keep, ckpt));
    let h = &summary.state.history;
    let rows: Vec<(usize, f64, Option<f64>)> = h.iter().map(|e| (e.epoch, e.train_nll, e.val_nll)).collect();
    training_png(&eval.join("training.png"), &rows, "NLL [nats/star, standardised]", "NSF training")?;
    let log =
        serde_json::json!({ "history": summary.state.history, "best": summary.state.best, "keep": s.flow_train.keep });
    write_json(&eval.join("training.json"), &log)?;
    Ok(star_weighted_kl(&evaluate(ckpt, data, eval, dev, 0)?))
}

/// A training curve: the loss per epoch on the training set and, where scored, on the held-out galaxies.
fn training_png(path: &Path, rows: &[(usize, f64, Option<f64>)], ylabel: &str, title: &str) -> Result<()> {
    let train: Vec<(f64, f64)> = rows.iter().map(|&(e, t, _)| (e as f64, t)).collect();
    let val: Vec<(f64, f64)> = rows.iter().filter_map(|&(e, _, v)| v.map(|v| (e as f64, v))).collect();
    crate::plot::curves(path, &[("training", &train), ("held-out galaxies", &val)], "epoch", ylabel, title)
        .map_err(|e| Error::file(path, e.to_string()))
}

/// Held-out R^2 of linear fits from the latents to what each synthetic image shows (views.json).
pub fn probes(views: &Views, ids: &[String], z: &[Vec<f32>], val_ids: &[String]) -> Vec<(String, Option<f64>)> {
    type Target = fn(&crate::data::images::ViewRecord) -> Option<f64>;
    // The position angle is defined modulo pi (a disc turned by pi looks the same), hence 2 PA.
    let targets: [(&str, Target); 5] = [
        ("log10 M_stars", |v| v.log_mstar),
        ("disc scale length", |v| v.r_d),
        ("cos inclination", |v| Some(v.view.inclination.cos())),
        ("cos 2 PA", |v| Some((2.0 * v.view.position_angle).cos())),
        ("sin 2 PA", |v| Some((2.0 * v.view.position_angle).sin())),
    ];
    targets
        .iter()
        .map(|(name, f)| {
            let (mut tx, mut ty, mut vx, mut vy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, zi) in ids.iter().zip(z) {
                let Some(t) = views.views.iter().find(|v| &v.id == id).and_then(f) else { continue };
                if val_ids.contains(id) {
                    vx.push(zi.clone());
                    vy.push(t);
                } else {
                    tx.push(zi.clone());
                    ty.push(t);
                }
            }
            let r2 = if vy.len() >= 2 { probe::held_out_r2(&tx, &ty, &vx, &vy) } else { None };
            (name.to_string(), r2)
        })
        .collect()
}

/// `gforge forge`: galaxy images + star particles (matched by galaxy id) -> autoencoder -> latents -> NSF
/// conditioned on the 4 galaxy parameters and the latents -> samples, metrics and plots of the held-out
/// galaxies, all under `out`. The condition order is fixed once, by `data::conditions::condition_names`
/// (4 parameters, then the latent table's columns), and stored in the flow's checkpoint for sampling.
pub fn forge(data: &Path, images_dir: &Path, out: &Path, s: &ForgeSettings, dev: &Device) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    // The split is made once, on the cleaned galaxies, and shared by the autoencoder and the flows.
    let base = prepare(data, &s.prepare)?;
    println!("[forge] cleaning: {}", base.report);
    let val_ids: Vec<String> = base.val.iter().map(|g| g.id.clone()).collect();
    let gal_ids: Vec<String> = base.train.iter().chain(&base.val).map(|g| g.id.clone()).collect();
    let all = ImageSet::from_images(load_folder(images_dir, s.ae.image)?)?;
    if let Some(missing) = gal_ids.iter().find(|id| !all.ids.contains(id)) {
        return Err(Error::file(
            images_dir,
            format!("no image of galaxy '{missing}' (images are matched by file stem)"),
        ));
    }
    let set = all.select(&gal_ids, true);
    let (train_img, val_img) = (set.select(&val_ids, false), set.select(&val_ids, true));
    println!(
        "[forge] autoencoder on {} training images ({} x {}, channels {:?}, {} latents; {} held out) on {dev}",
        train_img.len(),
        s.ae.image,
        s.ae.image,
        s.ae.channels,
        s.ae.latents,
        val_img.len()
    );
    let ae_dir = out.join("autoencoder");
    let (model, state) = ae::train(&train_img, &val_img, &s.ae, &s.ae_train, &ae_dir.join("ae.npz"), dev, false, true)?;
    let rows: Vec<(usize, f64, Option<f64>)> =
        state.history.iter().map(|e| (e.epoch, e.train_mse, e.val_mse)).collect();
    training_png(&ae_dir.join("training.png"), &rows, "MSE per pixel", "autoencoder training")?;
    ae::show(&model, &set.select(&val_ids, true), &ae_dir, 8, dev)?;
    let z = ae::encode(&model, &set, dev)?;
    let lat_dir = out.join("latents");
    ae::write_latents(&lat_dir, &set.ids, &z)?;
    let views_path = images_dir.join("views.json");
    let probe_rows =
        if views_path.is_file() { probes(&Views::read(&views_path)?, &set.ids, &z, &val_ids) } else { vec![] };
    for (name, r2) in &probe_rows {
        println!(
            "        held-out R^2 of a linear fit from the latents to {name}: {}",
            r2.map_or("-".into(), |v| format!("{v:.3}"))
        );
    }

    println!("[forge] flow with the latents");
    let csv = std::fs::canonicalize(lat_dir.join("latents.csv")).map_err(|e| Error::file(&lat_dir, e))?;
    let prep = PrepareConfig { val_ids: val_ids.clone(), extra_conditions: Some(csv), ..s.prepare.clone() };
    let kl_with = flow_stage(data, &prep, s, &out.join("flow.npz"), &out.join("eval"), dev)?;
    let kl_without = if s.without_latents {
        println!("[forge] the same flow without the latents (4 galaxy parameters only)");
        let prep = PrepareConfig { val_ids: val_ids.clone(), ..s.prepare.clone() };
        flow_stage(data, &prep, s, &out.join("flow_no_latents.npz"), &out.join("eval_no_latents"), dev)?
    } else {
        None
    };
    let summary = serde_json::json!({
        "settings": s,
        "held_out": val_ids,
        "autoencoder_mse": { "train": state.history.last().map(|h| h.train_mse), "held_out": state.history.last().and_then(|h| h.val_mse) },
        "latent_probe_r2": probe_rows.iter().map(|(n, r)| (n.clone(), *r)).collect::<std::collections::BTreeMap<_, _>>(),
        "exact_kl_nats_per_held_out_star": { "with_latents": kl_with, "without_latents": kl_without },
        "seconds": t0.elapsed().as_secs_f64(),
    });
    write_json(&out.join("summary.json"), &summary)?;
    let f = |k: Option<f64>| k.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "[forge] held-out exact KL: {} nats/star with the latents, {} without; {:.0} s: {}",
        f(kl_with),
        f(kl_without),
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(summary)
}

/// `gforge forge --demo`: synthetic galaxies and their mock images, then [`forge`] on them, keeping the
/// flow epoch `keep` says (the demo's choice is the best held-out one).
pub fn demo(out: &Path, dev: &Device, epochs: Option<usize>, keep: Keep) -> Result<()> {
    let data = out.join("data");
    let (gals, truth) = synthetic::generate(&SynthConfig::default());
    synthetic::write(&data, &gals, &truth)?;
    println!(
        "[forge] {} synthetic galaxies, {} stars -> {}",
        gals.len(),
        gals.iter().map(|g| g.n()).sum::<usize>(),
        data.display()
    );
    let images = out.join("images");
    let v = render_folder(&data, &images, &RenderConfig::default(), 1)?;
    println!("[forge] {0} mock images ({1} x {1}) -> {2}", v.views.len(), v.config.size, images.display());
    let mut s = ForgeSettings::demo(epochs);
    s.flow_train.keep = keep;
    forge(&data, &images, out, &s, dev)?;
    Ok(())
}
