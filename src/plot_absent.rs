//! The plots of a build without the `cli` feature (no plotters, no image crate): every plot is one clear
//! error, so a library that embeds the crate compiles no drawing code and a caller that asks for a plot
//! learns why there is none. Same names and signatures as plot/ (lib.rs picks one of the two).
use std::path::Path;

#[path = "plot/types.rs"]
mod types;
pub use types::{PkPanel, PlotError, PosteriorPanel, STAR_COLUMNS};

fn absent() -> Result<(), PlotError> {
    Err(PlotError::Io("this build draws no plots (it was compiled without the `cli` feature)".into()))
}

/// Stand-in for plot/corner.rs.
pub fn corner(_: impl AsRef<Path>, _: &[f32], _: &[f32], _: usize, _: &[&str], _: &str) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/curves.rs.
pub fn curves(_: impl AsRef<Path>, _: &[(&str, &[(f64, f64)])], _: &str, _: &str, _: &str) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/histograms.rs.
pub fn histograms(
    _: impl AsRef<Path>,
    _: &[f32],
    _: &[f32],
    _: usize,
    _: &[&str],
    _: usize,
    _: &str,
) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/images.rs.
pub fn images(_: impl AsRef<Path>, _: &[(&[f32], usize, usize)], _: usize, _: &[&str]) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/maps.rs.
#[allow(clippy::too_many_arguments)]
pub fn xy_maps(
    _: impl AsRef<Path>,
    _: &[f32],
    _: &[f32],
    _: usize,
    _: &[(usize, &str)],
    _: [f64; 4],
    _: usize,
    _: usize,
) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/hi.rs.
pub fn power_spectra(_: impl AsRef<Path>, _: &[PkPanel], _: usize) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/hi.rs.
pub fn posteriors(_: impl AsRef<Path>, _: &[PosteriorPanel], _: usize) -> Result<(), PlotError> {
    absent()
}

/// Stand-in for plot/hi.rs.
pub fn map_rows(_: impl AsRef<Path>, _: &[(&str, Vec<&[f32]>)], _: usize, _: f32, _: f32) -> Result<(), PlotError> {
    absent()
}
