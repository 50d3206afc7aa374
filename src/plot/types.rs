//! What the plots take and return: shared by the plots (plot/) and by the stand-ins a build without the
//! `cli` feature compiles instead (plot_absent.rs), so callers see one set of types either way.
use std::fmt;

/// Column names of a GalacticForge star array, in order (x, y, z in kpc; velocities in km/s; age in Gyr).
pub const STAR_COLUMNS: [&str; 10] =
    ["x [kpc]", "y [kpc]", "z [kpc]", "vx [km/s]", "vy [km/s]", "vz [km/s]", "Z", "[Fe/H]", "[O/Fe]", "age [Gyr]"];

/// Why a plot was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlotError {
    /// Arguments that cannot give a plot (shape mismatch, no rows at all, zero bins, bad extent...).
    InvalidInput(String),
    /// The PNG could not be encoded or written.
    Io(String),
    /// The embedded font could not be loaded (should never happen: it is tested).
    Font(String),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::InvalidInput(m) => write!(f, "plot: invalid input: {m}"),
            PlotError::Io(m) => write!(f, "plot: {m}"),
            PlotError::Font(m) => write!(f, "plot: font: {m}"),
        }
    }
}

impl std::error::Error for PlotError {}

impl From<PlotError> for String {
    fn from(e: PlotError) -> String {
        e.to_string()
    }
}

/// One power-spectrum panel: P(k) of the data (mean and standard deviation over its maps) and of the
/// flow's samples, at the wavenumbers `k` (all five slices equally long).
#[derive(Clone, Debug)]
pub struct PkPanel<'a> {
    pub title: String,
    pub k: &'a [f64],
    pub data_mean: &'a [f64],
    pub data_std: &'a [f64],
    pub sample_mean: &'a [f64],
    pub sample_std: &'a [f64],
}

/// One posterior panel: masses on an `n x n` grid of normalised parameters.
#[derive(Clone, Debug)]
pub struct PosteriorPanel<'a> {
    pub title: String,
    pub n: usize,
    /// The `n` grid points of each axis, normalised (HIGlow: [-1, 1], ends included), increasing.
    pub axis: &'a [f64],
    /// `n * n` posterior masses of the flow, row = Omega_m index, column = sigma_8 index. Non-finite or
    /// negative values count as no mass; they need not sum to 1.
    pub flow: &'a [f64],
    /// The exact posterior on the same grid, if known.
    pub exact: Option<&'a [f64]>,
    /// The true (Omega_m, sigma_8), normalised like `axis`.
    pub truth: Option<[f64; 2]>,
    /// Axis labels: [x (Omega_m), y (sigma_8)].
    pub labels: [&'a str; 2],
    /// Physical [lo, hi] of (Omega_m, sigma_8) that the normalised -1 and 1 stand for (HIGlow's
    /// `CondScaling`); the axes are then ticked in physical units. None: normalised units.
    pub ranges: Option<[[f64; 2]; 2]>,
}
