//! Fourier conventions of the HI maps and HIGlow's power-spectrum statistic.
//!
//! Maps are `side x side`, row-major, periodic, of a box `box_size` [Mpc/h] wide (CAMELS: 25), so a pixel
//! is `d = box/side` wide. The 2-D DFT is orthonormal, `F_k = side^-1 sum_x f_x exp(-2 pi i k.x / side)`
//! (numpy's `norm='ortho'`), which makes it unitary: `sum |F_k|^2 = sum f_x^2` (Parseval).
//! Mode `k = (i, j)` uses signed indices (numpy's fftfreq order: 0, 1, .., side/2 - 1, -side/2, .., -1),
//! so its wavenumber is `|k| = dk sqrt(i^2 + j^2)` with `dk = 2 pi / box` [h/Mpc].
//!
//! Power spectrum (HIGlow's eval_utils._power_spectrum):
//! bin `t = round(|k| / dk)`, `P(t) = d^2 mean_{k in bin t} |F_k|^2` at `k_t = t dk`. Bin 0 (the map mean)
//! is dropped as HIGlow does. Bins no mode falls in (t > ~side/sqrt(2)) are dropped too: HIGlow keeps an
//! array of `side` bins and divides 0 by 0 there, leaving NaN at the end of its spectra. HIGlow applies the
//! statistic to log10 maps.
use crate::error::{Error, Result};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// A planned orthonormal 2-D FFT of `side x side` row-major complex arrays (given any other length, its
/// transforms panic: a caller's bug, not bad data).
pub struct Fft2 {
    side: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
    scratch: Vec<Complex64>,
    tmp: Vec<Complex64>,
}

impl Fft2 {
    pub fn new(side: usize) -> Self {
        let mut planner = FftPlanner::new();
        let fwd = planner.plan_fft_forward(side.max(1));
        let inv = planner.plan_fft_inverse(side.max(1));
        let len = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        Fft2 { side, fwd, inv, scratch: vec![Complex64::default(); len], tmp: vec![Complex64::default(); side * side] }
    }

    pub fn side(&self) -> usize {
        self.side
    }

    /// In place, `a.len() == side^2`: `F_k = side^-1 sum_x a_x exp(-2 pi i k.x / side)`.
    pub fn forward(&mut self, a: &mut [Complex64]) {
        self.run(a, false)
    }

    /// The inverse of `forward` (also unitary).
    pub fn inverse(&mut self, a: &mut [Complex64]) {
        self.run(a, true)
    }

    fn run(&mut self, a: &mut [Complex64], inverse: bool) {
        let s = self.side;
        assert_eq!(a.len(), s * s, "Fft2 of side {s} given {} values", a.len());
        if s == 0 {
            return;
        }
        let f = if inverse { &self.inv } else { &self.fwd };
        // Rows, then columns as rows of the transpose; rustfft runs every length-s chunk of the buffer.
        f.process_with_scratch(a, &mut self.scratch);
        transpose(a, &mut self.tmp, s);
        f.process_with_scratch(&mut self.tmp, &mut self.scratch);
        transpose(&self.tmp, a, s);
        let norm = 1.0 / s as f64;
        a.iter_mut().for_each(|v| *v *= norm);
    }
}

fn transpose(src: &[Complex64], dst: &mut [Complex64], s: usize) {
    for r in 0..s {
        for c in 0..s {
            dst[c * s + r] = src[r * s + c];
        }
    }
}

/// Signed frequency index of position `i` along an axis of `side` (numpy's fftfreq times side).
pub fn signed_index(i: usize, side: usize) -> i64 {
    if i < side.div_ceil(2) {
        i as i64
    } else {
        i as i64 - side as i64
    }
}

/// `sqrt(i^2 + j^2)` for every mode of the row-major `side x side` DFT: `|k| / dk`.
pub fn mode_radius(side: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(side * side);
    for r in 0..side {
        let i = signed_index(r, side) as f64;
        for c in 0..side {
            let j = signed_index(c, side) as f64;
            out.push((i * i + j * j).sqrt());
        }
    }
    out
}

/// Bin of every mode, `round(|k| / dk)` (never a tie: i^2 + j^2 is an integer, (t + 1/2)^2 is not).
fn mode_bins(side: usize) -> Vec<usize> {
    mode_radius(side).into_iter().map(|q| q.round() as usize).collect()
}

fn check(map_len: usize, side: usize, box_size: f64) -> Result<()> {
    if side == 0 {
        return Err(Error::Usage("power spectrum: the map side must be at least 1".into()));
    }
    if !(box_size.is_finite() && box_size > 0.0) {
        return Err(Error::Usage(format!("power spectrum: box size must be positive, got {box_size}")));
    }
    if map_len != side * side {
        return Err(Error::Data(format!(
            "power spectrum: a map of side {side} has {} values, got {map_len}",
            side * side
        )));
    }
    Ok(())
}

/// Sum of |F_k|^2 and number of modes per bin, bin 0 included.
fn binned_power(map: &[f32], side: usize, fft: &mut Fft2) -> (Vec<f64>, Vec<usize>) {
    let bins = mode_bins(side);
    let nb = bins.iter().max().map_or(0, |m| m + 1);
    let mut a: Vec<Complex64> = map.iter().map(|&v| Complex64::new(v as f64, 0.0)).collect();
    fft.forward(&mut a);
    let (mut sum, mut count) = (vec![0.0; nb], vec![0usize; nb]);
    for (f, &t) in a.iter().zip(&bins) {
        sum[t] += f.norm_sqr();
        count[t] += 1;
    }
    (sum, count)
}

/// HIGlow's power spectrum of one map: `(k [h/Mpc], P(k) [(Mpc/h)^2 x map units^2])` over the non-empty
/// bins t >= 1 (see the module doc).
pub fn power_spectrum(map: &[f32], side: usize, box_size: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    check(map.len(), side, box_size)?;
    let (sum, count) = binned_power(map, side, &mut Fft2::new(side));
    Ok(spectrum(&sum, &count, side, box_size))
}

fn spectrum(sum: &[f64], count: &[usize], side: usize, box_size: f64) -> (Vec<f64>, Vec<f64>) {
    let dk = 2.0 * std::f64::consts::PI / box_size;
    let area = (box_size / side as f64).powi(2);
    let (mut k, mut p) = (vec![], vec![]);
    for t in 1..sum.len() {
        if count[t] > 0 {
            k.push(t as f64 * dk);
            p.push(sum[t] / count[t] as f64 * area);
        }
    }
    (k, p)
}

/// Mean power spectrum of `maps` (`n * side^2` values, n >= 1, map after map): the per-bin mean of
/// `power_spectrum` over the maps, as HIGlow's `compare_spectrums(type='mean')`.
pub fn mean_power_spectrum(maps: &[f32], side: usize, box_size: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    check(side * side, side, box_size)?;
    let p = side * side;
    if maps.is_empty() || !maps.len().is_multiple_of(p) {
        return Err(Error::Data(format!(
            "power spectrum: {} values are not a whole number (>= 1) of {side} x {side} maps",
            maps.len()
        )));
    }
    let mut fft = Fft2::new(side);
    let (mut mean, mut k) = (Vec::new(), Vec::new());
    let n = maps.len() / p;
    for m in maps.chunks(p) {
        let (sum, count) = binned_power(m, side, &mut fft);
        let (kk, pk) = spectrum(&sum, &count, side, box_size);
        if mean.is_empty() {
            mean = vec![0.0; pk.len()];
            k = kk;
        }
        mean.iter_mut().zip(&pk).for_each(|(a, b)| *a += b / n as f64);
    }
    Ok((k, mean))
}

/// HIGlow's `R2(pred = data, true = samples)`: `1 - sum (d - s)^2 / sum (d - mean d)^2`. 1 is a perfect
/// match. NaN when the lengths differ or are 0, or when `data` is constant.
pub fn r2(data: &[f64], samples: &[f64]) -> f64 {
    if data.len() != samples.len() || data.is_empty() {
        return f64::NAN;
    }
    let mean = data.iter().sum::<f64>() / data.len() as f64;
    let resid: f64 = data.iter().zip(samples).map(|(d, s)| (d - s).powi(2)).sum();
    let var: f64 = data.iter().map(|d| (d - mean).powi(2)).sum();
    if var == 0.0 {
        return f64::NAN;
    }
    1.0 - resid / var
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn cosine_map(side: usize, m: usize, amp: f64) -> Vec<f32> {
        (0..side * side).map(|i| (amp * (2.0 * PI * m as f64 * (i % side) as f64 / side as f64).cos()) as f32).collect()
    }

    /// A cos(2 pi m x / side) along the columns: the orthonormal DFT is A side / 2 at the two modes
    /// (0, +-m), so bin m holds |F|^2 = A^2 side^2 / 4 twice, and P(m) = A^2 side^2 / 2 / count_m * d^2
    /// = A^2 box^2 / (2 count_m). For side 8, bin 1 holds the 8 modes with i^2 + j^2 in [0.25, 2.25):
    /// (+-1, 0), (0, +-1), (+-1, +-1); A = 2, box = 25: P(1) = 4 * 625 / 16 = 156.25, every other bin 0.
    #[test]
    fn single_cosine_puts_all_power_in_its_bin() {
        let (k, p) = power_spectrum(&cosine_map(8, 1, 2.0), 8, 25.0).unwrap();
        // Side 8: radii up to sqrt(32) = 5.66, bins 1..=6 all non-empty.
        assert_eq!(k.len(), 6);
        assert!((k[0] - 2.0 * PI / 25.0).abs() < 1e-12 && (k[5] - 6.0 * 2.0 * PI / 25.0).abs() < 1e-12);
        // (f32 map values: 1e-7 relative.)
        assert!((p[0] / 156.25 - 1.0).abs() < 1e-6, "{p:?}");
        assert!(p[1..].iter().all(|&v| v.abs() < 1e-9), "{p:?}");
        // m = 3 on side 64 lands in bin 3 only, whose count the formula must reproduce.
        let count3 = mode_bins(64).iter().filter(|&&t| t == 3).count() as f64;
        let (_, p) = power_spectrum(&cosine_map(64, 3, 0.5), 64, 25.0).unwrap();
        assert!((p[2] / (0.25 * 625.0 / (2.0 * count3)) - 1.0).abs() < 1e-6, "{}", p[2]);
        assert!(p.iter().enumerate().all(|(t, &v)| t == 2 || v.abs() < 1e-9));
    }

    #[test]
    fn constant_map_has_no_power_outside_bin_zero() {
        let (k, p) = power_spectrum(&vec![7.5; 64 * 64], 64, 25.0).unwrap();
        // Side 64: bins 1..=45 hold modes (45.25 = the corner radius), HIGlow's bins 46..63 are NaN.
        assert_eq!(k.len(), 45);
        assert!(p.iter().all(|&v| v.abs() < 1e-18), "{p:?}");
    }

    /// Parseval: sum over all bins (bin 0 included) of P * count = d^2 sum f^2.
    #[test]
    fn parseval_holds_over_all_bins() {
        let (side, box_size) = (16usize, 25.0);
        let map: Vec<f32> = (0..side * side).map(|i| ((i * 7919) % 97) as f32 / 13.0 - 2.0).collect();
        let (sum, count) = binned_power(&map, side, &mut Fft2::new(side));
        let area = (box_size / side as f64).powi(2);
        let (_, p) = power_spectrum(&map, side, box_size).unwrap();
        let nonempty: Vec<usize> = (1..count.len()).filter(|&t| count[t] > 0).collect();
        let total: f64 = sum[0] * area + nonempty.iter().zip(&p).map(|(&t, pt)| pt * count[t] as f64).sum::<f64>();
        let direct: f64 = map.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() * area;
        assert!((total / direct - 1.0).abs() < 1e-12, "{total} vs {direct}");
        // Bin 0 is the k = 0 mode alone: |F_0|^2 = (sum f)^2 / N.
        let s: f64 = map.iter().map(|&v| v as f64).sum();
        assert!((sum[0] - s * s / (side * side) as f64).abs() < 1e-9 && count[0] == 1);
    }

    #[test]
    fn fft_round_trips_and_is_unitary() {
        let side = 6; // even and odd factors
        let x: Vec<Complex64> = (0..36).map(|i| Complex64::new((i as f64).sin(), (i as f64 * 0.3).cos())).collect();
        let mut a = x.clone();
        let mut f = Fft2::new(side);
        f.forward(&mut a);
        let e0: f64 = x.iter().map(|v| v.norm_sqr()).sum();
        let e1: f64 = a.iter().map(|v| v.norm_sqr()).sum();
        assert!((e0 - e1).abs() < 1e-12 * e0);
        // Against the defining sum at one mode (k = (1, 4), signed (1, -2)).
        let direct: Complex64 = (0..36)
            .map(|n| x[n] * Complex64::from_polar(1.0, -2.0 * PI * ((n / 6) as f64 * 1.0 + (n % 6) as f64 * 4.0) / 6.0))
            .sum::<Complex64>()
            / 6.0;
        assert!((a[6 + 4] - direct).norm() < 1e-12);
        f.inverse(&mut a);
        assert!(a.iter().zip(&x).all(|(u, v)| (u - v).norm() < 1e-12));
        assert_eq!((0..5).map(|i| signed_index(i, 5)).collect::<Vec<_>>(), [0, 1, 2, -2, -1]);
        assert_eq!((0..4).map(|i| signed_index(i, 4)).collect::<Vec<_>>(), [0, 1, -2, -1]);
    }

    #[test]
    fn mean_spectrum_and_r2() {
        let a = cosine_map(8, 1, 2.0);
        let b = cosine_map(8, 2, 1.0);
        let both: Vec<f32> = a.iter().chain(&b).copied().collect();
        let (k, m) = mean_power_spectrum(&both, 8, 25.0).unwrap();
        let (_, pa) = power_spectrum(&a, 8, 25.0).unwrap();
        let (_, pb) = power_spectrum(&b, 8, 25.0).unwrap();
        assert_eq!(k.len(), pa.len());
        assert!(m.iter().zip(pa.iter().zip(&pb)).all(|(m, (a, b))| (m - (a + b) / 2.0).abs() < 1e-9));
        assert_eq!(r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        // residuals 1 + 0 + 1 = 2 over variance 2: R2 = 0.
        assert!((r2(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0])).abs() < 1e-15);
        assert!(r2(&[1.0, 2.0], &[1.0]).is_nan() && r2(&[], &[]).is_nan() && r2(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let e = power_spectrum(&[1.0; 63], 8, 25.0).unwrap_err().to_string();
        assert!(e.contains("side 8 has 64 values, got 63"), "{e}");
        assert!(power_spectrum(&[1.0; 64], 8, 0.0).is_err());
        assert!(power_spectrum(&[], 0, 25.0).is_err());
        assert!(mean_power_spectrum(&[1.0; 100], 8, 25.0).unwrap_err().to_string().contains("100 values"));
        assert!(mean_power_spectrum(&[], 8, 25.0).is_err());
        // Side 1: only the mean, no bin left.
        assert_eq!(power_spectrum(&[3.0], 1, 25.0).unwrap().0.len(), 0);
    }
}
