//! Test helpers: a small deterministic Gaussian generator, synthetic star tables and scratch paths.
use std::path::PathBuf;

/// SplitMix64 with Box-Muller normals: deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Per-column mean and standard deviation of the synthetic stars (roughly a disc galaxy's scales).
pub(crate) const MEANS: [f64; 10] = [0.0, 0.0, 0.0, 0.0, 200.0, 0.0, 0.02, -0.3, 0.2, 6.0];
pub(crate) const SIGMAS: [f64; 10] = [4.0, 4.0, 0.5, 40.0, 30.0, 20.0, 0.005, 0.3, 0.1, 3.0];

/// `n` rows of 10 independent Gaussian columns (x and [Fe/H] correlated a little).
pub(crate) fn gaussian_stars(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * 10);
    for _ in 0..n {
        let mut row = [0f64; 10];
        for c in 0..10 {
            row[c] = MEANS[c] + SIGMAS[c] * rng.normal();
        }
        row[7] += 0.03 * row[0];
        out.extend(row.iter().map(|v| *v as f32));
    }
    out
}

/// A scratch folder for one test, removed when dropped unless GFORGE_KEEP_PLOTS is set (to look at
/// the test plots).
pub(crate) struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if std::env::var_os("GFORGE_KEEP_PLOTS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) fn tmp_dir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("gforge-plot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// Decodes a PNG that a plot wrote.
pub(crate) fn load(path: &std::path::Path) -> image::RgbImage {
    assert!(path.exists(), "{} was not written", path.display());
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(!PathBuf::from(tmp).exists(), "temporary file left behind");
    image::open(path).expect("decodable PNG").to_rgb8()
}
