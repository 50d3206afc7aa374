//! A labelled grid of small images (autoencoder inputs and reconstructions, say).
use super::canvas::{Canvas, HAlign, Rect, VAlign, TEXT};
use super::{invalid, PlotError};
use std::path::Path;

/// Tiles are enlarged (nearest neighbour, whole factors) until their longer side reaches this.
const TARGET: usize = 128;
const PAD: i32 = 14;
const LABEL_H: i32 = 26;
const MAX_TILES: usize = 4096;
const MAX_SIDE: usize = 4096;
/// Colour of a non-finite pixel value.
pub(crate) const NAN_COLOUR: [u8; 3] = [255, 0, 255];

/// Geometry of an image grid.
pub(crate) struct ImagesLayout {
    pub w: u32,
    pub h: u32,
    cols: usize,
    cell: (i32, i32),
    label_h: i32,
}

impl ImagesLayout {
    fn new(sizes: &[(usize, usize)], cols: usize, labelled: bool) -> ImagesLayout {
        let n = sizes.len();
        let cols = if cols == 0 { (n as f64).sqrt().ceil() as usize } else { cols.min(n) }.max(1);
        let rows = n.div_ceil(cols);
        let cw = sizes.iter().map(|&(w, h)| w * scale(w, h)).max().unwrap_or(1) as i32;
        let ch = sizes.iter().map(|&(w, h)| h * scale(w, h)).max().unwrap_or(1) as i32;
        let label_h = if labelled { LABEL_H } else { 0 };
        ImagesLayout {
            w: (PAD + cols as i32 * (cw + PAD)) as u32,
            h: (PAD + rows as i32 * (ch + label_h + PAD)) as u32,
            cols,
            cell: (cw, ch),
            label_h,
        }
    }
    /// The cell (tile area, without its label) of tile `k`.
    pub fn cell(&self, k: usize) -> Rect {
        let (c, r) = ((k % self.cols) as i32, (k / self.cols) as i32);
        Rect::new(PAD + c * (self.cell.0 + PAD), PAD + r * (self.cell.1 + self.label_h + PAD), self.cell.0, self.cell.1)
    }
}

fn scale(w: usize, h: usize) -> usize {
    (TARGET / w.max(h).max(1)).max(1)
}

/// Grid of images, `cols` per row (0: about square), each tile `(pixels, width, height)` with
/// `pixels` either `width * height` grey values or `3 * width * height` interleaved RGB values
/// (row-major, top row first), in [0, 1] (clamped; non-finite values show magenta). Tiles are
/// enlarged by a whole factor to about 128 pixels and centred in equal cells, with `labels[k]` (when
/// given) under tile k. Empty `tiles`, a zero side or a length that fits neither layout is an error.
pub fn images(
    path: impl AsRef<Path>,
    tiles: &[(&[f32], usize, usize)],
    cols: usize,
    labels: &[&str],
) -> Result<(), PlotError> {
    if tiles.is_empty() || tiles.len() > MAX_TILES {
        return Err(invalid(format!("images: {} tiles, must be 1..={MAX_TILES}", tiles.len())));
    }
    for (k, &(px, w, h)) in tiles.iter().enumerate() {
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(invalid(format!("images: tile {k} is {w} x {h}, sides must be 1..={MAX_SIDE}")));
        }
        if px.len() != w * h && px.len() != 3 * w * h {
            return Err(invalid(format!(
                "images: tile {k} has {} values, neither {w} x {h} grey nor {w} x {h} x 3 RGB",
                px.len()
            )));
        }
    }
    let sizes: Vec<(usize, usize)> = tiles.iter().map(|t| (t.1, t.2)).collect();
    let labelled = labels.iter().any(|l| !l.is_empty());
    let lay = ImagesLayout::new(&sizes, cols, labelled);
    let mut cv = Canvas::new(lay.w, lay.h)?;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for (k, &(px, w, h)) in tiles.iter().enumerate() {
        let cell = lay.cell(k);
        let s = scale(w, h) as i32;
        let (tw, th) = (w as i32 * s, h as i32 * s);
        let r = Rect::new(cell.x0 + (cell.w() - tw) / 2, cell.y0 + (cell.h() - th) / 2, tw, th);
        let rgb = px.len() == 3 * w * h;
        for y in 0..h {
            for x in 0..w {
                let c = if rgb {
                    let p = &px[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    if p.iter().all(|v| v.is_finite()) {
                        [to_u8(p[0]), to_u8(p[1]), to_u8(p[2])]
                    } else {
                        NAN_COLOUR
                    }
                } else {
                    let v = px[y * w + x];
                    if v.is_finite() {
                        [to_u8(v); 3]
                    } else {
                        NAN_COLOUR
                    }
                };
                cv.fill_rect(Rect::new(r.x0 + x as i32 * s, r.y0 + y as i32 * s, s, s), c);
            }
        }
        cv.outline(r, [170, 170, 170]);
        if let Some(l) = labels.get(k) {
            cv.text(l, cell.cx(), cell.y1 as f64 + 8.0, 15.0, TEXT, HAlign::Center, VAlign::Top, false);
        }
    }
    cv.save_png(path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{load, tmp_dir};
    use super::*;

    #[test]
    fn tiles_land_in_their_cells() {
        let dir = tmp_dir("images");
        let red: Vec<f32> = (0..16 * 16).flat_map(|_| [1.0, 0.0, 0.0]).collect();
        let ramp: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 31.0).collect();
        let mut nan = vec![0.5f32; 8 * 8];
        nan[0] = f32::NAN;
        let tiles: [(&[f32], usize, usize); 3] = [(&red, 16, 16), (&ramp, 32, 32), (&nan, 8, 8)];
        let path = dir.join("i.png");
        images(&path, &tiles, 2, &["input", "reconstruction", "nan"]).unwrap();
        let img = load(&path);
        let lay = ImagesLayout::new(&[(16, 16), (32, 32), (8, 8)], 2, true);
        assert_eq!(img.dimensions(), (lay.w, lay.h));
        let c0 = lay.cell(0);
        assert_eq!(img.get_pixel(c0.cx() as u32, c0.cy() as u32).0, [255, 0, 0]);
        let c1 = lay.cell(1);
        assert_eq!(img.get_pixel(c1.x0 as u32 + 1, c1.cy() as u32).0, [0, 0, 0], "ramp starts black");
        assert_eq!(img.get_pixel(c1.x1 as u32 - 2, c1.cy() as u32).0, [255, 255, 255], "and ends white");
        let c2 = lay.cell(2);
        assert_eq!(img.get_pixel(c2.x0 as u32 + 1, c2.y0 as u32 + 1).0, NAN_COLOUR);
        assert_eq!(img.get_pixel(c2.cx() as u32, c2.cy() as u32).0, [128, 128, 128]);
    }

    #[test]
    fn bad_tiles_are_errors() {
        let dir = tmp_dir("images-bad");
        let p = dir.join("i.png");
        assert!(images(&p, &[], 0, &[]).is_err());
        assert!(images(&p, &[(&[0.0; 5][..], 2, 2)], 0, &[]).is_err());
        assert!(images(&p, &[(&[][..], 0, 0)], 0, &[]).is_err());
        assert!(!p.exists());
        images(&p, &[(&[0.2; 12][..], 2, 2)], 5, &[]).unwrap();
    }
}
