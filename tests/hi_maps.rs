//! HI maps as a user meets them: `gforge synth hi-maps` writes a CAMELS-layout folder that `load_camels`
//! reads back exactly, CAMELS' own table formats load, and every bad file gets one clear error naming it.
mod common;

use common::{assert_clear_error, gforge, tmpdir};
use galactic_forge::data::hi_generator::{self, HiGenConfig, HiTruth};
use galactic_forge::data::hi_maps::load_camels;
use galactic_forge::Error;
use ndarray::{Array3, ArrayD};
use ndarray_npy::WriteNpyExt;
use std::path::{Path, PathBuf};

#[test]
fn synth_hi_maps_writes_a_folder_that_loads_back_exactly() {
    let d = tmpdir("hi-synth");
    let out = d.join("hi");
    let (code, stdout, err) = gforge(&[
        "synth",
        "hi-maps",
        "--out",
        out.to_str().unwrap(),
        "--sims",
        "3",
        "--maps-per-sim",
        "2",
        "--seed",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("6 HI maps (3 parameter sets x 2, 64 x 64)"), "{stdout}");
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.sort();
    assert_eq!(names, ["maps.npy", "params.csv", "truth.json"], "no temporary files left");

    let loaded = load_camels(&out.join("maps.npy"), &out.join("params.csv"), 2).unwrap();
    let cfg = HiGenConfig { sims: 3, maps_per_sim: 2, seed: 4, ..Default::default() };
    assert_eq!(loaded, hi_generator::generate(&cfg));
    let csv = std::fs::read_to_string(out.join("params.csv")).unwrap();
    assert!(csv.starts_with("name,Omega_m,sigma_8\nLH_0,") && csv.lines().count() == 4, "{csv}");

    // truth.json is enough to recompute the exact density of the stored maps.
    let truth = HiTruth::read(&out.join("truth.json")).unwrap();
    assert_eq!(truth, HiTruth::new(&cfg));
    let [om, s8] = loaded.params[0];
    let lp = truth.model.log_density(loaded.map(0), 64, truth.config.box_size, om as f64, s8 as f64);
    assert!(lp.is_finite());
    assert_eq!(lp, hi_generator::log_density(loaded.map(0), 64, 25.0, om as f64, s8 as f64));
}

#[test]
fn synth_hi_maps_refuses_empty_sets() {
    let d = tmpdir("hi-synth-bad");
    let out = d.join("x");
    assert_clear_error(&["synth", "hi-maps", "--out", out.to_str().unwrap(), "--sims", "0"], "--sims");
}

fn write_f64(path: &Path, a: &ArrayD<f64>) {
    a.write_npy(std::io::BufWriter::new(std::fs::File::create(path).unwrap())).unwrap();
}

fn write_f32(path: &Path, a: &ArrayD<f32>) {
    galactic_forge::io::write_npy_f32(path, a).unwrap();
}

/// Maps of side `h` with values 1 + (m + r + c) (positive, distinct per block).
fn maps(n: usize, h: usize) -> Array3<f64> {
    Array3::from_shape_fn((n, h, h), |(m, r, c)| 1.0 + (m * 7 + r * 3 + c) as f64)
}

#[test]
fn camels_tables_and_larger_float64_maps_load() {
    let d = tmpdir("hi-camels");
    // CAMELs_params.csv as HIGlow ships it: a header without names, six parameters, then the seed.
    let csv = d.join("CAMELs_params.csv");
    std::fs::write(
        &csv,
        "Name,,,,,,,seed\nLH_0,0.309,0.979,3.11234,1.12194,0.6685,0.53182,0\nLH_1,0.3026,0.9394,3.42,3.96,1.03,1.16,1\n",
    )
    .unwrap();
    // CAMELS' params_*.txt: '#' comment lines, whitespace, no names.
    let txt = d.join("params_IllustrisTNG.txt");
    std::fs::write(&txt, "# Omega_m sigma_8 A_SN1 A_AGN1 A_SN2 A_AGN2\n0.309 0.979 3.1 1.1 0.67 0.53\n\n  0.3026\t0.9394 3.4 3.9 1.0 1.2\n")
        .unwrap();
    let m = d.join("maps.npy");
    let big = maps(4, 128);
    write_f64(&m, &big.clone().into_dyn());
    for params in [&csv, &txt] {
        let h = load_camels(&m, params, 2).unwrap();
        assert_eq!((h.len(), h.side, h.maps_per_sim), (4, 64, 2));
        assert_eq!(h.params[1], [0.309, 0.979]);
        assert_eq!(h.params[2], [0.3026, 0.9394]);
        assert_eq!(h.sim, [0, 0, 1, 1]);
        // 2 x 2 block means in linear units.
        for (mi, r, c) in [(0, 0, 0), (3, 10, 63), (2, 63, 5)] {
            let want: f64 = (0..2)
                .flat_map(|y| (0..2).map(move |x| (y, x)))
                .map(|(y, x)| big[[mi, 2 * r + y, 2 * c + x]])
                .sum::<f64>()
                / 4.0;
            assert_eq!(h.map(mi)[r * 64 + c], want as f32);
        }
    }
}

fn file_error(e: Error) -> (String, String) {
    match e {
        Error::File { path, msg } => (path, msg),
        e => panic!("expected an error naming a file, got {e}"),
    }
}

#[test]
fn bad_camels_files_get_one_clear_error_naming_them() {
    let d = tmpdir("hi-bad");
    let params = d.join("params.csv");
    std::fs::write(&params, "name,Omega_m,sigma_8\nLH_0,0.3,0.8\nLH_1,0.2,0.7\n").unwrap();
    let good = d.join("good.npy");
    write_f32(&good, &maps(4, 64).mapv(|v| v as f32).into_dyn());
    assert_eq!(load_camels(&good, &params, 2).unwrap().len(), 4);

    let check = |maps: &PathBuf, params: &PathBuf, mps: usize, named: &Path, what: &str| {
        let (path, msg) = file_error(load_camels(maps, params, mps).unwrap_err());
        assert_eq!(path, named.display().to_string(), "{msg}");
        assert!(msg.contains(what), "expected '{what}' in: {msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    };
    let npy = |name: &str, a: ArrayD<f32>| {
        let p = d.join(name);
        write_f32(&p, &a);
        p
    };

    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.npy");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    check(&truncated, &params, 2, &truncated, "truncated");

    let rank2 = npy("rank2.npy", ArrayD::from_elem(vec![64, 64], 1.0));
    check(&rank2, &params, 2, &rank2, "expected [maps, H, W]");
    let rect = npy("rect.npy", ArrayD::from_elem(vec![4, 64, 128], 1.0));
    check(&rect, &params, 2, &rect, "square");
    let odd = npy("odd.npy", ArrayD::from_elem(vec![4, 96, 96], 1.0));
    check(&odd, &params, 2, &odd, "multiple of 64");

    let mut a = maps(4, 64).mapv(|v| v as f32);
    a[[2, 5, 7]] = f32::NAN;
    let nan = npy("nan.npy", a.into_dyn());
    check(&nan, &params, 2, &nan, "map 2: non-finite value NaN at pixel (5, 7)");
    let mut a = maps(4, 128).mapv(|v| v as f32);
    for (y, x) in [(20, 30), (20, 31), (21, 30), (21, 31)] {
        a[[3, y, x]] = 0.0;
    }
    let zero = npy("zero.npy", a.into_dyn());
    check(&zero, &params, 2, &zero, "map 3: non-positive HI value 0 at pixel (10, 15) (mean of its 2 x 2 block)");
    let mut a = maps(4, 64).mapv(|v| v as f32);
    a[[1, 0, 3]] = -2.0;
    let neg = npy("negative.npy", a.into_dyn());
    check(&neg, &params, 2, &neg, "map 1: non-positive HI value -2 at pixel (0, 3)");

    // 4 maps are not 2 rows x 3 maps per simulation: the table is named, with both counts.
    check(&good, &params, 3, &params, "2 parameter rows x 3 maps per simulation = 6 maps");
    let bad_row = d.join("bad_row.txt");
    std::fs::write(&bad_row, "# Omega_m sigma_8\n0.3 0.8\n0.2 x\n").unwrap();
    check(&good, &bad_row, 2, &bad_row, "line 3:");
    let short = d.join("short.csv");
    std::fs::write(&short, "name,Omega_m,sigma_8\nLH_0,0.3,0.8\nLH_1,0.2\n").unwrap();
    check(&good, &short, 2, &short, "line 3:");
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "# nothing\n").unwrap();
    check(&good, &empty, 2, &empty, "no parameter rows");
    let missing = d.join("missing.npy");
    check(&missing, &params, 2, &missing, "");
    assert!(matches!(load_camels(&good, &params, 0), Err(Error::Usage(_))));
}
