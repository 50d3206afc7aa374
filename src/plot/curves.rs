//! Line plot of one or more (x, y) series, e.g. training and validation NLL per epoch.
use super::axes::{legend, Axes, Swatch, Ticks};
use super::canvas::{Canvas, HAlign, Rect, VAlign, TEXT};
use super::colormap::CYCLE;
use super::stats::widen;
use super::PlotError;
use std::path::Path;

pub(crate) const W: u32 = 1000;
pub(crate) const H: u32 = 640;
/// Plot area.
pub(crate) const AREA: Rect = Rect { x0: 110, y0: 60, x1: 970, y1: 560 };
/// Series with at most this many points also get a dot at each point.
const MARKERS_UP_TO: usize = 60;

/// Line plot of `series` (name, points), one colour each (matplotlib's tab10 cycle) with a legend,
/// light grid lines, axis labels and a title; 1000 x 640 pixels. Non-finite points are skipped and
/// break the line; series of up to 60 points also get a dot per point, so a single point shows.
/// Ranges cover all finite points (y padded by 5 %). No finite point at all still writes the
/// (empty, "no data") axes.
pub fn curves(
    path: impl AsRef<Path>,
    series: &[(&str, &[(f64, f64)])],
    xlabel: &str,
    ylabel: &str,
    title: &str,
) -> Result<(), PlotError> {
    let mut cv = Canvas::new(W, H)?;
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let pts = || series.iter().flat_map(|(_, s)| s.iter().filter(finite));
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for p in pts() {
        xlo = xlo.min(p.0);
        xhi = xhi.max(p.0);
        ylo = ylo.min(p.1);
        yhi = yhi.max(p.1);
    }
    let any = xlo.is_finite();
    let xr = widen(xlo, xhi);
    let (ylo, yhi) = widen(ylo, yhi);
    let pad = 0.05 * (yhi - ylo);
    let ax = Axes::new(AREA, xr, (ylo - pad, yhi + pad));
    let (xt, yt) = (Ticks::labelled(15.0, 10), Ticks::labelled(15.0, 8));
    ax.grid(&mut cv, xt, yt);
    for (k, (_, s)) in series.iter().enumerate() {
        let c = CYCLE[k % CYCLE.len()];
        let px: Vec<(f64, f64)> =
            s.iter().map(|p| if finite(&p) { (ax.px_x(p.0), ax.px_y(p.1)) } else { (f64::NAN, f64::NAN) }).collect();
        cv.polyline(&px, c, 2.0, AREA);
        if s.iter().filter(finite).count() <= MARKERS_UP_TO {
            for p in px.iter().filter(|p| p.0.is_finite()) {
                cv.disc(p.0, p.1, 3.5, c, AREA);
            }
        }
    }
    if !any {
        cv.text("no data", AREA.cx(), AREA.cy(), 22.0, [150, 150, 150], HAlign::Center, VAlign::Center, false);
    }
    ax.frame(&mut cv);
    ax.x_ticks(&mut cv, xt);
    ax.y_ticks(&mut cv, yt, false);
    cv.text(xlabel, AREA.cx(), AREA.y1 as f64 + 38.0, 18.0, TEXT, HAlign::Center, VAlign::Top, false);
    let ylx = AREA.x0 as f64 - ax.y_label_width(yt) - 22.0;
    cv.text(ylabel, ylx.max(24.0), AREA.cy(), 18.0, TEXT, HAlign::Center, VAlign::Baseline, true);
    cv.text(title, AREA.x0 as f64, 30.0, 24.0, TEXT, HAlign::Left, VAlign::Center, false);
    if !series.is_empty() {
        let entries: Vec<(Swatch, String)> = series
            .iter()
            .enumerate()
            .map(|(k, (name, _))| (Swatch::Line(CYCLE[k % CYCLE.len()]), (*name).to_string()))
            .collect();
        legend(&mut cv, AREA.x1 as f64 - 12.0, AREA.y0 as f64 + 12.0, &entries, 16.0);
    }
    cv.save_png(path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{load, tmp_dir};
    use super::*;

    fn count(img: &image::RgbImage, c: [u8; 3]) -> usize {
        img.pixels().filter(|p| p.0 == c).count()
    }

    #[test]
    fn draws_each_series_in_its_colour() {
        let dir = tmp_dir("curves");
        let train: Vec<(f64, f64)> = (0..200).map(|e| (e as f64, 12.0 * (-(e as f64) / 40.0).exp() - 3.0)).collect();
        let mut val: Vec<(f64, f64)> = train.iter().map(|(e, v)| (*e, v + 0.4)).collect();
        val[50].1 = f64::NAN;
        let path = dir.join("c.png");
        curves(&path, &[("train", &train), ("validation", &val)], "epoch", "NLL", "training").unwrap();
        let img = load(&path);
        assert_eq!(img.dimensions(), (W, H));
        assert!(count(&img, CYCLE[0]) > 300 && count(&img, CYCLE[1]) > 300);
        // The curve passes through its first point (top left of the plot area).
        let ax_top = AREA.y0 as u32 + (0.05 / 1.1 * AREA.h() as f64) as u32;
        let near = (ax_top.saturating_sub(3)..ax_top + 8).any(|y| img.get_pixel(AREA.x0 as u32 + 1, y).0 == CYCLE[1]);
        assert!(near, "validation curve starts at the top left");
    }

    #[test]
    fn empty_single_and_nan_series_plot() {
        let dir = tmp_dir("curves-empty");
        curves(dir.join("a.png"), &[], "epoch", "NLL", "nothing").unwrap();
        curves(dir.join("b.png"), &[("train", &[][..])], "epoch", "NLL", "").unwrap();
        curves(dir.join("c.png"), &[("nan", &[(0.0, f64::NAN), (f64::INFINITY, 1.0)][..])], "", "", "").unwrap();
        let path = dir.join("d.png");
        curves(&path, &[("one", &[(1.0, 2.0)][..])], "epoch", "NLL", "one point").unwrap();
        let img = load(&path);
        let (cx, cy) = (AREA.cx() as u32, AREA.cy() as u32);
        assert_eq!(img.get_pixel(cx, cy).0, CYCLE[0], "a single point shows as a dot in the middle");
        assert_eq!(load(&dir.join("a.png")).dimensions(), (W, H));
        let extreme = [(0.0, -1e308), (1.0, 1e308), (2.0, f64::MAX), (1e300, 0.0)];
        curves(dir.join("e.png"), &[("extreme", &extreme[..])], "x", "y", "extreme values").unwrap();
        curves(dir.join("f.png"), &[("flat", &[(0.0, 5.0), (1.0, 5.0)][..])], "x", "y", "flat").unwrap();
    }
}
