//! Figures for HIGlow's evaluation on 2-D neutral-hydrogen maps: power spectra of data and samples
//! (log-log panels with 1-sigma bands), posteriors of (Omega_m, sigma_8) on a grid (the flow's as an
//! image with its 68 / 95 % highest-density contours, the exact posterior's contours dashed, the truth
//! as a cross), and rows of maps sharing one colour bar.
use super::axes::{colorbar, cross, fmt_tick, legend_row, nice_ticks, Axes, Swatch, Ticks};
use super::canvas::{Canvas, HAlign, Rect, Rgb, VAlign, TEXT, WHITE};
use super::colormap::{viridis, AXIS, DATA, DATA_BANDS, FLOW};
use super::images::NAN_COLOUR;
use super::stats::{contour_segments, mass_levels, Grid};
use super::{invalid, PkPanel, PlotError, PosteriorPanel};
use std::path::Path;

const MAX_PANELS: usize = 64;
const MAX_POINTS: usize = 100_000;
const MAX_GRID: usize = 1024;
const MAX_TILES: usize = 4096;
const MAX_SIDE: usize = 4096;

/// Power-spectrum panels' plot area, and the posterior panels' (square).
const PK_W: i32 = 360;
const PK_H: i32 = 270;
const POST_SIDE: i32 = 300;
/// Around each plot area: tick labels and axis label left and below, the panel title above.
const CELL_LEFT: i32 = 84;
const CELL_RIGHT: i32 = 18;
const CELL_TOP: i32 = 34;
const CELL_BOTTOM: i32 = 58;
/// Strip above the panels holding the legend.
const HEADER: i32 = 44;
const MARGIN: i32 = 10;
const TICK_FONT: f64 = 13.0;
const LABEL_FONT: f64 = 16.0;
const TITLE_FONT: f64 = 15.0;
const LEGEND_FONT: f64 = 14.0;

/// Band of the samples' spread: the flow's orange, translucent so the data's band shows through.
const SAMPLE_BAND_ALPHA: f32 = 0.35;
/// The exact posterior's contours: white dashes, visible on every viridis shade and over the flow's.
const EXACT: Rgb = WHITE;
/// The truth marker (with a white halo).
const TRUTH: Rgb = [0, 0, 0];
/// Highest-posterior-density masses whose contours are drawn.
const HPD: [f64; 2] = [0.68, 0.95];
/// Dash pattern of the exact contours, in pixels along the line.
const DASH: (f64, f64) = (7.0, 5.0);

/// Geometry of a grid of equal panels under a legend strip.
pub(crate) struct PanelGrid {
    pub w: u32,
    pub h: u32,
    cols: usize,
    pw: i32,
    ph: i32,
}

impl PanelGrid {
    /// `n` panels of `pw x ph` pixels, `cols` per row (0: about square).
    pub fn new(n: usize, cols: usize, pw: i32, ph: i32) -> PanelGrid {
        let cols = if cols == 0 { (n as f64).sqrt().ceil() as usize } else { cols.min(n) }.max(1);
        let rows = n.div_ceil(cols).max(1) as i32;
        PanelGrid {
            w: (2 * MARGIN + cols as i32 * (CELL_LEFT + pw + CELL_RIGHT)) as u32,
            h: (HEADER + rows * (CELL_TOP + ph + CELL_BOTTOM) + MARGIN) as u32,
            cols,
            pw,
            ph,
        }
    }
    /// Plot area of panel `k`.
    pub fn panel(&self, k: usize) -> Rect {
        let (c, r) = ((k % self.cols) as i32, (k / self.cols) as i32);
        Rect::new(
            MARGIN + c * (CELL_LEFT + self.pw + CELL_RIGHT) + CELL_LEFT,
            HEADER + r * (CELL_TOP + self.ph + CELL_BOTTOM) + CELL_TOP,
            self.pw,
            self.ph,
        )
    }
}

/// The panel title centred above `r`, shrunk to fit the cell's width.
fn panel_title(cv: &mut Canvas, r: Rect, title: &str) {
    let avail = (r.w() + 2 * CELL_RIGHT) as f64;
    let size = (TITLE_FONT * avail / Canvas::text_width(title, TITLE_FONT).max(1.0)).clamp(9.0, TITLE_FONT);
    cv.text(title, r.cx(), r.y0 as f64 - 16.0, size, TEXT, HAlign::Center, VAlign::Center, false);
}

/// Axis labels: `x` below the tick labels, `y` reading upwards left of tick labels `ylw` pixels wide.
fn axis_labels(cv: &mut Canvas, r: Rect, x: &str, y: &str, ylw: f64) {
    cv.text(x, r.cx(), r.y1 as f64 + 34.0, LABEL_FONT, TEXT, HAlign::Center, VAlign::Top, false);
    let ylx = (r.x0 as f64 - ylw - 22.0).max(r.x0 as f64 - CELL_LEFT as f64 + Canvas::cap_height(LABEL_FONT) + 2.0);
    cv.text(y, ylx, r.cy(), LABEL_FONT, TEXT, HAlign::Center, VAlign::Baseline, true);
}

// ---------------------------------------------------------------------------------------------------
// Log axes

/// A tick label on a log axis: a plain number, or an optional mantissa times 10 with a raised exponent.
#[derive(Clone, Debug, PartialEq)]
enum LogLabel {
    Plain(String),
    Sci(Option<String>, i32),
}

/// Exponents are drawn this much smaller than the base, their baseline this many cap heights up.
const EXP_SCALE: f64 = 0.72;
const EXP_RAISE: f64 = 0.55;
/// Magnitudes in [1e-3, 1e5) are labelled as plain numbers (fmt_tick's own limits).
const PLAIN: std::ops::Range<f64> = 1e-3..1e5;

impl LogLabel {
    /// Label of `v` on a grid of spacing `step`: plain when readable so, else mantissa x 10^e.
    fn number(v: f64, step: f64) -> LogLabel {
        if PLAIN.contains(&v.abs().max(step)) {
            return LogLabel::Plain(fmt_tick(v, step));
        }
        let e = v.abs().max(step).log10().floor();
        let scale = 10f64.powf(e);
        LogLabel::Sci(Some(fmt_tick(v / scale, step / scale)), e as i32)
    }
    /// (text before the exponent, exponent) of a `Sci` label.
    fn parts(m: &Option<String>, e: i32) -> (String, String) {
        let base = match m {
            Some(m) => format!("{m}\u{d7}10"),
            None => "10".to_string(),
        };
        (base, e.to_string().replace('-', "\u{2212}"))
    }
    fn width(&self, size: f64) -> f64 {
        match self {
            LogLabel::Plain(s) => Canvas::text_width(s, size),
            LogLabel::Sci(m, e) => {
                let (base, exp) = Self::parts(m, *e);
                Canvas::text_width(&base, size) + Canvas::text_width(&exp, size * EXP_SCALE)
            }
        }
    }
    /// Draws the label anchored horizontally by `ha` at x; vertically its base's capitals start at y
    /// (`VAlign::Top`) or are centred on it (otherwise).
    fn draw(&self, cv: &mut Canvas, x: f64, y: f64, size: f64, ha: HAlign, va: VAlign) {
        let w = self.width(size);
        let left = match ha {
            HAlign::Left => x,
            HAlign::Center => x - w / 2.0,
            HAlign::Right => x - w,
        };
        let cap = Canvas::cap_height(size);
        let baseline = match va {
            VAlign::Top => y + cap,
            _ => y + cap / 2.0,
        };
        match self {
            LogLabel::Plain(s) => cv.text(s, left, baseline, size, TEXT, HAlign::Left, VAlign::Baseline, false),
            LogLabel::Sci(m, e) => {
                let (base, exp) = Self::parts(m, *e);
                cv.text(&base, left, baseline, size, TEXT, HAlign::Left, VAlign::Baseline, false);
                let x1 = left + Canvas::text_width(&base, size);
                let (s, b) = (size * EXP_SCALE, baseline - EXP_RAISE * cap);
                cv.text(&exp, x1, b, s, TEXT, HAlign::Left, VAlign::Baseline, false);
            }
        }
    }
}

/// Ticks of a log axis, positions in log10 units: marks (position, major) and labels.
struct LogTicks {
    marks: Vec<(f64, bool)>,
    labels: Vec<(f64, LogLabel)>,
}

/// Ticks for the log10 range (lo, hi) on an axis `len` pixels long, the first of these whose labels
/// fit: over two decades or more with three labelled, decades (every one, or every 2nd, 5th...); over at most three
/// decades, 1-2-5 (or 1-3, or 1..9) mantissas; decades; round linear values inside a narrow range. Unlabelled
/// marks at 2..9 times each decade when there are at most 8 decades.
fn log_ticks(lo: f64, hi: f64, len: f64, size: f64, horizontal: bool) -> LogTicks {
    let px_per = len / (hi - lo);
    let extent = |l: &LogLabel| if horizontal { l.width(size) } else { Canvas::cap_height(size) * 1.4 };
    let pad = if horizontal { 10.0 } else { 0.6 * Canvas::cap_height(size) };
    let fits = |set: &[(f64, LogLabel)]| {
        set.len() >= 2
            && set.windows(2).all(|w| (w[1].0 - w[0].0) * px_per >= (extent(&w[0].1) + extent(&w[1].1)) / 2.0 + pad)
    };
    let inside = |v: f64| v >= lo - 1e-9 && v <= hi + 1e-9;
    let (e0, e1) = (lo.floor() as i64, hi.ceil() as i64);
    let mut marks: Vec<(f64, bool)> = (e0..=e1).map(|e| (e as f64, true)).filter(|m| inside(m.0)).collect();
    if e1 - e0 <= 8 {
        for e in e0..=e1 {
            marks.extend((2..10).map(|m| ((m as f64).log10() + e as f64, false)).filter(|m| inside(m.0)));
        }
    }
    let decades = |stride: i64| -> Vec<(f64, LogLabel)> {
        (e0..=e1)
            .filter(|e| e.rem_euclid(stride) == 0 && inside(*e as f64))
            .map(|e| (e as f64, LogLabel::Sci(None, e as i32)))
            .collect()
    };
    let mantissas = |ms: &[f64]| -> Vec<(f64, LogLabel)> {
        let mut set = Vec::new();
        for e in e0..=e1 {
            let scale = 10f64.powi(e as i32);
            set.extend(ms.iter().map(|m| (m.log10() + e as f64, *m)).filter(|(v, _)| inside(*v)).map(|(v, m)| {
                let label = if PLAIN.contains(&(m * scale)) {
                    LogLabel::Plain(fmt_tick(m * scale, scale))
                } else {
                    LogLabel::Sci((m != 1.0).then(|| format!("{m}")), e as i32)
                };
                (v, label)
            }));
        }
        set
    };
    let mut candidates: Vec<Vec<(f64, LogLabel)>> = Vec::new();
    if hi - lo >= 2.0 && decades(1).len() >= 3 {
        candidates.extend([1, 2, 5, 10, 20, 50, 100].map(decades));
    }
    if e1 - e0 <= 3 {
        let nine = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        candidates.extend([&[1.0, 2.0, 5.0][..], &[1.0, 3.0], &nine].map(mantissas));
    }
    candidates.push(decades(1));
    if let Some(set) = candidates.into_iter().find(|s| fits(s)) {
        return LogTicks { marks, labels: set };
    }
    // A narrow range: round linear values, thinned until their labels fit.
    let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
    if a.is_finite() && b.is_finite() && hi - lo < 1.0 {
        for target in (2..=5).rev() {
            let (vals, step) = nice_ticks(a, b, target);
            let set: Vec<(f64, LogLabel)> =
                vals.iter().filter(|v| **v > 0.0).map(|&v| (v.log10(), LogLabel::number(v, step))).collect();
            if fits(&set) || target == 2 {
                marks.extend(set.iter().map(|s| (s.0, true)));
                return LogTicks { marks, labels: set };
            }
        }
    }
    // Nothing fits: every other decade.
    let set: Vec<(f64, LogLabel)> = decades(1).into_iter().step_by(2).collect();
    LogTicks { marks, labels: set }
}

/// Draws a log-log panel's grid lines, frame, tick marks and labels; returns the y labels' width.
fn log_axes(cv: &mut Canvas, ax: &Axes) -> f64 {
    let r = ax.r;
    let xt = log_ticks(ax.x.0, ax.x.1, r.w() as f64, TICK_FONT, true);
    let yt = log_ticks(ax.y.0, ax.y.1, r.h() as f64, TICK_FONT, false);
    let grid = [232, 232, 232];
    for (v, _) in &xt.labels {
        let px = ax.px_x(*v).floor() + 0.5;
        cv.segments(&[[px, r.y0 as f64, px, r.y1 as f64]], grid, 1.0, r);
    }
    for (v, _) in &yt.labels {
        let py = ax.px_y(*v).floor() + 0.5;
        cv.segments(&[[r.x0 as f64, py, r.x1 as f64, py]], grid, 1.0, r);
    }
    ax.frame(cv);
    let (y1, x0) = (r.y1 as f64 + 1.0, r.x0 as f64 - 1.0);
    let keep_x = |p: f64| p >= r.x0 as f64 - 0.5 && p <= r.x1 as f64 + 0.5;
    let keep_y = |p: f64| p >= r.y0 as f64 - 0.5 && p <= r.y1 as f64 + 0.5;
    for &(v, major) in &xt.marks {
        let (px, len) = (ax.px_x(v).floor() + 0.5, if major { 5.0 } else { 3.0 });
        if keep_x(px) {
            cv.segments(&[[px, y1, px, y1 + len]], AXIS, 1.0, cv.bounds());
        }
    }
    for &(v, major) in &yt.marks {
        let (py, len) = (ax.px_y(v).floor() + 0.5, if major { 5.0 } else { 3.0 });
        if keep_y(py) {
            cv.segments(&[[x0, py, x0 - len, py]], AXIS, 1.0, cv.bounds());
        }
    }
    for (v, l) in &xt.labels {
        l.draw(cv, ax.px_x(*v), y1 + 9.0, TICK_FONT, HAlign::Center, VAlign::Top);
    }
    let mut w: f64 = 0.0;
    for (v, l) in &yt.labels {
        l.draw(cv, x0 - 9.0, ax.px_y(*v), TICK_FONT, HAlign::Right, VAlign::Center);
        w = w.max(l.width(TICK_FONT));
    }
    w
}

// ---------------------------------------------------------------------------------------------------
// Power spectra

/// log10 of `v` when it is positive and finite.
fn log_pos(v: f64) -> Option<f64> {
    (v > 0.0 && v.is_finite()).then(|| v.log10())
}

/// (log10 k, mean, std) of the points of one curve with a usable k and mean, sorted by k; std is NaN
/// where it is not a finite non-negative number (no band there).
fn pk_points(k: &[f64], mean: &[f64], std: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut pts: Vec<(f64, f64, f64)> = (0..k.len())
        .filter_map(|i| {
            let lk = log_pos(k[i])?;
            log_pos(mean[i])?;
            let s = if std[i] >= 0.0 && std[i].is_finite() { std[i] } else { f64::NAN };
            Some((lk, mean[i], s))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// A log10 range padded by `pad` of its span (half a decade each way when it is a single value).
fn pad_log((lo, hi): (f64, f64), pad: f64) -> (f64, f64) {
    if hi - lo > 1e-9 {
        let p = pad * (hi - lo);
        (lo - p, hi + p)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// Log10 ranges (x, y) of a panel: all usable k; the means, and the band edges within a decade of
/// them (a band reaching further is cut by the axis rather than squashing the curves). None if the
/// panel has no usable point.
fn pk_ranges(curves: &[&[(f64, f64, f64)]]) -> Option<((f64, f64), (f64, f64))> {
    let pts = || curves.iter().flat_map(|c| c.iter());
    let (mut xlo, mut xhi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut mlo, mut mhi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in pts() {
        (xlo, xhi) = (xlo.min(p.0), xhi.max(p.0));
        (mlo, mhi) = (mlo.min(p.1), mhi.max(p.1));
    }
    if !xlo.is_finite() {
        return None;
    }
    let (mut ylo, mut yhi) = (mlo, mhi);
    for p in pts().filter(|p| p.2.is_finite()) {
        if p.1 - p.2 > 0.0 {
            ylo = ylo.min((p.1 - p.2).max(mlo / 10.0));
        }
        yhi = yhi.max((p.1 + p.2).min(mhi * 10.0));
    }
    let y = (ylo.log10(), yhi.log10());
    if !y.0.is_finite() || !y.1.is_finite() {
        return None;
    }
    Some((pad_log((xlo, xhi), 0.03), pad_log(y, 0.05)))
}

/// Fills the band between `mean - std` (the axis bottom where that is not positive) and `mean + std`
/// over consecutive points with a spread, as one layer of opacity `alpha`; a point without a spread
/// breaks the band.
fn band(cv: &mut Canvas, ax: &Axes, pts: &[(f64, f64, f64)], c: Rgb, alpha: f32) {
    let r = ax.r;
    let below = r.y1 as f64 + 2.0;
    let edge = |p: &(f64, f64, f64)| -> Option<(f64, f64, f64)> {
        if !p.2.is_finite() {
            return None;
        }
        let lo = log_pos(p.1 - p.2).map_or(below, |v| ax.px_y(v).min(below));
        let hi = ax.px_y((p.1 + p.2).log10()).max(r.y0 as f64 - 2.0);
        Some((ax.px_x(p.0), hi, lo.max(hi)))
    };
    let mut rects = Vec::new();
    for w in pts.windows(2) {
        let (Some(a), Some(b)) = (edge(&w[0]), edge(&w[1])) else { continue };
        if !(b.0 > a.0) {
            continue;
        }
        // One rectangle per pixel column, its ends interpolated at the column's middle.
        let mut x = a.0;
        while x < b.0 {
            let x1 = (x.floor() + 1.0).min(b.0);
            let t = ((x + x1) / 2.0 - a.0) / (b.0 - a.0);
            rects.push([x, a.1 + t * (b.1 - a.1), x1, a.2 + t * (b.2 - a.2)]);
            x = x1;
        }
    }
    cv.fill_rects_aa(&rects, c, alpha, r);
}

/// Grid of log-log power-spectrum panels, `cols` per row (0: about square), each a 360 x 270 pixel
/// plot area titled with its `title`: the data's mean P(k) as blue points over a light blue band of
/// plus or minus one standard deviation, the samples' mean as an orange line over a translucent orange
/// band, and a legend on top. Bands whose lower edge is not positive run to the bottom of the axis.
/// Each panel has its own ranges (all its usable points, padded). Points with a non-positive or
/// non-finite k or mean are skipped (and a bad std only drops the band there); mismatched lengths, no
/// panels, or no usable point in any panel are errors.
pub fn power_spectra(path: impl AsRef<Path>, panels: &[PkPanel], cols: usize) -> Result<(), PlotError> {
    if panels.is_empty() || panels.len() > MAX_PANELS {
        return Err(invalid(format!("power_spectra: {} panels, must be 1..={MAX_PANELS}", panels.len())));
    }
    for (i, p) in panels.iter().enumerate() {
        let n = p.k.len();
        if n > MAX_POINTS {
            return Err(invalid(format!("power_spectra: panel {i} has {n} wavenumbers, at most {MAX_POINTS}")));
        }
        let lens = [
            ("data_mean", p.data_mean.len()),
            ("data_std", p.data_std.len()),
            ("sample_mean", p.sample_mean.len()),
            ("sample_std", p.sample_std.len()),
        ];
        if let Some((what, len)) = lens.iter().find(|l| l.1 != n) {
            return Err(invalid(format!("power_spectra: panel {i} has {n} wavenumbers but {len} values of {what}")));
        }
    }
    let curves: Vec<[Vec<(f64, f64, f64)>; 2]> = panels
        .iter()
        .map(|p| [pk_points(p.k, p.data_mean, p.data_std), pk_points(p.k, p.sample_mean, p.sample_std)])
        .collect();
    let ranges: Vec<_> = curves.iter().map(|[d, s]| pk_ranges(&[d.as_slice(), s.as_slice()])).collect();
    if ranges.iter().all(|r| r.is_none()) {
        return Err(invalid("power_spectra: no panel has a point with positive finite k and mean"));
    }
    let lay = PanelGrid::new(panels.len(), cols, PK_W, PK_H);
    let mut cv = Canvas::new(lay.w, lay.h)?;
    for (i, p) in panels.iter().enumerate() {
        let r = lay.panel(i);
        let [data, samples] = &curves[i];
        let Some((x, y)) = ranges[i] else {
            cv.text("no data", r.cx(), r.cy(), 18.0, [150, 150, 150], HAlign::Center, VAlign::Center, false);
            cv.outline(r, AXIS);
            panel_title(&mut cv, r, &p.title);
            continue;
        };
        let ax = Axes::new(r, x, y);
        let ylw = log_axes(&mut cv, &ax);
        band(&mut cv, &ax, data, DATA_BANDS[0], 1.0);
        band(&mut cv, &ax, samples, FLOW, SAMPLE_BAND_ALPHA);
        let line: Vec<(f64, f64)> = samples.iter().map(|q| (ax.px_x(q.0), ax.px_y(q.1.log10()))).collect();
        cv.polyline(&line, FLOW, 2.0, r);
        for q in data {
            cv.disc(ax.px_x(q.0), ax.px_y(q.1.log10()), 3.0, DATA, r);
        }
        ax.frame(&mut cv);
        axis_labels(&mut cv, r, "k [h/Mpc]", "P(k)", ylw);
        panel_title(&mut cv, r, &p.title);
    }
    let sample_band = blend_over_white(FLOW, SAMPLE_BAND_ALPHA);
    let entries = [
        (Swatch::DotsOnBand(DATA, DATA_BANDS[0]), "data".to_string()),
        (Swatch::LineOnBand(FLOW, sample_band), "samples".to_string()),
    ];
    legend_row(&mut cv, lay.panel(lay.cols - 1).x1 as f64, 8.0, &entries, LEGEND_FONT);
    cv.save_png(path.as_ref())
}

/// Colour of `c` painted with opacity `a` over white.
fn blend_over_white(c: Rgb, a: f32) -> Rgb {
    c.map(|v| (255.0 + (v as f32 - 255.0) * a).round() as u8)
}

// ---------------------------------------------------------------------------------------------------
// Posteriors

/// Fractional index of `v` in the increasing `axis` (0 = first point), clamped to the ends.
fn frac_index(axis: &[f64], v: f64) -> f64 {
    let n = axis.len();
    let i = axis.partition_point(|a| *a <= v).clamp(1, n - 1);
    let (a, b) = (axis[i - 1], axis[i]);
    ((i - 1) as f64 + ((v - a) / (b - a)).clamp(0.0, 1.0)).clamp(0.0, (n - 1) as f64)
}

/// Axis value at fractional index `f` (linear between the points).
fn axis_at(axis: &[f64], f: f64) -> f64 {
    let n = axis.len();
    let i = (f.floor().max(0.0) as usize).min(n - 2);
    axis[i] + (f - i as f64) * (axis[i + 1] - axis[i])
}

/// The masses as a [`Grid`] (x = Omega_m, y = sigma_8), bad values zeroed.
fn mass_grid(n: usize, m: &[f64]) -> Grid {
    let mut g = Grid::zeros(n, n);
    for (k, v) in m.iter().enumerate() {
        let (om, s8) = (k / n, k % n);
        g.v[s8 * n + om] = if *v > 0.0 && v.is_finite() { *v } else { 0.0 };
    }
    g
}

/// Contour segments, in pixels, of the levels enclosing the [`HPD`] masses of `g`.
fn hpd_segments(g: &Grid, axis: &[f64], r: Rect) -> Vec<[f64; 4]> {
    let total: f64 = g.v.iter().sum();
    let (a0, a1) = (axis[0], axis[axis.len() - 1]);
    let px = |gx: f64| r.x0 as f64 + (axis_at(axis, gx) - a0) / (a1 - a0) * r.w() as f64;
    let py = |gy: f64| r.y1 as f64 - (axis_at(axis, gy) - a0) / (a1 - a0) * r.h() as f64;
    let mut segs = Vec::new();
    for l in mass_levels(g, total, &HPD) {
        segs.extend(contour_segments(g, l).iter().map(|s| [px(s[0]), py(s[1]), px(s[2]), py(s[3])]));
    }
    segs
}

/// Joins marching-squares segments into polylines: neighbouring cells compute a shared edge's
/// crossing from the same two values, so joined ends are bitwise equal.
fn chain(segs: &[[f64; 4]]) -> Vec<Vec<(f64, f64)>> {
    use std::collections::HashMap;
    let key = |x: f64, y: f64| (x.to_bits(), y.to_bits());
    let mut at: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (i, s) in segs.iter().enumerate() {
        at.entry(key(s[0], s[1])).or_default().push(i);
        at.entry(key(s[2], s[3])).or_default().push(i);
    }
    let mut used = vec![false; segs.len()];
    let mut lines = Vec::new();
    for start in 0..segs.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let s = segs[start];
        let mut line = std::collections::VecDeque::from([(s[0], s[1]), (s[2], s[3])]);
        // Grow from the back, then from the front.
        for front in [false, true] {
            loop {
                let end = if front { line[0] } else { line[line.len() - 1] };
                let next = at.get(&key(end.0, end.1)).and_then(|v| v.iter().copied().find(|&i| !used[i]));
                let Some(i) = next else { break };
                used[i] = true;
                let t = segs[i];
                let other = if key(t[0], t[1]) == key(end.0, end.1) { (t[2], t[3]) } else { (t[0], t[1]) };
                if front {
                    line.push_front(other);
                } else {
                    line.push_back(other);
                }
            }
        }
        lines.push(line.into_iter().collect());
    }
    lines
}

/// The "on" pieces of a dash pattern (`on`, `off` pixels) laid along each polyline.
fn dashes(lines: &[Vec<(f64, f64)>], (on, off): (f64, f64)) -> Vec<[f64; 4]> {
    let mut out = Vec::new();
    for line in lines {
        let mut phase = 0.0; // distance into the current on + off period
        for w in line.windows(2) {
            let (a, b) = (w[0], w[1]);
            let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
            let mut t = 0.0;
            while t < len {
                let step = if phase < on { on - phase } else { on + off - phase }.min(len - t);
                if phase < on {
                    let (f0, f1) = (t / len, (t + step) / len);
                    out.push([
                        a.0 + f0 * (b.0 - a.0),
                        a.1 + f0 * (b.1 - a.1),
                        a.0 + f1 * (b.0 - a.0),
                        a.1 + f1 * (b.1 - a.1),
                    ]);
                }
                t += step;
                phase = (phase + step) % (on + off);
            }
        }
    }
    out
}

fn check_posterior(i: usize, p: &PosteriorPanel) -> Result<(), PlotError> {
    let n = p.n;
    let bad = |m: String| Err(invalid(format!("posteriors: panel {i}: {m}")));
    if !(2..=MAX_GRID).contains(&n) {
        return bad(format!("n = {n}, must be 2..={MAX_GRID}"));
    }
    if p.axis.len() != n {
        return bad(format!("axis has {} points, not n = {n}", p.axis.len()));
    }
    if !p.axis.iter().all(|a| a.is_finite()) || !p.axis.windows(2).all(|w| w[1] > w[0]) {
        return bad("axis is not finite and strictly increasing".into());
    }
    if p.flow.len() != n * n {
        return bad(format!("flow has {} masses, not n * n = {}", p.flow.len(), n * n));
    }
    if let Some(e) = p.exact.filter(|e| e.len() != n * n) {
        return bad(format!("exact has {} masses, not n * n = {}", e.len(), n * n));
    }
    if let Some(rg) = p.ranges {
        if !rg.iter().all(|r| r[0].is_finite() && r[1].is_finite() && r[1] > r[0]) {
            return bad(format!("ranges {rg:?} are not finite [lo, hi] with lo < hi"));
        }
    }
    Ok(())
}

/// Grid of posterior panels, `cols` per row (0: about square), each a 300 x 300 pixel plot area titled
/// with its `title`: the flow's posterior mass as a viridis image (bilinear between grid points, scaled
/// to its maximum), its 68 % and 95 % highest-posterior-density contours (the mass levels enclosing
/// those fractions, traced by marching squares) in orange, the exact posterior's in dashed white, the
/// truth as a black cross, axes labelled `labels` and ticked in physical units when `ranges` is given.
/// A legend on top names what any panel shows. A posterior with no mass draws a note instead. Bad
/// shapes (`n` < 2, `axis` or masses of the wrong length, a non-increasing axis, bad `ranges`) and
/// no panels are errors.
pub fn posteriors(path: impl AsRef<Path>, panels: &[PosteriorPanel], cols: usize) -> Result<(), PlotError> {
    if panels.is_empty() || panels.len() > MAX_PANELS {
        return Err(invalid(format!("posteriors: {} panels, must be 1..={MAX_PANELS}", panels.len())));
    }
    for (i, p) in panels.iter().enumerate() {
        check_posterior(i, p)?;
    }
    let lay = PanelGrid::new(panels.len(), cols, POST_SIDE, POST_SIDE);
    let mut cv = Canvas::new(lay.w, lay.h)?;
    for (i, p) in panels.iter().enumerate() {
        posterior_panel(&mut cv, lay.panel(i), p);
    }
    // The contours' legend swatches sit on a mid viridis shade, as the lines do in the panels.
    let on = viridis(0.3);
    let mut entries = vec![(Swatch::LineOnBand(FLOW, on), "flow".to_string())];
    if panels.iter().any(|p| p.exact.is_some()) {
        entries.push((Swatch::DashedOnBand(EXACT, on), "exact".to_string()));
    }
    if panels.iter().any(|p| p.truth.is_some()) {
        entries.push((Swatch::Cross(TRUTH), "truth".to_string()));
    }
    let lr = legend_row(&mut cv, lay.panel(lay.cols - 1).x1 as f64, 8.0, &entries, LEGEND_FONT);
    // Say what the contours are where the header has room for it.
    let note = "contours: 68 and 95 % highest density";
    let x0 = (MARGIN + CELL_LEFT) as f64;
    if x0 + Canvas::text_width(note, 13.0) + 12.0 < lr.x0 as f64 {
        cv.text(note, x0, lr.cy(), 13.0, TEXT, HAlign::Left, VAlign::Center, false);
    }
    cv.save_png(path.as_ref())
}

fn posterior_panel(cv: &mut Canvas, r: Rect, p: &PosteriorPanel) {
    let (n, axis) = (p.n, p.axis);
    let (a0, a1) = (axis[0], axis[n - 1]);
    let phys = |k: usize, v: f64| p.ranges.map_or(v, |rg| rg[k][0] + (v + 1.0) / 2.0 * (rg[k][1] - rg[k][0]));
    let ax = Axes::new(r, (phys(0, a0), phys(0, a1)), (phys(1, a0), phys(1, a1)));
    let g = mass_grid(n, p.flow);
    let peak = g.v.iter().copied().fold(0.0, f64::max);
    if peak > 0.0 {
        // Pixel centres -> normalised values -> fractional grid indices, per column and per row.
        let gx: Vec<f64> =
            (r.x0..r.x1).map(|x| frac_index(axis, a0 + ((x - r.x0) as f64 + 0.5) / r.w() as f64 * (a1 - a0))).collect();
        let gy: Vec<f64> =
            (r.y0..r.y1).map(|y| frac_index(axis, a0 + ((r.y1 - y) as f64 - 0.5) / r.h() as f64 * (a1 - a0))).collect();
        for (j, y) in (r.y0..r.y1).enumerate() {
            for (i, x) in (r.x0..r.x1).enumerate() {
                cv.set(x, y, viridis(g.bilinear(gx[i], gy[j]) / peak));
            }
        }
        cv.segments(&hpd_segments(&g, axis, r), FLOW, 2.0, r);
    } else {
        cv.text("no posterior mass", r.cx(), r.cy(), 16.0, TEXT, HAlign::Center, VAlign::Center, false);
    }
    if let Some(e) = p.exact {
        let segs = hpd_segments(&mass_grid(n, e), axis, r);
        cv.segments(&dashes(&chain(&segs), DASH), EXACT, 2.0, r);
    }
    if let Some(t) = p.truth.filter(|t| t.iter().all(|v| v.is_finite())) {
        let x = r.x0 as f64 + (t[0] - a0) / (a1 - a0) * r.w() as f64;
        let y = r.y1 as f64 - (t[1] - a0) / (a1 - a0) * r.h() as f64;
        cross(cv, x, y, 7.0, TRUTH, 2.5, r);
    }
    ax.frame(cv);
    let (xt, yt) = (Ticks::labelled(TICK_FONT, 5), Ticks::labelled(TICK_FONT, 5));
    ax.x_ticks(cv, xt);
    ax.y_ticks(cv, yt, false);
    axis_labels(cv, r, p.labels[0], p.labels[1], ax.y_label_width(yt));
    panel_title(cv, r, &p.title);
}

// ---------------------------------------------------------------------------------------------------
// Map rows

/// Map tiles are enlarged (nearest neighbour, whole factors) until their side reaches this.
const TILE_TARGET: usize = 128;
const ROW_LABEL_H: i32 = 26;
const TILE_GAP: i32 = 6;
const ROW_GAP: i32 = 10;
const CB_GAP: i32 = 16;
const CB_W: i32 = 18;
/// Room right of the colour bar for its tick labels and its label.
const CB_RIGHT: i32 = 86;
const MAP_LABEL: &str = "log10 N_HI";

/// Geometry of [`map_rows`]' figure.
pub(crate) struct MapRowsLayout {
    pub w: u32,
    pub h: u32,
    tile: i32,
    scale: i32,
}

impl MapRowsLayout {
    fn new(nrows: usize, cols: usize, side: usize) -> MapRowsLayout {
        let scale = (TILE_TARGET / side.max(1)).max(1);
        let tile = (side * scale) as i32;
        let cols = cols.max(1) as i32;
        let rows = nrows as i32;
        MapRowsLayout {
            w: (2 * MARGIN + cols * tile + (cols - 1) * TILE_GAP + CB_GAP + CB_W + CB_RIGHT) as u32,
            h: (2 * MARGIN + rows * (ROW_LABEL_H + tile) + (rows - 1) * ROW_GAP) as u32,
            tile,
            scale: scale as i32,
        }
    }
    /// Tile `k` of row `row`.
    pub fn tile(&self, row: usize, k: usize) -> Rect {
        let y = MARGIN + row as i32 * (ROW_LABEL_H + self.tile + ROW_GAP) + ROW_LABEL_H;
        Rect::new(MARGIN + k as i32 * (self.tile + TILE_GAP), y, self.tile, self.tile)
    }
    /// The colour bar: right of the tiles, as tall as all rows.
    pub fn bar(&self) -> Rect {
        let x = self.w as i32 - MARGIN - CB_RIGHT - CB_W;
        let y0 = MARGIN + ROW_LABEL_H;
        Rect::new(x, y0, CB_W, self.h as i32 - MARGIN - y0)
    }
}

/// One row per `(label, maps)` entry: the label, then the maps (each `side x side` values, row-major,
/// top row first) coloured with viridis from `vmin` (dark) to `vmax` (yellow), values outside clamped
/// and non-finite ones magenta, each enlarged by a whole factor to about 128 pixels; a colour bar
/// labelled "log10 N_HI" on the right. Rows may hold different numbers of maps (a row may be empty).
/// No maps at all, `side` = 0, a map of the wrong length, or a `vmin`..`vmax` that is not a finite
/// increasing range are errors.
pub fn map_rows(
    path: impl AsRef<Path>,
    rows: &[(&str, Vec<&[f32]>)],
    side: usize,
    vmin: f32,
    vmax: f32,
) -> Result<(), PlotError> {
    if side == 0 || side > MAX_SIDE {
        return Err(invalid(format!("map_rows: side = {side}, must be 1..={MAX_SIDE}")));
    }
    let tiles: usize = rows.iter().map(|r| r.1.len()).sum();
    if tiles == 0 || tiles > MAX_TILES || rows.len() > MAX_TILES {
        return Err(invalid(format!("map_rows: {tiles} maps in {} rows, must be 1..={MAX_TILES}", rows.len())));
    }
    for (i, (label, maps)) in rows.iter().enumerate() {
        if let Some((k, m)) = maps.iter().enumerate().find(|(_, m)| m.len() != side * side) {
            return Err(invalid(format!(
                "map_rows: row {i} ({label:?}) map {k} has {} values, not {side} x {side}",
                m.len()
            )));
        }
    }
    if !(vmin.is_finite() && vmax.is_finite() && vmax > vmin) {
        return Err(invalid(format!("map_rows: vmin = {vmin}, vmax = {vmax} is not a finite range with vmin < vmax")));
    }
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
    let lay = MapRowsLayout::new(rows.len(), cols, side);
    let mut cv = Canvas::new(lay.w, lay.h)?;
    let s = lay.scale;
    let colour = |v: f32| {
        if v.is_finite() {
            viridis(((v - vmin) / (vmax - vmin)) as f64)
        } else {
            NAN_COLOUR
        }
    };
    for (i, (label, maps)) in rows.iter().enumerate() {
        let first = lay.tile(i, 0);
        let ly = (first.y0 - ROW_LABEL_H / 2) as f64;
        cv.text(label, first.x0 as f64, ly, 15.0, TEXT, HAlign::Left, VAlign::Center, false);
        for (k, m) in maps.iter().enumerate() {
            let r = lay.tile(i, k);
            for (p, v) in m.iter().enumerate() {
                let (x, y) = ((p % side) as i32, (p / side) as i32);
                cv.fill_rect(Rect::new(r.x0 + x * s, r.y0 + y * s, s, s), colour(*v));
            }
            cv.outline(r, [170, 170, 170]);
        }
    }
    colorbar(&mut cv, lay.bar(), (vmin as f64, vmax as f64), &viridis, MAP_LABEL, 13.0);
    cv.save_png(path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{load, tmp_dir};
    use super::*;

    fn count_in(img: &image::RgbImage, r: Rect, pred: impl Fn([u8; 3]) -> bool) -> usize {
        (r.y0..r.y1)
            .flat_map(|y| (r.x0..r.x1).map(move |x| (x, y)))
            .filter(|&(x, y)| pred(img.get_pixel(x as u32, y as u32).0))
            .count()
    }

    /// A P(k) falling as k^-2 with a 30 % spread; the samples 30 % high with half the spread (their band
    /// pokes out above the data's).
    fn spectrum(n: usize) -> (Vec<f64>, [Vec<f64>; 4]) {
        let k: Vec<f64> = (0..n).map(|i| 0.25 * 1.1f64.powi(i as i32)).collect();
        let dm: Vec<f64> = k.iter().map(|k| 1e3 * k.powi(-2)).collect();
        let ds: Vec<f64> = dm.iter().map(|v| 0.3 * v).collect();
        let sm: Vec<f64> = dm.iter().map(|v| 1.3 * v).collect();
        let ss: Vec<f64> = sm.iter().map(|v| 0.15 * v).collect();
        (k, [dm, ds, sm, ss])
    }

    #[test]
    fn power_spectra_draw_points_bands_and_line() {
        let dir = tmp_dir("hi-pk");
        let (k, [dm, ds, sm, ss]) = spectrum(36);
        // A second panel with bad values: non-positive k and mean, NaN std, a spread larger than the mean.
        let (mut k2, mut dm2, mut ds2) = (k.clone(), dm.clone(), ds.clone());
        k2[0] = 0.0;
        k2[1] = f64::NAN;
        dm2[5] = -1.0;
        ds2[8] = f64::NAN;
        ds2[20] = 3.0 * dm2[20];
        let panels = [
            PkPanel {
                title: "Ωm 0.31 σ8 0.82, R² 0.97".into(),
                k: &k,
                data_mean: &dm,
                data_std: &ds,
                sample_mean: &sm,
                sample_std: &ss,
            },
            PkPanel {
                title: "bad values".into(),
                k: &k2,
                data_mean: &dm2,
                data_std: &ds2,
                sample_mean: &sm,
                sample_std: &ss,
            },
            PkPanel { title: "empty".into(), k: &[], data_mean: &[], data_std: &[], sample_mean: &[], sample_std: &[] },
        ];
        let path = dir.join("pk.png");
        power_spectra(&path, &panels, 2).unwrap();
        let img = load(&path);
        let lay = PanelGrid::new(3, 2, PK_W, PK_H);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        for i in 0..2 {
            let r = lay.panel(i);
            let n = |c: Rgb| count_in(&img, r, |p| p == c);
            assert!(n(DATA) > 100 && n(FLOW) > 200, "panel {i}: {} data, {} samples pixels", n(DATA), n(FLOW));
            // The data band shows where the samples' narrower band does not cover it.
            assert!(n(DATA_BANDS[0]) > 1000, "panel {i}: {} data band pixels", n(DATA_BANDS[0]));
            let sb = blend_over_white(FLOW, SAMPLE_BAND_ALPHA);
            let samples_band =
                count_in(&img, r, |p| p.iter().zip(&sb).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 2));
            assert!(samples_band > 100, "panel {i}: {samples_band} samples band pixels");
        }
        // Panel 0: just above the data mean at a middle k lies the data band; far above it, white.
        let (r, [d, s]) = (lay.panel(0), [pk_points(&k, &dm, &ds), pk_points(&k, &sm, &ss)]);
        let (x, y) = pk_ranges(&[&d, &s]).unwrap();
        let ax = Axes::new(r, x, y);
        let px = ax.px_x(k[18].log10()) as u32;
        let just_below = ax.px_y((0.8 * dm[18]).log10()) as u32;
        assert_eq!(img.get_pixel(px, just_below).0, DATA_BANDS[0]);
        let far_above = ax.px_y((5.0 * dm[18]).log10()) as u32;
        assert!(img.get_pixel(px, far_above).0.iter().all(|v| *v >= 225), "no band far from the curve");
        // Panel 1: the band whose lower edge is negative reaches the bottom of the axis.
        let r1 = lay.panel(1);
        let d1 = pk_points(&k2, &dm2, &ds2);
        let (x1, y1) = pk_ranges(&[&d1, &pk_points(&k2, &sm, &ss)]).unwrap();
        let px = Axes::new(r1, x1, y1).px_x(k2[20].log10()) as u32;
        assert_eq!(img.get_pixel(px, r1.y1 as u32 - 2).0, DATA_BANDS[0]);
        // Panel 2 has nothing to draw: grey "no data" note, no curve colours.
        let r2 = lay.panel(2);
        assert_eq!(count_in(&img, r2, |p| p == DATA || p == FLOW), 0);
        assert!(count_in(&img, r2, |p| p[0] < 200) > 20, "no note in the empty panel");
    }

    #[test]
    fn power_spectra_bad_input_is_an_error() {
        let dir = tmp_dir("hi-pk-bad");
        let p = dir.join("pk.png");
        let (k, [dm, ds, sm, ss]) = spectrum(10);
        let ok =
            PkPanel { title: String::new(), k: &k, data_mean: &dm, data_std: &ds, sample_mean: &sm, sample_std: &ss };
        assert!(power_spectra(&p, &[], 0).is_err());
        let short = PkPanel { sample_std: &ss[..9], ..ok.clone() };
        assert!(matches!(power_spectra(&p, &[ok.clone(), short], 0), Err(PlotError::InvalidInput(_))));
        let neg: Vec<f64> = dm.iter().map(|v| -v).collect();
        let nothing = PkPanel { data_mean: &neg, sample_mean: &neg, ..ok.clone() };
        assert!(power_spectra(&p, &[nothing], 0).is_err(), "no usable point anywhere");
        assert!(!p.exists());
        // One point, constant P(k): plots.
        power_spectra(
            &p,
            &[PkPanel {
                k: &k[..1],
                data_mean: &dm[..1],
                data_std: &ds[..1],
                sample_mean: &sm[..1],
                sample_std: &ss[..1],
                ..ok
            }],
            0,
        )
        .unwrap();
    }

    #[test]
    fn log_ticks_label_decades_or_mantissas() {
        // Four decades: labelled decades, marks at the mantissas.
        let t = log_ticks(-2.2, 2.3, 360.0, TICK_FONT, true);
        let labels: Vec<&LogLabel> = t.labels.iter().map(|l| &l.1).collect();
        assert_eq!(labels, [-2, -1, 0, 1, 2].map(|e| LogLabel::Sci(None, e)).iter().collect::<Vec<_>>());
        assert!(t.marks.iter().filter(|m| !m.1).count() > 30);
        // k from 0.25 to 8 (1.5 decades): plain 1-2-5 values.
        let t = log_ticks(0.25f64.log10(), 8f64.log10(), 360.0, TICK_FONT, true);
        let text: Vec<String> = t.labels.iter().map(|l| format!("{:?}", l.1)).collect();
        assert!(text.len() >= 4 && t.labels.iter().all(|l| matches!(l.1, LogLabel::Plain(_))), "{text:?}");
        // Under two decades of large values: 1-2-5 mantissas times powers of ten.
        let t = log_ticks(23.0, 24.6, 270.0, TICK_FONT, false);
        assert!(t.labels.len() >= 5 && t.labels.iter().all(|l| matches!(l.1, LogLabel::Sci(_, 23..=25))));
        assert_eq!(t.labels[1].1, LogLabel::Sci(Some("2".into()), 23));
        assert_eq!(LogLabel::number(2.5e25, 5e24), LogLabel::Sci(Some("2.5".into()), 25));
        assert_eq!(LogLabel::number(250.0, 50.0), LogLabel::Plain("250".into()));
        // A tiny range: round linear values inside it.
        let t = log_ticks(2.0f64.log10(), 2.1f64.log10(), 300.0, TICK_FONT, true);
        assert!(
            t.labels.len() >= 2 && t.labels.iter().all(|l| l.0 >= 2f64.log10() - 1e-9 && l.0 <= 2.1f64.log10() + 1e-9)
        );
        // Forty decades on a short axis: thinned decades.
        let t = log_ticks(-20.0, 20.0, 120.0, TICK_FONT, false);
        assert!((2..=10).contains(&t.labels.len()), "{}", t.labels.len());
    }

    /// A Gaussian posterior (sigma 0.15 in normalised units) centred on `c`, on an n x n grid over [-1, 1].
    fn gaussian(n: usize, c: [f64; 2]) -> (Vec<f64>, Vec<f64>) {
        let axis: Vec<f64> = (0..n).map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64).collect();
        let mut m: Vec<f64> = (0..n * n)
            .map(|k| {
                let (x, y) = (axis[k / n] - c[0], axis[k % n] - c[1]);
                (-(x * x + y * y) / (2.0 * 0.15 * 0.15)).exp()
            })
            .collect();
        let z: f64 = m.iter().sum();
        m.iter_mut().for_each(|v| *v /= z);
        (axis, m)
    }

    #[test]
    fn posterior_contours_sit_at_the_hpd_radii() {
        let dir = tmp_dir("hi-post");
        let n = 81;
        let (axis, flow) = gaussian(n, [0.2, -0.1]);
        let (_, exact) = gaussian(n, [-0.3, 0.4]);
        let panel = PosteriorPanel {
            title: "Ωm 0.34 σ8 0.78".into(),
            n,
            axis: &axis,
            flow: &flow,
            exact: Some(&exact),
            truth: Some([0.2, 0.05]),
            labels: ["Ωm", "σ8"],
            ranges: None,
        };
        let path = dir.join("post.png");
        posteriors(&path, std::slice::from_ref(&panel), 0).unwrap();
        let img = load(&path);
        let lay = PanelGrid::new(1, 0, POST_SIDE, POST_SIDE);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        let r = lay.panel(0);
        let to_px = |v: f64| (v + 1.0) / 2.0 * POST_SIDE as f64;
        let (cx, cy) = (r.x0 as f64 + to_px(0.2), r.y1 as f64 - to_px(-0.1));
        // Walking right from the mode, the first orange pixel is the 68 % contour at 1.51 sigma and a
        // later one the 95 % contour at 2.45 sigma (the HPD radii of a 2-D Gaussian).
        let sigma_px = 0.15 / 2.0 * POST_SIDE as f64;
        let orange: Vec<f64> = (cx as i32..r.x1)
            .filter(|&x| img.get_pixel(x as u32, cy as u32).0 == FLOW)
            .map(|x| (x as f64 + 0.5 - cx) / sigma_px)
            .collect();
        assert!(orange.iter().any(|d| (d - 1.51).abs() < 0.12), "68 % contour: {orange:?}");
        assert!(orange.iter().any(|d| (d - 2.45).abs() < 0.12), "95 % contour: {orange:?}");
        assert!(orange.iter().all(|d| (d - 1.51).abs() < 0.15 || (d - 2.45).abs() < 0.15), "{orange:?}");
        // The mode is bright (viridis' yellow end), the far corner dark, and holds no contour.
        let mode = img.get_pixel(cx as u32, cy as u32).0;
        assert!(mode.iter().zip(viridis(1.0)).all(|(a, b)| (*a as i32 - b as i32).abs() <= 4), "mode {mode:?}");
        let corner = Rect::new(r.x1 - 60, r.y1 - 60, 60, 60);
        assert_eq!(count_in(&img, corner, |p| p == FLOW || p == EXACT), 0);
        assert_eq!(img.get_pixel(r.x1 as u32 - 3, r.y1 as u32 - 3).0, viridis(0.0));
        // The exact posterior's dashed white contours surround its own mode.
        let around = |c: [f64; 2], rad: f64| {
            let (x, y) = (r.x0 as f64 + to_px(c[0]), r.y1 as f64 - to_px(c[1]));
            let rad = rad * sigma_px;
            Rect::new((x - rad) as i32, (y - rad) as i32, (2.0 * rad) as i32, (2.0 * rad) as i32)
        };
        let exact_px = count_in(&img, around([-0.3, 0.4], 2.7), |p| p == EXACT);
        assert!(exact_px > 150, "{exact_px} exact contour pixels");
        assert_eq!(count_in(&img, around([-0.3, 0.4], 0.9), |p| p == EXACT), 0, "inside the 68 % contour");
        // The truth cross is black on the bright centre.
        let (tx, ty) = (r.x0 as f64 + to_px(0.2), r.y1 as f64 - to_px(0.05));
        assert_eq!(img.get_pixel(tx as u32, ty as u32).0, TRUTH);
        // Physical ranges change the tick labels, not the image.
        let path2 = dir.join("post-phys.png");
        let phys = PosteriorPanel { ranges: Some([[0.1, 0.5], [0.6, 1.0]]), ..panel };
        posteriors(&path2, &[phys], 0).unwrap();
        let img2 = load(&path2);
        let same = (r.y0..r.y1)
            .all(|y| (r.x0..r.x1).all(|x| img.get_pixel(x as u32, y as u32) == img2.get_pixel(x as u32, y as u32)));
        assert!(same, "plot area differs with physical ranges");
        let below = Rect::new(r.x0 - 20, r.y1 + 8, r.w() + 40, 20);
        assert_ne!(count_in(&img, below, |p| p[0] < 128), count_in(&img2, below, |p| p[0] < 128), "tick labels");
    }

    #[test]
    fn posteriors_bad_input_and_degenerate_masses() {
        let dir = tmp_dir("hi-post-bad");
        let p = dir.join("post.png");
        let (axis, flow) = gaussian(20, [0.0, 0.0]);
        let ok = PosteriorPanel {
            title: String::new(),
            n: 20,
            axis: &axis,
            flow: &flow,
            exact: None,
            truth: None,
            labels: ["x", "y"],
            ranges: None,
        };
        let err = |q: PosteriorPanel| matches!(posteriors(&p, &[q], 0), Err(PlotError::InvalidInput(_)));
        assert!(posteriors(&p, &[], 0).is_err());
        assert!(err(PosteriorPanel { n: 21, ..ok.clone() }), "n * n != flow.len()");
        assert!(err(PosteriorPanel { flow: &flow[1..], ..ok.clone() }));
        assert!(err(PosteriorPanel { exact: Some(&flow[..10]), ..ok.clone() }));
        assert!(err(PosteriorPanel { axis: &axis[..19], ..ok.clone() }));
        let rev: Vec<f64> = axis.iter().rev().copied().collect();
        assert!(err(PosteriorPanel { axis: &rev, ..ok.clone() }));
        assert!(err(PosteriorPanel { n: 1, axis: &axis[..1], flow: &flow[..1], ..ok.clone() }));
        assert!(err(PosteriorPanel { ranges: Some([[0.5, 0.1], [0.6, 1.0]]), ..ok.clone() }));
        assert!(!p.exists());
        // All-NaN, all-zero and single-point masses, a truth off the grid: plots with a note, no panic.
        let nan = vec![f64::NAN; 400];
        let mut spike = vec![0.0; 400];
        spike[7] = 1.0;
        let panels = [
            PosteriorPanel { flow: &nan, exact: Some(&nan), truth: Some([5.0, f64::NAN]), ..ok.clone() },
            PosteriorPanel { flow: &spike, exact: Some(&[0.0; 400]), truth: Some([3.0, -3.0]), ..ok.clone() },
        ];
        posteriors(&p, &panels, 0).unwrap();
        let img = load(&p);
        let r = PanelGrid::new(2, 0, POST_SIDE, POST_SIDE).panel(0);
        assert!(count_in(&img, r, |q| q[0] < 100) > 20, "note in the empty panel");
    }

    #[test]
    fn map_rows_colour_tiles_and_bar() {
        let dir = tmp_dir("hi-maps");
        let side = 64;
        let low = vec![-5.0f32; side * side];
        let high = vec![20.0f32; side * side];
        let mut ramp: Vec<f32> = (0..side * side).map(|i| (i % side) as f32 / (side - 1) as f32 * 2.0 + 1.0).collect();
        ramp[0] = f32::NAN;
        let rows: Vec<(&str, Vec<&[f32]>)> =
            vec![("data Ωm 0.31 σ8 0.82", vec![&low, &high]), ("samples", vec![&ramp]), ("none", vec![])];
        let path = dir.join("maps.png");
        map_rows(&path, &rows, side, 1.0, 3.0).unwrap();
        let img = load(&path);
        let lay = MapRowsLayout::new(3, 2, side);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        let px = |r: Rect, x: i32, y: i32| img.get_pixel((r.x0 + x) as u32, (r.y0 + y) as u32).0;
        let (t0, t1, t2) = (lay.tile(0, 0), lay.tile(0, 1), lay.tile(1, 0));
        assert_eq!(t0.w(), 128);
        assert_eq!(px(t0, 64, 64), viridis(0.0), "below vmin clamps to the dark end");
        assert_eq!(px(t1, 64, 64), viridis(1.0), "above vmax clamps to the bright end");
        assert_eq!(px(t2, 0, 0), NAN_COLOUR);
        assert_eq!(px(t2, 1, 50), viridis(0.0), "ramp starts at vmin on the left");
        assert_eq!(px(t2, 127, 50), viridis(1.0), "and ends at vmax on the right");
        // An empty row leaves its tiles white; the bar runs from vmax (top) to vmin (bottom).
        assert_eq!(px(lay.tile(2, 0), 64, 64), WHITE);
        let bar = lay.bar();
        assert_eq!(px(bar, 9, 0), viridis(1.0));
        assert_eq!(px(bar, 9, bar.h() - 1), viridis(0.0));
    }

    #[test]
    fn map_rows_bad_input_is_an_error() {
        let dir = tmp_dir("hi-maps-bad");
        let p = dir.join("m.png");
        let m = vec![0.0f32; 16];
        let err = |rows: &[(&str, Vec<&[f32]>)], side: usize, lo: f32, hi: f32| {
            matches!(map_rows(&p, rows, side, lo, hi), Err(PlotError::InvalidInput(_)))
        };
        assert!(err(&[("a", vec![&m])], 0, 0.0, 1.0), "zero side");
        assert!(err(&[("a", vec![&m])], 3, 0.0, 1.0), "wrong length");
        assert!(err(&[], 4, 0.0, 1.0));
        assert!(err(&[("a", vec![])], 4, 0.0, 1.0), "no maps");
        assert!(err(&[("a", vec![&m])], 4, 1.0, 1.0));
        assert!(err(&[("a", vec![&m])], 4, f32::NAN, 1.0));
        assert!(!p.exists());
        map_rows(&p, &[("a", vec![&m[..1]])], 1, 0.0, 1.0).unwrap();
        assert_eq!(load(&p).dimensions(), (MapRowsLayout::new(1, 1, 1).w, MapRowsLayout::new(1, 1, 1).h));
    }
}
