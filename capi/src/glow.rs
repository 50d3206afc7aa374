//! HIGlow's conditional Glow: load a checkpoint `gforge glow train` wrote, sample maps and score them in the
//! data's own units, and the posterior of (Omega_m, sigma_8) of a map on a grid, through the same code as
//! `gforge glow sample`, `gforge glow eval` and `gforge glow infer` (src/pipeline/glow.rs, hi_eval.rs).
use crate::args::{expect_len, handle, out, slice, slice_mut, string};
use crate::device::GfDevice;
use crate::status::{guard, guard_free, GfStatus};
use galactic_forge::models::CondGlow;
use galactic_forge::pipeline::glow::{self, GlowMeta, HiSet};
use galactic_forge::pipeline::hi_eval::flow_posterior;
use galactic_forge::{Device, Error, Result};
use std::ffi::c_char;
use std::path::Path;

/// Maps per pass through the flow, `gforge glow sample`'s batch. The maps do not depend on it.
const BATCH: usize = 64;

/// `gf_glow`: a loaded Glow with its scalings, on the device it was loaded onto. Read-only after loading.
pub struct GfGlow {
    model: CondGlow,
    meta: GlowMeta,
    device: Device,
}

impl GfGlow {
    /// Values per map (C S S).
    fn dim(&self) -> usize {
        self.model.cfg.dim()
    }

    /// Maps in the data's units: every value finite and positive (they are log10'd), else GF_ERR_DATA.
    fn check_maps(&self, maps: &[f32]) -> Result<()> {
        match maps.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            Some(i) => Err(Error::Data(format!(
                "map {} value {} is {}: maps hold positive column densities (they are log10'd)",
                i / self.dim(),
                i % self.dim(),
                maps[i]
            ))),
            None => Ok(()),
        }
    }
}

/// (Omega_m, sigma_8) from C, finite.
fn theta(c: &[f64]) -> Result<[f64; 2]> {
    match c {
        [om, s8] if om.is_finite() && s8.is_finite() => Ok([*om, *s8]),
        _ => Err(Error::Usage(format!("a condition is (Omega_m, sigma_8), finite; got {c:?}"))),
    }
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_load(
    path: *const c_char,
    device: *const GfDevice,
    glow: *mut *mut GfGlow,
) -> GfStatus {
    guard(|| {
        let glow = out(glow, "glow")?;
        *glow = std::ptr::null_mut();
        let device = handle(device, "device")?.device.clone();
        let (model, meta) = glow::load(Path::new(string(path, "path")?), &device)?;
        if model.cfg.cond != 2 {
            return Err(Error::Usage(format!(
                "the Glow takes {} conditions; this API takes (Omega_m, sigma_8)",
                model.cfg.cond
            )));
        }
        *glow = Box::into_raw(Box::new(GfGlow { model, meta, device }));
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_free(glow: *mut GfGlow) {
    guard_free(|| {
        if !glow.is_null() {
            drop(Box::from_raw(glow));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_map_shape(glow: *const GfGlow, channels: *mut usize, side: *mut usize) -> GfStatus {
    guard(|| {
        let g = handle(glow, "glow")?;
        *out(channels, "channels")? = g.model.cfg.channels;
        *out(side, "side")? = g.model.cfg.side;
        Ok(())
    })
}

/// The range of (Omega_m, sigma_8) the model was trained on: range = [Omega_m lo, hi, sigma_8 lo, hi].
#[no_mangle]
pub unsafe extern "C" fn gf_glow_cond_range(glow: *const GfGlow, range: *mut f64, range_len: usize) -> GfStatus {
    guard(|| {
        let cs = &handle(glow, "glow")?.meta.cond_scaling;
        expect_len("range_len", range_len, 1, 4)?;
        slice_mut(range, range_len, "range")?.copy_from_slice(&[cs.lo[0], cs.hi[0], cs.lo[1], cs.hi[1]]);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_sample(
    glow: *const GfGlow,
    n: usize,
    cond: *const f64,
    cond_len: usize,
    temperature: f32,
    seed: u64,
    maps: *mut f32,
    maps_len: usize,
) -> GfStatus {
    guard(|| {
        let g = handle(glow, "glow")?;
        expect_len("cond_len", cond_len, 1, 2)?;
        expect_len("maps_len", maps_len, n, g.dim())?;
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::Usage(format!("temperature must be >= 0, got {temperature}")));
        }
        let th = theta(slice(cond, cond_len, "cond")?)?;
        let drawn = glow::sample_maps(&g.model, &g.meta, &[th], n, temperature, BATCH, seed, &g.device)?;
        slice_mut(maps, maps_len, "maps")?.copy_from_slice(&drawn.concat());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_log_prob(
    glow: *const GfGlow,
    n: usize,
    maps: *const f32,
    maps_len: usize,
    conds: *const f64,
    conds_len: usize,
    log_prob: *mut f64,
    log_prob_len: usize,
) -> GfStatus {
    guard(|| {
        let g = handle(glow, "glow")?;
        let dim = g.dim();
        expect_len("maps_len", maps_len, n, dim)?;
        expect_len("conds_len", conds_len, n, 2)?;
        expect_len("log_prob_len", log_prob_len, n, 1)?;
        let (m, c) = (slice(maps, maps_len, "maps")?, slice(conds, conds_len, "conds")?);
        g.check_maps(m)?;
        let mut set = HiSet { maps: Vec::with_capacity(maps_len), cond: Vec::with_capacity(2 * n), dim, cond_dim: 2 };
        for (map, th) in m.chunks(dim.max(1)).zip(c.chunks(2)) {
            set.maps.extend(g.meta.scaling.forward(map));
            set.cond.extend(g.meta.cond_scaling.forward(theta(th)?).map(|v| v as f32));
        }
        let lp = glow::log_probs(&g.model, &set, &g.device)?;
        let dst = slice_mut(log_prob, log_prob_len, "log_prob")?;
        for ((d, l), map) in dst.iter_mut().zip(lp).zip(m.chunks(dim.max(1))) {
            *d = l + g.meta.scaling.log_abs_det(map);
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_glow_posterior(
    glow: *const GfGlow,
    map: *const f32,
    map_len: usize,
    grid: usize,
    symmetries: usize,
    omega_m: *mut f64,
    sigma_8: *mut f64,
    axis_len: usize,
    log_like: *mut f64,
    log_like_len: usize,
) -> GfStatus {
    guard(|| {
        let g = handle(glow, "glow")?;
        expect_len("map_len", map_len, 1, g.dim())?;
        expect_len("axis_len", axis_len, grid, 1)?;
        expect_len("log_like_len", log_like_len, grid, grid)?;
        let m = slice(map, map_len, "map")?;
        g.check_maps(m)?;
        let post = flow_posterior(&g.model, &g.meta.scaling.forward(m), grid, symmetries, &g.device)?;
        let jac = g.meta.scaling.log_abs_det(m);
        let (om, s8) = (slice_mut(omega_m, axis_len, "omega_m")?, slice_mut(sigma_8, axis_len, "sigma_8")?);
        for (i, &a) in post.axis.iter().enumerate() {
            [om[i], s8[i]] = g.meta.cond_scaling.inverse([a, a]);
        }
        for (d, l) in slice_mut(log_like, log_like_len, "log_like")?.iter_mut().zip(&post.log_like) {
            *d = l + jac;
        }
        Ok(())
    })
}
