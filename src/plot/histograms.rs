//! A grid of 1-D histograms, data and flow overlaid, one panel per column.
use super::axes::{legend, Axes, Swatch, Ticks};
use super::canvas::{Canvas, HAlign, Rect, VAlign, TEXT};
use super::colormap::{DATA, DATA_BANDS, FLOW};
use super::corner::{bar_rects, count_label, step_segments};
use super::stats::{column_range, hist1d, rows, rows_with_nan, sorted_col, to_density};
use super::{col_name, invalid, PlotError};
use std::path::Path;

const PW: i32 = 400;
const PH: i32 = 260;
const CELL_LEFT: i32 = 80;
const CELL_RIGHT: i32 = 22;
const CELL_TOP: i32 = 14;
const CELL_BOTTOM: i32 = 66;
const TOP: i32 = 64;
const MARGIN: i32 = 10;
const MAX_BINS: usize = 100_000;
const MAX_DIMS: usize = 64;

/// Pixel geometry of the histogram grid for `n` columns.
pub(crate) struct HistLayout {
    pub w: u32,
    pub h: u32,
    ncols: usize,
}

impl HistLayout {
    pub fn new(n: usize) -> HistLayout {
        let ncols = ((n as f64).sqrt().ceil() as usize).max(1);
        let nrows = n.div_ceil(ncols).max(1);
        HistLayout {
            w: (2 * MARGIN + ncols as i32 * (CELL_LEFT + PW + CELL_RIGHT)) as u32,
            h: (TOP + nrows as i32 * (CELL_TOP + PH + CELL_BOTTOM) + MARGIN) as u32,
            ncols,
        }
    }
    /// Plot area of column `k`'s panel.
    pub fn panel(&self, k: usize) -> Rect {
        let (col, row) = ((k % self.ncols) as i32, (k / self.ncols) as i32);
        Rect::new(
            MARGIN + col * (CELL_LEFT + PW + CELL_RIGHT) + CELL_LEFT,
            TOP + row * (CELL_TOP + PH + CELL_BOTTOM) + CELL_TOP,
            PW,
            PH,
        )
    }
}

/// Grid of 1-D histograms of all `dims` columns (about sqrt(dims) panels per row, 400 x 260 pixel plot
/// areas; 2028 x 1094 pixels for 10 columns), `bins` bins each (GalacticFlow uses 300), data filled in
/// light blue under a blue step line, flow as an orange step line, both normalised to unit integral
/// over the panel's range (the 0.5 to 99.5 percentiles of the data; values outside are not counted).
/// Each panel's x axis is labelled with the column name. Non-finite values are skipped; an empty
/// `flow` draws the data alone; both empty or `bins` = 0 is an error.
pub fn histograms(
    path: impl AsRef<Path>,
    data: &[f32],
    flow: &[f32],
    dims: usize,
    names: &[&str],
    bins: usize,
    title: &str,
) -> Result<(), PlotError> {
    let nd = rows(data, dims, "data", "histograms")?;
    let nf = rows(flow, dims, "flow", "histograms")?;
    if bins == 0 || bins > MAX_BINS {
        return Err(invalid(format!("histograms: bins = {bins}, must be 1..={MAX_BINS}")));
    }
    if dims > MAX_DIMS {
        return Err(invalid(format!("histograms: {dims} columns is more than the {MAX_DIMS} a grid can show")));
    }
    if nd == 0 && nf == 0 {
        return Err(invalid("histograms: data and flow are both empty"));
    }
    let lay = HistLayout::new(dims);
    let mut cv = Canvas::new(lay.w, lay.h)?;
    for c in 0..dims {
        let (dv, fv) = (sorted_col(data, dims, c), sorted_col(flow, dims, c));
        let range = column_range(&dv, &fv);
        let hd = to_density(&hist1d(&dv, range.0, range.1, bins), range.0, range.1);
        let hf = to_density(&hist1d(&fv, range.0, range.1, bins), range.0, range.1);
        let top = hd.iter().chain(&hf).copied().fold(0.0, f64::max);
        let r = lay.panel(c);
        let ax = Axes::new(r, range, (0.0, if top > 0.0 { top * 1.08 } else { 1.0 }));
        cv.fill_rects_aa(&bar_rects(&ax, range, &hd), DATA_BANDS[0], 1.0, r);
        cv.segments(&step_segments(&ax, range, &hd), DATA, 1.4, r);
        cv.segments(&step_segments(&ax, range, &hf), FLOW, 1.4, r);
        ax.frame(&mut cv);
        ax.x_ticks(&mut cv, Ticks::labelled(14.0, 6));
        let yt = Ticks::labelled(14.0, 5);
        ax.y_ticks(&mut cv, yt, false);
        cv.text(&col_name(names, c), r.cx(), r.y1 as f64 + 36.0, 18.0, TEXT, HAlign::Center, VAlign::Top, false);
        if c % lay.ncols == 0 {
            let x = r.x0 as f64 - ax.y_label_width(yt) - 20.0;
            cv.text("density", x, r.cy(), 16.0, TEXT, HAlign::Center, VAlign::Baseline, true);
        }
    }
    cv.text(title, (MARGIN + CELL_LEFT) as f64, 30.0, 26.0, TEXT, HAlign::Left, VAlign::Center, false);
    let entries = [
        (Swatch::Patch(DATA_BANDS[1]), count_label("data", nd, rows_with_nan(data, dims), "stars")),
        (Swatch::Line(FLOW), count_label("flow", nf, rows_with_nan(flow, dims), "samples")),
    ];
    let lr = lay.panel(lay.ncols - 1);
    legend(&mut cv, lr.x1 as f64, 6.0, &entries, 16.0);
    cv.save_png(path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::super::canvas::WHITE as WHITE_RGB;
    use super::super::testutil::{gaussian_stars, load, tmp_dir};
    use super::super::STAR_COLUMNS;
    use super::*;

    #[test]
    fn writes_a_grid_of_the_expected_size() {
        let dir = tmp_dir("hist");
        let (data, flow) = (gaussian_stars(20_000, 5), gaussian_stars(20_000, 6));
        let path = dir.join("h.png");
        histograms(&path, &data, &flow, 10, &STAR_COLUMNS, 300, "histograms").unwrap();
        let img = load(&path);
        let lay = HistLayout::new(10);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        assert_eq!((lay.w, lay.h), (2028, 1094));
        // Both colours are drawn in every panel.
        for c in 0..10 {
            let r = lay.panel(c);
            let (mut blue, mut orange) = (0, 0);
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    let p = img.get_pixel(x as u32, y as u32).0;
                    blue += (p == DATA) as usize;
                    orange += (p == FLOW) as usize;
                }
            }
            assert!(blue > 50 && orange > 50, "panel {c}: {blue} data and {orange} flow pixels");
        }
    }

    #[test]
    fn a_constant_column_draws_one_spike() {
        let dir = tmp_dir("hist-spike");
        let mut data = gaussian_stars(5000, 7);
        let mut flow = gaussian_stars(5000, 8);
        for r in 0..5000 {
            data[r * 10 + 6] = 0.02;
            flow[r * 10 + 6] = 0.02;
        }
        let path = dir.join("h.png");
        histograms(&path, &data, &flow, 10, &STAR_COLUMNS, 300, "").unwrap();
        let img = load(&path);
        let r = HistLayout::new(10).panel(6);
        let (mut xmin, mut xmax, mut ymin) = (i32::MAX, i32::MIN, i32::MAX);
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                if img.get_pixel(x as u32, y as u32).0 != WHITE_RGB {
                    xmin = xmin.min(x);
                    xmax = xmax.max(x);
                    ymin = ymin.min(y);
                }
            }
        }
        // One bin of 400 / 300 pixels plus the line width: a spike a few pixels wide, reaching the top.
        assert!(xmax - xmin <= 6, "ink spans x {xmin}..{xmax}");
        assert!(((xmin + xmax) / 2 - (r.x0 + r.x1) / 2).abs() <= 3, "spike centred on the constant value");
        assert!(ymin < r.y0 + r.h() / 10, "spike reaches the top: {ymin}");
    }

    #[test]
    fn nan_and_empty_inputs() {
        let dir = tmp_dir("hist-nan");
        let mut data = gaussian_stars(2000, 9);
        data[3] = f32::NAN;
        data[17] = f32::NEG_INFINITY;
        histograms(dir.join("a.png"), &data, &[], 10, &STAR_COLUMNS, 300, "no flow").unwrap();
        histograms(dir.join("b.png"), &[f32::NAN; 20], &[f32::NAN; 10], 10, &[], 50, "all NaN").unwrap();
        histograms(dir.join("c.png"), &[1.0, 2.0], &[], 1, &["a"], 1, "one").unwrap();
        assert_eq!(load(&dir.join("c.png")).dimensions(), (HistLayout::new(1).w, HistLayout::new(1).h));
        assert!(histograms(dir.join("d.png"), &[], &[], 10, &[], 300, "").is_err());
        assert!(histograms(dir.join("d.png"), &data, &[], 10, &[], 0, "").is_err());
        assert!(histograms(dir.join("d.png"), &data, &[0.0; 3], 10, &[], 10, "").is_err());
    }
}
