//! Star-particle flows: load a checkpoint `gforge flow train` wrote, read its columns and conditions,
//! sample stars and score them in physical units, through the same code as `gforge flow sample` and
//! `gforge flow eval` (src/pipeline/sample.rs, src/pipeline/eval.rs).
use crate::args::{expect_len, handle, out, slice, slice_mut, string};
use crate::device::{cstring, GfDevice};
use crate::status::{guard, guard_free, GfStatus};
use galactic_forge::data::{COLUMNS, MODELLED};
use galactic_forge::pipeline::eval::log_q_physical;
use galactic_forge::pipeline::sample::{condition, sample_chunks};
use galactic_forge::pipeline::{Conditions, SavedModel};
use galactic_forge::{Device, Error, Result};
use std::ffi::{c_char, CString};
use std::path::Path;

/// Rows per pass through the flow, `gforge flow sample`'s default --chunk: large enough to keep a GPU busy,
/// small enough to bound memory. The stars do not depend on it.
const CHUNK: usize = 300_000;

/// `gf_flow`: a loaded flow with its standardisation, on the device it was loaded onto. Read-only after
/// loading, so any number of threads may use it at once.
pub struct GfFlow {
    model: SavedModel,
    device: Device,
    columns: Vec<CString>,
    conditions: Vec<CString>,
    galaxies: Vec<CString>,
}

impl GfFlow {
    fn name<'a>(names: &'a [CString], i: usize, what: &str) -> Result<&'a CString> {
        names.get(i).ok_or_else(|| Error::Usage(format!("{what} {i} of {}", names.len())))
    }

    /// The caller's conditions: `values` holds one condition (C values) or one per star (n x C).
    unsafe fn conditions<'a>(&self, values: *const f64, len: usize, n: usize, per_row: bool) -> Result<Conditions<'a>> {
        let c = self.conditions.len();
        let what = if per_row { "conds_len" } else { "cond_len" };
        expect_len(what, len, if per_row { n } else { 1 }, c)?;
        let v = slice(values, len, if per_row { "conds" } else { "cond" })?;
        Ok(if per_row { Conditions::PerRow(v) } else { Conditions::One(v) })
    }
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_load(
    path: *const c_char,
    device: *const GfDevice,
    flow: *mut *mut GfFlow,
) -> GfStatus {
    guard(|| {
        let flow = out(flow, "flow")?;
        *flow = std::ptr::null_mut();
        let device = handle(device, "device")?.device.clone();
        let (model, _) = SavedModel::load(Path::new(string(path, "path")?), &device)?;
        let columns = MODELLED.iter().take(model.flow.dim()).map(|&c| cstring(COLUMNS[c])).collect();
        let conditions = model.standardizer.cond_names.iter().map(|s| cstring(s)).collect();
        let galaxies =
            model.config["conditions"].as_object().map(|m| m.keys().map(|k| cstring(k)).collect()).unwrap_or_default();
        *flow = Box::into_raw(Box::new(GfFlow { model, device, columns, conditions, galaxies }));
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_free(flow: *mut GfFlow) {
    guard_free(|| {
        if !flow.is_null() {
            drop(Box::from_raw(flow));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_dim(flow: *const GfFlow, dim: *mut usize) -> GfStatus {
    guard(|| {
        *out(dim, "dim")? = handle(flow, "flow")?.model.flow.dim();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_column_name(flow: *const GfFlow, i: usize, name: *mut *const c_char) -> GfStatus {
    guard(|| {
        *out(name, "name")? = GfFlow::name(&handle(flow, "flow")?.columns, i, "column")?.as_ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_cond_dim(flow: *const GfFlow, cond_dim: *mut usize) -> GfStatus {
    guard(|| {
        *out(cond_dim, "cond_dim")? = handle(flow, "flow")?.conditions.len();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_cond_name(flow: *const GfFlow, i: usize, name: *mut *const c_char) -> GfStatus {
    guard(|| {
        *out(name, "name")? = GfFlow::name(&handle(flow, "flow")?.conditions, i, "condition")?.as_ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_galaxy_count(flow: *const GfFlow, count: *mut usize) -> GfStatus {
    guard(|| {
        *out(count, "count")? = handle(flow, "flow")?.galaxies.len();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_galaxy_id(flow: *const GfFlow, i: usize, id: *mut *const c_char) -> GfStatus {
    guard(|| {
        *out(id, "id")? = GfFlow::name(&handle(flow, "flow")?.galaxies, i, "galaxy")?.as_ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_galaxy_condition(
    flow: *const GfFlow,
    id: *const c_char,
    cond: *mut f64,
    cond_len: usize,
) -> GfStatus {
    guard(|| {
        let f = handle(flow, "flow")?;
        expect_len("cond_len", cond_len, 1, f.conditions.len())?;
        let id = string(id, "id")?;
        if !f.galaxies.iter().any(|g| g.to_bytes() == id.as_bytes()) {
            let n = f.galaxies.len();
            return Err(Error::Usage(format!(
                "galaxy '{id}' is not among the {n} this checkpoint stores (gf_flow_galaxy_id)"
            )));
        }
        let c = condition(&f.model, Some(id), None)?;
        slice_mut(cond, cond_len, "cond")?.copy_from_slice(&c);
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
unsafe fn sample(
    flow: *const GfFlow,
    n: usize,
    conds: *const f64,
    conds_len: usize,
    per_row: bool,
    seed: u64,
    stars: *mut f32,
    stars_len: usize,
) -> Result<()> {
    let f = handle(flow, "flow")?;
    let conds = f.conditions(conds, conds_len, n, per_row)?;
    expect_len("stars_len", stars_len, n, f.model.flow.dim())?;
    let stars = slice_mut(stars, stars_len, "stars")?;
    let mut at = 0;
    sample_chunks(&f.model, conds, n as u64, CHUNK, seed, &f.device, |rows| {
        stars[at..at + rows.len()].copy_from_slice(rows);
        at += rows.len();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_sample(
    flow: *const GfFlow,
    n: usize,
    cond: *const f64,
    cond_len: usize,
    seed: u64,
    stars: *mut f32,
    stars_len: usize,
) -> GfStatus {
    guard(|| sample(flow, n, cond, cond_len, false, seed, stars, stars_len))
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_sample_rows(
    flow: *const GfFlow,
    n: usize,
    conds: *const f64,
    conds_len: usize,
    seed: u64,
    stars: *mut f32,
    stars_len: usize,
) -> GfStatus {
    guard(|| sample(flow, n, conds, conds_len, true, seed, stars, stars_len))
}

#[allow(clippy::too_many_arguments)]
unsafe fn log_prob(
    flow: *const GfFlow,
    n: usize,
    stars: *const f32,
    stars_len: usize,
    conds: *const f64,
    conds_len: usize,
    per_row: bool,
    log_prob: *mut f64,
    log_prob_len: usize,
) -> Result<()> {
    let f = handle(flow, "flow")?;
    expect_len("stars_len", stars_len, n, f.model.flow.dim())?;
    expect_len("log_prob_len", log_prob_len, n, 1)?;
    let conds = f.conditions(conds, conds_len, n, per_row)?;
    let lq = log_q_physical(&f.model, slice(stars, stars_len, "stars")?, conds, &f.device)?;
    slice_mut(log_prob, log_prob_len, "log_prob")?.copy_from_slice(&lq);
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_log_prob(
    flow: *const GfFlow,
    n: usize,
    stars: *const f32,
    stars_len: usize,
    cond: *const f64,
    cond_len: usize,
    log_prob_out: *mut f64,
    log_prob_len: usize,
) -> GfStatus {
    guard(|| log_prob(flow, n, stars, stars_len, cond, cond_len, false, log_prob_out, log_prob_len))
}

#[no_mangle]
pub unsafe extern "C" fn gf_flow_log_prob_rows(
    flow: *const GfFlow,
    n: usize,
    stars: *const f32,
    stars_len: usize,
    conds: *const f64,
    conds_len: usize,
    log_prob_out: *mut f64,
    log_prob_len: usize,
) -> GfStatus {
    guard(|| log_prob(flow, n, stars, stars_len, conds, conds_len, true, log_prob_out, log_prob_len))
}
