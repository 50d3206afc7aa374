//! Checkpoints: named parameters in one .npz that numpy opens (`np.load(path)`), plus a small JSON config
//! stored in the same archive as the uint8 entry `__config__` (`bytes(np.load(p)['__config__']).decode()`),
//! so parameters and config can never disagree. Written atomically; on load a truncated, mismatched or
//! non-finite checkpoint is refused with a message naming the entry.
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::npy;
use crate::tensor::Tensor;
use ndarray::{Array1, ArrayD};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

const CONFIG: &str = "__config__";

/// Parameters and config as read from disk, before they are matched against a model.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: serde_json::Value,
    pub tensors: BTreeMap<String, ArrayD<f32>>,
}

fn ck(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), msg: msg.into() }
}

/// Every entry of the archive carries a CRC-32 of its bytes that the zip reader checks once the entry is
/// read to its end: a flipped bit anywhere in the data is caught here, not only a truncation.
fn unreadable(path: &Path, entry: &str, e: impl std::fmt::Display) -> Error {
    let e = e.to_string();
    if e.contains("checksum") {
        ck(path, format!("entry '{entry}' is damaged: its CRC-32 checksum does not match its bytes"))
    } else {
        ck(path, format!("entry '{entry}' is unreadable (truncated?): {e}"))
    }
}

/// Writes `vars` (by name) and `config` to `path` atomically.
pub fn save(path: &Path, vars: &[Var], config: &serde_json::Value) -> Result<()> {
    let mut arrays = Vec::with_capacity(vars.len());
    for v in vars {
        let a = v.get().to_ndarray()?;
        if let Some(bad) = a.iter().find(|x| !x.is_finite()) {
            return Err(ck(path, format!("refusing to save non-finite value {bad} in '{}'", v.name())));
        }
        arrays.push((v.name().to_string(), a));
    }
    let cfg = Array1::from(serde_json::to_vec(config).map_err(|e| ck(path, e.to_string()))?);
    crate::io::write_atomic(path, |w| {
        let mut z = ndarray_npy::NpzWriter::new(w);
        let io = std::io::Error::other;
        z.add_array(CONFIG, &cfg).map_err(io)?;
        for (name, a) in &arrays {
            z.add_array(name.as_str(), a).map_err(io)?;
        }
        z.finish().map_err(io)?;
        Ok(())
    })
}

/// Reads a checkpoint, checking that it is complete and finite. Sizes are checked against the file before
/// anything is allocated (see [`crate::npy`]).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    let mut z = npy::Npz::new(BufReader::new(f), len)
        .map_err(|e| ck(path, format!("not a readable checkpoint (truncated or not an .npz): {e}")))?;
    let mut config = None;
    let mut tensors = BTreeMap::new();
    for i in 0..z.len() {
        let (key, value) = z.read(i).map_err(|(name, e)| unreadable(path, &name, e))?;
        match (key.as_str(), value) {
            (CONFIG, npy::Value::U8(bytes)) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ck(path, format!("entry '{CONFIG}' is not valid JSON: {e}")))?;
                config = Some(v);
            }
            (CONFIG, npy::Value::F32(_)) => return Err(ck(path, format!("entry '{CONFIG}' is not uint8 JSON text"))),
            (_, npy::Value::U8(_)) => return Err(ck(path, format!("entry '{key}' is uint8, not float32 or float64"))),
            (_, npy::Value::F32(a)) => {
                if let Some(bad) = a.iter().find(|x| !x.is_finite()) {
                    return Err(ck(path, format!("entry '{key}' holds a non-finite value ({bad})")));
                }
                if tensors.insert(key.clone(), a).is_some() {
                    return Err(ck(path, format!("entry '{key}' appears twice")));
                }
            }
        }
    }
    let config = config.ok_or_else(|| ck(path, format!("entry '{CONFIG}' is missing")))?;
    Ok(Checkpoint { config, tensors })
}

impl Checkpoint {
    /// Builds the model this checkpoint's settings describe with `f`, allocating at most 4 times the values
    /// the file holds (plus 2^20 for constants it need not save): settings that ask for a larger model than
    /// the file can fill are one error, not an allocation that aborts the process (`build_budget`).
    pub fn build<T>(&self, path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let held: u64 =
            self.tensors.iter().filter(|(k, _)| !k.starts_with("optim/")).map(|(_, a)| a.len() as u64).sum();
        let refused =
            |e: Error| ck(path, format!("its settings describe a larger model than the {held} values it holds ({e})"));
        crate::build_budget::within(held.saturating_mul(4).saturating_add(1 << 20), refused, f)
    }

    /// Sets every var from the checkpoint; each must be present with its exact shape, and nothing may be
    /// left over (a checkpoint of another model is refused, naming the first entry that differs).
    pub fn restore(&self, path: &Path, vars: &[Var], device: &Device) -> Result<()> {
        for v in vars {
            let a = self.tensors.get(v.name()).ok_or_else(|| ck(path, format!("entry '{}' is missing", v.name())))?;
            let want = v.get().shape().to_vec();
            if a.shape() != want.as_slice() {
                return Err(ck(
                    path,
                    format!("entry '{}' has shape {:?}, the model needs {want:?}", v.name(), a.shape()),
                ));
            }
        }
        // Optimiser state ("optim/...") is restored separately, by the trainer.
        let is_extra = |k: &String| !k.starts_with("optim/") && !vars.iter().any(|v| v.name() == k.as_str());
        if let Some(extra) = self.tensors.keys().find(|k| is_extra(k)) {
            return Err(ck(path, format!("entry '{extra}' does not belong to this model")));
        }
        for v in vars {
            v.set(Tensor::from_ndarray(&self.tensors[v.name()], device)?);
        }
        Ok(())
    }
}
