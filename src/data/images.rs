//! Galaxy images for the autoencoder: mock images rendered from star particles, and loading of any
//! folder of PNG/JPEG images as 3 x S x S arrays in [0, 1] (GalacticForge resizes to 448 x 448).
//!
//! Rendering (`render`): rotate the stars into a [`View`] (inclination about x, then position angle in
//! the sky plane), deposit each star's light in three bands, spread over an adaptive Gaussian (about 16
//! projected neighbours, so a few thousand particles give smooth discs) combined with a Gaussian PSF, add
//! Gaussian sky noise, then a colour-preserving asinh stretch (Lupton et al. 2004).
//! Light is kept in physical units (L_sun/pc^2 of a band normalised to L/M = 1 for a 5 Gyr solar
//! population) and every galaxy is framed with the same field of view and the same stretch, so apparent
//! size, surface brightness and colour in the PNG carry the galaxy's size, mass and stellar population.
//!
//! Colour model (a simple documented stand-in for SSP tables): for band b in (i, r, g),
//! `log10(L_b / M) = -beta_b log10(age / 5 Gyr) - gamma_b log10(Z / Z_sun)`, with beta = (0.65, 0.8, 1.0)
//! and gamma = (0.05, 0.12, 0.25): young stars are brighter and bluer, old and metal-rich stars redder
//! (g - i rises by ~0.9 mag from 1 to 10 Gyr, a little more than real SSPs' ~0.6, so colour reads easily).
//! Bands i, r, g map to the R, G, B channels.
use super::synth::Z_SUN;
use super::{AGE, MASS, METALS};
use crate::error::{Error, Result};
use ndarray::{Array2, Array3, ArrayView2, Axis};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A 3 x S x S image (channel-major R, G, B, like a CHW tensor); rendered and loaded images are in [0, 1].
pub type Image = Array3<f32>;

/// File extensions `load_folder` reads (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Per band (i, r, g = R, G, B): fading with age and reddening with metallicity (see the module notes).
const BETA_AGE: [f64; 3] = [0.65, 0.8, 1.0];
const GAMMA_Z: [f64; 3] = [0.05, 0.12, 0.25];
/// Age [Gyr] at which a solar population has L/M = 1 in every band (renders white).
const AGE_REF: f64 = 5.0;
/// Clamps of the colour model: younger stars would be arbitrarily bright, Z <= 0 has no logarithm.
const AGE_RANGE: (f64, f64) = (0.1, 14.0);
const LOG_Z_RANGE: (f64, f64) = (-2.5, 0.7);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderConfig {
    /// Side of the square image [pixels] (GalacticForge's autoencoder reads 448).
    pub size: usize,
    /// Full width of the field of view [kpc], centred on the origin of the star coordinates. The same for
    /// every galaxy so that apparent size is physical size: 50 kpc holds the largest synthetic discs
    /// (R_d ~ 4 kpc, light visible to ~5 R_d; only edge-on ones touch the border) and still gives the
    /// smallest (R_d ~ 1 kpc) ~ 9 pixels per scale length at 448.
    pub fov_kpc: f32,
    /// PSF sigma [pixels]: the seeing, 0.17 kpc at the default frame (shot noise is the smoothing's job).
    pub psf_sigma_px: f32,
    /// Adaptive smoothing: each star is spread over about this many of its projected neighbours
    /// (0: every star is a point blurred by the PSF alone). See `render_linear`.
    pub smooth_neighbours: f32,
    /// Largest smoothing sigma [pixels] of a star, so a lone outlier stays a local smudge.
    pub max_smooth_px: f32,
    /// Sky noise per pixel and band [L_sun/pc^2], added before the stretch (~1/255 after it).
    pub sky_sigma: f32,
    /// asinh softening [L_sun/pc^2]: linear below it, logarithmic above (faint outer discs stay visible).
    pub soft: f32,
    /// Mean-band surface brightness [L_sun/pc^2] that maps to 1 (bulge centres of the most massive
    /// synthetic galaxies reach it).
    pub max_sb: f32,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            size: 448,
            fov_kpc: 50.0,
            psf_sigma_px: 1.5,
            smooth_neighbours: 16.0,
            max_smooth_px: 16.0,
            sky_sigma: 0.5,
            soft: 5.0,
            max_sb: 3000.0,
        }
    }
}

impl RenderConfig {
    /// Pixel side [kpc].
    pub fn kpc_per_pixel(&self) -> f32 {
        self.fov_kpc / self.size as f32
    }

    fn check(&self) -> Result<()> {
        let pos = |v: f32| v.is_finite() && v > 0.0;
        if self.size == 0 || self.size > 8192 {
            return Err(Error::Usage(format!("image size {} must be 1..=8192 pixels", self.size)));
        }
        if !pos(self.fov_kpc) || !pos(self.soft) || !pos(self.max_sb) {
            return Err(Error::Usage("field of view, softening and max surface brightness must be > 0".into()));
        }
        if !(self.psf_sigma_px.is_finite() && self.psf_sigma_px >= 0.0 && self.psf_sigma_px <= 100.0) {
            return Err(Error::Usage(format!("PSF sigma {} must be in [0, 100] pixels", self.psf_sigma_px)));
        }
        let ok = |v: f32| v.is_finite() && (0.0..=100.0).contains(&v);
        if !ok(self.smooth_neighbours) || !ok(self.max_smooth_px) {
            return Err(Error::Usage("smoothing neighbours and max smoothing must be in [0, 100]".into()));
        }
        if !(self.sky_sigma.is_finite() && self.sky_sigma >= 0.0) {
            return Err(Error::Usage(format!("sky noise {} must be >= 0", self.sky_sigma)));
        }
        Ok(())
    }
}

/// Viewing angles [radians]: the truth stored with each rendered image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Angle between the disc's z axis and the line of sight, in [0, pi/2]: 0 face-on, pi/2 edge-on.
    /// pi - i would give the mirror image of an optically thin galaxy, so the half range suffices.
    pub inclination: f64,
    /// Angle of the projected major axis, counter-clockwise from the image's +x (right) axis, in [0, pi):
    /// the major axis is a line, and a turn by pi of an optically thin disc is statistically the same image.
    pub position_angle: f64,
}

impl View {
    pub const FACE_ON: View = View { inclination: 0.0, position_angle: 0.0 };

    /// Isotropic orientation: cos i uniform in [0, 1], position angle uniform in [0, pi).
    pub fn draw<R: Rng + ?Sized>(rng: &mut R) -> View {
        let cos_i: f64 = rng.random();
        View { inclination: cos_i.acos(), position_angle: std::f64::consts::PI * rng.random::<f64>() }
    }

    /// Sky-plane position (X right, Y up) of a point in galaxy coordinates: tilt about x by the
    /// inclination, then turn the sky plane by the position angle (the x axis, which the tilt keeps at
    /// full length, becomes the major axis).
    fn project(&self) -> impl Fn(f64, f64, f64) -> (f64, f64) {
        let (si, ci) = self.inclination.sin_cos();
        let (sp, cp) = self.position_angle.sin_cos();
        move |x, y, z| {
            let y1 = y * ci - z * si;
            (x * cp - y1 * sp, x * sp + y1 * cp)
        }
    }
}

/// Light per unit mass [L_sun/M_sun] in bands (i, r, g) of a star of `age` [Gyr] and metallicity `z`.
pub fn light_to_mass(age: f32, z: f32) -> [f32; 3] {
    let la = (f64::from(age).clamp(AGE_RANGE.0, AGE_RANGE.1) / AGE_REF).log10();
    let lz = if z > 0.0 { (f64::from(z) / Z_SUN).log10().clamp(LOG_Z_RANGE.0, LOG_Z_RANGE.1) } else { LOG_Z_RANGE.0 };
    std::array::from_fn(|b| 10f64.powf(-BETA_AGE[b] * la - GAMMA_Z[b] * lz) as f32)
}

fn check_stars(stars: &Array2<f32>) -> Result<()> {
    if stars.ncols() != super::COLUMNS.len() {
        return Err(Error::shape("render", format!("stars are {:?}; expected [N, 11] columns", stars.shape())));
    }
    Ok(())
}

/// Sigma [pixels] of the pilot map of star counts from which each star's local density is read.
const PILOT_SIGMA: f32 = 4.0;

/// Cloud-in-cell deposit of `w` at pixel position (u, v) (pixel centres at whole numbers) into `band`.
fn deposit(band: &mut ndarray::ArrayViewMut2<f32>, u: f64, v: f64, w: f32) {
    let (h, wd) = band.dim();
    let (u0, v0) = (u.floor(), v.floor());
    let (fu, fv) = ((u - u0) as f32, (v - v0) as f32);
    for (dv, wv) in [(0, 1.0 - fv), (1, fv)] {
        for (du, wu) in [(0, 1.0 - fu), (1, fu)] {
            let (c, r) = (u0 as isize + du, v0 as isize + dv);
            if c >= 0 && r >= 0 && (c as usize) < wd && (r as usize) < h {
                band[[r as usize, c as usize]] += w * wu * wv;
            }
        }
    }
}

/// Surface brightness [L_sun/pc^2] per band after smoothing and PSF, before noise and stretch: linear in
/// the star masses (the smoothing depends on positions only). Stars with a non-finite value or
/// non-positive mass, and light outside the frame, are dropped.
///
/// Each star is spread over a Gaussian of sigma h = sqrt(k / (pi n)), n its projected number density, so
/// that about `smooth_neighbours` stars overlap it (as SPH renderers do): an isolated outer particle then
/// shows the local surface brightness instead of a bright dot. Stars are binned into levels of sigma
/// (sqrt 2 apart), each level deposited cloud-in-cell and blurred once with the level's sigma combined
/// with the PSF, so the cost is a few separable blurs whatever the number of stars.
pub fn render_linear(stars: &Array2<f32>, cfg: &RenderConfig, view: &View) -> Result<Image> {
    check_stars(stars)?;
    cfg.check()?;
    let s = cfg.size;
    let pix = f64::from(cfg.kpc_per_pixel());
    let per_area = 1.0 / (pix * 1e3 * pix * 1e3); // per pc^2
    let half = 0.5 * f64::from(cfg.fov_kpc);
    let proj = view.project();
    // Stars within a smoothing length of the frame still shine into it.
    let margin = f64::from(cfg.max_smooth_px.max(cfg.psf_sigma_px)) * 3.0 + 1.0;
    let mut pts: Vec<(f64, f64, [f32; 3])> = Vec::with_capacity(stars.nrows());
    for row in stars.outer_iter() {
        let (m, age, z) = (row[MASS], row[AGE], row[METALS]);
        if m <= 0.0 || !row.iter().all(|v| v.is_finite()) {
            continue;
        }
        let (x, y) = proj(f64::from(row[0]), f64::from(row[1]), f64::from(row[2]));
        // Row 0 is the top (+Y) of the image.
        let (u, v) = ((x + half) / pix - 0.5, (half - y) / pix - 0.5);
        if u > -margin && v > -margin && u < s as f64 + margin && v < s as f64 + margin {
            let w = (f64::from(m) * per_area) as f32;
            pts.push((u, v, light_to_mass(age, z).map(|l| l * w)));
        }
    }
    // Pilot density on a grid padded by the margin, so stars just outside the frame get a density too.
    let pad = margin.ceil() as usize;
    let density = if cfg.smooth_neighbours > 0.0 {
        let mut counts = Array2::<f32>::zeros((s + 2 * pad, s + 2 * pad));
        for &(u, v, _) in &pts {
            deposit(&mut counts.view_mut(), u + pad as f64, v + pad as f64, 1.0);
        }
        Some(gaussian_blur(counts.view(), PILOT_SIGMA))
    } else {
        None
    };
    let base = cfg.psf_sigma_px.max(0.5);
    let level_sigma = |l: usize| if l == 0 { cfg.psf_sigma_px } else { base * 2f32.powf(l as f32 / 2.0) };
    let mut levels: Vec<Option<Image>> = Vec::new();
    for &(u, v, light) in &pts {
        let l = match &density {
            Some(d) => {
                let (r, c) = ((v + pad as f64).round() as usize, (u + pad as f64).round() as usize);
                let n = d.get((r, c)).copied().unwrap_or(0.0).max(1e-6);
                let h = (cfg.smooth_neighbours / (std::f32::consts::PI * n)).sqrt().min(cfg.max_smooth_px);
                let total = (h * h + cfg.psf_sigma_px.powi(2)).sqrt();
                if total <= base * 2f32.powf(0.25) {
                    0
                } else {
                    (2.0 * (total / base).log2()).round().max(1.0) as usize
                }
            }
            None => 0,
        };
        if levels.len() <= l {
            levels.resize(l + 1, None);
        }
        let layer = levels[l].get_or_insert_with(|| Image::zeros((3, s, s)));
        for (b, mut band) in layer.outer_iter_mut().enumerate() {
            deposit(&mut band, u, v, light[b]);
        }
    }
    let mut img = Image::zeros((3, s, s));
    for (l, layer) in levels.iter().enumerate() {
        if let Some(layer) = layer {
            for (mut out, band) in img.outer_iter_mut().zip(layer.outer_iter()) {
                out += &gaussian_blur(band, level_sigma(l));
            }
        }
    }
    Ok(img)
}

/// Separable Gaussian blur with zeros outside the frame (light blurred off the edge is lost, as on a
/// detector). The kernel is normalised on +-4 sigma.
pub fn gaussian_blur(a: ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    if sigma <= 0.0 {
        return a.to_owned();
    }
    let r = (4.0 * sigma).ceil() as usize;
    let mut k: Vec<f32> = (0..=2 * r).map(|i| (-0.5 * ((i as f32 - r as f32) / sigma).powi(2)).exp()).collect();
    let norm: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= norm);
    let (h, w) = a.dim();
    // Rows first, then columns as whole-row multiply-adds so both passes walk memory contiguously.
    let mut tmp = Array2::<f32>::zeros((h, w));
    for (src, mut dst) in a.outer_iter().zip(tmp.outer_iter_mut()) {
        for (x, &v) in src.iter().enumerate() {
            if v == 0.0 {
                continue; // most of the frame is empty sky
            }
            let lo = x.saturating_sub(r);
            let hi = (x + r).min(w - 1);
            for (xo, d) in (lo..=hi).zip(r + lo - x..) {
                dst[xo] += v * k[d];
            }
        }
    }
    let mut out = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        let lo = y.saturating_sub(r);
        let hi = (y + r).min(h - 1);
        let src = tmp.row(y);
        if src.iter().all(|&v| v == 0.0) {
            continue;
        }
        for (yo, d) in (lo..=hi).zip(r + lo - y..) {
            out.row_mut(yo).scaled_add(k[d], &src);
        }
    }
    out
}

/// Adds Gaussian sky noise, then the colour-preserving asinh stretch: every channel of a pixel is scaled
/// by asinh(I / soft) / (A I), I the mean of its bands and A = asinh(max_sb / soft), so hue survives in
/// bright bulges; a pixel whose brightest channel passes 1 is scaled down as a whole; clamped to [0, 1].
pub fn finish<R: Rng + ?Sized>(mut img: Image, cfg: &RenderConfig, rng: &mut R) -> Image {
    if cfg.sky_sigma > 0.0 {
        img.iter_mut().for_each(|v| *v += cfg.sky_sigma * rng.sample::<f32, _>(StandardNormal));
    }
    let a = (cfg.max_sb / cfg.soft).asinh();
    let (_, h, w) = img.dim();
    for y in 0..h {
        for x in 0..w {
            let mut p = [img[[0, y, x]], img[[1, y, x]], img[[2, y, x]]];
            let i = (p[0] + p[1] + p[2]) / 3.0;
            // asinh(t)/t -> 1 as t -> 0, and the factor is even in I, so sky noise stays linear.
            let t = i / cfg.soft;
            let f = (if t.abs() < 1e-6 { 1.0 } else { t.asinh() / t }) / (a * cfg.soft);
            p.iter_mut().for_each(|v| *v *= f);
            let top = p[0].max(p[1]).max(p[2]);
            if top > 1.0 {
                p.iter_mut().for_each(|v| *v /= top);
            }
            for (b, v) in p.iter().enumerate() {
                img[[b, y, x]] = v.clamp(0.0, 1.0);
            }
        }
    }
    img
}

/// A mock image of `stars` ([N, 11], GalacticFlow columns) seen from `view`; values in [0, 1].
/// Deterministic given the state of `rng` (used for the sky noise only).
pub fn render<R: Rng + ?Sized>(stars: &Array2<f32>, cfg: &RenderConfig, view: &View, rng: &mut R) -> Result<Image> {
    Ok(finish(render_linear(stars, cfg, view)?, cfg, rng))
}

/// Writes an image as an 8-bit RGB PNG through a temporary file renamed into place.
pub fn save_png(img: &Image, path: &Path) -> Result<()> {
    let (c, h, w) = img.dim();
    if c != 3 || h == 0 || w == 0 {
        return Err(Error::shape("save_png", format!("image is {:?}; expected [3, H, W]", img.shape())));
    }
    let to_u8 = |v: f32| if v.is_finite() { (v.clamp(0.0, 1.0) * 255.0).round() as u8 } else { 0 };
    let mut buf = Vec::with_capacity(3 * h * w);
    for y in 0..h {
        for x in 0..w {
            buf.extend((0..3).map(|b| to_u8(img[[b, y, x]])));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    }
    crate::io::write_atomic(path, |f| super::image_decode::write_png_rgb8(f, &buf, w as u32, h as u32))
}

pub use super::image_decode::MAX_IMAGE_SIDE;

/// Reads a PNG or JPEG (grey, RGB or RGBA, 8 or 16 bit; the format is sniffed from the content) as a
/// 3 x size x size image in [0, 1]. Alpha is composited onto black; an image of another shape is resized
/// (stretched, as GalacticForge's Resize((448, 448)) does) with a Catmull-Rom filter. A missing, unreadable
/// or corrupt file is an error naming it.
pub fn load_image(path: &Path, size: usize) -> Result<Image> {
    if size == 0 || size > 8192 {
        return Err(Error::Usage(format!("image size {size} must be 1..=8192 pixels")));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let planar = super::image_decode::read_planar(std::io::BufReader::new(file), size as u32)
        .map_err(|e| Error::file(path, format!("not a readable PNG or JPEG image: {e}")))?;
    Image::from_shape_vec((3, size, size), planar).map_err(|e| Error::file(path, e.to_string()))
}

/// Every PNG/JPEG of a folder as `(id = file stem, image)`, sorted by id, other files ignored. An empty
/// folder, two images with one id, or any unreadable image is an error naming the folder or file.
/// Images are decoded in parallel; each takes 12 * size^2 bytes (2.4 MB at 448).
pub fn load_folder(dir: &Path, size: usize) -> Result<Vec<(String, Image)>> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .map(|p| (p.file_stem().unwrap_or_default().to_string_lossy().to_string(), p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::file(dir, "no .png or .jpg images in this folder"));
    }
    if let Some(w) = files.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::file(dir, format!("two images share the id '{}': {:?} and {:?}", w[0].0, w[0].1, w[1].1)));
    }
    let loaded: Vec<Result<Image>> = files.par_iter().map(|(_, p)| load_image(p, size)).collect();
    files.into_iter().zip(loaded).map(|((id, _), img)| Ok((id, img?))).collect()
}

/// What `render_folder` drew for one galaxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewRecord {
    pub id: String,
    #[serde(flatten)]
    pub view: View,
    /// Axis ratio of an infinitely thin disc seen this way (cos i).
    pub thin_disc_axis_ratio: f64,
    /// The galaxy's parameters that the image shows, when the folder has a synthetic truth.json.
    pub log_mstar: Option<f64>,
    /// Disc scale length [kpc] (truth.json); in pixels it is r_d / kpc_per_pixel.
    pub r_d: Option<f64>,
    pub f_bulge: Option<f64>,
}

/// Contents of views.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Views {
    pub config: RenderConfig,
    pub kpc_per_pixel: f32,
    pub seed: u64,
    pub views: Vec<ViewRecord>,
}

impl Views {
    pub fn read(path: &Path) -> Result<Views> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not a views.json file: {e}")))
    }
}

/// The random stream of one galaxy: from the seed and its id (FNV-1a), so a galaxy's view and noise do
/// not change when others are added to or removed from the folder.
fn galaxy_rng(seed: u64, id: &str) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    rand::rngs::StdRng::seed_from_u64(h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Renders every galaxy of a star folder (`<id>.npy`, or a .npz; see `data::load`) from a random isotropic
/// view into `out/<id>.png`, and writes `out/views.json` (the views, the config, and from a synthetic
/// set's truth.json each galaxy's mass, disc scale length and bulge fraction). Returns the records.
pub fn render_folder(data: &Path, out: &Path, cfg: &RenderConfig, seed: u64) -> Result<Views> {
    cfg.check()?;
    let gals = super::load(data, super::Layout::Auto)?;
    let truth_path = data.join("truth.json");
    let truth = if truth_path.is_file() { Some(super::synthetic::Truth::read(&truth_path)?) } else { None };
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    let views = gals
        .par_iter()
        .map(|g| {
            let mut rng = galaxy_rng(seed, &g.id);
            let view = View::draw(&mut rng);
            save_png(&render(&g.stars, cfg, &view, &mut rng)?, &out.join(format!("{}.png", g.id)))?;
            let p = truth.as_ref().and_then(|t| t.get(&g.id));
            Ok(ViewRecord {
                id: g.id.clone(),
                view,
                thin_disc_axis_ratio: view.inclination.cos(),
                log_mstar: p.map(|p| p.log_mstar),
                r_d: p.map(|p| p.r_d),
                f_bulge: p.map(|p| p.f_bulge),
            })
        })
        .collect::<Vec<Result<ViewRecord>>>()
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let v = Views { config: cfg.clone(), kpc_per_pixel: cfg.kpc_per_pixel(), seed, views };
    let json = serde_json::to_vec_pretty(&v).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(&out.join("views.json"), |w| std::io::Write::write_all(w, &json))?;
    Ok(v)
}

/// Interleaved RGB (H x W x 3) values of an image, the layout `plot::images` draws.
pub fn to_hwc(img: &Image) -> Vec<f32> {
    img.view().permuted_axes([1, 2, 0]).iter().copied().collect()
}

/// One overview PNG of labelled images (`plot::images`), about square.
pub fn save_grid(path: &Path, images: &[(String, Image)]) -> Result<()> {
    let hwc: Vec<(Vec<f32>, usize, usize)> = images.iter().map(|(_, i)| (to_hwc(i), i.dim().2, i.dim().1)).collect();
    let tiles: Vec<(&[f32], usize, usize)> = hwc.iter().map(|(v, w, h)| (v.as_slice(), *w, *h)).collect();
    let labels: Vec<&str> = images.iter().map(|(id, _)| id.as_str()).collect();
    crate::plot::images(path, &tiles, 0, &labels).map_err(|e| Error::file(path, e))
}

/// Sum of each band over the image.
pub fn band_sums(img: &Image) -> [f64; 3] {
    let s: Vec<f64> = img.axis_iter(Axis(0)).map(|b| b.iter().map(|&v| f64::from(v)).sum()).collect();
    [s[0], s[1], s[2]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::f64::consts::PI;

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gforge-images-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A thin exponential disc (R ~ Gamma(2, r_d)) of equal-mass stars of one age and metallicity.
    fn disc(n: usize, r_d: f64, age: f32, z: f32, seed: u64) -> Array2<f32> {
        let mut r = rng(seed);
        let mut a = Array2::zeros((n, 11));
        for mut row in a.outer_iter_mut() {
            let (e1, e2): (f64, f64) = (r.random(), r.random());
            let rad = -r_d * ((1.0 - e1) * (1.0 - e2)).ln();
            let phi = 2.0 * PI * r.random::<f64>();
            row[0] = (rad * phi.cos()) as f32;
            row[1] = (rad * phi.sin()) as f32;
            row[2] = 0.01 * r.sample::<f32, _>(StandardNormal);
            row[METALS] = z;
            row[MASS] = 1e6;
            row[AGE] = age;
        }
        a
    }

    /// Geometry tests read the light itself: no adaptive smoothing, a small PSF.
    fn sharp(size: usize) -> RenderConfig {
        RenderConfig { size, psf_sigma_px: 0.5, smooth_neighbours: 0.0, sky_sigma: 0.0, ..Default::default() }
    }

    /// (axis ratio, major-axis angle counter-clockwise from +x in [0, pi)) from the second moments of the
    /// summed bands, less the PSF and cloud-in-cell variance.
    fn shape(img: &Image, blur_var: f64) -> (f64, f64) {
        let (_, h, w) = img.dim();
        let (mut s, mut sx, mut sy) = (0.0, 0.0, 0.0);
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for r in 0..h {
            for c in 0..w {
                let v: f64 = (0..3).map(|b| f64::from(img[[b, r, c]])).sum();
                let (x, y) = (c as f64, -(r as f64)); // y up
                s += v;
                sx += v * x;
                sy += v * y;
                sxx += v * x * x;
                syy += v * y * y;
                sxy += v * x * y;
            }
        }
        let (mx, my) = (sx / s, sy / s);
        let (cxx, cyy, cxy) = (sxx / s - mx * mx - blur_var, syy / s - my * my - blur_var, sxy / s - mx * my);
        let tr = 0.5 * (cxx + cyy);
        let d = (0.25 * (cxx - cyy).powi(2) + cxy * cxy).sqrt();
        let q = ((tr - d).max(0.0) / (tr + d)).sqrt();
        let angle = (0.5 * (2.0 * cxy).atan2(cxx - cyy)).rem_euclid(PI);
        (q, angle)
    }

    fn angle_diff(a: f64, b: f64) -> f64 {
        let d = (a - b).rem_euclid(PI);
        d.min(PI - d)
    }

    #[test]
    fn axis_ratio_follows_inclination_and_angle_follows_the_view() {
        let stars = disc(30_000, 2.0, 5.0, Z_SUN as f32, 1);
        let cfg = sharp(160);
        let blur = 0.25 + 1.0 / 6.0;
        let (q, _) = shape(&render_linear(&stars, &cfg, &View::FACE_ON).unwrap(), blur);
        assert!(q > 0.96, "face-on disc is round: q = {q}");
        for (i_deg, pa_deg) in [(45.0f64, 30.0f64), (60.0, 120.0), (75.0, 170.0), (90.0, 75.0)] {
            let view = View { inclination: i_deg.to_radians(), position_angle: pa_deg.to_radians() };
            let (q, angle) = shape(&render_linear(&stars, &cfg, &view).unwrap(), blur);
            let cos_i = view.inclination.cos();
            assert!((q - cos_i).abs() < 0.03, "i = {i_deg}: axis ratio {q} vs cos i = {cos_i}");
            let off = angle_diff(angle, view.position_angle).to_degrees();
            assert!(off < 2.0, "i = {i_deg}: major axis at {} deg, view says {pa_deg}", angle.to_degrees());
        }
        // The stretched image shows the same shape (default smoothing and stretch; the clamped sky noise
        // would add a flat pedestal to the moments, so none here).
        let view = View { inclination: 70f64.to_radians(), position_angle: 1.0 };
        let cfg = RenderConfig { size: 160, sky_sigma: 0.0, ..Default::default() };
        let img = render(&stars, &cfg, &view, &mut rng(3)).unwrap();
        let (q, angle) = shape(&img, 0.0);
        assert!(q < 0.6 && angle_diff(angle, 1.0).to_degrees() < 3.0, "q {q}, angle {angle}");
    }

    #[test]
    fn old_and_metal_rich_stars_are_redder() {
        let cfg = RenderConfig { size: 96, ..Default::default() };
        let colour = |age: f32, z: f32| {
            let img = render_linear(&disc(3000, 2.0, age, z, 2), &cfg, &View::FACE_ON).unwrap();
            let s = band_sums(&img);
            let rgb = band_sums(&finish(img, &cfg, &mut rng(0)));
            (s[0] / s[2], rgb[0] / rgb[2])
        };
        let z = Z_SUN as f32;
        let (young, young_rgb) = colour(1.0, z);
        let (old, old_rgb) = colour(10.0, z);
        assert!(old > 1.5 * young && old_rgb > 1.3 * young_rgb, "i/g young {young}, old {old}");
        assert!(young < 1.0 && old > 1.0, "a 5 Gyr solar population is the white point");
        let (poor, _) = colour(5.0, 0.1 * z);
        let (rich, _) = colour(5.0, 2.0 * z);
        assert!(rich > 1.1 * poor, "metal-poor {poor}, metal-rich {rich}");
        // Older stars are fainter per unit mass.
        assert!(light_to_mass(10.0, z).iter().zip(light_to_mass(1.0, z)).all(|(o, y)| *o < y));
    }

    #[test]
    fn flux_is_linear_in_mass_and_conserved() {
        let cfg = RenderConfig { size: 128, fov_kpc: 60.0, ..Default::default() };
        let view = View { inclination: 0.7, position_angle: 2.0 };
        let mut stars = disc(4000, 1.5, 3.0, 0.01, 4);
        let one = band_sums(&render_linear(&stars, &cfg, &view).unwrap());
        stars.column_mut(MASS).mapv_inplace(|m| 3.0 * m);
        let three = band_sums(&render_linear(&stars, &cfg, &view).unwrap());
        // Total light: sum over pixels of surface brightness times pixel area [pc^2].
        let area = (f64::from(cfg.kpc_per_pixel()) * 1e3).powi(2);
        for b in 0..3 {
            assert!((three[b] / one[b] - 3.0).abs() < 1e-4, "band {b}: {} vs {}", three[b], one[b]);
            let expect: f64 =
                stars.outer_iter().map(|r| f64::from(r[MASS]) * f64::from(light_to_mass(r[AGE], r[METALS])[b])).sum();
            assert!((three[b] * area / expect - 1.0).abs() < 0.01, "band {b}: light is conserved");
        }
    }

    #[test]
    fn rendering_is_deterministic_and_bounded() {
        let stars = disc(2000, 1.0, 4.0, 0.01, 5);
        let cfg = RenderConfig { size: 64, ..Default::default() };
        let view = View::draw(&mut rng(9));
        assert!((0.0..=PI / 2.0).contains(&view.inclination) && (0.0..PI).contains(&view.position_angle));
        let a = render(&stars, &cfg, &view, &mut rng(7)).unwrap();
        assert_eq!(a, render(&stars, &cfg, &view, &mut rng(7)).unwrap());
        assert_ne!(a, render(&stars, &cfg, &view, &mut rng(8)).unwrap(), "the sky noise follows the seed");
        assert_eq!(a.dim(), (3, 64, 64));
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(a.iter().any(|&v| v > 0.3), "the galaxy shows");
        // Wrong columns and bad settings are errors.
        assert!(render_linear(&Array2::zeros((3, 10)), &cfg, &view).is_err());
        assert!(render_linear(&stars, &RenderConfig { size: 0, ..cfg.clone() }, &view).is_err());
        assert!(render_linear(&stars, &RenderConfig { fov_kpc: f32::NAN, ..cfg }, &view).is_err());
    }

    #[test]
    fn isotropic_views_have_uniform_cos_i() {
        let mut r = rng(11);
        let v: Vec<View> = (0..20_000).map(|_| View::draw(&mut r)).collect();
        let mean_cos = v.iter().map(|v| v.inclination.cos()).sum::<f64>() / v.len() as f64;
        let mean_pa = v.iter().map(|v| v.position_angle).sum::<f64>() / v.len() as f64;
        assert!((mean_cos - 0.5).abs() < 0.01 && (mean_pa - PI / 2.0).abs() < 0.03);
    }

    #[test]
    fn blur_keeps_flux_and_spreads_a_point() {
        let mut a = Array2::zeros((41, 37));
        a[[20, 18]] = 1.0;
        let b = gaussian_blur(a.view(), 2.0);
        assert!((b.sum() - 1.0).abs() < 1e-5);
        let var: f32 = b.indexed_iter().map(|((r, _), v)| v * (r as f32 - 20.0).powi(2)).sum();
        assert!((var - 4.0).abs() < 0.05, "variance {var}");
        assert_eq!(b[[20, 17]], b[[20, 19]]);
    }

    #[test]
    fn png_round_trip_within_one_step() {
        let d = tmp_dir("roundtrip");
        let cfg = RenderConfig { size: 48, ..Default::default() };
        let img = render(&disc(1000, 1.0, 2.0, 0.01, 6), &cfg, &View::FACE_ON, &mut rng(1)).unwrap();
        let p = d.join("sub").join("g.png");
        save_png(&img, &p).unwrap();
        let back = load_image(&p, 48).unwrap();
        let err = img.iter().zip(back.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err <= 0.5 / 255.0 + 1e-6, "max error {err}");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    }

    fn error_of(path: &Path) -> String {
        let e = load_image(path, 32).expect_err("an error").to_string();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(e.contains(&name), "error does not name the file: {e}");
        e
    }

    #[test]
    fn bad_images_are_errors_naming_the_file() {
        let d = tmp_dir("bad");
        let img = Image::from_shape_fn((3, 40, 40), |(c, y, x)| ((c + y * x) % 7) as f32 / 7.0);
        let good = d.join("good.png");
        save_png(&img, &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(d.join("cut.png"), &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(d.join("text.png"), "this is not a picture\n").unwrap();
        std::fs::write(d.join("empty.jpg"), "").unwrap();
        error_of(&d.join("cut.png"));
        error_of(&d.join("text.png"));
        error_of(&d.join("empty.jpg"));
        error_of(&d.join("missing.png"));
        // One bad file spoils the folder, by name.
        let e = load_folder(&d, 32).err().unwrap().to_string();
        assert!(e.contains("cut.png"), "{e}");
    }

    #[test]
    fn grey_rgba_and_non_square_jpeg_images_load() {
        let d = tmp_dir("formats");
        let jpg = d.join("wide.jpg");
        image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([(x * 255 / 299) as u8, y as u8, 128]))
            .save(&jpg)
            .unwrap();
        let a = load_image(&jpg, 448).unwrap();
        assert_eq!(a.dim(), (3, 448, 448));
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!((a[[2, 200, 200]] - 0.5).abs() < 0.03, "blue stays ~128/255");
        assert!(a[[0, 10, 440]] > a[[0, 10, 5]] + 0.5, "the red ramp runs left to right");
        image::GrayImage::from_pixel(20, 20, image::Luma([200])).save(d.join("grey.png")).unwrap();
        let g = load_image(&d.join("grey.png"), 20).unwrap();
        assert!(g.iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6));
        image::ImageBuffer::from_pixel(10, 30, image::Luma([40000u16])).save(d.join("grey16.png")).unwrap();
        let g = load_image(&d.join("grey16.png"), 16).unwrap();
        assert!(g.iter().all(|&v| (v - 40000.0 / 65535.0).abs() < 1e-3));
        image::RgbaImage::from_pixel(8, 8, image::Rgba([255, 100, 0, 128])).save(d.join("rgba.png")).unwrap();
        let c = load_image(&d.join("rgba.png"), 8).unwrap();
        assert!((c[[0, 3, 3]] - 128.0 / 255.0).abs() < 1e-3, "alpha composited onto black");
        assert!(load_image(&jpg, 0).is_err());
    }

    #[test]
    fn folders_load_sorted_and_empty_ones_are_errors() {
        let d = tmp_dir("folder");
        let img = Image::from_elem((3, 12, 12), 0.25);
        save_png(&img, &d.join("b.png")).unwrap();
        image::RgbImage::from_pixel(16, 8, image::Rgb([64, 64, 64])).save(d.join("a.JPG")).unwrap();
        std::fs::write(d.join("notes.txt"), "not an image").unwrap();
        std::fs::write(d.join("views.json"), "{}").unwrap();
        let got = load_folder(&d, 12).unwrap();
        assert_eq!(got.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(got.iter().all(|(_, i)| i.dim() == (3, 12, 12)));
        save_png(&img, &d.join("a.png")).unwrap();
        assert!(load_folder(&d, 12).err().unwrap().to_string().contains("'a'"), "duplicate ids");
        let empty = tmp_dir("empty");
        std::fs::write(empty.join("readme.md"), "no images").unwrap();
        let e = load_folder(&empty, 12).err().unwrap().to_string();
        assert!(e.contains(&empty.display().to_string()), "{e}");
        assert!(load_folder(&empty.join("nope"), 12).is_err());
    }
}
