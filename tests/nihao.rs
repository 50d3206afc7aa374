//! GalacticFlow's own NIHAO files: float64 arrays of [11, stars] (its loader calls `np.load(f).T`) named
//! `..._<NIHAO id>_<M_dm>.npy`, iron-free stars with [Fe/H] = -inf, and galaxies that cleaning must drop
//! by name. The files are written here exactly as numpy's `np.save` writes such arrays.
mod common;

use common::{assert_clear_error, gforge, tmpdir};
use galactic_forge::data::clean::CleanConfig;
use galactic_forge::data::synthetic::{self, SynthConfig};
use galactic_forge::data::{self, Galaxy, Layout, FE_H, MASS, O_FE};
use galactic_forge::pipeline::{self, PrepareConfig};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// (file stem, M_dm) as GalacticFlow's files carry them: a prefix, the NIHAO id, Python's str() of M_dm.
const NAMES: [(&str, f64); 4] = [
    ("stars_g1.05e11_109636618947.82254", 109636618947.82254),
    ("stars_g2.79e12_3.2e12", 3.2e12),
    ("stars_g7.55e11_8.1e11", 8.1e11),
    ("stars_g8.26e11_9.75e11", 9.75e11),
];

/// Four small synthetic galaxies under NIHAO names; the first with iron-free stars ([Fe/H] = -inf, and
/// [O/Fe] = log10(O / 0) = +inf for one of them).
fn galaxies() -> Vec<Galaxy> {
    let cfg = SynthConfig { galaxies: 4, m_particle: 1e12, n_min: 700, n_max: 700, seed: 5 };
    let (gals, _) = synthetic::generate(&cfg);
    let mut out: Vec<Galaxy> = gals.into_iter().zip(NAMES).map(|(g, (name, _))| Galaxy::new(name, g.stars)).collect();
    for star in [3, 40, 41] {
        out[0].stars[[star, FE_H]] = f32::NEG_INFINITY;
    }
    out[0].stars[[40, O_FE]] = f32::INFINITY;
    out
}

/// `np.save(path, stars.T)` of a float64 table: C order, [11, stars].
fn write_galacticflow(path: &Path, stars: &Array2<f32>) {
    let t = stars.t().mapv(f64::from).as_standard_layout().into_owned();
    ndarray_npy::write_npy(path, &t).unwrap();
}

/// The same galaxies as gforge writes them: float32, [stars, 11].
fn write_gforge(path: &Path, stars: &Array2<f32>) {
    ndarray_npy::write_npy(path, stars).unwrap();
}

fn folder(name: &str, gals: &[Galaxy], write: fn(&Path, &Array2<f32>)) -> PathBuf {
    let d = tmpdir(name);
    for g in gals {
        write(&d.join(format!("{}.npy", g.id)), &g.stars);
    }
    d
}

fn prep(dm_mass: bool) -> PrepareConfig {
    PrepareConfig {
        val_ids: vec![NAMES[3].0.into()],
        clean: CleanConfig { n_min: 100, ..Default::default() },
        dm_mass,
        ..Default::default()
    }
}

#[test]
fn galacticflow_files_give_exactly_the_data_of_gforge_files() {
    let gals = galaxies();
    let gf = folder("gf-layout", &gals, write_galacticflow);
    let own = folder("own-layout", &gals, write_gforge);
    let header = std::fs::read(gf.join(format!("{}.npy", NAMES[0].0))).unwrap();
    assert!(String::from_utf8_lossy(&header[..128]).contains("'shape': (11, 700)"), "not numpy's [11, N] file");
    let (a, b) = (pipeline::prepare(&gf, &prep(true)).unwrap(), pipeline::prepare(&own, &prep(true)).unwrap());
    assert_eq!(a.train_set().x, b.train_set().x);
    assert_eq!(a.val_set().x, b.val_set().x);
    assert_eq!((&a.train_cond, &a.val_cond), (&b.train_cond, &b.val_cond));
    // M_dm is the 5th condition, log10 of the number in the file name.
    assert_eq!(a.standardizer.cond_names[4], "log10_Mdm");
    for (g, c) in a.train.iter().zip(&a.train_cond).chain(a.val.iter().zip(&a.val_cond)) {
        let (_, m_dm) = NAMES.iter().find(|(n, _)| *n == g.id).unwrap();
        assert_eq!(c[4], m_dm.log10(), "{}", g.id);
        assert_eq!(g.name.as_ref().unwrap().nihao_id, g.id.split('_').nth(1).unwrap());
    }
    // The iron-free stars are cut and counted, and nothing non-finite is left.
    assert_eq!(a.report.non_finite_cut, 3);
    assert!(a.report.to_string().contains("3 of them for [Fe/H] or [O/Fe] = ±inf"), "{}", a.report);
    assert!(a.train_set().x.iter().all(|v| v.is_finite()));
    // The explicit switch reads the same; the wrong one is refused naming the file.
    let cols = PrepareConfig { layout: Layout::ColumnsFirst, ..prep(true) };
    assert_eq!(pipeline::prepare(&gf, &cols).unwrap().train_set().x, a.train_set().x);
    let rows = PrepareConfig { layout: Layout::StarsFirst, ..prep(true) };
    let e = pipeline::prepare(&gf, &rows).err().unwrap().to_string();
    assert!(e.contains(NAMES[0].0) && e.contains("[11, 700]") && e.contains("stars-first"), "{e}");
}

#[test]
fn an_11_by_11_file_takes_the_folders_layout_or_asks_for_the_switch() {
    let gals = galaxies();
    let d = folder("square", &gals, write_galacticflow);
    let square = Array2::from_shape_fn((11, 11), |(r, c)| (r * 11 + c) as f32);
    write_galacticflow(&d.join("stars_g5.02e10_4e10.npy"), &square);
    let loaded = data::load(&d, Layout::Auto).unwrap();
    let g = loaded.iter().find(|g| g.id == "stars_g5.02e10_4e10").unwrap();
    assert_eq!(g.stars, square, "read as the other files, [11, stars]");
    // Alone it cannot be told apart: one clear error naming it and the switch.
    let alone = tmpdir("square-alone");
    write_galacticflow(&alone.join("g_sq_1e10.npy"), &square);
    let e = data::load(&alone, Layout::Auto).err().unwrap().to_string();
    assert!(e.contains("g_sq_1e10.npy") && e.contains("--layout"), "{e}");
    assert_eq!(data::load(&alone, Layout::ColumnsFirst).unwrap()[0].stars, square);
    assert_eq!(data::load(&alone, Layout::StarsFirst).unwrap()[0].stars, square.t());
    let a = alone.to_str().unwrap();
    assert_clear_error(&["flow", "prepare", "--data", a, "--out", a], "--layout stars-first or --layout columns-first");
    assert_clear_error(&["flow", "prepare", "--data", a, "--out", a, "--layout", "rows"], "unknown layout 'rows'");
}

#[test]
fn bad_values_and_dropped_galaxies_are_named() {
    let mut gals = galaxies();
    let mut massless = gals[1].stars.clone();
    massless.column_mut(MASS).fill(0.0);
    gals.push(Galaxy::new("stars_g3.21e11_2e11", massless));
    let d = folder("dropped", &gals, write_galacticflow);
    let ds = d.to_str().unwrap();
    let out = d.join("prepared");
    let (code, stdout, err) = gforge(&["flow", "prepare", "--data", ds, "--out", out.to_str().unwrap(), "--dm-mass"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("Cut out 1 of 5 galaxies"), "{stdout}");
    assert!(
        stdout.contains("\n  dropped stars_g3.21e11_2e11: its ") && stdout.contains("total mass of 0 Msun"),
        "{stdout}"
    );
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("prepared.json")).unwrap()).unwrap();
    assert_eq!(info["standardizer"]["cond_names"][4], "log10_Mdm");
    assert_eq!(info["dropped"][0]["id"], "stars_g3.21e11_2e11");
    assert_eq!(info["non_finite_stars_cut"], 3);
    // Holding out a galaxy that cleaning dropped says so.
    assert_clear_error(
        &["flow", "prepare", "--data", ds, "--out", ds, "--val-ids", "stars_g3.21e11_2e11"],
        "'stars_g3.21e11_2e11' was dropped by cleaning: its ",
    );

    // M_dm asked of files whose names do not carry it.
    let plain = folder("plain-names", &[Galaxy::new("g000", gals[0].stars.clone())], write_gforge);
    let p = plain.to_str().unwrap();
    assert_clear_error(&["flow", "prepare", "--data", p, "--out", p, "--dm-mass"], "_<NIHAO id>_<M_dm>.npy");

    // A NaN anywhere, or an inf where no cut removes it, names file, star and column.
    let cases: [(usize, usize, f32, &str); 4] = [
        (5, FE_H, f32::NAN, "non-finite value NaN in star 5, column Fe/H"),
        (6, 0, f32::INFINITY, "non-finite value inf in star 6, column x"),
        (7, MASS, f32::NEG_INFINITY, "non-finite value -inf in star 7, column mass"),
        (8, O_FE, f32::INFINITY, "non-finite value inf in star 8, column O/Fe, which no cut removes"),
    ];
    for (star, col, v, what) in cases {
        let mut s = gals[0].stars.clone();
        s[[star, col]] = v;
        let bad = folder("bad-value", &[Galaxy::new("stars_g1_1e11", s)], write_galacticflow);
        let b = bad.to_str().unwrap();
        assert_clear_error(&["flow", "prepare", "--data", b, "--out", b], what);
        assert_clear_error(&["flow", "prepare", "--data", b, "--out", b], "stars_g1_1e11.npy");
    }
}
