//! NIHAO-like synthetic galaxies with an exact, normalised log-density.
//!
//! A galaxy is a two-component mixture (exponential disc + truncated Plummer
//! bulge) of star particles. Every modelled column is stochastic, and the
//! generative process is written as a chain of simple conditionals so that
//! `log p(s | galaxy)` can be evaluated exactly, Jacobians included. This is
//! what lets trained flows be scored by exact KL divergence.
//!
//! Columns of a sampled star (GalacticFlow layout, 11 columns):
//! `x, y, z [kpc], vx, vy, vz [km/s], Z (linear mass fraction), [Fe/H], [O/Fe],
//! mass [Msun], age [Gyr]`.
//! The modelled star vector `s` is the same without `mass` (10 columns):
//! `x, y, z, vx, vy, vz, Z, [Fe/H], [O/Fe], age`.
//!
//! Density of one component (disc shown; bulge analogous):
//! `p(s) = p(t) p(x,y) p(z|t) p(vx,vy,vz | x,y,t) p([Fe/H] | R,t) p([O/Fe] | [Fe/H],t) p(Z | [Fe/H],[O/Fe])`
//! with `p(x,y) = p_Gamma2(R) / (2 pi R)` (polar -> Cartesian Jacobian 1/R),
//! velocities rotated from (v_R, v_phi) to (vx, vy) (Jacobian 1) and
//! `p(Z) = N(log10 Z) / (Z ln 10)` (log10 -> linear Jacobian).
//!
//! Comparisons are written as `!(x > 0.0)` on purpose: they are also true
//! for NaN, which must land outside the support.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use rand::{Rng, RngExt};
use rand_distr::{Beta, Distribution, Exp1, StandardNormal};

/// Age of the universe used as the upper end of the age support [Gyr].
pub const T_MAX: f64 = 13.5;
/// Solar total metallicity (Asplund et al. 2009), anchors log10 Z.
pub const Z_SUN: f64 = 0.0134;
/// Weight of [O/Fe] in log10 Z: alpha elements dominate the metal mass budget.
pub const OFE_Z_COEF: f64 = 0.7;
/// Number of columns of a sampled star (modelled + mass).
pub const N_COLS: usize = 11;
/// Number of modelled columns (mass dropped).
pub const N_MODEL: usize = 10;
/// Column names of a sampled star, in output order.
pub const COLUMNS: [&str; N_COLS] = ["x", "y", "z", "vx", "vy", "vz", "Z", "FeH", "OFe", "mass", "age"];
/// Column names of the modelled star vector, in `log_prob` order.
pub const MODEL_COLUMNS: [&str; N_MODEL] = ["x", "y", "z", "vx", "vy", "vz", "Z", "FeH", "OFe", "age"];

const LN_2PI: f64 = 1.837_877_066_409_345_5; // ln(2 pi)
const LN_10: f64 = std::f64::consts::LN_10;

// ---------------------------------------------------------------------------
// Special functions and elementary log-densities
// ---------------------------------------------------------------------------

/// ln Gamma(x) for real x (Lanczos g = 7, n = 9; reflection below 0.5).
/// Relative error of Gamma is ~1e-15, which the Beta normalisation needs.
#[allow(clippy::excessive_precision)] // published Lanczos coefficients, kept verbatim
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_93,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_13,
        -176.615_029_162_140_59,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_571_6e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 && x == x.floor() {
        return f64::INFINITY; // poles of Gamma
    }
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1-x) = pi / sin(pi x)
        let s = (std::f64::consts::PI * x).sin().abs();
        return std::f64::consts::PI.ln() - s.ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * LN_2PI + (x + 0.5) * t.ln() - t + a.ln()
}

/// Log of the Beta(a, b) density on (0, 1); -inf outside the open interval.
fn log_beta_pdf(u: f64, a: f64, b: f64) -> f64 {
    if !(u > 0.0 && u < 1.0) {
        return f64::NEG_INFINITY;
    }
    let ln_b = ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
    (a - 1.0) * u.ln() + (b - 1.0) * (-u).ln_1p() - ln_b
}

/// Log of the normal density N(x; mu, sigma).
fn log_normal_pdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let d = (x - mu) / sigma;
    -0.5 * d * d - sigma.ln() - 0.5 * LN_2PI
}

/// Log of the Gamma(shape 2, scale rd) density of the cylindrical radius:
/// p(R) = R exp(-R/rd) / rd^2, i.e. an exponential surface density.
fn log_gamma2_pdf(r: f64, rd: f64) -> f64 {
    if !(r > 0.0) {
        return f64::NEG_INFINITY;
    }
    r.ln() - 2.0 * rd.ln() - r / rd
}

/// ln cosh(x), overflow-free for large |x|.
fn ln_cosh(x: f64) -> f64 {
    let a = x.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// Log of the isothermal-sheet density sech^2(z/h) / (2h).
fn log_sech2_pdf(z: f64, h: f64) -> f64 {
    -(2.0 * h).ln() - 2.0 * ln_cosh(z / h)
}

/// ln of the mass fraction of a Plummer sphere (scale a) inside r_max;
/// the bulge is truncated there so no star lands at hundreds of kpc.
fn ln_plummer_mass_inside(a: f64, r_max: f64) -> f64 {
    let q = a / r_max;
    -1.5 * (q * q).ln_1p()
}

/// Log of the truncated Plummer density in 3-D Cartesian space at radius r:
/// 3 / (4 pi a^3) (1 + r^2/a^2)^(-5/2) / M(<r_max), zero beyond r_max.
fn log_plummer_xyz_pdf(r: f64, a: f64, r_max: f64) -> f64 {
    if !(r <= r_max) {
        return f64::NEG_INFINITY;
    }
    let q = r / a;
    (3.0 / (4.0 * std::f64::consts::PI)).ln() - 3.0 * a.ln() - 2.5 * (q * q).ln_1p() - ln_plummer_mass_inside(a, r_max)
}

/// Log of the radial density of the truncated Plummer sphere,
/// 3 r^2 a^2 / (a^2 + r^2)^(5/2) / M(<r_max) on [0, r_max]. Used by tests.
#[cfg_attr(not(test), allow(dead_code))]
fn log_plummer_radial_pdf(r: f64, a: f64, r_max: f64) -> f64 {
    if !(r > 0.0 && r <= r_max) {
        return f64::NEG_INFINITY;
    }
    3f64.ln() + 2.0 * r.ln() + 2.0 * a.ln() - 2.5 * (a * a + r * r).ln() - ln_plummer_mass_inside(a, r_max)
}

/// Stable ln(exp(a) + exp(b)).
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

// ---------------------------------------------------------------------------
// Elementary samplers (each paired with one of the densities above)
// ---------------------------------------------------------------------------

/// Uniform on the open interval (0, 1): avoids ln(0) in inverse-CDF samplers.
fn open01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

fn std_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// Gamma(2, rd) as the sum of two exponentials (no fallible constructor).
fn sample_gamma2<R: Rng + ?Sized>(rd: f64, rng: &mut R) -> f64 {
    let e1: f64 = rng.sample(Exp1);
    let e2: f64 = rng.sample(Exp1);
    rd * (e1 + e2)
}

/// sech^2(z/h)/(2h) is a logistic distribution with scale h/2.
fn sample_sech2<R: Rng + ?Sized>(h: f64, rng: &mut R) -> f64 {
    let u = open01(rng);
    0.5 * h * (u / (1.0 - u)).ln()
}

/// Truncated Plummer radius by inverting M(<r) = (r^2/(r^2+a^2))^(3/2).
fn sample_plummer_r<R: Rng + ?Sized>(a: f64, r_max: f64, rng: &mut R) -> f64 {
    let m_max = ln_plummer_mass_inside(a, r_max).exp();
    let u = m_max * open01(rng); // in (0, m_max]
    let d = u.powf(-2.0 / 3.0) - 1.0;
    if d <= 0.0 {
        return r_max;
    }
    (a / d.sqrt()).min(r_max)
}

/// age = T_MAX * Beta; the open support (0, T_MAX) is enforced by rejection
/// of the (probability ~0) endpoints so samples always have finite density.
fn sample_age<R: Rng + ?Sized>(beta: &Beta<f64>, rng: &mut R) -> f64 {
    for _ in 0..64 {
        let u: f64 = beta.sample(rng);
        if u > 0.0 && u < 1.0 {
            return T_MAX * u;
        }
    }
    0.5 * T_MAX
}

// ---------------------------------------------------------------------------
// Galaxy parameters
// ---------------------------------------------------------------------------

/// How many star particles a galaxy gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StarCount {
    /// N = clamp(round(M_star / m_particle), n_min, n_max): fixed mass resolution
    /// like a simulation, so massive galaxies have more particles.
    ParticleMass { m_particle: f64, n_min: usize, n_max: usize },
    /// The same N for every galaxy.
    Fixed(usize),
}

impl StarCount {
    fn count(&self, mstar: f64) -> usize {
        let n = match *self {
            StarCount::ParticleMass { m_particle, n_min, n_max } => {
                let raw = mstar / m_particle;
                let raw = if raw.is_finite() { raw.round().max(0.0) } else { n_max as f64 };
                let (lo, hi) = (n_min.min(n_max), n_max.max(n_min));
                (raw.min(hi as f64) as usize).clamp(lo, hi)
            }
            StarCount::Fixed(n) => n,
        };
        n.max(1)
    }
}

/// Truth parameters of one synthetic galaxy. Everything `sample_stars` and
/// `log_prob` use is a public field here (no hidden derived state), so a
/// caller or test can modify a field and sampler and density stay consistent.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GalaxyParams {
    // ---- global ----
    /// log10 of the stellar mass [Msun].
    pub log_mstar: f64,
    /// Stellar mass [Msun] (= 10^log_mstar).
    pub mstar: f64,
    /// Number of star particles the galaxy should be sampled with.
    pub n_stars: usize,
    /// Mean particle mass M_star / n_stars [Msun].
    pub particle_mass: f64,
    /// ln-sigma of the lognormal factor on particle masses (mass is not modelled).
    pub mass_scatter: f64,
    // ---- structure ----
    /// Bulge mass fraction f_b (disc gets 1 - f_b).
    pub f_bulge: f64,
    /// Disc scale length R_d [kpc]; R ~ Gamma(2, R_d).
    pub r_d: f64,
    /// Disc scale-height normalisation [kpc]; h(t) = h0 (0.3 + 0.7 t/T).
    pub h0: f64,
    /// Plummer scale of the bulge [kpc].
    pub a_bulge: f64,
    /// Truncation radius of the bulge [kpc].
    pub r_max_bulge: f64,
    // ---- kinematics ----
    /// Flat rotation speed [km/s].
    pub v_flat: f64,
    /// Turnover radius of v_c(R) = V_flat (2/pi) atan(R / r_turn) [kpc].
    pub r_turn: f64,
    /// Disc radial dispersion normalisation; sigma_R(t) = sigma0 (0.1 + t/T)^0.4 [km/s].
    pub sigma0: f64,
    /// sigma_phi / sigma_R.
    pub sigma_phi_ratio: f64,
    /// sigma_z / sigma_R.
    pub sigma_z_ratio: f64,
    /// Asymmetric drift v_a = drift_coef sigma_R^2 (0.5 + R/R_d) / V_flat.
    pub drift_coef: f64,
    /// Isotropic 1-D velocity dispersion of the bulge [km/s].
    pub sigma_bulge: f64,
    /// Bulge rotation amplitude; mean v_phi = v_rot_bulge R / (R + a_bulge) [km/s].
    pub v_rot_bulge: f64,
    // ---- ages: age / T_MAX ~ Beta(a, b) ----
    pub age_disc_a: f64,
    pub age_disc_b: f64,
    pub age_bulge_a: f64,
    pub age_bulge_b: f64,
    // ---- chemistry ----
    /// Central [Fe/H] of the youngest disc stars.
    pub feh_center: f64,
    /// Radial [Fe/H] gradient of the disc [dex/kpc] (negative).
    pub feh_grad: f64,
    /// [Fe/H] drop from the youngest to the oldest stars (mean -= slope t/T).
    pub feh_age_slope: f64,
    /// Gaussian scatter of disc [Fe/H] at fixed R, t.
    pub sigma_feh_disc: f64,
    /// Bulge [Fe/H] offset relative to feh_center (no gradient in the bulge).
    pub feh_bulge_offset: f64,
    /// Gaussian scatter of bulge [Fe/H] at fixed t.
    pub sigma_feh_bulge: f64,
    /// [O/Fe] plateau of young stars (SN Ia enriched).
    pub ofe_young: f64,
    /// [O/Fe] plateau of old stars (SN II only).
    pub ofe_old: f64,
    /// Age of the SN Ia knee [Gyr]: stars older than this are alpha-enhanced.
    pub t_ia: f64,
    /// Width of the knee [Gyr].
    pub w_ia: f64,
    /// Anti-correlation of [O/Fe] with [Fe/H] at fixed age.
    pub ofe_feh_coupling: f64,
    /// Gaussian scatter of [O/Fe].
    pub sigma_ofe: f64,
    /// Gaussian scatter of log10 Z around the [Fe/H] + 0.7 [O/Fe] relation [dex].
    pub sigma_logz: f64,
}

/// Named standard-normal deviates behind every scatter term, so the same
/// code builds the mean relations (all zero) and a random draw.
#[derive(Clone, Copy, Default)]
struct Deviates([f64; 23]);

impl GalaxyParams {
    /// Galaxy with log10 M_star uniform in [8.5, 11) and all scatter drawn.
    pub fn draw<R: Rng + ?Sized>(rng: &mut R, count: StarCount) -> Self {
        let log_m = rng.random_range(8.5..11.0);
        Self::draw_at(log_m, count, rng)
    }

    /// Galaxy at a given log10 M_star with all scatter drawn.
    pub fn draw_at<R: Rng + ?Sized>(log_mstar: f64, count: StarCount, rng: &mut R) -> Self {
        let mut d = Deviates::default();
        for v in d.0.iter_mut() {
            // Truncate at 3 sigma so no relation produces an absurd galaxy.
            *v = std_normal(rng).clamp(-3.0, 3.0);
        }
        Self::build(log_mstar, count, &d)
    }

    /// Galaxy exactly on the mean scaling relations (no scatter): deterministic, for tests.
    pub fn mean_relations(log_mstar: f64, count: StarCount) -> Self {
        Self::build(log_mstar, count, &Deviates::default())
    }

    fn build(log_mstar: f64, count: StarCount, d: &Deviates) -> Self {
        let d = &d.0;
        let lm = log_mstar;
        let x = (lm - 8.5) / 2.5; // 0 at 1e8.5, 1 at 1e11
        let mstar = 10f64.powf(lm);
        let n_stars = count.count(mstar);

        // Size-mass relation: 3 kpc at 1e10.5, slope 0.25, 0.1 dex scatter.
        let r_d = 3.0 * 10f64.powf(0.25 * (lm - 10.5) + 0.1 * d[0]);
        // Bulge fraction grows with mass, 0.25 ln-scatter.
        let f_bulge = ((0.05 + 0.30 * x) * (0.25 * d[1]).exp()).clamp(0.01, 0.7);
        let a_bulge = 0.2 * r_d * (0.1 * d[2]).exp();
        // Tully-Fisher: 200 km/s at 1e10.5, slope 0.28, 0.04 dex scatter.
        let v_flat = 200.0 * 10f64.powf(0.28 * (lm - 10.5) + 0.04 * d[3]);
        let r_turn = 0.4 * r_d * (0.15 * d[4]).exp();
        let h0 = (0.1 * r_d + 0.1) * (0.1 * d[5]).exp();
        let sigma0 = 0.22 * v_flat * (0.1 * d[6]).exp();
        let sigma_bulge = 0.4 * v_flat * (0.1 * d[7]).exp();
        let v_rot_bulge = 0.15 * v_flat * (0.3 * d[8]).exp();

        // Disc SFH: mean age fraction rises with mass (massive = older).
        let (age_disc_a, age_disc_b) =
            beta_from_mean((0.35 + 0.25 * x + 0.05 * d[9]).clamp(0.15, 0.85), 4.0 * (0.15 * d[10]).exp());
        // Bulge: old, peaked.
        let (age_bulge_a, age_bulge_b) =
            beta_from_mean((0.78 + 0.04 * d[11]).clamp(0.55, 0.92), 12.0 * (0.15 * d[12]).exp());

        // Mass-metallicity relation: ~0 at 1e10.5, 0.3 dex/dex, 0.1 dex scatter.
        let feh_center = 0.05 + 0.3 * (lm - 10.5) + 0.1 * d[13];
        // -0.15 dex per scale length = -0.05 dex/kpc for R_d = 3 kpc.
        let feh_grad = -0.15 / r_d * (0.2 * d[14]).exp();
        let feh_age_slope = (0.4 + 0.1 * d[15]).clamp(0.0, 1.0);
        let sigma_feh_disc = (0.12 + 0.04 * (11.0 - lm).max(0.0)) * (0.1 * d[16]).exp();
        let feh_bulge_offset = 0.15 + 0.05 * d[17];
        let sigma_feh_bulge = sigma_feh_disc + 0.05;
        let ofe_young = 0.02 + 0.03 * d[18];
        let ofe_old = 0.30 + 0.04 * d[19];
        let t_ia = (9.5 + 0.7 * d[20]).clamp(6.0, 12.5);
        let w_ia = (0.2 * d[21]).exp();
        let sigma_ofe = 0.05 * (0.15 * d[22]).exp();

        GalaxyParams {
            log_mstar: lm,
            mstar,
            n_stars,
            particle_mass: mstar / n_stars as f64,
            mass_scatter: 0.1,
            f_bulge,
            r_d,
            h0,
            a_bulge,
            r_max_bulge: 15.0 * a_bulge,
            v_flat,
            r_turn,
            sigma0,
            sigma_phi_ratio: 0.7,
            sigma_z_ratio: 0.5,
            drift_coef: 0.5,
            sigma_bulge,
            v_rot_bulge,
            age_disc_a,
            age_disc_b,
            age_bulge_a,
            age_bulge_b,
            feh_center,
            feh_grad,
            feh_age_slope,
            sigma_feh_disc,
            feh_bulge_offset,
            sigma_feh_bulge,
            ofe_young,
            ofe_old,
            t_ia,
            w_ia,
            ofe_feh_coupling: 0.1,
            sigma_ofe,
            sigma_logz: 0.05,
        }
    }

    /// Ok if every field is in the domain the sampler and density need.
    pub fn validate(&self) -> Result<(), String> {
        let pos = [
            ("r_d", self.r_d),
            ("h0", self.h0),
            ("a_bulge", self.a_bulge),
            ("r_max_bulge", self.r_max_bulge),
            ("v_flat", self.v_flat),
            ("r_turn", self.r_turn),
            ("sigma0", self.sigma0),
            ("sigma_phi_ratio", self.sigma_phi_ratio),
            ("sigma_z_ratio", self.sigma_z_ratio),
            ("sigma_bulge", self.sigma_bulge),
            ("age_disc_a", self.age_disc_a),
            ("age_disc_b", self.age_disc_b),
            ("age_bulge_a", self.age_bulge_a),
            ("age_bulge_b", self.age_bulge_b),
            ("sigma_feh_disc", self.sigma_feh_disc),
            ("sigma_feh_bulge", self.sigma_feh_bulge),
            ("w_ia", self.w_ia),
            ("sigma_ofe", self.sigma_ofe),
            ("sigma_logz", self.sigma_logz),
            ("particle_mass", self.particle_mass),
        ];
        for (name, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be finite and > 0, got {v}"));
            }
        }
        let finite = [
            ("drift_coef", self.drift_coef),
            ("v_rot_bulge", self.v_rot_bulge),
            ("feh_center", self.feh_center),
            ("feh_grad", self.feh_grad),
            ("feh_age_slope", self.feh_age_slope),
            ("feh_bulge_offset", self.feh_bulge_offset),
            ("ofe_young", self.ofe_young),
            ("ofe_old", self.ofe_old),
            ("t_ia", self.t_ia),
            ("ofe_feh_coupling", self.ofe_feh_coupling),
            ("mass_scatter", self.mass_scatter),
        ];
        for (name, v) in finite {
            if !v.is_finite() {
                return Err(format!("{name} must be finite, got {v}"));
            }
        }
        if !(self.f_bulge >= 0.0 && self.f_bulge <= 1.0) {
            return Err(format!("f_bulge must be in [0, 1], got {}", self.f_bulge));
        }
        if self.mass_scatter < 0.0 {
            return Err("mass_scatter must be >= 0".into());
        }
        Ok(())
    }

    // ---- deterministic relations shared by sampler and density ----

    /// Circular speed v_c(R) = V_flat (2/pi) atan(R / r_turn) [km/s].
    pub fn v_circ(&self, r: f64) -> f64 {
        self.v_flat * std::f64::consts::FRAC_2_PI * (r / self.r_turn).atan()
    }

    /// Disc scale height at age t: young stars thin, old stars thick [kpc].
    pub fn scale_height(&self, t: f64) -> f64 {
        self.h0 * (0.3 + 0.7 * t / T_MAX)
    }

    /// Radial velocity dispersion of disc stars of age t (age-velocity relation).
    pub fn sigma_r(&self, t: f64) -> f64 {
        self.sigma0 * (0.1 + t / T_MAX).powf(0.4)
    }

    /// Mean azimuthal speed of disc stars at radius R and age t
    /// (circular speed minus asymmetric drift, which grows with sigma_R^2).
    pub fn vphi_mean(&self, r: f64, t: f64) -> f64 {
        let s = self.sigma_r(t);
        self.v_circ(r) - self.drift_coef * s * s * (0.5 + r / self.r_d) / self.v_flat
    }

    /// Mean bulge velocity (vx, vy) at (x, y): slow solid-body-like rotation
    /// v_rot R / (R + a) along phi-hat; finite at R = 0.
    pub fn bulge_rot_mean(&self, x: f64, y: f64) -> (f64, f64) {
        let r = x.hypot(y);
        let k = self.v_rot_bulge / (r + self.a_bulge);
        (-k * y, k * x)
    }

    /// Mean disc [Fe/H] at cylindrical radius R and age t.
    pub fn disc_feh_mean(&self, r: f64, t: f64) -> f64 {
        self.feh_center + self.feh_grad * r - self.feh_age_slope * t / T_MAX
    }

    /// Mean bulge [Fe/H] at age t (no radial gradient).
    pub fn bulge_feh_mean(&self, t: f64) -> f64 {
        self.feh_center + self.feh_bulge_offset - self.feh_age_slope * t / T_MAX
    }

    /// Mean [O/Fe] at age t and [Fe/H]: SN Ia knee in age plus a mild
    /// anti-correlation with [Fe/H].
    pub fn ofe_mean(&self, t: f64, feh: f64) -> f64 {
        self.ofe_young + (self.ofe_old - self.ofe_young) * sigmoid((t - self.t_ia) / self.w_ia)
            - self.ofe_feh_coupling * feh
    }

    /// Mean log10 Z given [Fe/H] and [O/Fe].
    pub fn logz_mean(&self, feh: f64, ofe: f64) -> f64 {
        Z_SUN.log10() + feh + OFE_Z_COEF * ofe
    }

    // ---- factor log-densities (each normalised in its own observed variables) ----

    fn log_p_age(t: f64, a: f64, b: f64) -> f64 {
        log_beta_pdf(t / T_MAX, a, b) - T_MAX.ln()
    }

    /// Disc (x, y): Gamma(2, R_d) in R, uniform in phi, and the polar Jacobian 1/R.
    fn log_p_disc_xy(&self, x: f64, y: f64, jac: Jac) -> f64 {
        let r = x.hypot(y);
        if r > 0.0 {
            let j = if jac.r { r.ln() } else { 0.0 };
            log_gamma2_pdf(r, self.r_d) - j - LN_2PI
        } else if jac.r {
            // Limit R -> 0 of p(R)/(2 pi R) = 1/(2 pi R_d^2).
            -2.0 * self.r_d.ln() - LN_2PI
        } else {
            f64::NEG_INFINITY
        }
    }

    fn log_p_disc_z(&self, z: f64, t: f64) -> f64 {
        log_sech2_pdf(z, self.scale_height(t))
    }

    /// Disc velocities: Gaussian in (v_R, v_phi, v_z); the rotation to
    /// (vx, vy) is orthogonal so it has unit Jacobian.
    fn log_p_disc_vel(&self, x: f64, y: f64, t: f64, vx: f64, vy: f64, vz: f64) -> f64 {
        let r = x.hypot(y);
        let (c, s) = if r > 0.0 { (x / r, y / r) } else { (1.0, 0.0) };
        let v_r = c * vx + s * vy;
        let v_phi = -s * vx + c * vy;
        let sr = self.sigma_r(t);
        log_normal_pdf(v_r, 0.0, sr)
            + log_normal_pdf(v_phi, self.vphi_mean(r, t), self.sigma_phi_ratio * sr)
            + log_normal_pdf(vz, 0.0, self.sigma_z_ratio * sr)
    }

    fn log_p_bulge_pos(&self, x: f64, y: f64, z: f64) -> f64 {
        let r = (x * x + y * y + z * z).sqrt();
        log_plummer_xyz_pdf(r, self.a_bulge, self.r_max_bulge)
    }

    fn log_p_bulge_vel(&self, x: f64, y: f64, vx: f64, vy: f64, vz: f64) -> f64 {
        let (mx, my) = self.bulge_rot_mean(x, y);
        let sb = self.sigma_bulge;
        log_normal_pdf(vx, mx, sb) + log_normal_pdf(vy, my, sb) + log_normal_pdf(vz, 0.0, sb)
    }

    /// p(Z | [Fe/H], [O/Fe]) for linear Z: lognormal in log10 Z times the
    /// Jacobian |d log10 Z / dZ| = 1 / (Z ln 10).
    fn log_p_z_given(&self, zm: f64, feh: f64, ofe: f64, jac: Jac) -> f64 {
        if !(zm > 0.0) {
            return f64::NEG_INFINITY;
        }
        let j = if jac.z { (zm * LN_10).ln() } else { 0.0 };
        log_normal_pdf(zm.log10(), self.logz_mean(feh, ofe), self.sigma_logz) - j
    }

    /// p([Fe/H] | .) p([O/Fe] | [Fe/H], t) p(Z | [Fe/H], [O/Fe]).
    #[allow(clippy::too_many_arguments)]
    fn log_p_chem(&self, feh_mu: f64, feh_sig: f64, t: f64, zm: f64, feh: f64, ofe: f64, jac: Jac) -> f64 {
        log_normal_pdf(feh, feh_mu, feh_sig)
            + log_normal_pdf(ofe, self.ofe_mean(t, feh), self.sigma_ofe)
            + self.log_p_z_given(zm, feh, ofe, jac)
    }

    fn log_p_disc(&self, s: &[f64; N_MODEL], jac: Jac) -> f64 {
        let [x, y, z, vx, vy, vz, zm, feh, ofe, t] = *s;
        let la = Self::log_p_age(t, self.age_disc_a, self.age_disc_b);
        if la == f64::NEG_INFINITY {
            return la;
        }
        let r = x.hypot(y);
        la + self.log_p_disc_xy(x, y, jac)
            + self.log_p_disc_z(z, t)
            + self.log_p_disc_vel(x, y, t, vx, vy, vz)
            + self.log_p_chem(self.disc_feh_mean(r, t), self.sigma_feh_disc, t, zm, feh, ofe, jac)
    }

    fn log_p_bulge(&self, s: &[f64; N_MODEL], jac: Jac) -> f64 {
        let [x, y, z, vx, vy, vz, zm, feh, ofe, t] = *s;
        let la = Self::log_p_age(t, self.age_bulge_a, self.age_bulge_b);
        let lp = self.log_p_bulge_pos(x, y, z);
        if la == f64::NEG_INFINITY || lp == f64::NEG_INFINITY {
            return f64::NEG_INFINITY;
        }
        la + lp
            + self.log_p_bulge_vel(x, y, vx, vy, vz)
            + self.log_p_chem(self.bulge_feh_mean(t), self.sigma_feh_bulge, t, zm, feh, ofe, jac)
    }

    fn log_prob_with(&self, s: &[f64; N_MODEL], jac: Jac) -> f64 {
        if s.iter().any(|v| !v.is_finite()) {
            return f64::NEG_INFINITY;
        }
        let ld = (1.0 - self.f_bulge).ln() + self.log_p_disc(s, jac);
        let lb = self.f_bulge.ln() + self.log_p_bulge(s, jac);
        // ln(0) + finite = -inf, so f_b = 0 or 1 needs no special case.
        let l = log_add_exp(ld, lb);
        if l.is_nan() {
            f64::NEG_INFINITY
        } else {
            l
        }
    }

    // ---- component samplers (modelled 10 columns, log_prob order) ----

    fn sample_chem<R: Rng + ?Sized>(&self, feh_mu: f64, feh_sig: f64, t: f64, rng: &mut R) -> (f64, f64, f64) {
        let feh = feh_mu + feh_sig * std_normal(rng);
        let ofe = self.ofe_mean(t, feh) + self.sigma_ofe * std_normal(rng);
        let zm = self.sample_z_given(feh, ofe, rng);
        (zm, feh, ofe)
    }

    fn sample_z_given<R: Rng + ?Sized>(&self, feh: f64, ofe: f64, rng: &mut R) -> f64 {
        10f64.powf(self.logz_mean(feh, ofe) + self.sigma_logz * std_normal(rng))
    }

    fn sample_disc_star<R: Rng + ?Sized>(&self, age: &Beta<f64>, rng: &mut R) -> [f64; N_MODEL] {
        let t = sample_age(age, rng);
        let r = sample_gamma2(self.r_d, rng);
        let phi = rng.random_range(0.0..std::f64::consts::TAU);
        let (s, c) = phi.sin_cos();
        let z = sample_sech2(self.scale_height(t), rng);
        let sr = self.sigma_r(t);
        let v_r = sr * std_normal(rng);
        let v_phi = self.vphi_mean(r, t) + self.sigma_phi_ratio * sr * std_normal(rng);
        let vz = self.sigma_z_ratio * sr * std_normal(rng);
        let (zm, feh, ofe) = self.sample_chem(self.disc_feh_mean(r, t), self.sigma_feh_disc, t, rng);
        [r * c, r * s, z, v_r * c - v_phi * s, v_r * s + v_phi * c, vz, zm, feh, ofe, t]
    }

    fn sample_bulge_star<R: Rng + ?Sized>(&self, age: &Beta<f64>, rng: &mut R) -> [f64; N_MODEL] {
        let t = sample_age(age, rng);
        let r = sample_plummer_r(self.a_bulge, self.r_max_bulge, rng);
        let cos_th: f64 = rng.random_range(-1.0..1.0);
        let sin_th = (1.0 - cos_th * cos_th).max(0.0).sqrt();
        let phi = rng.random_range(0.0..std::f64::consts::TAU);
        let (s, c) = phi.sin_cos();
        let (x, y, z) = (r * sin_th * c, r * sin_th * s, r * cos_th);
        let (mx, my) = self.bulge_rot_mean(x, y);
        let sb = self.sigma_bulge;
        let vx = mx + sb * std_normal(rng);
        let vy = my + sb * std_normal(rng);
        let vz = sb * std_normal(rng);
        let (zm, feh, ofe) = self.sample_chem(self.bulge_feh_mean(t), self.sigma_feh_bulge, t, rng);
        [x, y, z, vx, vy, vz, zm, feh, ofe, t]
    }
}

/// Beta(a, b) from mean m and concentration k = a + b; a, b >= 1.2 keeps the
/// age density bounded (no pile-up of stars at age 0 or T).
fn beta_from_mean(m: f64, k: f64) -> (f64, f64) {
    ((m * k).max(1.2), ((1.0 - m) * k).max(1.2))
}

/// Which change-of-variables Jacobians to include; only tests turn them off
/// (to show the tests detect a missing Jacobian).
#[derive(Clone, Copy)]
struct Jac {
    r: bool,
    z: bool,
}

const ALL_JAC: Jac = Jac { r: true, z: true };

// ---------------------------------------------------------------------------
// Public sampling / density API
// ---------------------------------------------------------------------------

/// Draws `n` stars, 11 columns each in `COLUMNS` order (mass at index 9, age last).
/// Returns an empty Vec if `p.validate()` fails (never panics).
pub fn sample_stars<R: Rng + ?Sized>(p: &GalaxyParams, n: usize, rng: &mut R) -> Vec<[f64; N_COLS]> {
    if p.validate().is_err() {
        return Vec::new();
    }
    let (Ok(age_d), Ok(age_b)) = (Beta::new(p.age_disc_a, p.age_disc_b), Beta::new(p.age_bulge_a, p.age_bulge_b))
    else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let u: f64 = rng.random();
        let s = if u < p.f_bulge { p.sample_bulge_star(&age_b, rng) } else { p.sample_disc_star(&age_d, rng) };
        // Mass is a nuisance column: lognormal with mean particle_mass.
        let ms = p.mass_scatter;
        let mass = p.particle_mass * (ms * std_normal(rng) - 0.5 * ms * ms).exp();
        out.push(with_mass(&s, mass));
    }
    out
}

/// Inserts `mass` at column 9 of a modelled vector (GalacticFlow layout).
pub fn with_mass(s: &[f64; N_MODEL], mass: f64) -> [f64; N_COLS] {
    let mut row = [0.0; N_COLS];
    row[..9].copy_from_slice(&s[..9]);
    row[9] = mass;
    row[10] = s[9];
    row
}

/// Drops the mass column (index 9) of a sampled star, giving the modelled vector.
pub fn model_vector(row: &[f64; N_COLS]) -> [f64; N_MODEL] {
    let mut s = [0.0; N_MODEL];
    s[..9].copy_from_slice(&row[..9]);
    s[9] = row[10];
    s
}

/// Exact log p(s | galaxy) for the 10 modelled columns (`MODEL_COLUMNS` order),
/// in nats w.r.t. Lebesgue measure on (x, y, z, vx, vy, vz, Z, [Fe/H], [O/Fe], age).
/// -inf outside the support (age not in (0, T_MAX), Z <= 0, non-finite input);
/// NaN only if `p.validate()` fails.
pub fn log_prob(p: &GalaxyParams, s: &[f64; N_MODEL]) -> f64 {
    if p.validate().is_err() {
        return f64::NAN;
    }
    p.log_prob_with(s, ALL_JAC)
}

/// `log_prob` over many rows (validates the parameters once).
pub fn log_prob_batch(p: &GalaxyParams, rows: &[[f64; N_MODEL]]) -> Vec<f64> {
    if p.validate().is_err() {
        return vec![f64::NAN; rows.len()];
    }
    rows.iter().map(|s| p.log_prob_with(s, ALL_JAC)).collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const NO_R_JAC: Jac = Jac { r: false, z: true };
    const NO_Z_JAC: Jac = Jac { r: true, z: false };

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn galaxy() -> GalaxyParams {
        GalaxyParams::mean_relations(10.5, StarCount::Fixed(100_000))
    }

    /// Midpoint rule (robust to integrable endpoint behaviour).
    fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        let h = (b - a) / n as f64;
        (0..n).map(|i| f(a + (i as f64 + 0.5) * h)).sum::<f64>() * h
    }

    /// Histogram check of samples against a density: bin probabilities by
    /// quadrature, Pearson chi^2 over bins with E >= 5, plus the largest
    /// |O - E| / sqrt(E). Returns (chi2, dof, max_dev).
    fn hist_check(samples: &[f64], lo: f64, hi: f64, nbins: usize, pdf: impl Fn(f64) -> f64) -> (f64, usize, f64) {
        let n = samples.len() as f64;
        let w = (hi - lo) / nbins as f64;
        let mut counts = vec![0usize; nbins];
        let mut outside = 0usize;
        for &s in samples {
            let k = ((s - lo) / w).floor();
            if k >= 0.0 && (k as usize) < nbins {
                counts[k as usize] += 1;
            } else {
                outside += 1;
            }
        }
        let (mut chi2, mut dof, mut max_dev, mut p_in) = (0.0, 0usize, 0.0f64, 0.0);
        for (k, &c) in counts.iter().enumerate() {
            let a = lo + k as f64 * w;
            let p = integrate(&pdf, a, a + w, 200);
            p_in += p;
            let e = n * p;
            if e >= 5.0 {
                let d = c as f64 - e;
                chi2 += d * d / e;
                dof += 1;
                max_dev = max_dev.max(d.abs() / e.sqrt());
            }
        }
        let e_out = n * (1.0 - p_in).max(0.0);
        if e_out >= 5.0 {
            let d = outside as f64 - e_out;
            chi2 += d * d / e_out;
            dof += 1;
            max_dev = max_dev.max(d.abs() / e_out.sqrt());
        } else {
            assert!((outside as f64) <= e_out + 5.0 * e_out.sqrt() + 5.0, "too many samples outside");
        }
        (chi2, dof.saturating_sub(1), max_dev)
    }

    fn assert_hist(name: &str, r: (f64, usize, f64)) {
        let (chi2, dof, max_dev) = r;
        let bound = dof as f64 + 5.0 * (2.0 * dof as f64).sqrt();
        println!("{name}: chi2 = {chi2:.1} (dof {dof}, bound {bound:.1}), max dev = {max_dev:.2} sigma");
        assert!(chi2 < bound, "{name}: chi2 {chi2} >= {bound}");
        assert!(max_dev < 5.0, "{name}: max bin deviation {max_dev} sigma");
    }

    fn mean_se(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    }

    fn model_samples(p: &GalaxyParams, n: usize, seed: u64) -> Vec<[f64; N_MODEL]> {
        sample_stars(p, n, &mut rng(seed)).iter().map(model_vector).collect()
    }

    // ---------------- 1. ln Gamma ----------------

    #[test]
    #[allow(clippy::excessive_precision)] // 30-digit mpmath references
    fn ln_gamma_known_values() {
        // Reference values from mpmath at 30 digits.
        let cases = [
            (0.5, 0.572_364_942_924_700_087_071_713_675_677, 1.772_453_850_905_516_027_298_167_483_34),
            (1.3, -0.108_174_809_507_860_470_945_578_075_392, 0.897_470_696_306_277_188_493_754_954_771),
            (5.0, 3.178_053_830_347_945_619_646_941_601_3, 24.0),
            (10.3, 13.482_036_786_138_356_970_615_073_432_6, 716_430.689_062_375_244_547_629_654_715),
            (0.1, 2.252_712_651_734_205_959_869_701_646_37, 9.513_507_698_668_731_836_292_487_177_27),
            (100.0, 359.134_205_369_575_398_776_044_010_46, 9.332_621_544_394_415_268_169_923_885_63e155),
            (1e-3, 6.907_178_885_383_853_682_512_344_668_08, 999.423_772_484_595_466_114_982_201_3),
            (3.7, 1.428_072_326_665_387_921_872_381_125_05, 4.170_651_783_796_603_165_393_602_998_62),
            (0.75, 0.203_280_951_431_295_371_481_432_971_862, 1.225_416_702_465_177_645_129_098_303_36),
            (1.0001, -5.771_334_222_047_762_330_784_346_444_06e-5, 0.999_942_288_323_162_419_080_573_742_256),
        ];
        let mut worst = 0.0f64;
        for (x, lg, g) in cases {
            let got = ln_gamma(x);
            // Gamma itself to 1e-12 relative <=> ln Gamma to 1e-12 absolute.
            let abs_err = (got - lg).abs();
            let rel_gamma = (got.exp() - g).abs() / g;
            worst = worst.max(abs_err.max(if g.is_finite() { rel_gamma } else { 0.0 }));
            assert!(abs_err < 1e-12 * lg.abs().max(1.0), "lnGamma({x}) = {got}, want {lg}");
            if g < 1e300 {
                assert!(rel_gamma < 1e-12, "Gamma({x}) rel err {rel_gamma}");
            }
        }
        // Exact integers and recurrence Gamma(x+1) = x Gamma(x).
        assert!(ln_gamma(1.0).abs() < 1e-15);
        assert!((ln_gamma(20.0) - (121_645_100_408_832_000f64).ln()).abs() < 1e-12);
        for &x in &[0.3, 1.7, 4.2, 17.5, 55.5] {
            assert!((ln_gamma(x + 1.0) - ln_gamma(x) - x.ln()).abs() < 1e-12 * ln_gamma(x + 1.0).abs().max(1.0));
        }
        assert!(ln_gamma(0.0).is_infinite() && ln_gamma(-2.0).is_infinite());
        println!("ln_gamma worst error {worst:.2e}");
    }

    // ---------------- 2. factor densities ----------------

    #[test]
    fn age_beta_normalised_and_matches_samples() {
        let p = GalaxyParams::draw_at(9.3, StarCount::Fixed(1), &mut rng(1));
        for (name, a, b) in [("disc", p.age_disc_a, p.age_disc_b), ("bulge", p.age_bulge_a, p.age_bulge_b)] {
            let f = |t: f64| GalaxyParams::log_p_age(t, a, b).exp();
            let norm = integrate(f, 0.0, T_MAX, 200_000);
            println!("age {name} Beta({a:.3},{b:.3}): integral = {norm:.8}");
            assert!((norm - 1.0).abs() < 1e-5, "{name} age norm {norm}");
            let beta = Beta::new(a, b).unwrap();
            let mut r = rng(2);
            let xs: Vec<f64> = (0..100_000).map(|_| sample_age(&beta, &mut r)).collect();
            assert!(xs.iter().all(|&t| t > 0.0 && t < T_MAX));
            assert_hist(&format!("age {name}"), hist_check(&xs, 0.0, T_MAX, 40, f));
        }
        // Outside the support the density is -inf, not NaN.
        assert_eq!(GalaxyParams::log_p_age(0.0, 2.0, 3.0), f64::NEG_INFINITY);
        assert_eq!(GalaxyParams::log_p_age(T_MAX, 2.0, 3.0), f64::NEG_INFINITY);
        assert_eq!(GalaxyParams::log_p_age(-1.0, 2.0, 3.0), f64::NEG_INFINITY);
    }

    #[test]
    fn radius_gamma2_normalised_and_matches_samples() {
        let rd = 2.7;
        let f = |r: f64| log_gamma2_pdf(r, rd).exp();
        let norm = integrate(f, 0.0, 40.0 * rd, 200_000);
        println!("Gamma(2) R: integral = {norm:.8}");
        assert!((norm - 1.0).abs() < 1e-6);
        let mut r = rng(3);
        let xs: Vec<f64> = (0..100_000).map(|_| sample_gamma2(rd, &mut r)).collect();
        assert_hist("R Gamma(2)", hist_check(&xs, 0.0, 8.0 * rd, 40, f));
    }

    #[test]
    fn sech2_normalised_and_matches_samples() {
        let h = 0.37;
        let f = |z: f64| log_sech2_pdf(z, h).exp();
        let norm = integrate(f, -30.0 * h, 30.0 * h, 200_000);
        println!("sech2: integral = {norm:.8}");
        assert!((norm - 1.0).abs() < 1e-6);
        let mut r = rng(4);
        let xs: Vec<f64> = (0..100_000).map(|_| sample_sech2(h, &mut r)).collect();
        assert_hist("z sech2", hist_check(&xs, -4.0 * h, 4.0 * h, 40, f));
        // Far in the tail the log-density is finite (stable ln cosh).
        assert!(log_sech2_pdf(1e4, h).is_finite());
    }

    #[test]
    fn plummer_normalised_and_matches_samples() {
        let (a, rmax) = (0.6, 9.0);
        let f = |r: f64| log_plummer_radial_pdf(r, a, rmax).exp();
        let norm = integrate(f, 0.0, rmax, 200_000);
        println!("Plummer radial: integral = {norm:.8}");
        assert!((norm - 1.0).abs() < 1e-6);
        // The 3-D Cartesian density itself, on a grid (checks 3/(4 pi a^3)).
        let n = 160;
        let hgrid = 2.0 * rmax / n as f64;
        let mut s3 = 0.0;
        for i in 0..n {
            let x = -rmax + (i as f64 + 0.5) * hgrid;
            for j in 0..n {
                let y = -rmax + (j as f64 + 0.5) * hgrid;
                for k in 0..n {
                    let z = -rmax + (k as f64 + 0.5) * hgrid;
                    s3 += log_plummer_xyz_pdf((x * x + y * y + z * z).sqrt(), a, rmax).exp();
                }
            }
        }
        s3 *= hgrid.powi(3);
        println!("Plummer 3-D grid: integral = {s3:.5}");
        assert!((s3 - 1.0).abs() < 5e-3);
        let mut r = rng(5);
        let xs: Vec<f64> = (0..100_000).map(|_| sample_plummer_r(a, rmax, &mut r)).collect();
        assert!(xs.iter().all(|&x| x > 0.0 && x <= rmax));
        assert_hist("Plummer r", hist_check(&xs, 0.0, rmax, 45, f));
    }

    #[test]
    fn chemistry_normalised_and_matches_samples() {
        let p = galaxy();
        // Gaussian factors integrate to one.
        let g = integrate(|x| log_normal_pdf(x, -0.3, 0.17).exp(), -0.3 - 12.0 * 0.17, -0.3 + 12.0 * 0.17, 100_000);
        assert!((g - 1.0).abs() < 1e-9, "gaussian norm {g}");
        // Linear-Z density with its 1/(Z ln 10) Jacobian integrates to one ...
        let (feh, ofe) = (-0.4, 0.15);
        let mu = p.logz_mean(feh, ofe);
        let (zlo, zhi) = (10f64.powf(mu - 12.0 * p.sigma_logz), 10f64.powf(mu + 12.0 * p.sigma_logz));
        let fz = |z: f64| p.log_p_z_given(z, feh, ofe, ALL_JAC).exp();
        let nz = integrate(fz, zlo, zhi, 400_000);
        // ... and without it it does not (the test has power).
        let nz_bad = integrate(|z| p.log_p_z_given(z, feh, ofe, NO_Z_JAC).exp(), zlo, zhi, 400_000);
        println!("Z|FeH,OFe: integral = {nz:.8}; without Jacobian = {nz_bad:.6}");
        assert!((nz - 1.0).abs() < 1e-6);
        assert!((nz_bad - 1.0).abs() > 0.5);
        assert_eq!(p.log_p_z_given(0.0, feh, ofe, ALL_JAC), f64::NEG_INFINITY);
        assert_eq!(p.log_p_z_given(-1e-3, feh, ofe, ALL_JAC), f64::NEG_INFINITY);
        // Histogram of linear Z samples against the Jacobian-carrying density.
        let mut r = rng(6);
        let zs: Vec<f64> = (0..100_000).map(|_| p.sample_z_given(feh, ofe, &mut r)).collect();
        let (a, b) = (10f64.powf(mu - 4.0 * p.sigma_logz), 10f64.powf(mu + 4.0 * p.sigma_logz));
        assert_hist("linear Z", hist_check(&zs, a, b, 40, fz));
        // Conditional structure of the chemistry sampler: standardised residuals ~ N(0,1).
        let t = 7.0;
        let (fm, fs) = (p.disc_feh_mean(4.0, t), p.sigma_feh_disc);
        let (mut rf, mut ro, mut rz) = (vec![], vec![], vec![]);
        for _ in 0..100_000 {
            let (zm, feh, ofe) = p.sample_chem(fm, fs, t, &mut r);
            rf.push((feh - fm) / fs);
            ro.push((ofe - p.ofe_mean(t, feh)) / p.sigma_ofe);
            rz.push((zm.log10() - p.logz_mean(feh, ofe)) / p.sigma_logz);
        }
        let phi = |x: f64| log_normal_pdf(x, 0.0, 1.0).exp();
        assert_hist("FeH residual", hist_check(&rf, -4.0, 4.0, 40, phi));
        assert_hist("OFe residual", hist_check(&ro, -4.0, 4.0, 40, phi));
        assert_hist("logZ residual", hist_check(&rz, -4.0, 4.0, 40, phi));
    }

    /// The disc (x, y) density in Cartesian coordinates: 2-D quadrature and a
    /// 2-D histogram. A missing 1/R Jacobian fails both.
    #[test]
    fn disc_xy_density_cartesian_jacobian() {
        let p = galaxy();
        let l = 16.0 * p.r_d;
        let n = 1000;
        let h = 2.0 * l / n as f64;
        let (mut s_ok, mut s_bad) = (0.0, 0.0);
        for i in 0..n {
            let x = -l + (i as f64 + 0.5) * h;
            for j in 0..n {
                let y = -l + (j as f64 + 0.5) * h;
                s_ok += p.log_p_disc_xy(x, y, ALL_JAC).exp();
                s_bad += p.log_p_disc_xy(x, y, NO_R_JAC).exp();
            }
        }
        s_ok *= h * h;
        s_bad *= h * h;
        println!("disc p(x,y): integral = {s_ok:.6}; without 1/R = {s_bad:.3}");
        assert!((s_ok - 1.0).abs() < 1e-3);
        assert!((s_bad - 1.0).abs() > 0.5);
        // 2-D histogram of sampled (x, y) of pure-disc stars vs. cell integrals.
        let beta = Beta::new(p.age_disc_a, p.age_disc_b).unwrap();
        let mut r = rng(7);
        let nb = 16;
        let half = 3.0 * p.r_d;
        let w = 2.0 * half / nb as f64;
        let mut counts = vec![0usize; nb * nb];
        let ns = 200_000;
        for _ in 0..ns {
            let s = p.sample_disc_star(&beta, &mut r);
            let (i, j) = (((s[0] + half) / w).floor(), ((s[1] + half) / w).floor());
            if i >= 0.0 && j >= 0.0 && (i as usize) < nb && (j as usize) < nb {
                counts[i as usize * nb + j as usize] += 1;
            }
        }
        let (mut chi2, mut chi2_bad, mut max_dev) = (0.0, 0.0, 0.0f64);
        let sub = 20;
        for i in 0..nb {
            for j in 0..nb {
                let (mut e, mut e_bad) = (0.0, 0.0);
                for a in 0..sub {
                    for b in 0..sub {
                        let x = -half + i as f64 * w + (a as f64 + 0.5) * w / sub as f64;
                        let y = -half + j as f64 * w + (b as f64 + 0.5) * w / sub as f64;
                        e += p.log_p_disc_xy(x, y, ALL_JAC).exp();
                        e_bad += p.log_p_disc_xy(x, y, NO_R_JAC).exp();
                    }
                }
                let cell = (w / sub as f64).powi(2) * ns as f64;
                let (e, e_bad) = (e * cell, e_bad * cell / s_bad); // renormalised wrong density
                let o = counts[i * nb + j] as f64;
                chi2 += (o - e).powi(2) / e;
                chi2_bad += (o - e_bad).powi(2) / e_bad;
                max_dev = max_dev.max((o - e).abs() / e.sqrt());
            }
        }
        let dof = (nb * nb) as f64;
        println!("disc (x,y) 2-D histogram: chi2 = {chi2:.1} (dof {dof}), max dev {max_dev:.2} sigma; without 1/R chi2 = {chi2_bad:.0}");
        assert!(chi2 < dof + 5.0 * (2.0 * dof).sqrt());
        assert!(max_dev < 5.0);
        assert!(chi2_bad > 10.0 * dof);
    }

    /// The disc velocity density is normalised in Cartesian (vx, vy, vz) at
    /// fixed position and age (rotation Jacobian = 1), including R = 0.
    #[test]
    fn disc_velocity_density_normalised() {
        let p = galaxy();
        for &(x, y, t) in &[(3.0, -4.0, 2.0), (-0.7, 0.2, 11.0), (0.0, 0.0, 6.0), (15.0, 9.0, 13.0)] {
            let sr = p.sigma_r(t);
            let r = f64::hypot(x, y);
            let (c, s) = if r > 0.0 { (x / r, y / r) } else { (1.0, 0.0) };
            let vm = p.vphi_mean(r, t);
            let (cx, cy) = (-s * vm, c * vm);
            let l = 9.0 * sr;
            let n = 600;
            let h = 2.0 * l / n as f64;
            let mut acc = 0.0;
            for i in 0..n {
                let vx = cx - l + (i as f64 + 0.5) * h;
                for j in 0..n {
                    let vy = cy - l + (j as f64 + 0.5) * h;
                    // vz = 0 slice; divide its (known) density out to get the (vx, vy) marginal.
                    acc +=
                        (p.log_p_disc_vel(x, y, t, vx, vy, 0.0) - log_normal_pdf(0.0, 0.0, p.sigma_z_ratio * sr)).exp();
                }
            }
            acc *= h * h;
            let nz = integrate(|vz| log_normal_pdf(vz, 0.0, p.sigma_z_ratio * sr).exp(), -12.0 * sr, 12.0 * sr, 20_000);
            println!("disc p(vx,vy) at ({x},{y}), t={t}: integral = {acc:.8}, p(vz) integral {nz:.8}");
            assert!((acc - 1.0).abs() < 1e-6);
            assert!((nz - 1.0).abs() < 1e-6);
        }
    }

    // ---------------- 3. the full 10-D density ----------------

    /// Independent textbook formula for the full density (written directly in
    /// Cartesian/linear variables, cancelled forms), compared pointwise.
    fn reference_log_prob(p: &GalaxyParams, s: &[f64; 10]) -> f64 {
        use std::f64::consts::PI;
        let [x, y, z, vx, vy, vz, zm, feh, ofe, t] = *s;
        let gauss = |v: f64, m: f64, sd: f64| (-(v - m).powi(2) / (2.0 * sd * sd)).exp() / (sd * (2.0 * PI).sqrt());
        let beta = |u: f64, a: f64, b: f64| {
            u.powf(a - 1.0) * (1.0 - u).powf(b - 1.0) * (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b)).exp()
        };
        let u = t / T_MAX;
        let chem = |fm: f64, fs: f64| {
            let om = p.ofe_young + (p.ofe_old - p.ofe_young) / (1.0 + ((p.t_ia - t) / p.w_ia).exp()) - 0.1 * feh;
            let lzm = (0.0134f64).log10() + feh + 0.7 * ofe;
            gauss(feh, fm, fs) * gauss(ofe, om, p.sigma_ofe) * gauss(zm.log10(), lzm, p.sigma_logz) / (zm * 10f64.ln())
        };
        let rr = (x * x + y * y).sqrt();
        // disc
        let h = p.h0 * (0.3 + 0.7 * u);
        let sr = p.sigma0 * (0.1 + u).powf(0.4);
        let vc = p.v_flat * 2.0 / PI * (rr / p.r_turn).atan();
        let vphi_m = vc - 0.5 * sr * sr * (0.5 + rr / p.r_d) / p.v_flat;
        let (vr, vphi) = ((x * vx + y * vy) / rr, (x * vy - y * vx) / rr);
        let pd = beta(u, p.age_disc_a, p.age_disc_b) / T_MAX * (-rr / p.r_d).exp() / (2.0 * PI * p.r_d * p.r_d) * 1.0
            / (2.0 * h * (z / h).cosh().powi(2))
            * gauss(vr, 0.0, sr)
            * gauss(vphi, vphi_m, 0.7 * sr)
            * gauss(vz, 0.0, 0.5 * sr)
            * chem(p.feh_center + p.feh_grad * rr - p.feh_age_slope * u, p.sigma_feh_disc);
        // bulge
        let r3 = (rr * rr + z * z).sqrt();
        let a = p.a_bulge;
        let m_in = (p.r_max_bulge.powi(2) / (p.r_max_bulge.powi(2) + a * a)).powf(1.5);
        let rho = if r3 <= p.r_max_bulge {
            3.0 / (4.0 * PI * a.powi(3)) * (1.0 + r3 * r3 / (a * a)).powf(-2.5) / m_in
        } else {
            0.0
        };
        let k = p.v_rot_bulge / (rr + a);
        let pb = beta(u, p.age_bulge_a, p.age_bulge_b) / T_MAX
            * rho
            * gauss(vx, -k * y, p.sigma_bulge)
            * gauss(vy, k * x, p.sigma_bulge)
            * gauss(vz, 0.0, p.sigma_bulge)
            * chem(p.feh_center + p.feh_bulge_offset - p.feh_age_slope * u, p.sigma_feh_bulge);
        ((1.0 - p.f_bulge) * pd + p.f_bulge * pb).ln()
    }

    #[test]
    fn log_prob_matches_independent_reference() {
        let mut r = rng(8);
        let mut worst = 0.0f64;
        for g in 0..5 {
            let p = GalaxyParams::draw(&mut r, StarCount::Fixed(1000));
            // Own samples plus samples of another galaxy (tails, bulge-dominated points, ...).
            let q = GalaxyParams::draw(&mut r, StarCount::Fixed(1000));
            let mut pts = model_samples(&p, 300, 100 + g);
            pts.extend(model_samples(&q, 300, 200 + g));
            for s in &pts {
                let a = log_prob(&p, s);
                let b = reference_log_prob(&p, s);
                if b.is_finite() && b > -600.0 {
                    worst = worst.max((a - b).abs() / b.abs().max(1.0));
                    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "log_prob {a} vs reference {b} at {s:?}");
                }
            }
        }
        println!("log_prob vs independent reference: worst rel diff {worst:.2e}");
    }

    /// B = A with every dispersion / scale broadened, so supp(B) covers A and
    /// p_A^2 / p_B is integrable (finite-variance weights).
    fn broadened(a: &GalaxyParams, k: f64) -> GalaxyParams {
        let mut b = a.clone();
        b.r_d *= k;
        b.h0 *= k;
        b.a_bulge *= k;
        b.r_max_bulge *= k;
        b.sigma0 *= k;
        b.sigma_bulge *= k;
        b.sigma_feh_disc *= k;
        b.sigma_feh_bulge *= k;
        b.sigma_ofe *= k;
        b.sigma_logz *= k;
        b
    }

    /// E_{s~B}[p_A(s) / p_B(s)] = 1 for the correct density; with a Jacobian
    /// dropped from p_A the identity fails by many standard errors.
    #[test]
    fn importance_sampling_identity() {
        let a = galaxy();
        let b = broadened(&a, 1.15);
        let n = 200_000;
        let xs = model_samples(&b, n, 9);
        let lb = log_prob_batch(&b, &xs);
        let w = |f: &dyn Fn(&[f64; 10]) -> f64| -> (f64, f64) {
            let v: Vec<f64> = xs.iter().zip(&lb).map(|(s, l)| (f(s) - l).exp()).collect();
            mean_se(&v)
        };
        let (m, se) = w(&|s| log_prob(&a, s));
        println!("E_B[p_A/p_B] = {m:.5} +- {se:.5}");
        assert!((m - 1.0).abs() < 3.5 * se && se < 0.01);

        // Narrower, shifted target C with proposal A: E_A[p_C/p_A] = 1.
        let mut c = broadened(&a, 0.9);
        c.v_flat *= 1.03;
        c.feh_center += 0.03;
        c.f_bulge += 0.03;
        c.age_disc_a *= 1.05;
        c.t_ia -= 0.3;
        let xa = model_samples(&a, n, 10);
        let v: Vec<f64> = xa.iter().map(|s| (log_prob(&c, s) - log_prob(&a, s)).exp()).collect();
        let (m2, se2) = mean_se(&v);
        println!("E_A[p_C/p_A] = {m2:.5} +- {se2:.5}");
        assert!((m2 - 1.0).abs() < 3.5 * se2 && se2 < 0.01);

        // Dropped Jacobians in the target: identity must fail.
        let (mr, ser) = w(&|s| a.log_prob_with(s, NO_R_JAC));
        let (mz, sez) = w(&|s| a.log_prob_with(s, NO_Z_JAC));
        println!("without 1/R: {mr:.4} +- {ser:.4}; without 1/(Z ln10): {mz:.5} +- {sez:.5}");
        assert!((mr - 1.0).abs() > 20.0 * ser);
        assert!((mz - 1.0).abs() > 20.0 * sez);
    }

    /// Field accessors for the score / Gibbs tests.
    fn field(p: &mut GalaxyParams, k: usize) -> Option<(&'static str, &mut f64)> {
        Some(match k {
            0 => ("r_d", &mut p.r_d),
            1 => ("f_bulge", &mut p.f_bulge),
            2 => ("a_bulge", &mut p.a_bulge),
            3 => ("v_flat", &mut p.v_flat),
            4 => ("r_turn", &mut p.r_turn),
            5 => ("h0", &mut p.h0),
            6 => ("sigma0", &mut p.sigma0),
            7 => ("sigma_phi_ratio", &mut p.sigma_phi_ratio),
            8 => ("sigma_z_ratio", &mut p.sigma_z_ratio),
            9 => ("drift_coef", &mut p.drift_coef),
            10 => ("sigma_bulge", &mut p.sigma_bulge),
            11 => ("v_rot_bulge", &mut p.v_rot_bulge),
            12 => ("age_disc_a", &mut p.age_disc_a),
            13 => ("age_disc_b", &mut p.age_disc_b),
            14 => ("age_bulge_a", &mut p.age_bulge_a),
            15 => ("age_bulge_b", &mut p.age_bulge_b),
            16 => ("feh_center", &mut p.feh_center),
            17 => ("feh_grad", &mut p.feh_grad),
            18 => ("feh_age_slope", &mut p.feh_age_slope),
            19 => ("sigma_feh_disc", &mut p.sigma_feh_disc),
            20 => ("feh_bulge_offset", &mut p.feh_bulge_offset),
            21 => ("sigma_feh_bulge", &mut p.sigma_feh_bulge),
            22 => ("ofe_young", &mut p.ofe_young),
            23 => ("ofe_old", &mut p.ofe_old),
            24 => ("t_ia", &mut p.t_ia),
            25 => ("w_ia", &mut p.w_ia),
            26 => ("ofe_feh_coupling", &mut p.ofe_feh_coupling),
            27 => ("sigma_ofe", &mut p.sigma_ofe),
            28 => ("sigma_logz", &mut p.sigma_logz),
            _ => return None,
        })
    }

    /// Sampler/density consistency for every parameter: the score
    /// d/d theta log p_theta(s) has mean zero under s ~ p_theta. A sampler that
    /// uses any parameter differently from the density shifts this mean.
    #[test]
    fn score_has_zero_mean_for_every_parameter() {
        let p = GalaxyParams::draw_at(10.3, StarCount::Fixed(1), &mut rng(11));
        let xs = model_samples(&p, 20_000, 12);
        let mut k = 0;
        let mut worst = 0.0f64;
        loop {
            let mut hi = p.clone();
            let Some((name, v)) = field(&mut hi, k) else { break };
            let eps = 1e-4 * v.abs().max(0.01);
            *v += eps;
            let mut lo = p.clone();
            *field(&mut lo, k).unwrap().1 -= eps;
            let sc: Vec<f64> = xs.iter().map(|s| (log_prob(&hi, s) - log_prob(&lo, s)) / (2.0 * eps)).collect();
            let (m, se) = mean_se(&sc);
            let zscore = m / se;
            worst = worst.max(zscore.abs());
            println!("score {name:>16}: mean {m:+.4e} +- {se:.2e}  (z = {zscore:+.2})");
            assert!(zscore.abs() < 4.5, "score of {name} has nonzero mean: z = {zscore}");
            k += 1;
        }
        println!("worst |z| over {k} parameters: {worst:.2}");
        assert_eq!(k, 29);
    }

    /// Gibbs inequality: E_{s~A}[log p_A(s) - log p_A'(s)] = KL(A || A') > 0
    /// for perturbed galaxies A'; a sampler not following p_A would let some
    /// A' fit A's samples better.
    #[test]
    fn gibbs_inequality_against_perturbed_galaxies() {
        let a = galaxy();
        let xs = model_samples(&a, 20_000, 13);
        let la = log_prob_batch(&a, &xs);
        let mut others: Vec<(String, GalaxyParams)> = vec![];
        for k in [0usize, 1, 3, 5, 6, 10, 12, 16, 17, 19, 23, 24, 28] {
            for f in [0.8, 1.2] {
                let mut q = a.clone();
                let (name, v) = field(&mut q, k).unwrap();
                // feh_center is ~0, so it gets an additive shift of +-0.2 dex instead.
                if name == "feh_center" {
                    *v += f - 1.0
                } else {
                    *v *= f
                }
                others.push((format!("{name} x{f}"), q));
            }
        }
        others.push(("different draw".into(), GalaxyParams::draw_at(10.5, StarCount::Fixed(1), &mut rng(14))));
        for (name, q) in &others {
            let d: Vec<f64> = xs.iter().zip(&la).map(|(s, l)| l - log_prob(q, s)).collect();
            let (m, se) = mean_se(&d);
            println!("KL(A||{name}) ~ {m:.5} +- {se:.5}");
            assert!(m > 3.0 * se, "{name}: {m} +- {se}");
        }
        // The entropy estimate -E_A[log p_A] is finite.
        let (h, _) = mean_se(&la);
        assert!(h.is_finite());
    }

    /// Support edges and bad input give -inf, never NaN or a panic.
    #[test]
    fn outside_support_is_neg_inf() {
        let p = galaxy();
        let s = model_samples(&p, 1, 15)[0];
        assert!(log_prob(&p, &s).is_finite());
        let mut bad = vec![];
        for (col, v) in
            [(9, 0.0), (9, T_MAX), (9, -1.0), (9, 20.0), (6, 0.0), (6, -0.01), (0, f64::NAN), (3, f64::INFINITY)]
        {
            let mut t = s;
            t[col] = v;
            bad.push(t);
        }
        for t in &bad {
            assert_eq!(log_prob(&p, t), f64::NEG_INFINITY, "{t:?}");
        }
        // Exactly at the centre, far away, huge velocities: finite or -inf, never NaN.
        let mut c = s;
        c[0] = 0.0;
        c[1] = 0.0;
        assert!(log_prob(&p, &c).is_finite());
        let mut far = s;
        far[0] = 1e4;
        far[3] = 1e5;
        assert!(!log_prob(&p, &far).is_nan());
        // Pure disc and pure bulge galaxies still work.
        for fb in [0.0, 1.0] {
            let mut q = p.clone();
            q.f_bulge = fb;
            let xs = model_samples(&q, 2000, 16);
            assert!(log_prob_batch(&q, &xs).iter().all(|l| l.is_finite()));
        }
        // Invalid parameters: no panic, empty sample, NaN density.
        let mut q = p.clone();
        q.r_d = -1.0;
        assert!(q.validate().is_err());
        assert!(sample_stars(&q, 10, &mut rng(1)).is_empty());
        assert!(log_prob(&q, &s).is_nan());
    }

    // ---------------- 4. non-degenerate, physical columns ----------------

    /// Least-squares residual variance of y on [1, X] via normal equations.
    fn residual_var(xcols: &[Vec<f64>], y: &[f64]) -> f64 {
        let n = y.len();
        let k = xcols.len() + 1;
        // Standardise for conditioning.
        let stdz = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / n as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-300);
            v.iter().map(|x| (x - m) / s).collect::<Vec<f64>>()
        };
        let mut cols: Vec<Vec<f64>> = vec![vec![1.0; n]];
        cols.extend(xcols.iter().map(|c| stdz(c)));
        let mut a = vec![vec![0.0; k + 1]; k];
        for i in 0..k {
            for j in 0..k {
                a[i][j] = (0..n).map(|r| cols[i][r] * cols[j][r]).sum();
            }
            a[i][k] = (0..n).map(|r| cols[i][r] * y[r]).sum();
            a[i][i] += 1e-9 * n as f64; // tiny ridge
        }
        for c in 0..k {
            let piv = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
            a.swap(c, piv);
            for r in 0..k {
                if r != c {
                    let f = a[r][c] / a[c][c];
                    for j in c..=k {
                        a[r][j] -= f * a[c][j];
                    }
                }
            }
        }
        let beta: Vec<f64> = (0..k).map(|i| a[i][k] / a[i][i]).collect();
        (0..n)
            .map(|r| {
                let f: f64 = (0..k).map(|i| beta[i] * cols[i][r]).sum();
                (y[r] - f).powi(2)
            })
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn columns_nondegenerate_and_physical() {
        let mut r = rng(17);
        for &lm in &[8.6, 9.8, 10.95] {
            let p = GalaxyParams::draw_at(
                lm,
                StarCount::ParticleMass { m_particle: 1e4, n_min: 1000, n_max: 20_000 },
                &mut r,
            );
            let rows = sample_stars(&p, p.n_stars, &mut r);
            assert_eq!(rows.len(), p.n_stars);
            let n = rows.len();
            let col = |j: usize| rows.iter().map(|row| row[j]).collect::<Vec<f64>>();
            let cols: Vec<Vec<f64>> = (0..N_COLS).map(col).collect();
            // Each column on all others plus their squares: clear residual variance left.
            let mut min_frac = f64::INFINITY;
            for j in 0..N_COLS {
                let y = &cols[j];
                let mut xs: Vec<Vec<f64>> = vec![];
                for (i, c) in cols.iter().enumerate() {
                    if i != j {
                        xs.push(c.clone());
                        xs.push(c.iter().map(|v| v * v).collect());
                    }
                }
                let m = y.iter().sum::<f64>() / n as f64;
                let var = y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64;
                let frac = residual_var(&xs, y) / var;
                min_frac = min_frac.min(frac);
                println!("logM {lm}: column {:>5}: residual var fraction {frac:.4}", COLUMNS[j]);
                assert!(frac > 5e-3, "column {} nearly determined by the others", COLUMNS[j]);
            }
            // log10 Z on ([Fe/H], [O/Fe]): residual scatter equals sigma_logz.
            let lz: Vec<f64> = cols[6].iter().map(|z| z.log10()).collect();
            let rs = residual_var(&[cols[7].clone(), cols[8].clone()], &lz).sqrt();
            println!("logM {lm}: N = {n}, log10 Z | FeH, OFe residual sd = {rs:.4} (sigma_logz {})", p.sigma_logz);
            assert!((rs / p.sigma_logz - 1.0).abs() < 0.05);
            // log mass: lognormal scatter 0.1.
            let lmass: Vec<f64> = cols[9].iter().map(|m| m.ln()).collect();
            let others: Vec<Vec<f64>> = (0..N_COLS).filter(|&i| i != 9).map(|i| cols[i].clone()).collect();
            let rm = residual_var(&others, &lmass).sqrt();
            assert!((rm / p.mass_scatter - 1.0).abs() < 0.05, "mass residual {rm}");
            // Physical ranges.
            let frac = |f: &dyn Fn(&[f64; 11]) -> bool| rows.iter().filter(|row| f(row)).count() as f64 / n as f64;
            let zthin = frac(&|row| row[2].abs() < 5.0);
            let slow = frac(&|row| (row[3] * row[3] + row[4] * row[4] + row[5] * row[5]).sqrt() < 600.0);
            let vmax =
                rows.iter().map(|row| (row[3] * row[3] + row[4] * row[4] + row[5] * row[5]).sqrt()).fold(0.0, f64::max);
            let zmax = rows.iter().map(|row| row[2].abs()).fold(0.0, f64::max);
            println!("logM {lm}: |z|<5 kpc {zthin:.4}, speed<600 {slow:.5}, max |z| {zmax:.2}, max speed {vmax:.0}");
            assert!(zthin > 0.99 && slow > 0.999);
            assert!(rows.iter().all(|row| row[10] > 0.0 && row[10] < T_MAX));
            assert!(rows.iter().all(|row| row[6] > 1e-6 && row[6] < 0.2));
            assert!(rows.iter().all(|row| row[7] > -4.0 && row[7] < 1.5 && row[8] > -0.6 && row[8] < 1.0));
            assert!(rows.iter().all(|row| row[9] > 0.0 && row.iter().all(|v| v.is_finite())));
            let total: f64 = cols[9].iter().sum();
            assert!((total / p.mstar - 1.0).abs() < 0.02, "particle masses sum to M_star");
        }
    }

    #[test]
    fn drawn_galaxies_follow_scaling_relations() {
        let mut r = rng(18);
        let count = StarCount::ParticleMass { m_particle: 5e4, n_min: 2000, n_max: 200_000 };
        for _ in 0..200 {
            let p = GalaxyParams::draw(&mut r, count);
            assert!(p.validate().is_ok());
            assert!((8.5..11.0).contains(&p.log_mstar));
            assert!(p.n_stars >= 2000 && p.n_stars <= 200_000);
            assert!(p.r_d > 0.3 && p.r_d < 12.0 && p.v_flat > 30.0 && p.v_flat < 450.0);
            assert!(p.age_disc_a >= 1.2 && p.age_disc_b >= 1.2);
        }
        let m = GalaxyParams::mean_relations(10.5, StarCount::Fixed(7));
        assert!((m.r_d - 3.0).abs() < 1e-12 && (m.v_flat - 200.0).abs() < 1e-9);
        assert_eq!(m.n_stars, 7);
        let lo = GalaxyParams::mean_relations(8.5, count);
        let hi = GalaxyParams::mean_relations(11.0, count);
        assert!((lo.f_bulge - 0.05).abs() < 1e-12 && (hi.f_bulge - 0.35).abs() < 1e-12);
        // Massive galaxies are older on average (Beta mean a / (a + b)).
        assert!(hi.age_disc_a / (hi.age_disc_a + hi.age_disc_b) > lo.age_disc_a / (lo.age_disc_a + lo.age_disc_b));
        assert_eq!(lo.n_stars, 6325); // 10^8.5 / 5e4 rounded
    }
}
