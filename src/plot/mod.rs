//! Evaluation plots: compare flow samples against the simulation they were trained on, as GalacticFlow
//! (arXiv 2312.06017) does, and draw training curves.
//!
//! Star arrays are row-major `N x dims` `f32` slices (for GalacticForge `dims` = 10, columns
//! [`STAR_COLUMNS`]). Non-finite values are skipped (a NaN in one column drops that row from the panels
//! that use the column only); empty flow input gives a plot of the data alone; constant columns get a
//! widened range. Every function writes one RGB PNG atomically (`<path>.tmp`, then a rename, creating
//! missing parent folders) and returns [`PlotError`] instead of panicking.
//!
//! Text is drawn with DejaVu Sans, embedded from `assets/` (licence in `assets/DejaVuSans-LICENSE.txt`)
//! and rasterised by plotters' `ab_glyph` font code: no system font or library is needed. Everything else
//! (anti-aliased lines, density fills, colour maps, axes) is drawn by `canvas.rs` and `axes.rs`.
//!
//! Files: `canvas.rs` (raster, text, PNG), `axes.rs` (ticks, frames, colour bars, legends),
//! `colormap.rs`, `stats.rs` (percentiles, histograms, smoothing, contours), and one file per plot:
//! `corner.rs`, `histograms.rs`, `maps.rs` (x-y maps), `curves.rs`, `images.rs`, and `hi.rs` (HI maps:
//! power spectra, parameter posteriors, map rows).

// `!(x > 0.0)` is meant: it is true for NaN too.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod axes;
mod canvas;
mod colormap;
mod corner;
mod curves;
mod hi;
mod histograms;
mod images;
mod maps;
mod stats;
#[cfg(test)]
mod testutil;
mod types;

pub use corner::corner;
pub use curves::curves;
pub use hi::{map_rows, posteriors, power_spectra};
pub use histograms::histograms;
pub use images::images;
pub use maps::xy_maps;
pub use types::{PkPanel, PlotError, PosteriorPanel, STAR_COLUMNS};

pub(crate) fn invalid(msg: impl Into<String>) -> PlotError {
    PlotError::InvalidInput(msg.into())
}

/// Name of column `c`, or "column c" when `names` is too short.
pub(crate) fn col_name(names: &[&str], c: usize) -> String {
    match names.get(c) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("column {c}"),
    }
}
