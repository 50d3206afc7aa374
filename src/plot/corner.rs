//! Corner plot: every pair of columns as a 2-D density (data filled in blue shades, flow as orange
//! contour lines at the same density levels), every column as overlaid 1-D histograms on the diagonal.
use super::axes::{legend, legend_width, Axes, Swatch, Ticks};
use super::canvas::{Canvas, HAlign, Rect, VAlign, TEXT, WHITE};
use super::colormap::{DATA, DATA_BANDS, FLOW};
use super::stats::{
    column_range, contour_segments, hist1d, hist2d, mass_levels, rows, rows_with_nan, smooth, sorted_col, to_density,
    Grid,
};
use super::{col_name, invalid, PlotError};
use std::path::Path;

/// Mass fractions enclosed by the density levels: the 1, 2 and 3 sigma regions of a 2-D Gaussian.
pub(crate) const FRACTIONS: [f64; 3] = [0.393_469, 0.864_665, 0.988_891];
/// Most columns a corner plot takes (the image grows as dims squared).
const MAX_DIMS: usize = 24;
const PANEL: i32 = 180;
const GAP: i32 = 8;
const LEFT: i32 = 100;
const TOP: i32 = 70;
/// Below three columns there is no empty upper triangle: title and legend get a taller top margin
/// and the image a minimum width.
const TOP_SMALL: i32 = 140;
const MIN_W_SMALL: i32 = 640;
const RIGHT: i32 = 24;
const BOTTOM: i32 = 76;
const TICK_FONT: f64 = 13.0;
const LABEL_FONT: f64 = 18.0;

/// Pixel geometry of a corner plot with `n` columns.
pub(crate) struct CornerLayout {
    pub w: u32,
    pub h: u32,
    top: i32,
}

impl CornerLayout {
    pub fn new(n: usize) -> CornerLayout {
        let big = n >= 3;
        let (n, top) = (n as i32, if big { TOP } else { TOP_SMALL });
        let w = LEFT + n * (PANEL + GAP) - GAP + RIGHT;
        CornerLayout {
            w: if big { w } else { w.max(MIN_W_SMALL) } as u32,
            h: (top + n * (PANEL + GAP) - GAP + BOTTOM) as u32,
            top,
        }
    }
    /// Plot area of the panel in row `i` (y = column i) and column `j` (x = column j), j <= i.
    pub fn panel(&self, i: usize, j: usize) -> Rect {
        Rect::new(LEFT + j as i32 * (PANEL + GAP), self.top + i as i32 * (PANEL + GAP), PANEL, PANEL)
    }
}

/// Corner plot (lower triangle) of all `dims` columns of `data` and `flow` (row-major, `dims` values
/// per row), written as a PNG to `path`. Off-diagonal panels: the data's smoothed 2-D density filled at
/// the levels enclosing 39 / 86 / 99 % of its mass (blue shades), the flow's density as orange contour
/// lines at the same absolute levels. Diagonal: density-normalised histograms, data filled, flow as a
/// step line. Each column's range (shared by its row and column of panels) runs from the 0.5 to the
/// 99.5 percentile of the data. Column names label the outer axes. 1996 x 2018 pixels for 10 columns
/// (188 pixels per column more or less). Non-finite values are skipped; an empty `flow` draws the data
/// alone; both empty is an error.
pub fn corner(
    path: impl AsRef<Path>,
    data: &[f32],
    flow: &[f32],
    dims: usize,
    names: &[&str],
    title: &str,
) -> Result<(), PlotError> {
    let nd = rows(data, dims, "data", "corner")?;
    let nf = rows(flow, dims, "flow", "corner")?;
    if dims > MAX_DIMS {
        return Err(invalid(format!("corner: {dims} columns is more than the {MAX_DIMS} a corner plot can show")));
    }
    if nd == 0 && nf == 0 {
        return Err(invalid("corner: data and flow are both empty"));
    }
    let dcols: Vec<Vec<f64>> = (0..dims).map(|c| sorted_col(data, dims, c)).collect();
    let fcols: Vec<Vec<f64>> = (0..dims).map(|c| sorted_col(flow, dims, c)).collect();
    let ranges: Vec<(f64, f64)> = (0..dims).map(|c| column_range(&dcols[c], &fcols[c])).collect();
    let lay = CornerLayout::new(dims);
    let mut cv = Canvas::new(lay.w, lay.h)?;

    let nmax = nd.max(nf) as f64;
    let bins1 = ((nmax.sqrt() / 2.0) as usize).clamp(10, 50);
    let bins2 = ((nmax.sqrt() / 3.0) as usize).clamp(12, 45);
    for i in 0..dims {
        for j in 0..=i {
            let r = lay.panel(i, j);
            if i == j {
                diagonal(&mut cv, r, ranges[i], &dcols[i], &fcols[i], bins1);
            } else {
                pair(&mut cv, Axes::new(r, ranges[j], ranges[i]), data, flow, dims, (j, i), bins2);
            }
        }
    }

    // Ticks on every panel, labels and column names on the outer ones only.
    let mut ylab_w: f64 = 0.0;
    let tick = Ticks { size: TICK_FONT, labels: true, max: 5, overhang: (GAP / 2 - 1) as f64 };
    for i in 0..dims {
        for j in 0..=i {
            let ax = Axes::new(lay.panel(i, j), ranges[j], ranges[i]);
            let bottom = i + 1 == dims;
            ax.x_ticks(&mut cv, Ticks { labels: bottom, ..tick });
            if i != j {
                let t = Ticks { labels: j == 0, ..tick };
                ax.y_ticks(&mut cv, t, false);
                if j == 0 {
                    ylab_w = ylab_w.max(ax.y_label_width(t));
                }
            }
        }
    }
    for c in 0..dims {
        let name = col_name(names, c);
        let rb = lay.panel(dims - 1, c);
        cv.text(&name, rb.cx(), rb.y1 as f64 + 34.0, LABEL_FONT, TEXT, HAlign::Center, VAlign::Top, false);
        if c > 0 {
            let rl = lay.panel(c, 0);
            let x = (rl.x0 as f64 - ylab_w - 22.0).max(Canvas::cap_height(LABEL_FONT) + 4.0);
            cv.text(&name, x, rl.cy(), LABEL_FONT, TEXT, HAlign::Center, VAlign::Baseline, true);
        }
    }

    cv.text(title, LEFT as f64, 26.0, 28.0, TEXT, HAlign::Left, VAlign::Center, false);
    let (nan_d, nan_f) = (rows_with_nan(data, dims), rows_with_nan(flow, dims));
    let entries = [
        (Swatch::Patch(DATA_BANDS[1]), count_label("data", nd, nan_d, "stars")),
        (Swatch::Line(FLOW), count_label("flow", nf, nan_f, "samples")),
    ];
    let note = "levels hold 39 / 86 / 99 % of each panel's data";
    let right = (lay.w as i32 - RIGHT) as f64;
    if dims >= 3 {
        // In the empty upper triangle, shrunk to fit its width.
        let avail = right - lay.panel(0, 1).x0 as f64 - 10.0;
        let size = (22.0 * avail / legend_width(&entries, 22.0)).clamp(10.0, 22.0);
        let lr = legend(&mut cv, right, lay.top as f64, &entries, size);
        let nsize = (16.0 * avail / Canvas::text_width(note, 16.0)).clamp(9.0, 16.0);
        cv.text(note, right, lr.y1 as f64 + 14.0, nsize, TEXT, HAlign::Right, VAlign::Top, false);
    } else {
        let size = (16.0 * (right - LEFT as f64) / legend_width(&entries, 16.0)).clamp(9.0, 16.0);
        let lr = legend(&mut cv, right, 48.0, &entries, size);
        let nsize = (13.0 * (right - LEFT as f64) / Canvas::text_width(note, 13.0)).clamp(8.0, 13.0);
        cv.text(note, right, lr.y1 as f64 + 8.0, nsize, TEXT, HAlign::Right, VAlign::Top, false);
    }
    cv.save_png(path.as_ref())
}

/// "data: 20000 stars (3 with NaN)": rows holding a NaN or infinite value, which the panels using
/// that column skip.
pub(crate) fn count_label(what: &str, n: usize, nan: usize, unit: &str) -> String {
    match (n, nan) {
        (0, _) => format!("{what}: no {unit}"),
        (_, 0) => format!("{what}: {n} {unit}"),
        _ => format!("{what}: {n} {unit} ({nan} with NaN)"),
    }
}

/// Segments tracing a histogram's outline (tops and the steps between bins), leaving out the baseline.
pub(crate) fn step_segments(ax: &Axes, (lo, hi): (f64, f64), h: &[f64]) -> Vec<[f64; 4]> {
    let n = h.len();
    let edge = |k: usize| ax.px_x(lo + (hi - lo) * k as f64 / n as f64);
    let mut segs = Vec::with_capacity(2 * n + 1);
    for k in 0..=n {
        let before = if k == 0 { 0.0 } else { h[k - 1] };
        let after = if k == n { 0.0 } else { h[k] };
        if before != after {
            segs.push([edge(k), ax.px_y(before), edge(k), ax.px_y(after)]);
        }
        if k < n && h[k] > 0.0 {
            segs.push([edge(k), ax.px_y(h[k]), edge(k + 1), ax.px_y(h[k])]);
        }
    }
    segs
}

/// Filled rectangles under a histogram.
pub(crate) fn bar_rects(ax: &Axes, (lo, hi): (f64, f64), h: &[f64]) -> Vec<[f64; 4]> {
    let n = h.len();
    let edge = |k: usize| ax.px_x(lo + (hi - lo) * k as f64 / n as f64);
    (0..n).filter(|k| h[*k] > 0.0).map(|k| [edge(k), ax.px_y(h[k]), edge(k + 1), ax.px_y(0.0)]).collect()
}

fn diagonal(cv: &mut Canvas, r: Rect, range: (f64, f64), dvals: &[f64], fvals: &[f64], bins: usize) {
    let hd = to_density(&hist1d(dvals, range.0, range.1, bins), range.0, range.1);
    let hf = to_density(&hist1d(fvals, range.0, range.1, bins), range.0, range.1);
    let top = hd.iter().chain(&hf).copied().fold(0.0, f64::max);
    let ax = Axes::new(r, range, (0.0, if top > 0.0 { top * 1.1 } else { 1.0 }));
    cv.fill_rects_aa(&bar_rects(&ax, range, &hd), DATA_BANDS[0], 1.0, r);
    cv.segments(&step_segments(&ax, range, &hd), DATA, 1.5, r);
    cv.segments(&step_segments(&ax, range, &hf), FLOW, 2.0, r);
    ax.frame(cv);
}

/// Smoothed 2-D histogram of a column pair over the panel, normalised to unit sum (as corner.py does,
/// the levels then enclose fractions of what the panel shows); None if the panel holds nothing.
fn density(data: &[f32], dims: usize, ax: &Axes, cols: (usize, usize), bins: usize) -> Option<Grid> {
    let (g, _) = hist2d(data, dims, cols, ax.x, ax.y, (bins, bins));
    let mut g = smooth(&g, 1.2);
    let total: f64 = g.v.iter().sum();
    if !(total > 0.0) {
        return None;
    }
    g.v.iter_mut().for_each(|v| *v /= total);
    Some(g)
}

fn pair(cv: &mut Canvas, ax: Axes, data: &[f32], flow: &[f32], dims: usize, cols: (usize, usize), bins: usize) {
    let r = ax.r;
    let gd = density(data, dims, &ax, cols, bins);
    let gf = density(flow, dims, &ax, cols, bins);
    let levels = match (&gd, &gf) {
        (Some(g), _) | (None, Some(g)) => mass_levels(g, 1.0, &FRACTIONS),
        _ => Vec::new(),
    };
    let (w, h, nb) = (r.w() as f64, r.h() as f64, bins as f64);
    if let (Some(g), false) = (&gd, levels.is_empty()) {
        // Bands by 2x2 supersampling, so that their edges are smooth.
        for py in r.y0..r.y1 {
            for px in r.x0..r.x1 {
                let mut acc = [0u32; 3];
                for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let gx = ((px - r.x0) as f64 + sx) / w * nb - 0.5;
                    let gy = ((r.y1 - py) as f64 - sy) / h * nb - 0.5;
                    let d = g.bilinear(gx, gy);
                    let band = levels.iter().filter(|l| d >= **l).count();
                    let c = if band == 0 { WHITE } else { DATA_BANDS[band - 1] };
                    for k in 0..3 {
                        acc[k] += c[k] as u32;
                    }
                }
                cv.set(px, py, acc.map(|v| ((v + 2) / 4) as u8));
            }
        }
    }
    if let Some(g) = &gf {
        let to_px = |gx: f64, gy: f64| (r.x0 as f64 + (gx + 0.5) / nb * w, r.y1 as f64 - (gy + 0.5) / nb * h);
        let mut segs = Vec::new();
        for l in &levels {
            for s in contour_segments(g, *l) {
                let (a, b) = (to_px(s[0], s[1]), to_px(s[2], s[3]));
                segs.push([a.0, a.1, b.0, b.1]);
            }
        }
        cv.segments(&segs, FLOW, 1.6, r);
    }
    ax.frame(cv);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{gaussian_stars, load, tmp_dir, MEANS};
    use super::super::STAR_COLUMNS;
    use super::*;

    #[test]
    fn writes_a_corner_plot_of_the_expected_size() {
        let dir = tmp_dir("corner");
        let data = gaussian_stars(20_000, 1);
        let flow = gaussian_stars(20_000, 2);
        let path = dir.join("corner.png");
        corner(&path, &data, &flow, 10, &STAR_COLUMNS, "flow vs data").unwrap();
        let img = load(&path);
        let lay = CornerLayout::new(10);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        assert!((1900..2100).contains(&lay.w) && (1900..2100).contains(&lay.h));
        // Panel (y = [Fe/H], x = x): the data mean sits in the darkest (1 sigma) band, the corners outside
        // the 3 sigma band are white, and the flow's contour lines are drawn.
        let r = lay.panel(7, 0);
        let xr = column_range(&sorted_col(&data, 10, 0), &[]);
        let yr = column_range(&sorted_col(&data, 10, 7), &[]);
        let a = Axes::new(r, xr, yr);
        let (cx, cy) = (a.px_x(MEANS[0]) as u32, a.px_y(MEANS[7]) as u32);
        assert_eq!(img.get_pixel(cx, cy).0, DATA_BANDS[2], "centre of the density");
        assert_eq!(img.get_pixel(r.x0 as u32 + 1, r.y0 as u32 + 1).0, WHITE, "far corner");
        let flow_px = (r.x0..r.x1)
            .flat_map(|x| (r.y0..r.y1).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x as u32, y as u32).0;
                p[0] > 150 && p[2] < 120
            })
            .count();
        assert!(flow_px > 200, "flow contour pixels: {flow_px}");
        // Upper triangle stays empty (apart from the legend in its top-right corner).
        let up = lay.panel(4, 6);
        for y in up.y0..up.y1 {
            for x in up.x0..up.x1 {
                assert_eq!(img.get_pixel(x as u32, y as u32).0, WHITE);
            }
        }
    }

    #[test]
    fn data_alone_draws_no_flow_and_nan_rows_are_skipped() {
        let dir = tmp_dir("corner-nan");
        let mut data = gaussian_stars(3000, 3);
        for r in 0..100 {
            data[r * 10 + (r % 10)] = f32::NAN;
        }
        data[5 * 10 + 3] = f32::INFINITY;
        let path = dir.join("c.png");
        corner(&path, &data, &[], 10, &STAR_COLUMNS, "data only").unwrap();
        let img = load(&path);
        let lay = CornerLayout::new(10);
        for (i, j) in [(1, 0), (9, 8), (5, 5)] {
            let r = lay.panel(i, j);
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    let p = img.get_pixel(x as u32, y as u32).0;
                    assert!(!(p[0] > 150 && p[2] < 120), "flow colour at ({x}, {y}) in panel ({i}, {j})");
                }
            }
        }
        // Flow alone, all-NaN column, constant column, three columns, one column: plots, no panic.
        let mut flow = gaussian_stars(500, 4);
        for r in 0..500 {
            flow[r * 10 + 2] = f32::NAN;
            flow[r * 10 + 3] = 1.5;
        }
        corner(dir.join("flow.png"), &[], &flow, 10, &STAR_COLUMNS, "flow only").unwrap();
        let three: Vec<f32> = data.chunks(10).flat_map(|r| r[..3].to_vec()).collect();
        corner(dir.join("three.png"), &three, &three, 3, &["a", "b"], "").unwrap();
        assert_eq!(load(&dir.join("three.png")).dimensions(), (CornerLayout::new(3).w, CornerLayout::new(3).h));
        corner(dir.join("one.png"), &[1.0, 2.0, f32::NAN], &[], 1, &[], "one").unwrap();
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let dir = tmp_dir("corner-bad");
        let p = dir.join("x.png");
        assert!(matches!(corner(&p, &[], &[], 10, &STAR_COLUMNS, ""), Err(PlotError::InvalidInput(_))));
        assert!(corner(&p, &[1.0; 15], &[], 10, &STAR_COLUMNS, "").is_err());
        assert!(corner(&p, &[1.0; 10], &[1.0; 9], 10, &STAR_COLUMNS, "").is_err());
        assert!(corner(&p, &[1.0; 10], &[], 0, &STAR_COLUMNS, "").is_err());
        assert!(!p.exists());
    }
}
