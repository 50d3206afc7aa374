//! Star-particle data in the GalacticFlow layout: one array per galaxy, 11 float columns
//! (x, y, z [kpc], vx, vy, vz [km/s], Z, [Fe/H], [O/Fe], mass [Msun], age [Gyr]); a folder of `<id>.npy`
//! files or one .npz with an entry per galaxy, stored [stars, 11] or, as GalacticFlow stores NIHAO, [11, stars]
//! with names ending `_<NIHAO id>_<M_dm>.npy`. Loading validates every file and names the bad one.
//! HI maps (HIGlow, CAMELS layout) live in `hi_maps`, their synthetic stand-in with an exact density in
//! `hi_generator`, and the power spectrum that scores generated maps in `power_spectrum`.
pub mod clean;
pub mod conditions;
pub mod hi_generator;
pub mod hi_maps;
#[cfg_attr(not(feature = "cli"), path = "image_decode_absent.rs")]
pub mod image_decode;
pub mod images;
pub mod power_spectrum;
pub mod stats;
pub mod synth;
pub mod synthetic;
pub mod text_tables;

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayD, Ix2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Column names of the file layout.
pub const COLUMNS: [&str; 11] = ["x", "y", "z", "vx", "vy", "vz", "Z", "Fe/H", "O/Fe", "mass", "age"];
/// The file columns the flow models (all but mass), in model order.
pub const MODELLED: [usize; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10];
pub const MASS: usize = 9;
pub const AGE: usize = 10;
pub const METALS: usize = 6;
pub const FE_H: usize = 7;
pub const O_FE: usize = 8;

/// How a galaxy file lays out its [stars x 11] table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// From the shape: [N, 11] or [11, N]; an 11 x 11 file takes the layout of the folder's other files.
    #[default]
    Auto,
    /// [stars, 11]: gforge's own files and numpy's natural table.
    StarsFirst,
    /// [11, stars]: GalacticFlow's processed NIHAO files (its loader transposes them, `np.load(f).T`).
    ColumnsFirst,
}

impl std::str::FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Layout> {
        match s {
            "auto" => Ok(Layout::Auto),
            "stars-first" => Ok(Layout::StarsFirst),
            "columns-first" => Ok(Layout::ColumnsFirst),
            o => Err(Error::Usage(format!("unknown layout '{o}' (auto, stars-first, columns-first)"))),
        }
    }
}

/// What a GalacticFlow file name `..._<NIHAO id>_<M_dm>.npy` says about its galaxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NihaoName {
    pub nihao_id: String,
    /// Dark-matter mass [Msun].
    pub m_dm: f64,
}

impl NihaoName {
    /// Reads the last two `_`-separated fields of a file stem, as GalacticFlow's `get_data` does; `None`
    /// unless the last one is a positive finite number (so `g003` or `my_galaxy` carry no M_dm).
    pub fn parse(stem: &str) -> Option<NihaoName> {
        let mut fields = stem.rsplit('_');
        let m_dm = fields.next()?.parse::<f64>().ok().filter(|m| m.is_finite() && *m > 0.0)?;
        let nihao_id = fields.next().filter(|s| !s.is_empty())?;
        Some(NihaoName { nihao_id: nihao_id.to_string(), m_dm })
    }
}

/// One galaxy's star particles, [N, 11] in the file layout.
#[derive(Clone, Debug)]
pub struct Galaxy {
    pub id: String,
    pub stars: Array2<f32>,
    /// The file it was read from (errors name it); `None` for galaxies made in memory.
    pub source: Option<PathBuf>,
    /// NIHAO id and M_dm, when the name follows GalacticFlow's pattern.
    pub name: Option<NihaoName>,
}

impl Galaxy {
    /// A galaxy made in memory; its id is parsed for a NIHAO name as a file stem would be.
    pub fn new(id: impl Into<String>, stars: Array2<f32>) -> Galaxy {
        let id = id.into();
        Galaxy { name: NihaoName::parse(&id), id, stars, source: None }
    }

    pub fn n(&self) -> usize {
        self.stars.nrows()
    }

    /// The modelled columns, [N, 10].
    pub fn modelled(&self) -> Array2<f32> {
        // Built row-major on purpose: `select` along columns may return a column-major array.
        Array2::from_shape_fn((self.n(), MODELLED.len()), |(r, c)| self.stars[[r, MODELLED[c]]])
    }

    /// An error about this galaxy, naming its file when it came from one.
    pub fn error(&self, msg: impl std::fmt::Display) -> Error {
        match &self.source {
            Some(p) => Error::file(p, format!("galaxy '{}': {msg}", self.id)),
            None => Error::Data(format!("galaxy '{}': {msg}", self.id)),
        }
    }
}

/// The layout a [rows, cols] array reads in: `None` when `Auto` cannot tell (11 x 11).
fn orientation(shape: [usize; 2], layout: Layout) -> std::result::Result<Option<Layout>, String> {
    let n = COLUMNS.len();
    let fits = |l: Layout| match l {
        Layout::StarsFirst => shape[1] == n,
        Layout::ColumnsFirst => shape[0] == n,
        Layout::Auto => true,
    };
    let expect = || format!("expected [stars, 11] or [11, stars] with columns {}", COLUMNS.join(", "));
    match layout {
        Layout::Auto => match (fits(Layout::StarsFirst), fits(Layout::ColumnsFirst)) {
            (true, true) => Ok(None),
            (true, false) => Ok(Some(Layout::StarsFirst)),
            (false, true) => Ok(Some(Layout::ColumnsFirst)),
            (false, false) => Err(expect()),
        },
        l if fits(l) => Ok(Some(l)),
        Layout::StarsFirst => Err("expected [stars, 11] (--layout stars-first)".into()),
        Layout::ColumnsFirst => Err("expected [11, stars] (--layout columns-first)".into()),
    }
}

/// One array as read from disk, before its layout is settled.
struct Raw {
    id: String,
    path: PathBuf,
    a: Array2<f32>,
    layout: Option<Layout>,
}

fn raw(id: &str, a: ArrayD<f32>, path: &Path, layout: Layout) -> Result<Raw> {
    let bad = |msg: String| Error::file(path, format!("galaxy '{id}' has shape {:?}; {msg}", a.shape()));
    if a.ndim() != 2 {
        return Err(bad(format!("expected [stars, 11] or [11, stars] with columns {}", COLUMNS.join(", "))));
    }
    let l = orientation([a.shape()[0], a.shape()[1]], layout).map_err(bad)?;
    let a = a.into_dimensionality::<Ix2>().map_err(|e| Error::file(path, e))?;
    Ok(Raw { id: id.to_string(), path: path.to_path_buf(), a, layout: l })
}

/// Under `Auto`, an 11 x 11 file takes the one layout all the other files share; otherwise it is an error
/// naming it (`--layout` settles it).
fn settle_layouts(raws: &mut [Raw]) -> Result<()> {
    let seen: Vec<Layout> = raws.iter().filter_map(|r| r.layout).collect();
    let shared = seen.first().copied().filter(|l| seen.iter().all(|s| s == l));
    for r in raws.iter_mut().filter(|r| r.layout.is_none()) {
        r.layout = Some(shared.ok_or_else(|| {
            Error::file(
                &r.path,
                format!(
                    "galaxy '{}' is 11 x 11, which reads as [stars, 11] or [11, stars], and the other files do not \
                     settle it; pass --layout stars-first or --layout columns-first",
                    r.id
                ),
            )
        })?);
    }
    Ok(())
}

/// Whether a non-finite value may stand at (column `c`) until cleaning: only ±inf in [Fe/H] and [O/Fe]
/// (an iron-free star has [Fe/H] = log10 0 = -inf), which GalacticFlow's floors remove; `clean` refuses
/// any that its cuts would keep.
fn tolerated(v: f32, c: usize) -> bool {
    v.is_infinite() && (c == FE_H || c == O_FE)
}

fn validate(r: Raw) -> Result<Galaxy> {
    let stars = match r.layout {
        Some(Layout::ColumnsFirst) => r.a.reversed_axes().as_standard_layout().into_owned(),
        _ => r.a,
    };
    let g = Galaxy { name: NihaoName::parse(&r.id), id: r.id, stars, source: Some(r.path) };
    if g.n() == 0 {
        return Err(g.error("has no stars"));
    }
    for (i, row) in g.stars.outer_iter().enumerate() {
        if let Some((c, v)) = row.iter().enumerate().find(|&(c, v)| !v.is_finite() && !tolerated(*v, c)) {
            return Err(g.error(format!("non-finite value {v} in star {i}, column {}", COLUMNS[c])));
        }
    }
    Ok(g)
}

/// Loads every galaxy of a folder of .npy files (id = file stem, sorted) or of one .npz file, each
/// [stars, 11] or [11, stars] as `layout` says.
pub fn load(path: &Path, layout: Layout) -> Result<Vec<Galaxy>> {
    if !path.exists() {
        return Err(Error::file(path, "no such file or folder"));
    }
    let mut raws = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::file(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "npy"))
            .collect();
        files.sort();
        for f in files {
            let id = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
            raws.push(raw(&id, crate::io::read_npy_f32(&f)?, &f, layout)?);
        }
        if raws.is_empty() {
            return Err(Error::file(path, "no .npy galaxy files in this folder"));
        }
    } else {
        for (id, a) in crate::io::read_npz_f32(path)? {
            raws.push(raw(&id, a, path, layout)?);
        }
        if raws.is_empty() {
            return Err(Error::file(path, "no galaxies in this .npz file"));
        }
    }
    settle_layouts(&mut raws)?;
    raws.into_iter().map(validate).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nihao_names_are_read_as_galacticflow_reads_them() {
        let n = NihaoName::parse("g8.26e11_109636618947.82254").unwrap();
        assert_eq!((n.nihao_id.as_str(), n.m_dm), ("g8.26e11", 109636618947.82254));
        let n = NihaoName::parse("stars_g1.05e11_7.9e10").unwrap();
        assert_eq!((n.nihao_id.as_str(), n.m_dm), ("g1.05e11", 7.9e10));
        for stem in ["g003", "_1e11", "my_galaxy", "g1_0", "g1_-3e11", "g1_inf", "g1_NaN"] {
            assert_eq!(NihaoName::parse(stem), None, "{stem}");
        }
    }

    #[test]
    fn layouts_follow_the_shape_or_the_switch() {
        use Layout::*;
        assert_eq!(orientation([3000, 11], Auto), Ok(Some(StarsFirst)));
        assert_eq!(orientation([11, 3000], Auto), Ok(Some(ColumnsFirst)));
        assert_eq!(orientation([11, 11], Auto), Ok(None));
        assert_eq!(orientation([11, 11], ColumnsFirst), Ok(Some(ColumnsFirst)));
        assert!(orientation([11, 3000], StarsFirst).unwrap_err().contains("stars-first"));
        assert!(orientation([10, 3000], Auto).is_err());
        assert_eq!("columns-first".parse::<Layout>().unwrap(), ColumnsFirst);
        assert!("rows".parse::<Layout>().is_err());
    }
}
