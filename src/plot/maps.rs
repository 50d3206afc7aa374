//! Face-on maps: mean of a quantity per x-y pixel for data and flow, and their relative residual.
use super::axes::{colorbar, nice_ticks, Axes, Ticks};
use super::canvas::{Canvas, HAlign, Rect, VAlign, TEXT};
use super::colormap::{diverging, viridis, MASKED};
use super::stats::{bin_of, percentile, rows, widen};
use super::{invalid, PlotError};
use std::path::Path;

const M: i32 = 340;
const CELL_LEFT: i32 = 70;
const CB_GAP: i32 = 12;
const CB_W: i32 = 18;
const CELL_W: i32 = CELL_LEFT + M + CB_GAP + CB_W + 104;
const ROW_TOP: i32 = 46;
const ROW_H: i32 = ROW_TOP + M + 60;
const MARGIN: i32 = 10;
const MAX_QUANTITIES: usize = 16;
const MAX_BINS: usize = 1024;

/// Pixel geometry of the maps for `nq` quantities.
pub(crate) struct MapsLayout {
    pub w: u32,
    pub h: u32,
}

impl MapsLayout {
    pub fn new(nq: usize) -> MapsLayout {
        MapsLayout { w: (2 * MARGIN + 3 * CELL_W) as u32, h: (2 * MARGIN + nq as i32 * ROW_H) as u32 }
    }
    /// Map area of quantity `q`'s panel `k` (0 data, 1 flow, 2 residual).
    pub fn panel(&self, q: usize, k: usize) -> Rect {
        Rect::new(MARGIN + k as i32 * CELL_W + CELL_LEFT, MARGIN + q as i32 * ROW_H + ROW_TOP, M, M)
    }
}

/// Per-bin sums and counts of column `c` over the x-y grid (x, y = columns 0, 1).
struct Binned {
    sum: Vec<f64>,
    count: Vec<usize>,
}

impl Binned {
    fn new(t: &[f32], dims: usize, c: usize, ext: [f64; 4], bins: usize) -> Binned {
        let mut b = Binned { sum: vec![0.0; bins * bins], count: vec![0; bins * bins] };
        for r in t.chunks_exact(dims) {
            let v = r[c] as f64;
            if !v.is_finite() {
                continue;
            }
            if let (Some(i), Some(j)) =
                (bin_of(r[0] as f64, ext[0], ext[1], bins), bin_of(r[1] as f64, ext[2], ext[3], bins))
            {
                b.sum[j * bins + i] += v;
                b.count[j * bins + i] += 1;
            }
        }
        b
    }
    fn mean(&self, k: usize, min: usize) -> Option<f64> {
        (self.count[k] >= min.max(1)).then(|| self.sum[k] / self.count[k] as f64)
    }
}

/// For each `(column, name)` in `quantities`, a row of three face-on maps over `extent` = [xmin, xmax,
/// ymin, ymax] (x, y = columns 0 and 1) in `bins` x `bins` pixels: the mean of the column per pixel for
/// the data and for the flow (viridis, one shared colour range: the 2 to 98 percentiles of the data's
/// pixel means), and the relative residual (data - flow) / data (diverging map, symmetric range
/// covering 95 % of the pixels), shown only where data and flow both have at least `min_count` stars
/// (GalacticFlow uses 5). Grey pixels have no value. Each map has a colour bar with its numeric range.
/// 1652 pixels wide, 446 pixels per quantity high. `dims` is the number of columns per row. Non-finite
/// values are skipped; an empty `flow` leaves its maps grey; both empty is an error.
#[allow(clippy::too_many_arguments)]
pub fn xy_maps(
    path: impl AsRef<Path>,
    data: &[f32],
    flow: &[f32],
    dims: usize,
    quantities: &[(usize, &str)],
    extent: [f64; 4],
    bins: usize,
    min_count: usize,
) -> Result<(), PlotError> {
    let nd = rows(data, dims, "data", "xy_maps")?;
    let nf = rows(flow, dims, "flow", "xy_maps")?;
    if dims < 2 {
        return Err(invalid("xy_maps: needs at least the two columns x and y"));
    }
    if quantities.is_empty() || quantities.len() > MAX_QUANTITIES {
        return Err(invalid(format!("xy_maps: {} quantities, must be 1..={MAX_QUANTITIES}", quantities.len())));
    }
    if let Some((c, name)) = quantities.iter().find(|(c, _)| *c >= dims) {
        return Err(invalid(format!("xy_maps: quantity {name:?} is column {c}, but rows have {dims} columns")));
    }
    let [x0, x1, y0, y1] = extent;
    if !extent.iter().all(|v| v.is_finite()) || !(x1 > x0) || !(y1 > y0) {
        return Err(invalid(format!("xy_maps: extent {extent:?} is not [xmin, xmax, ymin, ymax] with min < max")));
    }
    if bins == 0 || bins > MAX_BINS {
        return Err(invalid(format!("xy_maps: bins = {bins}, must be 1..={MAX_BINS}")));
    }
    if nd == 0 && nf == 0 {
        return Err(invalid("xy_maps: data and flow are both empty"));
    }
    let lay = MapsLayout::new(quantities.len());
    let mut cv = Canvas::new(lay.w, lay.h)?;
    let nb = bins * bins;
    for (q, &(c, name)) in quantities.iter().enumerate() {
        let bd = Binned::new(data, dims, c, extent, bins);
        let bf = Binned::new(flow, dims, c, extent, bins);
        let md: Vec<Option<f64>> = (0..nb).map(|k| bd.mean(k, 1)).collect();
        let mf: Vec<Option<f64>> = (0..nb).map(|k| bf.mean(k, 1)).collect();

        // Colour range of the means: the data's well-sampled pixels, else any of its pixels, else the flow's.
        let well: Vec<f64> = (0..nb).filter_map(|k| bd.mean(k, min_count)).collect();
        let src = if !well.is_empty() {
            well
        } else if md.iter().any(|m| m.is_some()) {
            md.iter().flatten().copied().collect()
        } else {
            mf.iter().flatten().copied().collect()
        };
        let mut src = src;
        src.sort_by(|a, b| a.total_cmp(b));
        let (lo, hi) = match (percentile(&src, 2.0), percentile(&src, 98.0)) {
            (Some(a), Some(b)) => widen(a, b),
            _ => (0.0, 1.0),
        };

        let resid: Vec<Option<f64>> = (0..nb)
            .map(|k| match (bd.mean(k, min_count), bf.mean(k, min_count)) {
                (Some(d), Some(f)) if d == f => Some(0.0),
                (Some(d), Some(f)) => Some((d - f) / d).filter(|v| v.is_finite()),
                _ => None,
            })
            .collect();
        let mut abs: Vec<f64> = resid.iter().flatten().map(|v| v.abs()).collect();
        abs.sort_by(|a, b| a.total_cmp(b));
        let rmax = round_up(percentile(&abs, 95.0).unwrap_or(0.0));

        let scale = |v: f64| (v - lo) / (hi - lo);
        type Colour<'a> = &'a dyn Fn(f64) -> [u8; 3];
        let panels: [(&Vec<Option<f64>>, Colour, String); 3] = [
            (&md, &|v| viridis(scale(v)), format!("data: {name}")),
            (&mf, &|v| viridis(scale(v)), format!("flow: {name}")),
            (&resid, &|v| diverging(0.5 + 0.5 * v / rmax), format!("(data \u{2212} flow) / data: {name}")),
        ];
        for (k, (vals, colour, title)) in panels.iter().enumerate() {
            let r = lay.panel(q, k);
            for py in r.y0..r.y1 {
                let j = ((r.y1 - 1 - py) as usize * bins) / M as usize;
                for px in r.x0..r.x1 {
                    let i = ((px - r.x0) as usize * bins) / M as usize;
                    cv.set(px, py, vals[j * bins + i].map_or(MASKED, colour));
                }
            }
            if vals.iter().all(|v| v.is_none()) {
                let why = match k {
                    2 => format!("no pixel with \u{2265} {} stars in both", min_count.max(1)),
                    _ => "no stars in this extent".to_string(),
                };
                cv.text(&why, r.cx(), r.cy(), 16.0, TEXT, HAlign::Center, VAlign::Center, false);
            }
            let ax = Axes::new(r, (x0, x1), (y0, y1));
            ax.frame(&mut cv);
            ax.x_ticks(&mut cv, Ticks::labelled(14.0, 6));
            let yt = Ticks::labelled(14.0, 6);
            ax.y_ticks(&mut cv, yt, false);
            cv.text("x [kpc]", r.cx(), r.y1 as f64 + 34.0, 16.0, TEXT, HAlign::Center, VAlign::Top, false);
            let ylx = r.x0 as f64 - ax.y_label_width(yt) - 20.0;
            cv.text("y [kpc]", ylx, r.cy(), 16.0, TEXT, HAlign::Center, VAlign::Baseline, true);
            cv.text(title, r.cx(), r.y0 as f64 - 16.0, 18.0, TEXT, HAlign::Center, VAlign::Baseline, false);
            let cb = Rect::new(r.x1 + CB_GAP, r.y0, CB_W, M);
            if k < 2 {
                colorbar(&mut cv, cb, (lo, hi), &viridis, name, 14.0);
            } else {
                colorbar(&mut cv, cb, (-rmax, rmax), &diverging, "relative residual", 14.0);
            }
        }
    }
    cv.save_png(path.as_ref())
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v`; 1 for zero or non-finite input.
fn round_up(v: f64) -> f64 {
    if !(v > 0.0) || !v.is_finite() {
        return 1.0;
    }
    nice_ticks(0.0, v, 1).1
}

#[cfg(test)]
mod tests {
    use super::super::colormap::DIVERGING_ZERO;
    use super::super::testutil::{gaussian_stars, load, tmp_dir};
    use super::*;

    const Q: [(usize, &str); 3] = [(7, "[Fe/H]"), (8, "[O/Fe]"), (9, "age [Gyr]")];
    const EXT: [f64; 4] = [-12.0, 12.0, -12.0, 12.0];

    fn panel_pixels(img: &image::RgbImage, r: Rect) -> Vec<[u8; 3]> {
        (r.y0..r.y1).flat_map(|y| (r.x0..r.x1).map(move |x| img.get_pixel(x as u32, y as u32).0)).collect()
    }

    #[test]
    fn identical_inputs_give_zero_residual_everywhere() {
        let dir = tmp_dir("maps");
        let data = gaussian_stars(50_000, 11);
        let path = dir.join("m.png");
        xy_maps(&path, &data, &data, 10, &Q, EXT, 60, 5).unwrap();
        let img = load(&path);
        let lay = MapsLayout::new(3);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        assert_eq!((lay.w, lay.h), (1652, 1358));
        for q in 0..3 {
            let res = panel_pixels(&img, lay.panel(q, 2));
            let zero = res.iter().filter(|p| **p == DIVERGING_ZERO).count();
            let masked = res.iter().filter(|p| **p == MASKED).count();
            assert_eq!(zero + masked, res.len(), "quantity {q}: residual pixels other than zero or masked");
            assert!(zero > res.len() / 4, "quantity {q}: only {zero} zero-residual pixels");
            assert_eq!(panel_pixels(&img, lay.panel(q, 0)), panel_pixels(&img, lay.panel(q, 1)));
        }
    }

    #[test]
    fn different_inputs_give_coloured_residuals() {
        let dir = tmp_dir("maps-diff");
        let data = gaussian_stars(50_000, 12);
        let mut flow = gaussian_stars(50_000, 13);
        for r in flow.chunks_mut(10) {
            r[9] *= 1.5;
        }
        let path = dir.join("m.png");
        xy_maps(&path, &data, &flow, 10, &Q[2..], EXT, 40, 5).unwrap();
        let img = load(&path);
        let res = panel_pixels(&img, MapsLayout::new(1).panel(0, 2));
        // Flow ages are 1.5x the data's: (d - f) / d = -0.5, a blue (negative) residual.
        let blue = res.iter().filter(|p| p[2] as i32 > p[0] as i32 + 40).count();
        assert!(blue > res.len() / 4, "{blue} blue pixels of {}", res.len());
    }

    #[test]
    fn empty_flow_nan_and_bad_arguments() {
        let dir = tmp_dir("maps-empty");
        let mut data = gaussian_stars(5000, 14);
        data[0] = f32::NAN;
        data[11] = f32::NAN;
        data[29] = f32::INFINITY;
        let path = dir.join("m.png");
        xy_maps(&path, &data, &[], 10, &Q[..1], EXT, 30, 5).unwrap();
        let img = load(&path);
        let lay = MapsLayout::new(1);
        // Empty panels are grey, with a grey note saying why.
        let grey = |p: &[u8; 3]| p[0] == p[1] && p[1] == p[2];
        for k in [1, 2] {
            let px = panel_pixels(&img, lay.panel(0, k));
            assert!(px.iter().all(grey), "panel {k} has colour");
            assert!(px.iter().filter(|p| **p == MASKED).count() > px.len() * 9 / 10);
            assert!(px.iter().any(|p| p[0] < 100), "panel {k} has no note");
        }
        assert!(panel_pixels(&img, lay.panel(0, 0)).iter().any(|p| *p != MASKED));
        // A constant quantity and data entirely outside the extent still plot.
        let mut c = data.clone();
        c.chunks_mut(10).for_each(|r| r[7] = -0.25);
        xy_maps(dir.join("c.png"), &c, &c, 10, &Q[..1], EXT, 30, 5).unwrap();
        xy_maps(dir.join("o.png"), &data, &data, 10, &Q[..1], [100.0, 101.0, 0.0, 1.0], 30, 5).unwrap();
        let p = dir.join("bad.png");
        assert!(xy_maps(&p, &[], &[], 10, &Q, EXT, 30, 5).is_err());
        assert!(xy_maps(&p, &data, &[], 10, &[], EXT, 30, 5).is_err());
        assert!(xy_maps(&p, &data, &[], 10, &[(10, "x")], EXT, 30, 5).is_err());
        assert!(xy_maps(&p, &data, &[], 10, &Q, [1.0, 1.0, 0.0, 1.0], 30, 5).is_err());
        assert!(xy_maps(&p, &data, &[], 10, &Q, [f64::NAN, 1.0, 0.0, 1.0], 30, 5).is_err());
        assert!(xy_maps(&p, &data, &[], 10, &Q, EXT, 0, 5).is_err());
        assert!(!p.exists());
    }
}
