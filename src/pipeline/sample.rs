//! Sampling stars in physical units, streamed to a .npy file in chunks so that memory stays bounded for
//! any number of stars (the header states the final shape up front; the file is renamed into place
//! only when complete).
use super::model::{Conditions, SavedModel};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::flows::sample;
use rand::SeedableRng;
use std::io::Write;
use std::path::Path;

/// The .npy v1.0 header of a little-endian float32 C-order array of shape (rows, cols).
pub fn npy_header(rows: u64, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + dict + padding + '\n', a multiple of 64 bytes.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', total - unpadded));
    h.push(b'\n');
    h
}

/// Resolves a condition: by galaxy id (stored in the checkpoint) or explicit physical values.
pub fn condition(model: &SavedModel, galaxy: Option<&str>, values: Option<&[f64]>) -> Result<Vec<f64>> {
    let names = &model.standardizer.cond_names;
    let c = match (galaxy, values) {
        (Some(id), None) => {
            let v = &model.config["conditions"][id];
            serde_json::from_value::<Vec<f64>>(v.clone()).map_err(|_| {
                Error::Usage(format!(
                    "galaxy '{id}' is not in this model's checkpoint; pass --condition with {} values",
                    names.len()
                ))
            })?
        }
        (None, Some(v)) => v.to_vec(),
        _ => return Err(Error::Usage("give exactly one of --galaxy and --condition".into())),
    };
    if c.len() != names.len() || c.iter().any(|v| !v.is_finite()) {
        return Err(Error::Usage(format!(
            "the condition needs {} finite values ({}), got {:?}",
            names.len(),
            names.join(", "),
            c
        )));
    }
    Ok(c)
}

/// A warning for each value of the physical condition `c` outside the range the training galaxies span
/// (stored in the checkpoint), where the flow extrapolates.
pub fn range_warnings(model: &SavedModel, c: &[f64]) -> Vec<String> {
    let names = &model.standardizer.cond_names;
    let train: Vec<Vec<f64>> = model.config["train_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str())
        .filter_map(|id| serde_json::from_value(model.config["conditions"][id].clone()).ok())
        .filter(|v: &Vec<f64>| v.len() == c.len())
        .collect();
    if train.is_empty() {
        return Vec::new();
    }
    (0..c.len())
        .filter_map(|j| {
            let (lo, hi) = train.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v[j]), hi.max(v[j])));
            (!(lo..=hi).contains(&c[j])).then(|| {
                let name = names.get(j).map_or("?", String::as_str);
                format!(
                    "{name} = {} is outside the training galaxies' range [{lo}, {hi}]: the flow extrapolates there",
                    c[j]
                )
            })
        })
        .collect()
}

/// Draws `n` stars and hands them to `sink` in chunks of at most `chunk` rows, [m, D] in physical units.
/// The noise is one StdRng stream seeded with `seed`, drawn row by row, and each row goes through the flow
/// on its own, so the stars do not depend on `chunk` (bit for bit on the CPU: tests/pipeline.rs) and memory
/// stays bounded by it.
#[allow(clippy::too_many_arguments)]
pub fn sample_chunks(
    model: &SavedModel,
    conds: Conditions,
    n: u64,
    chunk: usize,
    seed: u64,
    dev: &Device,
    mut sink: impl FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    conds.check(&model.standardizer.cond_names, n)?;
    let d = model.flow.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chunk = chunk.max(1) as u64;
    let mut phys = vec![0f32; chunk.min(n) as usize * d];
    let mut done = 0u64;
    while done < n {
        let m = chunk.min(n - done) as usize;
        let c = conds.standardised(&model.standardizer, done as usize..done as usize + m, dev)?;
        let x = sample(model.flow.as_ref(), m, &c, &mut rng)?.to_vec()?;
        for (row, out) in x.chunks(d).zip(phys.chunks_mut(d)) {
            model.standardizer.stars_to_physical(row, out);
        }
        sink(&phys[..m * d])?;
        done += m as u64;
    }
    Ok(())
}

/// Draws `n` stars for one physical condition and writes them, [n, 10] physical units, to `out`.
#[allow(clippy::too_many_arguments)]
pub fn sample_to_npy(
    model: &SavedModel,
    cond: &[f64],
    n: u64,
    chunk: usize,
    seed: u64,
    out: &Path,
    dev: &Device,
    progress: bool,
) -> Result<()> {
    let d = model.flow.dim();
    let bar = super::progress::Progress::count(n, progress);
    // A sampling error keeps its own kind (device, shape...) rather than becoming a file error.
    let mut failed = None;
    let written = crate::io::write_atomic(out, |w| {
        w.write_all(&npy_header(n, d))?;
        let mut bytes = Vec::new();
        let drawn = sample_chunks(model, Conditions::One(cond), n, chunk, seed, dev, |rows| {
            bytes.clear();
            rows.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            w.write_all(&bytes).map_err(|e| Error::file(out, e))?;
            bar.inc((rows.len() / d) as u64);
            Ok(())
        });
        drawn.map_err(|e| std::io::Error::other(failed.insert(e).to_string()))
    });
    if let Some(e) = failed {
        return Err(e);
    }
    written?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::npy_header;

    #[test]
    fn header_is_aligned_and_numpy_shaped() {
        for (r, c) in [(0u64, 10usize), (7, 10), (1_000_000_000, 10)] {
            let h = npy_header(r, c);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let text = String::from_utf8_lossy(&h[10..]);
            assert!(text.contains(&format!("'shape': ({r}, {c})")));
        }
    }
}
