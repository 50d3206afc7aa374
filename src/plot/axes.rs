//! Axes: the map from data to pixels of one panel, its frame, ticks with readable labels, and the
//! shared decorations (colour bars, legends).
use super::canvas::{Canvas, HAlign, Rect, Rgb, VAlign, TEXT, WHITE};
use super::colormap::AXIS;

/// Tick mark length in pixels (outwards).
const TICK: f64 = 5.0;

/// One panel: its plot area in pixels and the data ranges it shows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axes {
    pub r: Rect,
    pub x: (f64, f64),
    pub y: (f64, f64),
}

/// How an axis is ticked: tick positions are chosen as if labels of font `size` were drawn (so that
/// panels sharing an axis get the same ticks), `labels` says whether they are, `max` caps the count and
/// `overhang` is how far (pixels) a label may stick out past the ends of the axis.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    pub size: f64,
    pub labels: bool,
    pub max: usize,
    pub overhang: f64,
}

impl Ticks {
    /// Labelled ticks that may overhang the axis ends freely.
    pub fn labelled(size: f64, max: usize) -> Ticks {
        Ticks { size, labels: true, max, overhang: f64::INFINITY }
    }
}

impl Axes {
    pub fn new(r: Rect, x: (f64, f64), y: (f64, f64)) -> Axes {
        Axes { r, x, y }
    }
    /// Pixel x of data x (continuous; the plot area spans [r.x0, r.x1]).
    pub fn px_x(&self, v: f64) -> f64 {
        self.r.x0 as f64 + (v - self.x.0) / (self.x.1 - self.x.0) * self.r.w() as f64
    }
    /// Pixel y of data y (upwards).
    pub fn px_y(&self, v: f64) -> f64 {
        self.r.y1 as f64 - (v - self.y.0) / (self.y.1 - self.y.0) * self.r.h() as f64
    }

    /// Light grid lines at the positions the same `Ticks` would label.
    pub fn grid(&self, cv: &mut Canvas, xt: Ticks, yt: Ticks) {
        let c = [228, 228, 228];
        for (v, _, _) in self.x_tick_set(xt) {
            let px = pixel_centre(self.px_x(v), self.r.x0, self.r.x1);
            cv.segments(&[[px, self.r.y0 as f64, px, self.r.y1 as f64]], c, 1.0, self.r);
        }
        for (v, _, _) in self.y_tick_set(yt) {
            let py = pixel_centre(self.px_y(v), self.r.y0, self.r.y1);
            cv.segments(&[[self.r.x0 as f64, py, self.r.x1 as f64, py]], c, 1.0, self.r);
        }
    }

    pub fn frame(&self, cv: &mut Canvas) {
        cv.outline(self.r, AXIS);
    }

    /// Ticks along the bottom edge; labels below them, thinned until they do not touch.
    pub fn x_ticks(&self, cv: &mut Canvas, t: Ticks) {
        let y = self.r.y1 as f64 + 1.0;
        for (v, label, text) in self.x_tick_set(t) {
            let px = pixel_centre(self.px_x(v), self.r.x0, self.r.x1);
            cv.segments(&[[px, y, px, y + TICK]], AXIS, 1.0, cv.bounds());
            if t.labels && label {
                cv.text(&text, px, y + TICK + 4.0, t.size, TEXT, HAlign::Center, VAlign::Top, false);
            }
        }
    }

    /// Ticks along the left edge (or the right one with `right`), labels beside them.
    pub fn y_ticks(&self, cv: &mut Canvas, t: Ticks, right: bool) {
        let x = if right { self.r.x1 as f64 + 1.0 } else { self.r.x0 as f64 - 1.0 };
        let dir = if right { 1.0 } else { -1.0 };
        for (v, label, text) in self.y_tick_set(t) {
            let py = pixel_centre(self.px_y(v), self.r.y0, self.r.y1);
            cv.segments(&[[x, py, x + dir * TICK, py]], AXIS, 1.0, cv.bounds());
            if t.labels && label {
                let ha = if right { HAlign::Left } else { HAlign::Right };
                cv.text(&text, x + dir * (TICK + 4.0), py, t.size, TEXT, ha, VAlign::Center, false);
            }
        }
    }

    /// Width in pixels of the widest y tick label these ticks would draw.
    pub fn y_label_width(&self, t: Ticks) -> f64 {
        if !t.labels {
            return 0.0;
        }
        let set = self.y_tick_set(t);
        set.iter().filter(|s| s.1).map(|s| Canvas::text_width(&s.2, t.size)).fold(0.0, f64::max)
    }

    /// (value, labelled, label) of the x ticks.
    fn x_tick_set(&self, t: Ticks) -> Vec<(f64, bool, String)> {
        fit_ticks(self.x, t, self.r.w() as f64, Canvas::text_width, 10.0)
    }

    /// (value, labelled, label) of the y ticks.
    fn y_tick_set(&self, t: Ticks) -> Vec<(f64, bool, String)> {
        fit_ticks(self.y, t, self.r.h() as f64, |_, size| Canvas::cap_height(size), 0.9 * Canvas::cap_height(t.size))
    }
}

/// Centre of the pixel holding continuous coordinate `p`, kept inside [lo, hi).
fn pixel_centre(p: f64, lo: i32, hi: i32) -> f64 {
    p.floor().clamp(lo as f64, (hi - 1).max(lo) as f64) + 0.5
}

/// The densest "nice" ticks (at most `t.max`) whose labels, `extent` pixels long along the axis and at
/// least `pad` apart, fit an axis of `len` pixels. Labels that would overhang the ends by more than
/// `t.overhang` are left out (their marks stay). Returns (value, labelled, label text) per tick.
fn fit_ticks(
    range: (f64, f64),
    t: Ticks,
    len: f64,
    extent: impl Fn(&str, f64) -> f64,
    pad: f64,
) -> Vec<(f64, bool, String)> {
    let px_per = len / (range.1 - range.0);
    let (mut fallback, mut last_resort) = (None, Vec::new());
    // Densest first; if labels left out at the ends leave fewer than two, a few denser sets get a try.
    let max = t.max.max(2);
    for target in (2..=max).rev().chain(max + 1..=max + 3) {
        let (ticks, step) = nice_ticks(range.0, range.1, target);
        let set: Vec<(f64, bool, String)> = ticks
            .iter()
            .map(|&v| {
                let text = fmt_tick(v, step);
                let (p, e) = ((v - range.0) * px_per, extent(&text, t.size) / 2.0);
                (v, p - e >= -t.overhang && p + e <= len + t.overhang, text)
            })
            .collect();
        let shown: Vec<&(f64, bool, String)> = set.iter().filter(|s| s.1).collect();
        let fits = shown
            .windows(2)
            .all(|w| (w[1].0 - w[0].0) * px_per >= (extent(&w[0].2, t.size) + extent(&w[1].2, t.size)) / 2.0 + pad);
        if fits && shown.len() >= 2 {
            return set;
        }
        if fits {
            fallback.get_or_insert(set);
        } else if target == 2 {
            // Nothing fits: every other label of the sparsest set.
            last_resort = set.into_iter().enumerate().map(|(k, (v, l, s))| (v, l && k % 2 == 0, s)).collect();
        }
    }
    fallback.unwrap_or(last_resort)
}

/// Round tick positions (1, 2 or 5 times a power of ten) inside [lo, hi], about `target` of them.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span > 0.0) || !span.is_finite() {
        return (if lo.is_finite() { vec![lo] } else { vec![] }, 1.0);
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nf = if f <= 1.0 + 1e-9 {
        1.0
    } else if f <= 2.0 + 1e-9 {
        2.0
    } else if f <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    let step = nf * mag;
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last.min(first + 100)).map(|i| i as f64 * step).collect();
    (ticks, step)
}

/// A tick label: as many decimals as the step needs, scientific notation for very large or small
/// magnitudes, a true minus sign, and no "-0".
pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    let v = if (v / step).abs() < 1e-6 { 0.0 } else { v };
    let mag = v.abs().max(step.abs());
    let s = if !(1e-3..1e5).contains(&mag) {
        let e = mag.log10().floor();
        let mant_step = step / 10f64.powf(e);
        let dec = (-(mant_step.log10() + 1e-9).floor()).max(0.0) as usize;
        if v == 0.0 {
            "0".to_string()
        } else {
            format!("{:.*}e{}", dec, v / 10f64.powf(e), e as i64)
        }
    } else {
        let dec = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
        format!("{:.*}", dec, v)
    };
    s.replace('-', "\u{2212}")
}

/// A vertical colour bar in `r` for values lo..hi (`cmap` takes t in [0, 1]), ticks and labels on its
/// right and `label` reading upwards beyond them.
pub(crate) fn colorbar(
    cv: &mut Canvas,
    r: Rect,
    (lo, hi): (f64, f64),
    cmap: &dyn Fn(f64) -> Rgb,
    label: &str,
    size: f64,
) {
    for y in r.y0..r.y1 {
        let t = (r.y1 - 1 - y) as f64 / (r.h() - 1).max(1) as f64;
        let c = cmap(t);
        cv.fill_rect(Rect { x0: r.x0, y0: y, x1: r.x1, y1: y + 1 }, c);
    }
    let ax = Axes::new(r, (0.0, 1.0), (lo, hi));
    ax.frame(cv);
    let t = Ticks::labelled(size, 6);
    ax.y_ticks(cv, t, true);
    let lw = ax.y_label_width(t);
    let x = r.x1 as f64 + TICK + 10.0 + lw + Canvas::cap_height(size * 1.1) + 2.0;
    cv.text(label, x, r.cy(), size * 1.1, TEXT, HAlign::Center, VAlign::Baseline, true);
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Swatch {
    Line(Rgb),
    Patch(Rgb),
    /// A line over a band: a curve with its spread, or a contour over the image it is drawn on.
    LineOnBand(Rgb, Rgb),
    /// Dashes over a band.
    DashedOnBand(Rgb, Rgb),
    /// Dots over a band: measured points with their spread.
    DotsOnBand(Rgb, Rgb),
    /// A cross marker (a true value).
    Cross(Rgb),
}

/// A cross marker (arms `arm` pixels long from the centre) with a white halo, so it shows on any
/// background.
pub(crate) fn cross(cv: &mut Canvas, cx: f64, cy: f64, arm: f64, c: Rgb, width: f64, clip: Rect) {
    let segs = [[cx - arm, cy - arm, cx + arm, cy + arm], [cx - arm, cy + arm, cx + arm, cy - arm]];
    cv.segments(&segs, WHITE, width + 2.5, clip);
    cv.segments(&segs, c, width, clip);
}

/// Draws swatch `s`, `sw` pixels wide from x0, centred on cy, for a legend of font `size`.
fn swatch(cv: &mut Canvas, s: Swatch, x0: f64, cy: f64, sw: f64, size: f64, clip: Rect) {
    let band =
        |cv: &mut Canvas, c: Rgb| cv.fill_rects_aa(&[[x0, cy - size * 0.4, x0 + sw, cy + size * 0.4]], c, 1.0, clip);
    match s {
        Swatch::Line(c) => cv.segments(&[[x0, cy, x0 + sw, cy]], c, 2.5, clip),
        Swatch::Patch(c) => band(cv, c),
        Swatch::LineOnBand(c, b) => {
            band(cv, b);
            cv.segments(&[[x0, cy, x0 + sw, cy]], c, 2.0, clip);
        }
        Swatch::DashedOnBand(c, b) => {
            band(cv, b);
            let d = sw / 7.0;
            let segs: Vec<[f64; 4]> =
                [1.0, 3.0, 5.0].iter().map(|k| [x0 + (k - 0.5) * d, cy, x0 + (k + 1.0) * d, cy]).collect();
            cv.segments(&segs, c, 2.0, clip);
        }
        Swatch::DotsOnBand(c, b) => {
            band(cv, b);
            for f in [0.25, 0.75] {
                cv.disc(x0 + f * sw, cy, size * 0.2, c, clip);
            }
        }
        Swatch::Cross(c) => cross(cv, x0 + sw / 2.0, cy, size * 0.3, c, 2.0, clip),
    }
}

/// Width in pixels of the legend [`legend`] would draw.
pub(crate) fn legend_width(entries: &[(Swatch, String)], size: f64) -> f64 {
    let tw = entries.iter().map(|(_, s)| Canvas::text_width(s, size)).fold(0.0, f64::max);
    ((size * 2.2).round() + tw + size * 1.6).round()
}

/// A boxed legend whose top-right corner is at (x, y); returns its rectangle.
pub(crate) fn legend(cv: &mut Canvas, x: f64, y: f64, entries: &[(Swatch, String)], size: f64) -> Rect {
    let row = (size * 1.5).round();
    let sw = (size * 2.2).round();
    let (w, h) = (legend_width(entries, size) as i32, (row * entries.len() as f64 + size * 0.6).round() as i32);
    let r = Rect::new(x.round() as i32 - w, y.round() as i32, w, h);
    cv.fill_rect(r, WHITE);
    cv.outline(r, [150, 150, 150]);
    for (k, (s, text)) in entries.iter().enumerate() {
        let cy = r.y0 as f64 + size * 0.3 + row * (k as f64 + 0.5);
        let x0 = r.x0 as f64 + size * 0.5;
        swatch(cv, *s, x0, cy, sw, size, r);
        cv.text(text, x0 + sw + size * 0.5, cy, size, TEXT, HAlign::Left, VAlign::Center, false);
    }
    r
}

/// Width in pixels of one entry of a [`legend_row`]: swatch, gap and text.
fn row_entry_width(text: &str, size: f64) -> f64 {
    (size * 2.2).round() + size * 0.5 + Canvas::text_width(text, size)
}

/// A boxed legend with all entries on one row, its top-right corner at (x, y); returns its rectangle.
pub(crate) fn legend_row(cv: &mut Canvas, x: f64, y: f64, entries: &[(Swatch, String)], size: f64) -> Rect {
    let sw = (size * 2.2).round();
    let gap = size * 1.2;
    let inner: f64 = entries.iter().map(|(_, t)| row_entry_width(t, size)).sum::<f64>()
        + gap * entries.len().saturating_sub(1) as f64;
    let (w, h) = ((inner + size).round() as i32, (size * 1.8).round() as i32);
    let r = Rect::new(x.round() as i32 - w, y.round() as i32, w, h);
    cv.fill_rect(r, WHITE);
    cv.outline(r, [150, 150, 150]);
    let cy = r.cy();
    let mut x0 = r.x0 as f64 + size * 0.5;
    for (s, text) in entries {
        swatch(cv, *s, x0, cy, sw, size, r);
        cv.text(text, x0 + sw + size * 0.5, cy, size, TEXT, HAlign::Left, VAlign::Center, false);
        x0 += row_entry_width(text, size) + gap;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        let (t, s) = nice_ticks(-1.3, 7.9, 5);
        assert_eq!(s, 2.0);
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0]);
        let (t, s) = nice_ticks(0.0012, 0.0391, 4);
        assert!((s - 0.01).abs() < 1e-15);
        assert_eq!(t.len(), 3);
        assert_eq!(nice_ticks(1.0, 1.0, 4).0, vec![1.0]);
        assert!(nice_ticks(f64::NAN, 1.0, 4).0.is_empty());
        assert_eq!(fmt_tick(-0.30000000000000004, 0.1), "\u{2212}0.3");
        assert_eq!(fmt_tick(1e-17, 0.1), "0.0");
        assert_eq!(fmt_tick(250.0, 50.0), "250");
        assert_eq!(fmt_tick(0.015, 0.005), "0.015");
        assert_eq!(fmt_tick(150000.0, 50000.0), "1.5e5");
        assert_eq!(fmt_tick(0.0002, 0.0001), "2e\u{2212}4");
    }

    #[test]
    fn labels_are_thinned_until_they_fit() {
        let t = Ticks::labelled(14.0, 8);
        let set = fit_ticks((0.0, 123456.0), t, 120.0, Canvas::text_width, 10.0);
        let shown: Vec<_> = set.iter().filter(|s| s.1).collect();
        let w: f64 = shown.iter().map(|s| Canvas::text_width(&s.2, 14.0) + 10.0).sum();
        assert!(w <= 120.0 + 60.0 && !shown.is_empty(), "{set:?}");
        // Labels may not overhang: the end ticks of [-200, 200] lose their labels, not their marks.
        let t = Ticks { overhang: 3.0, ..Ticks::labelled(13.0, 4) };
        let set = fit_ticks((-210.0, 210.0), t, 180.0, Canvas::text_width, 10.0);
        let vals: Vec<f64> = set.iter().map(|s| s.0).collect();
        assert!(vals.contains(&-200.0) && vals.contains(&200.0), "{set:?}");
        assert!(set.iter().filter(|s| s.1).all(|s| s.0.abs() < 200.0), "{set:?}");
        assert!(set.iter().filter(|s| s.1).count() >= 2, "{set:?}");
    }
}
