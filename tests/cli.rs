//! The `gforge` binary as a user meets it: devices, selftest, and one clear line on bad input.
mod common;

use common::gforge;

#[test]
fn devices_lists_the_cpu() {
    let (code, out, _) = gforge(&["devices"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("cpu ")), "{out}");
}

#[test]
fn selftest_on_cpu_passes() {
    let (code, out, _) = gforge(&["selftest", "--device", "cpu"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 failed"));
}

#[test]
fn missing_cuda_driver_is_one_line_and_non_zero() {
    let present = galactic_forge::Device::parse("cuda").is_ok();
    let (code, out, err) = gforge(&["selftest", "--device", "cuda"]);
    if present {
        eprintln!("a CUDA driver is present: selftest ran ({code})\n{out}");
        return;
    }
    assert_eq!(code, 1);
    let gf: Vec<&str> = err.lines().filter(|l| l.starts_with("gforge:")).collect();
    assert_eq!(gf.len(), 1, "{err}");
    assert!(gf[0].contains("NVIDIA driver"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_device_names_are_usage_errors() {
    for d in ["gpu", "cuda:x", "wgpu:99", "cpu:1"] {
        let (code, _, err) = gforge(&["selftest", "--device", d]);
        assert_ne!(code, 0, "{d}");
        assert!(err.contains("gforge:") && !err.contains("panicked"), "{d}: {err}");
    }
}

#[test]
fn synth_images_renders_a_png_per_galaxy_and_the_views() {
    let d = common::tmpdir("cli-images");
    let (gal, img) = (d.join("gal"), d.join("img"));
    let (code, _, err) = gforge(&["synth", "galaxies", "--out", gal.to_str().unwrap(), "--galaxies", "3"]);
    assert_eq!(code, 0, "{err}");
    let args = ["synth", "images", "--data", gal.to_str().unwrap(), "--out", img.to_str().unwrap(), "--size", "64"];
    let (code, out, err) = gforge(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 images"), "{out}");
    let views = galactic_forge::data::images::Views::read(&img.join("views.json")).unwrap();
    assert_eq!(views.views.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["g000", "g001", "g002"]);
    assert!(views.views.iter().all(|v| v.r_d.is_some() && v.view.inclination <= std::f64::consts::FRAC_PI_2));
    let imgs = galactic_forge::data::images::load_folder(&img, 64).unwrap();
    assert_eq!(imgs.len(), 3);
    // The same seed gives the same files.
    let first = std::fs::read(img.join("g001.png")).unwrap();
    assert_eq!(gforge(&args).0, 0);
    assert_eq!(std::fs::read(img.join("g001.png")).unwrap(), first);
    // A missing data folder is one clear line naming it.
    let (code, _, err) = gforge(&["synth", "images", "--data", d.join("nope").to_str().unwrap(), "--out", "x"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("gforge:") && err.contains("nope") && !err.contains("panicked"), "{err}");
}
