//! Numerics behind the plots: shape checks, percentiles, 1-D and 2-D histograms, Gaussian smoothing,
//! density levels enclosing given mass fractions, bilinear lookup and marching-squares contours.
//! Non-finite values are skipped everywhere.
use super::{invalid, PlotError};

/// Checks that `data` is a row-major table with `dims` columns and returns its number of rows.
pub(crate) fn rows(data: &[f32], dims: usize, what: &str, func: &str) -> Result<usize, PlotError> {
    if dims == 0 {
        return Err(invalid(format!("{func}: dims must be at least 1")));
    }
    if !data.len().is_multiple_of(dims) {
        return Err(invalid(format!(
            "{func}: {what} has {} values, which is not a whole number of rows of {dims} columns",
            data.len()
        )));
    }
    Ok(data.len() / dims)
}

/// Number of rows holding at least one non-finite value.
pub(crate) fn rows_with_nan(data: &[f32], dims: usize) -> usize {
    data.chunks_exact(dims).filter(|r| r.iter().any(|v| !v.is_finite())).count()
}

/// The finite values of column `c`, sorted ascending.
pub(crate) fn sorted_col(data: &[f32], dims: usize, c: usize) -> Vec<f64> {
    let mut v: Vec<f64> = data.chunks_exact(dims).map(|r| r[c] as f64).filter(|v| v.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Percentile `q` (0..=100) of sorted values with linear interpolation (numpy's default); None if empty.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let w = pos - i as f64;
    Some(sorted[i] + (sorted[j] - sorted[i]) * w)
}

/// A usable range from (lo, hi): non-finite gives [0, 1]; an empty or vanishing one is widened
/// around its centre by 10 % of the value (or by 0.5 at zero).
pub(crate) fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    if hi - lo > 1e-9 * lo.abs().max(hi.abs()) && hi - lo > f64::MIN_POSITIVE * 1e6 {
        return (lo, hi);
    }
    let c = 0.5 * (lo + hi);
    let d = if c != 0.0 { 0.1 * c.abs() } else { 0.5 };
    (c - d, c + d)
}

/// Axis range of a column: the 0.5 and 99.5 percentiles of the data, or of the flow when the data
/// has no finite value there, widened if degenerate.
pub(crate) fn column_range(data_sorted: &[f64], flow_sorted: &[f64]) -> (f64, f64) {
    let src = if data_sorted.is_empty() { flow_sorted } else { data_sorted };
    match (percentile(src, 0.5), percentile(src, 99.5)) {
        (Some(lo), Some(hi)) => widen(lo, hi),
        _ => (0.0, 1.0),
    }
}

/// Bin index of `v` in `bins` equal bins over [lo, hi] (hi included), None outside or non-finite.
#[inline]
pub(crate) fn bin_of(v: f64, lo: f64, hi: f64, bins: usize) -> Option<usize> {
    if !(v >= lo && v <= hi) {
        return None;
    }
    Some((((v - lo) / (hi - lo)) * bins as f64).floor().max(0.0).min((bins - 1) as f64) as usize)
}

/// Counts of the finite values in `bins` equal bins over [lo, hi]; values outside are dropped.
pub(crate) fn hist1d(vals: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    for &v in vals {
        if let Some(i) = bin_of(v, lo, hi, bins) {
            h[i] += 1.0;
        }
    }
    h
}

/// Counts turned into a probability density over the binned range (numpy's `density=True`: the
/// integral over [lo, hi] is 1); all zeros stay zeros.
pub(crate) fn to_density(counts: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 || counts.is_empty() {
        return counts.to_vec();
    }
    let bw = (hi - lo) / counts.len() as f64;
    counts.iter().map(|c| c / (total * bw)).collect()
}

/// A 2-D grid of values at bin centres; `v[j * nx + i]` is column i (x) of row j (y, upwards).
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    pub nx: usize,
    pub ny: usize,
    pub v: Vec<f64>,
}

impl Grid {
    pub fn zeros(nx: usize, ny: usize) -> Grid {
        Grid { nx, ny, v: vec![0.0; nx * ny] }
    }
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.v[j * self.nx + i]
    }

    /// Bilinear interpolation at fractional bin coordinates (0 = centre of the first bin), clamped
    /// to the grid.
    pub fn bilinear(&self, gx: f64, gy: f64) -> f64 {
        let gx = gx.clamp(0.0, (self.nx - 1) as f64);
        let gy = gy.clamp(0.0, (self.ny - 1) as f64);
        let (i, j) = (gx.floor() as usize, gy.floor() as usize);
        let (i1, j1) = ((i + 1).min(self.nx - 1), (j + 1).min(self.ny - 1));
        let (fx, fy) = (gx - i as f64, gy - j as f64);
        let a = self.at(i, j) * (1.0 - fx) + self.at(i1, j) * fx;
        let b = self.at(i, j1) * (1.0 - fx) + self.at(i1, j1) * fx;
        a * (1.0 - fy) + b * fy
    }
}

/// 2-D histogram of columns (cx, cy) over the given ranges; returns the grid and the number of rows
/// where both values are finite (in range or not).
pub(crate) fn hist2d(
    data: &[f32],
    dims: usize,
    (cx, cy): (usize, usize),
    (xlo, xhi): (f64, f64),
    (ylo, yhi): (f64, f64),
    (nx, ny): (usize, usize),
) -> (Grid, usize) {
    let mut g = Grid::zeros(nx, ny);
    let mut finite = 0;
    for r in data.chunks_exact(dims) {
        let (x, y) = (r[cx] as f64, r[cy] as f64);
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        finite += 1;
        if let (Some(i), Some(j)) = (bin_of(x, xlo, xhi, nx), bin_of(y, ylo, yhi, ny)) {
            g.v[j * nx + i] += 1.0;
        }
    }
    (g, finite)
}

/// Separable Gaussian smoothing with `sigma` in bins (zero outside the grid).
pub(crate) fn smooth(g: &Grid, sigma: f64) -> Grid {
    if sigma <= 0.0 {
        return g.clone();
    }
    let rad = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-rad..=rad).map(|d| (-0.5 * (d as f64 / sigma).powi(2)).exp()).collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / ks).collect();
    let (nx, ny) = (g.nx as i64, g.ny as i64);
    let mut tmp = Grid::zeros(g.nx, g.ny);
    for j in 0..ny {
        for i in 0..nx {
            let mut s = 0.0;
            for (t, w) in k.iter().enumerate() {
                let ii = i + t as i64 - rad;
                if (0..nx).contains(&ii) {
                    s += w * g.v[(j * nx + ii) as usize];
                }
            }
            tmp.v[(j * nx + i) as usize] = s;
        }
    }
    let mut out = Grid::zeros(g.nx, g.ny);
    for j in 0..ny {
        for i in 0..nx {
            let mut s = 0.0;
            for (t, w) in k.iter().enumerate() {
                let jj = j + t as i64 - rad;
                if (0..ny).contains(&jj) {
                    s += w * tmp.v[(jj * nx + i) as usize];
                }
            }
            out.v[(j * nx + i) as usize] = s;
        }
    }
    out
}

/// Density thresholds whose super-level sets hold the given fractions of `total` (in the grid's
/// units), one per fraction, descending when the fractions ascend. A fraction the grid cannot reach
/// (mass outside the range) gets the smallest positive value. Empty if the grid holds nothing.
pub(crate) fn mass_levels(g: &Grid, total: f64, fractions: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = g.v.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
    if v.is_empty() || !(total > 0.0) {
        return Vec::new();
    }
    v.sort_by(|a, b| b.total_cmp(a));
    let mut cum = Vec::with_capacity(v.len());
    let mut s = 0.0;
    for x in &v {
        s += x;
        cum.push(s);
    }
    let mut out: Vec<f64> = fractions
        .iter()
        .map(|f| {
            let idx = cum.partition_point(|c| *c < f * total);
            v[idx.min(v.len() - 1)]
        })
        .collect();
    // Strictly decreasing so that bands never collapse into one another.
    for k in 1..out.len() {
        if out[k] >= out[k - 1] {
            out[k] = out[k - 1] * (1.0 - 1e-9);
        }
    }
    out
}

/// Marching-squares contour of `g` at `level`: segments [x0, y0, x1, y1] in bin coordinates
/// (0 = centre of the first bin); saddles are resolved by the cell's mean.
pub(crate) fn contour_segments(g: &Grid, level: f64) -> Vec<[f64; 4]> {
    let mut out = Vec::new();
    if g.nx < 2 || g.ny < 2 || !level.is_finite() {
        return out;
    }
    let cross = |a: f64, b: f64| -> f64 {
        let d = b - a;
        if d.abs() < 1e-300 {
            0.5
        } else {
            ((level - a) / d).clamp(0.0, 1.0)
        }
    };
    for j in 0..g.ny - 1 {
        for i in 0..g.nx - 1 {
            let (x, y) = (i as f64, j as f64);
            let c = [g.at(i, j), g.at(i + 1, j), g.at(i + 1, j + 1), g.at(i, j + 1)];
            let above = c.map(|v| v > level);
            // Crossing points on the edges: 0 bottom (c0-c1), 1 right (c1-c2), 2 top (c3-c2), 3 left (c0-c3).
            let mut p: [Option<(f64, f64)>; 4] = [None; 4];
            if above[0] != above[1] {
                p[0] = Some((x + cross(c[0], c[1]), y));
            }
            if above[1] != above[2] {
                p[1] = Some((x + 1.0, y + cross(c[1], c[2])));
            }
            if above[3] != above[2] {
                p[2] = Some((x + cross(c[3], c[2]), y + 1.0));
            }
            if above[0] != above[3] {
                p[3] = Some((x, y + cross(c[0], c[3])));
            }
            let seg = |a: (f64, f64), b: (f64, f64)| [a.0, a.1, b.0, b.1];
            let n = p.iter().filter(|q| q.is_some()).count();
            if n == 2 {
                let pts: Vec<(f64, f64)> = p.iter().flatten().copied().collect();
                out.push(seg(pts[0], pts[1]));
            } else if n == 4 {
                let (Some(b), Some(r), Some(t), Some(l)) = (p[0], p[1], p[2], p[3]) else { continue };
                let centre_above = (c[0] + c[1] + c[2] + c[3]) / 4.0 > level;
                // Corners 0 and 2 share a side of the level: if the centre joins them, cut off corners 1 and 3.
                if centre_above == above[0] {
                    out.push(seg(b, r));
                    out.push(seg(t, l));
                } else {
                    out.push(seg(l, b));
                    out.push(seg(r, t));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_ranges_and_bins() {
        let v: Vec<f64> = (0..=100).map(|i| i as f64).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 0.5), Some(0.5));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(widen(2.0, 2.0), (1.8, 2.2));
        assert_eq!(widen(0.0, 0.0), (-0.5, 0.5));
        assert_eq!(widen(f64::NAN, 1.0), (0.0, 1.0));
        assert_eq!(column_range(&[], &[]), (0.0, 1.0));
        assert_eq!(column_range(&[], &[1.0, 3.0]), (1.01, 2.99));
        let h = hist1d(&[0.0, 0.5, 1.0, 2.0, f64::NAN, -1.0], 0.0, 2.0, 4);
        assert_eq!(h, vec![1.0, 1.0, 1.0, 1.0]);
        let d = to_density(&h, 0.0, 2.0);
        assert!((d.iter().sum::<f64>() * 0.5 - 1.0).abs() < 1e-12);
        let mut t = vec![1.0f32, 2.0, f32::NAN, 4.0];
        assert_eq!(rows(&t, 2, "data", "t").unwrap(), 2);
        assert_eq!(rows_with_nan(&t, 2), 1);
        assert_eq!(sorted_col(&t, 2, 1), vec![2.0, 4.0]);
        t.push(1.0);
        assert!(rows(&t, 2, "data", "t").is_err());
        assert!(rows(&t, 0, "data", "t").is_err());
    }

    #[test]
    fn levels_enclose_their_mass_and_contours_close() {
        // A radially decreasing bump: the level enclosing half the mass is a closed ring of segments.
        let n = 41;
        let mut g = Grid::zeros(n, n);
        for j in 0..n {
            for i in 0..n {
                let r2 = ((i as f64 - 20.0).powi(2) + (j as f64 - 20.0).powi(2)) / 25.0;
                g.v[j * n + i] = (-0.5 * r2).exp();
            }
        }
        let total: f64 = g.v.iter().sum();
        let lv = mass_levels(&g, total, &[0.39347, 0.8647]);
        assert!(lv[0] > lv[1]);
        let inside: f64 = g.v.iter().filter(|v| **v >= lv[0]).sum();
        assert!((inside / total - 0.393).abs() < 0.03, "{}", inside / total);
        // A 2-D Gaussian's 1-sigma level is exp(-1/2) of the peak.
        assert!((lv[0] - (-0.5f64).exp()).abs() < 0.05, "{}", lv[0]);
        let segs = contour_segments(&g, lv[0]);
        assert!(segs.len() > 20);
        for s in &segs {
            for (x, y) in [(s[0], s[1]), (s[2], s[3])] {
                let r = ((x - 20.0).powi(2) + (y - 20.0).powi(2)).sqrt();
                assert!((r - 5.0).abs() < 0.6, "contour point at radius {r}");
            }
        }
        assert!(mass_levels(&Grid::zeros(3, 3), 1.0, &[0.5]).is_empty());
        let s = smooth(&g, 1.0);
        assert!((s.v.iter().sum::<f64>() - total).abs() / total < 1e-3);
        assert!((g.bilinear(19.5, 20.0) - 0.5 * (g.at(19, 20) + g.at(20, 20))).abs() < 1e-12);
    }
}
