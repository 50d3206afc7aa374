//! A trained flow with everything needed to use it: the flow, the standardisation, and the training
//! state, all in one checkpoint (.npz with a JSON `__config__`). A checkpoint trained with `--keep best`
//! hands over the best held-out epoch kept beside it (see `train::best_path`).
use crate::backend::Device;
use crate::checkpoint;
use crate::data::conditions::Standardizer;
use crate::error::{Error, Result};
use crate::flows::{Flow, Maf, MafConfig, Nice, NiceConfig, Nsf, NsfConfig, Sospf, SospfConfig};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Which flow, with its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum FlowSpec {
    Nsf(NsfConfig),
    Maf(MafConfig),
    Nice(NiceConfig),
    Sospf(SospfConfig),
}

impl FlowSpec {
    pub fn name(&self) -> &'static str {
        match self {
            FlowSpec::Nsf(_) => "nsf",
            FlowSpec::Maf(_) => "maf",
            FlowSpec::Nice(_) => "nice",
            FlowSpec::Sospf(_) => "sospf",
        }
    }
}

pub fn build_flow(spec: &FlowSpec, dev: &Device) -> Result<Box<dyn Flow>> {
    Ok(match spec {
        FlowSpec::Nsf(c) => Box::new(Nsf::new(c.clone(), dev)?),
        FlowSpec::Maf(c) => Box::new(Maf::new(c.clone(), dev)?),
        FlowSpec::Nice(c) => Box::new(Nice::new(c.clone(), dev)?),
        FlowSpec::Sospf(c) => Box::new(Sospf::new(c.clone(), dev)?),
    })
}

pub struct SavedModel {
    pub spec: FlowSpec,
    pub flow: Box<dyn Flow>,
    pub standardizer: Standardizer,
    pub config: serde_json::Value,
    /// The file the weights came from: the checkpoint, or the best epoch kept beside it.
    pub path: PathBuf,
}

/// The file and epoch of the best held-out epoch, when `config` (a last-epoch checkpoint at `path`) keeps it.
fn kept_best(path: &Path, config: &serde_json::Value) -> Option<(PathBuf, u64)> {
    if config["checkpoint"] != "last" || config["keep"] != "best" {
        return None;
    }
    let file = config["best"]["file"].as_str()?;
    Some((path.with_file_name(file), config["best"]["epoch"].as_u64()?))
}

/// What is wrong with `best` as the best-epoch copy (epoch `epoch`) of the checkpoint `last`, if anything.
fn best_mismatch(last: &serde_json::Value, best: &serde_json::Value, epoch: u64) -> Option<String> {
    let held = best["state"]["epoch"].as_u64();
    if best["checkpoint"] != "best" {
        Some("is not a best-epoch copy".into())
    } else if best["flow"] != last["flow"] || best["standardizer"] != last["standardizer"] {
        Some("is another model".into())
    } else {
        (held != Some(epoch)).then(|| format!("holds epoch {}", held.unwrap_or(0)))
    }
}

impl SavedModel {
    /// Loads a checkpoint written by the trainer onto `dev`: the epoch it keeps (its best held-out epoch,
    /// from the file beside it, when trained with `--keep best`; else its own weights).
    pub fn load(path: &Path, dev: &Device) -> Result<(SavedModel, checkpoint::Checkpoint)> {
        let ck = checkpoint::load(path)?;
        let Some((best, epoch)) = kept_best(path, &ck.config) else { return Self::from_checkpoint(path, ck, dev) };
        let ck_err = |msg: String| Error::Checkpoint { path: path.display().to_string(), msg };
        let bck = checkpoint::load(&best).map_err(|e| {
            ck_err(format!("keeps its best held-out epoch {epoch} in {}, which fails: {e}", best.display()))
        })?;
        if let Some(what) = best_mismatch(&ck.config, &bck.config, epoch) {
            return Err(ck_err(format!(
                "keeps its best held-out epoch {epoch} in {}, but that file {what} (an interrupted or another run; \
                 `gforge flow train --resume` rewrites both)",
                best.display()
            )));
        }
        Self::from_checkpoint(&best, bck, dev)
    }

    /// The model of one checkpoint file as it is.
    pub fn from_checkpoint(
        path: &Path,
        ck: checkpoint::Checkpoint,
        dev: &Device,
    ) -> Result<(SavedModel, checkpoint::Checkpoint)> {
        let bad = |what: &str, e: serde_json::Error| Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!("{what}: {e}"),
        };
        if ck.config["flow"].is_null() {
            let what = if ck.config["autoencoder"].is_null() { "" } else { " (it is an autoencoder checkpoint)" };
            return Err(Error::Checkpoint {
                path: path.display().to_string(),
                msg: format!("not a flow checkpoint{what}"),
            });
        }
        let spec: FlowSpec = serde_json::from_value(ck.config["flow"].clone()).map_err(|e| bad("flow settings", e))?;
        let standardizer: Standardizer =
            serde_json::from_value(ck.config["standardizer"].clone()).map_err(|e| bad("standardisation", e))?;
        let flow = ck.build(path, || build_flow(&spec, dev))?;
        ck.restore(path, &crate::flows::all_vars(flow.as_ref()), dev)?;
        Ok((SavedModel { spec, flow, standardizer, config: ck.config.clone(), path: path.to_path_buf() }, ck))
    }
}

/// The physical conditions of a draw or a density, in the checkpoint's order: one for every star, or one
/// per star ([n, C] row-major).
#[derive(Clone, Copy, Debug)]
pub enum Conditions<'a> {
    One(&'a [f64]),
    PerRow(&'a [f64]),
}

impl Conditions<'_> {
    /// Checks that there are C finite values (one condition) or n x C (one per star).
    pub fn check(&self, names: &[String], n: u64) -> Result<()> {
        let c = names.len();
        let (values, want, what) = match *self {
            Conditions::One(v) => (v, c as u64, "one condition".to_string()),
            Conditions::PerRow(v) => (v, n.saturating_mul(c as u64), format!("one condition per star ({n} x {c})")),
        };
        if values.len() as u64 != want {
            return Err(Error::Usage(format!(
                "{what} needs {want} values ({} per star), got {}",
                names.join(", "),
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Usage(format!("condition value {i} ({}) is {}, not finite", names[i % c], values[i])));
        }
        Ok(())
    }

    /// The standardised conditions of the stars in `rows`: [1, C] for one condition, [rows, C] per star.
    pub fn standardised(&self, st: &Standardizer, rows: Range<usize>, dev: &Device) -> Result<Tensor> {
        let c = st.cond_names.len();
        match *self {
            Conditions::One(v) => Tensor::from_vec(st.cond_to_model(v), &[1, c], dev),
            Conditions::PerRow(v) => {
                let m = rows.len();
                Tensor::from_vec(st.cond_to_model(&v[rows.start * c..rows.end * c]), &[m, c], dev)
            }
        }
    }
}
