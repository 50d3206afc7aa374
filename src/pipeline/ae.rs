//! Training, encoding and inspecting the galaxy-image autoencoder (src/models/autoencoder.rs):
//! `gforge ae train | encode | show`. Checkpoints hold the weights, the Adam state and a JSON config
//! (model, training settings, state, which galaxies were held out), written atomically after every epoch;
//! `--resume` continues bit-identically on the CPU, as the flow trainer does.
use super::epoch::{self, Epoch, EpochEnd};
use super::interrupt::{self, EpochPosition};
use crate::autodiff::no_grad;
use crate::backend::Device;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::models::{AeConfig, Autoencoder};
use crate::ops::gather::Indices;
use crate::optim::{Adam, AdamConfig, AdamKind};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Images of galaxies, channel-major: image i is `data[i * 3 S^2 .. (i + 1) * 3 S^2]` as [3, S, S] in [0, 1].
pub struct ImageSet {
    pub ids: Vec<String>,
    pub size: usize,
    pub data: Vec<f32>,
}

impl ImageSet {
    /// From loaded or rendered images (`data::images`), which must all be 3 x S x S.
    pub fn from_images(images: Vec<(String, crate::data::images::Image)>) -> Result<ImageSet> {
        let size = images.first().map_or(0, |(_, im)| im.dim().1);
        let mut set = ImageSet { ids: Vec::new(), size, data: Vec::with_capacity(images.len() * 3 * size * size) };
        for (id, im) in images {
            if im.dim() != (3, size, size) {
                return Err(Error::Data(format!("image '{id}' is {:?}, the others 3 x {size} x {size}", im.dim())));
            }
            set.data.extend(im.iter().copied());
            set.ids.push(id);
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    fn pixels(&self) -> usize {
        3 * self.size * self.size
    }
    pub fn image(&self, i: usize) -> &[f32] {
        &self.data[i * self.pixels()..(i + 1) * self.pixels()]
    }

    /// The images whose ids are (`keep` = true) or are not (false) in `ids`, in this set's order.
    pub fn select(&self, ids: &[String], keep: bool) -> ImageSet {
        let mut out = ImageSet { ids: Vec::new(), size: self.size, data: Vec::new() };
        for (i, id) in self.ids.iter().enumerate() {
            if ids.contains(id) == keep {
                out.ids.push(id.clone());
                out.data.extend_from_slice(self.image(i));
            }
        }
        out
    }

    fn tensor(&self, dev: &Device) -> Result<Tensor> {
        Tensor::from_slice(&self.data, &[self.len(), 3, self.size, self.size], dev)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AeTrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
}

impl Default for AeTrainConfig {
    /// GalacticForge's (REFERENCE.md section 2): Adam at 3e-5, batch 4, 100 epochs.
    fn default() -> Self {
        AeTrainConfig { epochs: 100, batch: 4, lr: 3e-5, seed: 0 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AeEpochLog {
    pub epoch: usize,
    pub steps: u64,
    pub train_mse: f64,
    pub val_mse: Option<f64>,
    pub images_per_s: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AeState {
    pub epoch: usize,
    pub step: u64,
    pub history: Vec<AeEpochLog>,
    /// Inside the current epoch (non-zero only in a checkpoint written on an interruption).
    #[serde(default)]
    pub position: EpochPosition,
}

/// Runs `f` on the set in batches of 16 images [n, 3, S, S], without a tape (evaluation and encoding).
fn for_batches(set: &ImageSet, dev: &Device, mut f: impl FnMut(Tensor) -> Result<()>) -> Result<()> {
    const CHUNK: usize = 16;
    no_grad(|| {
        for start in (0..set.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(set.len());
            let px = &set.data[start * set.pixels()..end * set.pixels()];
            f(Tensor::from_slice(px, &[end - start, 3, set.size, set.size], dev)?)?;
        }
        Ok(())
    })
}

/// Mean squared error per pixel over a set.
pub fn mean_mse(ae: &Autoencoder, set: &ImageSet, dev: &Device) -> Result<f64> {
    let mut total = 0.0;
    for_batches(set, dev, |x| {
        total += f64::from(ae.loss(&x)?.item()?) * x.shape()[0] as f64;
        Ok(())
    })?;
    Ok(total / set.len().max(1) as f64)
}

fn config_json(
    cfg: &AeConfig,
    tc: &AeTrainConfig,
    st: &AeState,
    train: &ImageSet,
    val: &ImageSet,
) -> serde_json::Value {
    serde_json::json!({ "autoencoder": cfg, "train": tc, "state": st, "train_ids": train.ids, "val_ids": val.ids })
}

/// Trains the autoencoder on `train`, scoring `val` after every epoch and writing `ckpt` each time.
#[allow(clippy::too_many_arguments)]
pub fn train(
    train: &ImageSet,
    val: &ImageSet,
    cfg: &AeConfig,
    tc: &AeTrainConfig,
    ckpt: &Path,
    dev: &Device,
    resume: bool,
    progress: bool,
) -> Result<(Autoencoder, AeState)> {
    if train.is_empty() {
        return Err(Error::Data("no training images".into()));
    }
    if train.size != cfg.image || (!val.is_empty() && val.size != cfg.image) {
        return Err(Error::Usage(format!("images are {} pixels, the autoencoder wants {}", train.size, cfg.image)));
    }
    if tc.batch == 0 || !(tc.lr.is_finite() && tc.lr > 0.0) {
        return Err(Error::Usage(format!("batch must be >= 1 and lr > 0, got {} and {}", tc.batch, tc.lr)));
    }
    if let Some(dir) = ckpt.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    }
    let _lock = crate::io::lock_output(ckpt)?;
    let ae = Autoencoder::new(cfg, dev)?;
    let vars = ae.all_vars();
    let mut opt = Adam::new(vars.clone(), AdamConfig::new(AdamKind::Adam, tc.lr));
    let mut state = AeState::default();
    if interrupt::resume_from_checkpoint(ckpt, resume, progress) {
        let ck = checkpoint::load(ckpt)?;
        let bad = |msg: &str| Error::Checkpoint { path: ckpt.display().to_string(), msg: msg.into() };
        if ck.config["autoencoder"] != serde_json::to_value(cfg).unwrap_or_default() {
            return Err(bad("was trained with different autoencoder settings; resume needs the same ones"));
        }
        ck.restore(ckpt, &vars, dev)?;
        state = serde_json::from_value(ck.config["state"].clone()).map_err(|e| bad(&format!("training state: {e}")))?;
        opt.load_state(&ck, state.step, dev)?;
    }
    let x_all = train.tensor(dev)?;
    let n = train.len();
    while state.epoch < tc.epochs {
        let e = Epoch {
            rows: n,
            batch: tc.batch,
            epoch: state.epoch,
            epochs: tc.epochs,
            seed: tc.seed,
            max_steps: None,
            loss_name: "mse",
            unit: "images",
            progress,
            ckpt,
        };
        let loss = |chunk: &[u32], _| ae.loss(&x_all.gather(0, &Indices::new(chunk, n, dev)?)?);
        let update = |l: &Tensor, _| epoch::descend(l, &mut opt, &vars, None);
        let end = epoch::run(&e, &mut state.step, &mut state.position, loss, update)?;
        if let EpochEnd::Stopped = end {
            let mut all = vars.clone();
            all.extend(opt.state_vars());
            checkpoint::save(ckpt, &all, &config_json(cfg, tc, &state, train, val))?;
            return Err(interrupt::interrupted(ckpt, state.epoch + 1, state.position.batch));
        }
        let (seconds, images_per_s) = end.timing();
        let log = AeEpochLog {
            epoch: state.epoch + 1,
            steps: state.step,
            train_mse: state.position.mean(),
            val_mse: if val.is_empty() { None } else { Some(mean_mse(&ae, val, dev)?) },
            images_per_s,
            seconds,
        };
        if progress {
            let v = log.val_mse.map_or("-".to_string(), |v| format!("{v:.5}"));
            println!(
                "epoch {}/{}: train MSE {:.5}, held-out MSE {v}, {:.1} images/s",
                log.epoch, tc.epochs, log.train_mse, log.images_per_s
            );
        }
        state.history.push(log);
        state.epoch += 1;
        state.position = EpochPosition::default();
        let mut all = vars.clone();
        all.extend(opt.state_vars());
        checkpoint::save(ckpt, &all, &config_json(cfg, tc, &state, train, val))?;
    }
    Ok((ae, state))
}

/// A trained autoencoder read back from its checkpoint.
pub fn load(path: &Path, dev: &Device) -> Result<(Autoencoder, serde_json::Value)> {
    from_checkpoint(path, checkpoint::load(path)?, dev)
}

/// The autoencoder a checkpoint read from `path` holds.
pub fn from_checkpoint(
    path: &Path,
    ck: checkpoint::Checkpoint,
    dev: &Device,
) -> Result<(Autoencoder, serde_json::Value)> {
    let bad = |msg: String| Error::Checkpoint { path: path.display().to_string(), msg };
    if ck.config["autoencoder"].is_null() {
        let what = if ck.config["flow"].is_null() { "" } else { " (it is a flow checkpoint)" };
        return Err(bad(format!("not an autoencoder checkpoint{what}")));
    }
    let cfg: AeConfig = serde_json::from_value(ck.config["autoencoder"].clone())
        .map_err(|e| bad(format!("autoencoder settings: {e}")))?;
    let ae = ck.build(path, || Autoencoder::new(&cfg, dev))?;
    ck.restore(path, &ae.all_vars(), dev)?;
    Ok((ae, ck.config))
}

/// Latents of every image, [N][L].
pub fn encode(ae: &Autoencoder, set: &ImageSet, dev: &Device) -> Result<Vec<Vec<f32>>> {
    if set.size != ae.cfg.image {
        return Err(Error::Usage(format!("images are {} pixels, the autoencoder wants {}", set.size, ae.cfg.image)));
    }
    let mut out = Vec::with_capacity(set.len());
    for_batches(set, dev, |x| {
        out.extend(ae.encode(&x)?.to_vec()?.chunks(ae.cfg.latents).map(|r| r.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

/// Decodes latents [N][L] into images, [N] of [3, S, S].
pub fn decode(ae: &Autoencoder, z: &[Vec<f32>], dev: &Device) -> Result<Vec<Vec<f32>>> {
    let l = ae.cfg.latents;
    let flat: Vec<f32> = z.iter().flat_map(|r| r.iter().copied()).collect();
    no_grad(|| {
        let x = ae.decode(&Tensor::from_vec(flat, &[z.len(), l], dev)?)?.to_vec()?;
        Ok(x.chunks(3 * ae.cfg.image * ae.cfg.image).map(|c| c.to_vec()).collect())
    })
}

/// Column names of the latent table, also the extra-condition names the flow sees.
pub fn latent_names(l: usize) -> Vec<String> {
    (0..l).map(|j| format!("z{j}")).collect()
}

/// Writes `<id>_latent.npy` (L floats) per galaxy, as GalacticForge does, and `latents.csv`
/// (`id,z0,...`), the table `gforge flow train --extra-conditions` reads.
pub fn write_latents(dir: &Path, ids: &[String], z: &[Vec<f32>]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let l = z.first().map_or(0, |r| r.len());
    let mut csv = format!("id,{}\n", latent_names(l).join(","));
    for (id, r) in ids.iter().zip(z) {
        let path = dir.join(format!("{id}_latent.npy"));
        crate::io::write_atomic(&path, |w| {
            ndarray_npy::WriteNpyExt::write_npy(&ndarray::Array1::from(r.clone()), w).map_err(std::io::Error::other)
        })?;
        let vals: Vec<String> = r.iter().map(|v| format!("{v:e}")).collect();
        csv.push_str(&format!("{id},{}\n", vals.join(",")));
    }
    let path = dir.join("latents.csv");
    crate::io::write_atomic(&path, |w| std::io::Write::write_all(w, csv.as_bytes()))
}

/// [3, S, S] channel-major -> interleaved RGB rows, shrunk by a whole factor (box filter) to at most
/// `max` pixels a side, for the PNG grids.
pub fn to_rgb_tile(img: &[f32], size: usize, max: usize) -> (Vec<f32>, usize) {
    let f = size.div_ceil(max.max(1)).max(1);
    let s = size / f;
    let mut out = vec![0.0f32; 3 * s * s];
    let norm = 1.0 / (f * f) as f32;
    for c in 0..3 {
        for y in 0..s {
            for x in 0..s {
                let mut acc = 0.0;
                for dy in 0..f {
                    for dx in 0..f {
                        acc += img[(c * size + y * f + dy) * size + x * f + dx];
                    }
                }
                out[(y * s + x) * 3 + c] = acc * norm;
            }
        }
    }
    (out, s)
}

/// `reconstructions.png` (each galaxy's image above its reconstruction) and `traversal.png` (row j: latent j
/// swept over the 5th..95th percentile of the encoded set, the others at their median).
pub fn show(ae: &Autoencoder, set: &ImageSet, out: &Path, max_images: usize, dev: &Device) -> Result<()> {
    const TILE: usize = 112;
    const STEPS: usize = 7;
    let plot_err = |p: &Path, e: crate::plot::PlotError| Error::file(p, e.to_string());
    let n = set.len().min(max_images.max(1));
    let sub = ImageSet { ids: set.ids[..n].to_vec(), size: set.size, data: set.data[..n * set.pixels()].to_vec() };
    let z = encode(ae, &sub, dev)?;
    let rec = decode(ae, &z, dev)?;
    let mut tiles = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        tiles.push(to_rgb_tile(sub.image(i), set.size, TILE));
        labels.push(sub.ids[i].clone());
    }
    for (i, r) in rec.iter().enumerate() {
        tiles.push(to_rgb_tile(r, set.size, TILE));
        labels.push(format!("{} (AE)", sub.ids[i]));
    }
    let refs: Vec<(&[f32], usize, usize)> = tiles.iter().map(|(t, s)| (t.as_slice(), *s, *s)).collect();
    let lrefs: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
    let path = out.join("reconstructions.png");
    crate::plot::images(&path, &refs, n, &lrefs).map_err(|e| plot_err(&path, e))?;

    // Traversal over the latents of the whole set.
    let zall = encode(ae, set, dev)?;
    let l = ae.cfg.latents;
    let pct = |j: usize, q: f64| {
        let v: Vec<f32> = zall.iter().map(|r| r[j]).collect();
        crate::data::stats::percentile(&v, q) as f32
    };
    let median: Vec<f32> = (0..l).map(|j| pct(j, 50.0)).collect();
    let mut grid = Vec::new();
    for j in 0..l {
        let (lo, hi) = (pct(j, 5.0), pct(j, 95.0));
        for s in 0..STEPS {
            let mut r = median.clone();
            r[j] = lo + (hi - lo) * s as f32 / (STEPS - 1) as f32;
            grid.push(r);
        }
    }
    let imgs = decode(ae, &grid, dev)?;
    let tiles: Vec<(Vec<f32>, usize)> = imgs.iter().map(|im| to_rgb_tile(im, set.size, TILE)).collect();
    let refs: Vec<(&[f32], usize, usize)> = tiles.iter().map(|(t, s)| (t.as_slice(), *s, *s)).collect();
    let labels: Vec<String> =
        (0..l * STEPS).map(|k| if k % STEPS == 0 { format!("z{}", k / STEPS) } else { String::new() }).collect();
    let lrefs: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
    let path = out.join("traversal.png");
    crate::plot::images(&path, &refs, STEPS, &lrefs).map_err(|e| plot_err(&path, e))
}
