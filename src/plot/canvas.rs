//! An RGB raster with what the plots need: rectangles (crisp or anti-aliased), anti-aliased lines and
//! discs, text (horizontal or reading upwards) and an atomic PNG writer.
//!
//! Text uses the embedded DejaVu Sans through plotters' `ab_glyph` rasteriser, which hands back glyph
//! coverage per pixel; placement is done here. For a font "size" s (ab_glyph's pixel height, ascent minus
//! descent) DejaVu Sans has its cap height at 0.626 s, and plotters puts the baseline at s / 2 below the
//! origin it is given.
use super::PlotError;
use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};
use plotters::style::{register_font, FontDesc, FontFamily, FontStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub(crate) type Rgb = [u8; 3];

pub(crate) const WHITE: Rgb = [255, 255, 255];
#[cfg(test)]
pub(crate) const BLACK: Rgb = [0, 0, 0];
pub(crate) const TEXT: Rgb = [25, 25, 25];

static FONT_TTF: &[u8] = include_bytes!("assets/DejaVuSans.ttf");
const FONT_NAME: &str = "galacticforge-plot-dejavu-sans";
/// Cap height of DejaVu Sans (1493 font units) over ab_glyph's pixel size (ascent - descent = 2384 units).
const CAP_HEIGHT: f64 = 1493.0 / 2384.0;

/// ab_glyph's pixel size of a font is its ascent minus descent (1901 + 483 font units for DejaVu Sans).
const FONT_HEIGHT_UNITS: f64 = 2384.0;

/// Horizontal metrics of one glyph, in font units.
#[derive(Clone, Copy, Debug)]
struct GlyphMetrics {
    advance: f64,
    lsb: f64,
}

/// Advance widths and left side bearings read from the font's cmap (format 4) and hmtx tables.
struct Metrics {
    map: std::collections::HashMap<char, GlyphMetrics>,
    fallback: GlyphMetrics,
}

impl Metrics {
    fn glyph(&self, c: char) -> GlyphMetrics {
        self.map.get(&c).copied().unwrap_or(self.fallback)
    }
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let map = parse_metrics(FONT_TTF).unwrap_or_default();
        let fallback = GlyphMetrics { advance: 1233.0, lsb: 0.0 };
        Metrics { map, fallback }
    })
}

/// Reads (advance, lsb) for every character of the Basic Multilingual Plane that the font maps.
fn parse_metrics(f: &[u8]) -> Option<std::collections::HashMap<char, GlyphMetrics>> {
    let u16_at = |o: usize| f.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let u32_at = |o: usize| f.get(o..o + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let ntables = u16_at(4)? as usize;
    let table = |tag: &[u8; 4]| -> Option<usize> {
        (0..ntables)
            .find(|i| f.get(12 + 16 * i..16 + 16 * i) == Some(&tag[..]))
            .and_then(|i| u32_at(20 + 16 * i))
            .map(|o| o as usize)
    };
    let (cmap, hhea, hmtx) = (table(b"cmap")?, table(b"hhea")?, table(b"hmtx")?);
    let nmetrics = u16_at(hhea + 34)? as usize;
    let hmetric = |gid: usize| -> Option<GlyphMetrics> {
        let adv = u16_at(hmtx + 4 * gid.min(nmetrics.max(1) - 1))?;
        let lsb = if gid < nmetrics {
            u16_at(hmtx + 4 * gid + 2)?
        } else {
            u16_at(hmtx + 4 * nmetrics + 2 * (gid - nmetrics))?
        };
        Some(GlyphMetrics { advance: adv as f64, lsb: lsb as i16 as f64 })
    };
    // The Windows Unicode BMP subtable (platform 3, encoding 1), format 4.
    let nsub = u16_at(cmap + 2)? as usize;
    let sub = (0..nsub).find_map(|i| {
        let rec = cmap + 4 + 8 * i;
        (u16_at(rec)? == 3 && u16_at(rec + 2)? == 1).then(|| u32_at(rec + 4)).flatten().map(|o| cmap + o as usize)
    })?;
    if u16_at(sub)? != 4 {
        return None;
    }
    let segs = u16_at(sub + 6)? as usize / 2;
    let (ends, starts) = (sub + 14, sub + 16 + 2 * segs);
    let (deltas, ranges) = (starts + 2 * segs, starts + 4 * segs);
    let mut map = std::collections::HashMap::new();
    for i in 0..segs {
        let (start, end) = (u16_at(starts + 2 * i)?, u16_at(ends + 2 * i)?);
        let (delta, range) = (u16_at(deltas + 2 * i)?, u16_at(ranges + 2 * i)?);
        for code in start..=end.min(0xFFFE) {
            let gid = if range == 0 {
                code.wrapping_add(delta)
            } else {
                let at = ranges + 2 * i + range as usize + 2 * (code - start) as usize;
                match u16_at(at)? {
                    0 => 0,
                    g => g.wrapping_add(delta),
                }
            };
            if let (Some(ch), true) = (char::from_u32(code as u32), gid != 0) {
                map.insert(ch, hmetric(gid as usize)?);
            }
        }
    }
    Some(map)
}

/// Kerning between two characters in font units, from the font's kern table through plotters (at a
/// size where one pixel is one font unit, its integer layout width is exact).
fn kern(a: char, b: char) -> f64 {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<(char, char), f64>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(k) = cache.lock().ok().and_then(|m| m.get(&(a, b)).copied()) {
        return k;
    }
    let font = Canvas::font(FONT_HEIGHT_UNITS);
    let width = |s: &str| font.layout_box(s).map(|((x0, _), (x1, _))| (x1 - x0) as f64).ok();
    let pair: String = [a, b].iter().collect();
    let k = match (width(&pair), width(&a.to_string()), width(&b.to_string())) {
        (Some(p), Some(wa), Some(wb)) => p - wa - wb,
        _ => 0.0,
    };
    let k = if k.abs() < FONT_HEIGHT_UNITS { k } else { 0.0 };
    if let Ok(mut m) = cache.lock() {
        m.insert((a, b), k);
    }
    k
}

/// Registers the embedded font with plotters once.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FONT_NAME, FontStyle::Normal, FONT_TTF).is_ok()) {
        Ok(())
    } else {
        Err(PlotError::Font("embedded DejaVu Sans could not be parsed".into()))
    }
}

/// Pixel rectangle `[x0, x1) x [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn new(x0: i32, y0: i32, w: i32, h: i32) -> Rect {
        Rect { x0, y0, x1: x0 + w, y1: y0 + h }
    }
    pub fn w(&self) -> i32 {
        self.x1 - self.x0
    }
    pub fn h(&self) -> i32 {
        self.y1 - self.y0
    }
    pub fn cx(&self) -> f64 {
        (self.x0 + self.x1) as f64 / 2.0
    }
    pub fn cy(&self) -> f64 {
        (self.y0 + self.y1) as f64 / 2.0
    }
    fn intersect(&self, o: &Rect) -> Rect {
        Rect { x0: self.x0.max(o.x0), y0: self.y0.max(o.y0), x1: self.x1.min(o.x1), y1: self.y1.min(o.y1) }
    }
    fn is_empty(&self) -> bool {
        self.x1 <= self.x0 || self.y1 <= self.y0
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Which line of the text lands on the given y: the top of the capitals, their middle, or the baseline.
#[derive(Clone, Copy, Debug)]
pub(crate) enum VAlign {
    Top,
    Center,
    Baseline,
}

pub(crate) struct Canvas {
    pub w: u32,
    pub h: u32,
    px: Vec<u8>,
}

impl Canvas {
    /// A white canvas; fails only if the embedded font cannot be loaded or the size is absurd.
    pub fn new(w: u32, h: u32) -> Result<Canvas, PlotError> {
        ensure_font()?;
        if w == 0 || h == 0 || (w as u64) * (h as u64) > 400_000_000 {
            return Err(PlotError::InvalidInput(format!("image size {w}x{h} is out of range")));
        }
        Ok(Canvas { w, h, px: vec![255; w as usize * h as usize * 3] })
    }

    pub fn bounds(&self) -> Rect {
        Rect { x0: 0, y0: 0, x1: self.w as i32, y1: self.h as i32 }
    }

    #[cfg(test)]
    pub fn get(&self, x: i32, y: i32) -> Rgb {
        let i = (y as usize * self.w as usize + x as usize) * 3;
        [self.px[i], self.px[i + 1], self.px[i + 2]]
    }

    pub fn set(&mut self, x: i32, y: i32, c: Rgb) {
        if x < 0 || y < 0 || x >= self.w as i32 || y >= self.h as i32 {
            return;
        }
        let i = (y as usize * self.w as usize + x as usize) * 3;
        self.px[i..i + 3].copy_from_slice(&c);
    }

    /// Paints `c` over pixel (x, y) with opacity `a` in [0, 1].
    pub fn blend(&mut self, x: i32, y: i32, c: Rgb, a: f32) {
        if x < 0 || y < 0 || x >= self.w as i32 || y >= self.h as i32 || !(a > 0.0) {
            return;
        }
        if a >= 1.0 {
            return self.set(x, y, c);
        }
        let i = (y as usize * self.w as usize + x as usize) * 3;
        for (p, &ck) in self.px[i..i + 3].iter_mut().zip(&c) {
            let d = *p as f32;
            *p = (d + (ck as f32 - d) * a).round().clamp(0.0, 255.0) as u8;
        }
    }

    /// Fills the pixel rectangle `[x0, x1) x [y0, y1)` (clipped to the canvas).
    pub fn fill_rect(&mut self, r: Rect, c: Rgb) {
        let r = r.intersect(&self.bounds());
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                self.set(x, y, c);
            }
        }
    }

    /// One-pixel-wide outline drawn just outside `r`.
    pub fn outline(&mut self, r: Rect, c: Rgb) {
        self.fill_rect(Rect { x0: r.x0 - 1, y0: r.y0 - 1, x1: r.x1 + 1, y1: r.y0 }, c);
        self.fill_rect(Rect { x0: r.x0 - 1, y0: r.y1, x1: r.x1 + 1, y1: r.y1 + 1 }, c);
        self.fill_rect(Rect { x0: r.x0 - 1, y0: r.y0, x1: r.x0, y1: r.y1 }, c);
        self.fill_rect(Rect { x0: r.x1, y0: r.y0, x1: r.x1 + 1, y1: r.y1 }, c);
    }

    /// Fills rectangles given in continuous pixel coordinates (x0, y0, x1, y1) with exact area coverage
    /// at their edges, as one layer of opacity `alpha` (touching rectangles leave no seam), clipped to `clip`.
    pub fn fill_rects_aa(&mut self, rects: &[[f64; 4]], c: Rgb, alpha: f32, clip: Rect) {
        let mut bb = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        for r in rects.iter().filter(|r| r.iter().all(|v| v.is_finite())) {
            bb = [
                bb[0].min(r[0].min(r[2])),
                bb[1].min(r[1].min(r[3])),
                bb[2].max(r[0].max(r[2])),
                bb[3].max(r[1].max(r[3])),
            ];
        }
        if !bb[0].is_finite() {
            return;
        }
        let area = Rect {
            x0: bb[0].floor() as i32,
            y0: bb[1].floor() as i32,
            x1: bb[2].ceil() as i32,
            y1: bb[3].ceil() as i32,
        }
        .intersect(&clip)
        .intersect(&self.bounds());
        if area.is_empty() {
            return;
        }
        let aw = area.w() as usize;
        let mut cov = vec![0f32; aw * area.h() as usize];
        for r in rects.iter().filter(|r| r.iter().all(|v| v.is_finite())) {
            let (x0, x1) = (r[0].min(r[2]), r[0].max(r[2]));
            let (y0, y1) = (r[1].min(r[3]), r[1].max(r[3]));
            let px0 = (x0.floor() as i32).max(area.x0);
            let px1 = (x1.ceil() as i32).min(area.x1);
            let py0 = (y0.floor() as i32).max(area.y0);
            let py1 = (y1.ceil() as i32).min(area.y1);
            for py in py0..py1 {
                let fy = (y1.min(py as f64 + 1.0) - y0.max(py as f64)).max(0.0);
                for px in px0..px1 {
                    let fx = (x1.min(px as f64 + 1.0) - x0.max(px as f64)).max(0.0);
                    let i = (py - area.y0) as usize * aw + (px - area.x0) as usize;
                    cov[i] += (fx * fy) as f32;
                }
            }
        }
        self.apply_coverage(area, &cov, c, alpha);
    }

    fn apply_coverage(&mut self, area: Rect, cov: &[f32], c: Rgb, alpha: f32) {
        let aw = area.w() as usize;
        for (i, &v) in cov.iter().enumerate() {
            if v > 0.0 {
                let x = area.x0 + (i % aw) as i32;
                let y = area.y0 + (i / aw) as i32;
                self.blend(x, y, c, v.min(1.0) * alpha);
            }
        }
    }

    /// Anti-aliased line segments `[x0, y0, x1, y1]` of the given width, drawn as one layer (joints are
    /// not darkened), clipped to `clip`. Segments with non-finite ends are skipped.
    pub fn segments(&mut self, segs: &[[f64; 4]], c: Rgb, width: f64, clip: Rect) {
        let hw = (width / 2.0).max(0.3);
        let finite = |s: &&[f64; 4]| s.iter().all(|v| v.is_finite());
        let mut bb = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        for s in segs.iter().filter(finite) {
            bb = [
                bb[0].min(s[0].min(s[2])),
                bb[1].min(s[1].min(s[3])),
                bb[2].max(s[0].max(s[2])),
                bb[3].max(s[1].max(s[3])),
            ];
        }
        if !bb[0].is_finite() {
            return;
        }
        let pad = hw + 1.0;
        let area = Rect {
            x0: (bb[0] - pad).floor().max(-1e6) as i32,
            y0: (bb[1] - pad).floor().max(-1e6) as i32,
            x1: (bb[2] + pad).ceil().min(1e6) as i32,
            y1: (bb[3] + pad).ceil().min(1e6) as i32,
        }
        .intersect(&clip)
        .intersect(&self.bounds());
        if area.is_empty() {
            return;
        }
        let aw = area.w() as usize;
        let mut cov = vec![0f32; aw * area.h() as usize];
        for s in segs.iter().filter(finite) {
            let sb = Rect {
                x0: (s[0].min(s[2]) - pad).floor().max(area.x0 as f64) as i32,
                y0: (s[1].min(s[3]) - pad).floor().max(area.y0 as f64) as i32,
                x1: (s[0].max(s[2]) + pad).ceil().min(area.x1 as f64) as i32,
                y1: (s[1].max(s[3]) + pad).ceil().min(area.y1 as f64) as i32,
            };
            let (dx, dy) = (s[2] - s[0], s[3] - s[1]);
            let len2 = dx * dx + dy * dy;
            for py in sb.y0..sb.y1 {
                for px in sb.x0..sb.x1 {
                    let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                    let t =
                        if len2 > 0.0 { (((cx - s[0]) * dx + (cy - s[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                    let (ex, ey) = (s[0] + t * dx - cx, s[1] + t * dy - cy);
                    let a = (hw + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0) as f32;
                    let i = (py - area.y0) as usize * aw + (px - area.x0) as usize;
                    if a > cov[i] {
                        cov[i] = a;
                    }
                }
            }
        }
        self.apply_coverage(area, &cov, c, 1.0);
    }

    /// Anti-aliased polyline through `pts`; a non-finite point breaks the line.
    pub fn polyline(&mut self, pts: &[(f64, f64)], c: Rgb, width: f64, clip: Rect) {
        let segs: Vec<[f64; 4]> = pts
            .windows(2)
            .filter(|w| w[0].0.is_finite() && w[0].1.is_finite() && w[1].0.is_finite() && w[1].1.is_finite())
            .map(|w| [w[0].0, w[0].1, w[1].0, w[1].1])
            .collect();
        self.segments(&segs, c, width, clip);
    }

    /// Anti-aliased filled disc.
    pub fn disc(&mut self, cx: f64, cy: f64, r: f64, c: Rgb, clip: Rect) {
        let area = Rect {
            x0: (cx - r - 1.0).floor() as i32,
            y0: (cy - r - 1.0).floor() as i32,
            x1: (cx + r + 1.0).ceil() as i32,
            y1: (cy + r + 1.0).ceil() as i32,
        }
        .intersect(&clip);
        for py in area.y0..area.y1 {
            for px in area.x0..area.x1 {
                let d = ((px as f64 + 0.5 - cx).powi(2) + (py as f64 + 0.5 - cy).powi(2)).sqrt();
                self.blend(px, py, c, (r + 0.5 - d).clamp(0.0, 1.0) as f32);
            }
        }
    }

    fn font(size: f64) -> FontDesc<'static> {
        FontDesc::new(FontFamily::Name(FONT_NAME), size, FontStyle::Normal)
    }

    /// Advance width of `s` in pixels at font size `size` (kerning included).
    pub fn text_width(s: &str, size: f64) -> f64 {
        let scale = size / FONT_HEIGHT_UNITS;
        let mut w = 0.0;
        let mut prev = None;
        for c in s.chars() {
            let m = metrics().glyph(c);
            if let Some(p) = prev {
                w += kern(p, c) * scale;
            }
            w += m.advance * scale;
            prev = Some(c);
        }
        w
    }

    /// Cap height in pixels at font size `size`.
    pub fn cap_height(size: f64) -> f64 {
        CAP_HEIGHT * size
    }

    /// Draws `s` anchored at (x, y). `vertical` text reads upwards (rotated 90 degrees anticlockwise); the
    /// anchors then refer to the text's own frame (Left = its start, at the bottom).
    ///
    /// Glyphs are rasterised one at a time by plotters (which places a glyph's ink, not its origin, at
    /// the pen) and positioned here with the advance, left side bearing and kerning of the font.
    #[allow(clippy::too_many_arguments)]
    pub fn text(&mut self, s: &str, x: f64, y: f64, size: f64, c: Rgb, ha: HAlign, va: VAlign, vertical: bool) {
        if s.is_empty() || !x.is_finite() || !y.is_finite() || !(size > 0.0) {
            return;
        }
        let font = Self::font(size);
        let scale = size / FONT_HEIGHT_UNITS;
        let width = Self::text_width(s, size);
        let u0 = match ha {
            HAlign::Left => 0.0,
            HAlign::Center => width / 2.0,
            HAlign::Right => width,
        };
        let cap = Self::cap_height(size);
        // Offset of the anchor below the baseline (negative: above).
        let v0 = match va {
            VAlign::Top => -cap,
            VAlign::Center => -cap / 2.0,
            VAlign::Baseline => 0.0,
        };
        // plotters puts the baseline size / 2 below the origin it is given.
        let base = size / 2.0;
        let mut pen = -u0;
        let mut prev = None;
        let mut buf = [0u8; 4];
        for ch in s.chars() {
            let m = metrics().glyph(ch);
            if let Some(p) = prev {
                pen += kern(p, ch) * scale;
            }
            prev = Some(ch);
            let ink_x = pen.round() as i32 + (m.lsb * scale).floor() as i32;
            pen += m.advance * scale;
            let mut glyph: Vec<(i32, i32, f32)> = Vec::new();
            let _ = font.draw(ch.encode_utf8(&mut buf), (0, 0), |gx, gy, a| {
                glyph.push((gx, gy, a));
                Ok::<(), ()>(())
            });
            for (gx, gy, a) in glyph {
                // (u, v): along the text from the anchor, and below the baseline.
                let u = ink_x + gx;
                let v = gy - (base + v0).round() as i32;
                if vertical {
                    self.blend(x.round() as i32 + v, y.round() as i32 - u - 1, c, a);
                } else {
                    self.blend(x.round() as i32 + u, y.round() as i32 + v, c, a);
                }
            }
        }
    }

    /// Writes the canvas as an RGB PNG to `<path>.tmp`, then renames it to `path`.
    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| PlotError::Io(format!("{}: cannot create folder: {e}", parent.display())))?;
            }
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let result = (|| -> Result<(), String> {
            let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            let mut w = std::io::BufWriter::new(file);
            PngEncoder::new(&mut w)
                .write_image(&self.px, self.w, self.h, ExtendedColorType::Rgb8)
                .map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())?;
            drop(w);
            std::fs::rename(&tmp, path).map_err(|e| e.to_string())
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            PlotError::Io(format!("{}: {e}", path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_inside_its_anchor_box() {
        let mut cv = Canvas::new(200, 100).unwrap();
        let w = Canvas::text_width("Hello [Fe/H]", 20.0);
        assert!(w > 80.0 && w < 160.0, "width {w}");
        cv.text("HHHH", 100.0, 50.0, 20.0, BLACK, HAlign::Center, VAlign::Center, false);
        let (mut ymin, mut ymax, mut xmin, mut xmax) = (i32::MAX, i32::MIN, i32::MAX, i32::MIN);
        for y in 0..100 {
            for x in 0..200 {
                if cv.get(x, y)[0] < 128 {
                    ymin = ymin.min(y);
                    ymax = ymax.max(y);
                    xmin = xmin.min(x);
                    xmax = xmax.max(x);
                }
            }
        }
        // Capitals centred on (100, 50): ink spans about the cap height (12.5 px) around y = 50.
        assert!((ymin - 44).abs() <= 2 && (ymax - 56).abs() <= 2, "y ink {ymin}..{ymax}");
        assert!(((xmin + xmax) / 2 - 100).abs() <= 2, "x ink {xmin}..{xmax}");
    }

    #[test]
    fn vertical_text_reads_upwards() {
        let mut cv = Canvas::new(100, 200).unwrap();
        cv.text("HHHHHH", 50.0, 100.0, 20.0, BLACK, HAlign::Center, VAlign::Center, true);
        let (mut ymin, mut ymax, mut xmin, mut xmax) = (i32::MAX, i32::MIN, i32::MAX, i32::MIN);
        for y in 0..200 {
            for x in 0..100 {
                if cv.get(x, y)[0] < 128 {
                    ymin = ymin.min(y);
                    ymax = ymax.max(y);
                    xmin = xmin.min(x);
                    xmax = xmax.max(x);
                }
            }
        }
        assert!(ymax - ymin > 60 && xmax - xmin < 16, "ink {xmin}..{xmax} x {ymin}..{ymax}");
        assert!(((ymin + ymax) / 2 - 100).abs() <= 2 && ((xmin + xmax) / 2 - 50).abs() <= 2);
    }

    #[test]
    fn save_is_atomic_and_decodable() {
        let dir = super::super::testutil::tmp_dir("canvas");
        let path = dir.join("sub/one.png");
        let mut cv = Canvas::new(30, 20).unwrap();
        cv.fill_rect(Rect::new(0, 0, 10, 10), [255, 0, 0]);
        cv.save_png(&path).unwrap();
        assert!(!dir.join("sub/one.png.tmp").exists());
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (30, 20));
        assert_eq!(img.get_pixel(5, 5).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(15, 15).0, [255, 255, 255]);
    }

    #[test]
    fn lines_and_rects_are_antialiased_and_clipped() {
        let mut cv = Canvas::new(50, 50).unwrap();
        let clip = Rect::new(10, 10, 30, 30);
        cv.polyline(&[(0.0, 25.5), (50.0, 25.5), (f64::NAN, 0.0), (3.0, 3.0)], BLACK, 1.0, clip);
        assert_eq!(cv.get(20, 25), BLACK);
        assert_eq!(cv.get(5, 25), WHITE, "clipped");
        assert_eq!(cv.get(20, 24), WHITE);
        cv.fill_rects_aa(&[[10.0, 10.0, 12.5, 12.0], [12.5, 10.0, 15.0, 12.0]], BLACK, 1.0, clip);
        assert_eq!(cv.get(12, 11), BLACK, "touching rectangles leave no seam");
    }
}
