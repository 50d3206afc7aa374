//! GalacticFlow's cleaning, per galaxy (REFERENCE.md section 1). The masks of steps 1 and 2 are both built on
//! the whole galaxy and applied together, as GalacticFlow's `constraindata` does:
//! 1. radial cut at the `r_percentile` of r = |(x, y, z)|, capped at `r_max`; if the cap applies, cut again
//!    at the same percentile of r inside the cap;
//! 2. drop the `drop_top_z` stars with the highest Z; keep [Fe/H] >= `feh_min` and [O/Fe] >= `ofe_min`;
//! 3. drop the galaxy if fewer than `n_min` stars remain (or, beyond GalacticFlow, if their masses sum to
//!    nothing: its log10 M_stars would be -inf and wreck every other galaxy's standardisation);
//! 4. rotate in the x-y plane so the principal axis of the dense pixels (>= `pixel_quantile`) of a
//!    `bins` x `bins` density histogram lies along x; velocities rotate the same way.
//!
//! Stars with [Fe/H] or [O/Fe] = ±inf (iron-free particles: log10 0) reach cleaning, and the floors of step 2
//! remove them, as in GalacticFlow; one the floors would keep is an error naming file, star and column.
use super::stats::percentile;
use super::{Galaxy, COLUMNS, FE_H, MASS, METALS, O_FE};
use crate::error::Result;
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CleanConfig {
    pub r_percentile: f64,
    pub r_max: f64,
    pub drop_top_z: usize,
    pub feh_min: f32,
    pub ofe_min: f32,
    pub n_min: usize,
    pub bins: usize,
    pub pixel_quantile: f64,
}

impl Default for CleanConfig {
    /// GalacticFlow's thresholds (GalacticForge used 98/98 percentiles instead of 95).
    fn default() -> Self {
        CleanConfig {
            r_percentile: 95.0,
            r_max: 27.7,
            drop_top_z: 10,
            feh_min: -8.0,
            ofe_min: -1.0,
            n_min: 500,
            bins: 100,
            pixel_quantile: 0.9,
        }
    }
}

/// A galaxy cleaning dropped, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Dropped {
    pub id: String,
    pub reason: String,
}

/// What cleaning did to a set of galaxies.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CleanReport {
    pub galaxies_in: usize,
    pub galaxies_cut: Vec<Dropped>,
    pub stars_in: usize,
    pub stars_cut: usize,
    /// Stars cut for a non-finite [Fe/H] or [O/Fe] (counted within `stars_cut`).
    pub non_finite_cut: usize,
    /// Rotation applied to each kept galaxy (radians, by id).
    pub rotations: Vec<(String, f64)>,
    /// The radius each kept galaxy was cut at (kpc, by id): exact densities are truncated there.
    pub radial_cuts: Vec<(String, f64)>,
}

impl CleanReport {
    /// Why cleaning dropped galaxy `id`, if it did.
    pub fn dropped(&self, id: &str) -> Option<&str> {
        self.galaxies_cut.iter().find(|d| d.id == id).map(|d| d.reason.as_str())
    }
}

/// GalacticFlow's line, then one line per dropped galaxy.
impl std::fmt::Display for CleanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = 100.0 * self.stars_cut as f64 / self.stars_in.max(1) as f64;
        write!(
            f,
            "Cut out {} of {} galaxies, {} of {} stars (~{:.0}%)",
            self.galaxies_cut.len(),
            self.galaxies_in,
            self.stars_cut,
            self.stars_in,
            pct
        )?;
        if self.non_finite_cut > 0 {
            write!(f, ", {} of them for [Fe/H] or [O/Fe] = ±inf (iron-free stars)", self.non_finite_cut)?;
        }
        for d in &self.galaxies_cut {
            write!(f, "\n  dropped {}: {}", d.id, d.reason)?;
        }
        Ok(())
    }
}

fn radius(r: ndarray::ArrayView1<f32>) -> f32 {
    (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt()
}

/// Step 1's mask: the radial cut, and the radius cut at.
pub fn radial_mask(stars: &Array2<f32>, cfg: &CleanConfig) -> (Vec<bool>, f64) {
    let r: Vec<f32> = stars.outer_iter().map(radius).collect();
    let mut rcut = percentile(&r, cfg.r_percentile);
    if rcut > cfg.r_max {
        let inner: Vec<f32> = r.iter().copied().filter(|&v| f64::from(v) <= cfg.r_max).collect();
        rcut = percentile(&inner, cfg.r_percentile);
    }
    (r.iter().map(|&v| f64::from(v) <= rcut).collect(), rcut)
}

/// Step 2's mask: not among the `drop_top_z` highest Z, and above both floors. Like every mask of
/// GalacticFlow's `constraindata`, it is built on the whole galaxy, so a top-Z star outside the radial cut
/// counts among the ten.
pub fn metal_mask(stars: &Array2<f32>, cfg: &CleanConfig) -> Vec<bool> {
    let mut order: Vec<usize> = (0..stars.nrows()).collect();
    order.sort_by(|&a, &b| stars[[b, METALS]].total_cmp(&stars[[a, METALS]]));
    let mut keep: Vec<bool> = stars.outer_iter().map(|row| passes_floors(row, cfg)).collect();
    order.iter().take(cfg.drop_top_z).for_each(|&i| keep[i] = false);
    keep
}

/// GalacticFlow's floors: [Fe/H] >= `feh_min` and [O/Fe] >= `ofe_min`.
fn passes_floors(row: ndarray::ArrayView1<f32>, cfg: &CleanConfig) -> bool {
    row[FE_H] >= cfg.feh_min && row[O_FE] >= cfg.ofe_min
}

/// Counts the stars with a non-finite [Fe/H] or [O/Fe], all of which the floors must remove; one they would
/// keep is an error naming its file, star and column.
pub fn non_finite_stars(g: &Galaxy, cfg: &CleanConfig) -> Result<usize> {
    let mut n = 0;
    for (i, row) in g.stars.outer_iter().enumerate() {
        let Some(c) = [FE_H, O_FE].into_iter().find(|&c| !row[c].is_finite()) else { continue };
        if passes_floors(row, cfg) {
            return Err(g.error(format!(
                "non-finite value {} in star {i}, column {}, which no cut removes \
                 ([Fe/H] >= {} and [O/Fe] >= {} keep it)",
                row[c], COLUMNS[c], cfg.feh_min, cfg.ofe_min
            )));
        }
        n += 1;
    }
    Ok(n)
}

/// Why a galaxy whose stars survived as `s` is dropped, if it is.
fn drop_reason(s: &Array2<f32>, cfg: &CleanConfig) -> Option<String> {
    if s.nrows() < cfg.n_min {
        return Some(format!("{} stars left after the cuts, fewer than {}", s.nrows(), cfg.n_min));
    }
    let mass: f64 = s.column(MASS).iter().map(|&m| f64::from(m)).sum();
    (!(mass.is_finite() && mass > 0.0))
        .then(|| format!("its {} stars have a total mass of {mass} Msun, so log10 M_stars is undefined", s.nrows()))
}

/// Step 4's angle: the principal axis of the dense pixels of the x-y density histogram.
pub fn principal_angle(stars: &Array2<f32>, cfg: &CleanConfig) -> f64 {
    let (x, y) = (stars.column(0), stars.column(1));
    let lo_hi = |v: ndarray::ArrayView1<f32>| {
        let lo = v.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let ((x0, x1), (y0, y1)) = (lo_hi(x), lo_hi(y));
    let b = cfg.bins;
    let mut h = vec![0f32; b * b];
    for (&xv, &yv) in x.iter().zip(y.iter()) {
        let i = (((f64::from(xv) - x0) / (x1 - x0) * b as f64) as usize).min(b - 1);
        let j = (((f64::from(yv) - y0) / (y1 - y0) * b as f64) as usize).min(b - 1);
        h[i * b + j] += 1.0;
    }
    let thr = percentile(&h, 100.0 * cfg.pixel_quantile);
    let pts: Vec<(f64, f64)> = (0..b * b)
        .filter(|&k| f64::from(h[k]) >= thr && h[k] > 0.0)
        .map(|k| {
            (x0 + ((k / b) as f64 + 0.5) * (x1 - x0) / b as f64, y0 + ((k % b) as f64 + 0.5) * (y1 - y0) / b as f64)
        })
        .collect();
    if pts.len() < 2 {
        return 0.0;
    }
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (px, py) in &pts {
        sxx += (px - mx) * (px - mx);
        syy += (py - my) * (py - my);
        sxy += (px - mx) * (py - my);
    }
    // Angle of the leading eigenvector of the 2x2 covariance.
    0.5 * (2.0 * sxy).atan2(sxx - syy)
}

/// Rotates positions and velocities by -angle in the x-y plane (the principal axis goes to x).
pub fn rotate(stars: &mut Array2<f32>, angle: f64) {
    let (c, s) = (angle.cos(), angle.sin());
    for mut row in stars.outer_iter_mut() {
        for (ix, iy) in [(0, 1), (3, 4)] {
            let (x, y) = (f64::from(row[ix]), f64::from(row[iy]));
            row[ix] = (c * x + s * y) as f32;
            row[iy] = (-s * x + c * y) as f32;
        }
    }
}

/// Cleans every galaxy; returns the kept ones and the report, or the error of a star with a non-finite
/// value that no cut removes.
pub fn clean(galaxies: &[Galaxy], cfg: &CleanConfig) -> Result<(Vec<Galaxy>, CleanReport)> {
    let mut rep = CleanReport { galaxies_in: galaxies.len(), ..Default::default() };
    let mut kept = Vec::new();
    for g in galaxies {
        rep.stars_in += g.n();
        rep.non_finite_cut += non_finite_stars(g, cfg)?;
        let (radial, rcut) = radial_mask(&g.stars, cfg);
        let metal = metal_mask(&g.stars, cfg);
        let idx: Vec<usize> = (0..g.n()).filter(|&i| radial[i] && metal[i]).collect();
        let mut s = g.stars.select(Axis(0), &idx);
        if let Some(reason) = drop_reason(&s, cfg) {
            rep.galaxies_cut.push(Dropped { id: g.id.clone(), reason });
            rep.stars_cut += g.n();
            continue;
        }
        rep.stars_cut += g.n() - s.nrows();
        let angle = principal_angle(&s, cfg);
        rotate(&mut s, angle);
        rep.rotations.push((g.id.clone(), angle));
        rep.radial_cuts.push((g.id.clone(), rcut));
        kept.push(Galaxy { id: g.id.clone(), stars: s, source: g.source.clone(), name: g.name.clone() });
    }
    Ok((kept, rep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn galaxy(n: usize, seed: u64, scale: f32) -> Array2<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, 11), |(_, c)| match c {
            0..=2 => scale * rng.random_range(-1.0f32..1.0),
            6 => rng.random_range(0.001f32..0.03),
            7 => rng.random_range(-1.0f32..0.3),
            8 => rng.random_range(-0.2f32..0.4),
            9 => 1e4,
            _ => rng.random_range(0.1f32..13.0),
        })
    }

    #[test]
    fn radial_mask_keeps_the_percentile_and_applies_the_cap() {
        let cfg = CleanConfig::default();
        let g = galaxy(2000, 1, 10.0);
        let (kept, _) = radial_mask(&g, &cfg);
        assert_eq!(kept.iter().filter(|&&k| k).count(), 1900, "95% of 2000 distinct radii");
        // Far beyond the cap: everything kept lies inside r_max.
        let big = galaxy(2000, 2, 100.0);
        let (kept, _) = radial_mask(&big, &cfg);
        assert!(big.outer_iter().zip(&kept).all(|(r, &k)| !k || f64::from(radius(r)) <= cfg.r_max));
        assert!(kept.iter().any(|&k| k));
    }

    #[test]
    fn metal_mask_drops_the_top_z_and_the_floors() {
        let cfg = CleanConfig::default();
        let mut g = galaxy(600, 3, 5.0);
        g[[0, 7]] = -9.0;
        g[[1, 8]] = -1.5;
        let top = g.column(METALS).iter().copied().fold(f32::MIN, f32::max);
        let keep = metal_mask(&g, &cfg);
        assert_eq!(keep.iter().filter(|&&k| k).count(), 600 - 10 - 2);
        assert!(g.outer_iter().zip(&keep).all(|(r, &k)| !k || (r[METALS] < top && r[7] >= -8.0 && r[8] >= -1.0)));
    }

    #[test]
    fn top_z_stars_are_chosen_on_the_whole_galaxy_as_galacticflow() {
        // The 10 highest-Z stars all lie far out: the radial cut removes them, and no star inside goes for Z.
        let cfg = CleanConfig::default();
        let mut g = galaxy(2000, 4, 5.0);
        for i in 0..10 {
            g[[i, 0]] = 20.0 + i as f32;
            g[[i, METALS]] = 0.5;
        }
        let (kept, rep) = clean(&[Galaxy::new("far", g.clone())], &cfg).unwrap();
        let (radial, _) = radial_mask(&g, &cfg);
        assert_eq!(kept[0].n(), radial.iter().filter(|&&k| k).count(), "{rep}");
    }

    #[test]
    fn iron_free_stars_are_cut_and_counted_and_zero_mass_galaxies_dropped() {
        let cfg = CleanConfig { n_min: 100, ..Default::default() };
        let mut a = galaxy(600, 5, 5.0);
        a[[3, FE_H]] = f32::NEG_INFINITY;
        // Iron-free: [O/Fe] = log10(O / 0) = +inf too.
        a[[4, FE_H]] = f32::NEG_INFINITY;
        a[[4, O_FE]] = f32::INFINITY;
        let mut zero = galaxy(600, 6, 5.0);
        zero.column_mut(MASS).fill(0.0);
        let gals = [Galaxy::new("a", a.clone()), Galaxy::new("zero", zero)];
        let (kept, rep) = clean(&gals, &cfg).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].stars.iter().all(|v| v.is_finite()));
        assert_eq!(rep.non_finite_cut, 2);
        assert_eq!(rep.galaxies_cut.len(), 1);
        assert!(rep.dropped("zero").unwrap().contains("total mass of 0"), "{rep}");
        assert!(rep.to_string().contains("2 of them for [Fe/H] or [O/Fe] = ±inf"), "{rep}");
        assert!(rep.to_string().contains("\n  dropped zero: "), "{rep}");
        let small = CleanConfig { n_min: 10_000, ..cfg.clone() };
        let (_, rep) = clean(&gals[..1], &small).unwrap();
        assert!(rep.dropped("a").unwrap().contains("fewer than 10000"), "{rep}");

        // +inf [O/Fe] with a finite [Fe/H] passes both floors: an error naming star and column.
        a[[7, O_FE]] = f32::INFINITY;
        let e = clean(&[Galaxy::new("b", a)], &cfg).unwrap_err().to_string();
        assert!(e.contains("galaxy 'b'") && e.contains("inf in star 7, column O/Fe") && e.contains("no cut"), "{e}");
    }

    #[test]
    fn rotation_puts_an_elongated_galaxy_along_x() {
        let cfg = CleanConfig::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let angle = 0.7f64;
        let mut g = Array2::zeros((20000, 11));
        for mut row in g.outer_iter_mut() {
            // A bar 6:1 along `angle`.
            let (u, v): (f64, f64) = (rng.random_range(-6.0..6.0), rng.random_range(-1.0..1.0));
            row[0] = (u * angle.cos() - v * angle.sin()) as f32;
            row[1] = (u * angle.sin() + v * angle.cos()) as f32;
            row[3] = row[0];
            row[4] = row[1];
        }
        let a = principal_angle(&g, &cfg);
        assert!((a - angle).abs() < 0.05, "angle {a}");
        rotate(&mut g, a);
        let spread = |c: usize| g.column(c).iter().map(|v| v * v).sum::<f32>();
        assert!(spread(0) > 10.0 * spread(1));
        assert!(g.outer_iter().all(|r| (r[0] - r[3]).abs() < 1e-4 && (r[1] - r[4]).abs() < 1e-4));
    }
}
