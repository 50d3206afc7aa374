//! `gforge import` / `gforge export` against PyTorch: the fixtures in tests/fixtures/import/ were written by
//! tools/golden/import_golden.py from GalacticFlow's own flowcode.py (a tiny NSFlow, weights moved off their
//! initialisation) and from GalacticForge's autoencoder layout, converted by tools/torch_models.py as a user
//! converts theirs, with PyTorch's log-probabilities and reconstructions on fixed inputs. No PyTorch here.
mod common;

use common::{assert_clear_error, assert_same_weights, gforge, tmpdir};
use galactic_forge::backend::Device;
use galactic_forge::checkpoint;
use galactic_forge::io::read_npy_f32;
use galactic_forge::pipeline::eval::log_q_physical;
use galactic_forge::pipeline::{ae, interop, Conditions, SavedModel};
use galactic_forge::Tensor;
use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name)
}

fn read_f64(name: &str) -> Vec<f64> {
    let f = std::fs::File::open(fixture(name)).unwrap();
    ArrayD::<f64>::read_npy(f).unwrap().iter().copied().collect()
}

fn import(input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["import", input.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stdout, err) = gforge(&args);
    assert_eq!(code, 0, "import failed: {err}");
    assert!(stdout.contains(out.to_str().unwrap()), "{stdout}");
}

fn export(input: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["export", input.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, _, err) = gforge(&args);
    assert_eq!(code, 0, "export failed: {err}");
    err
}

/// Largest |a - b| and where.
fn max_diff(a: &[f64], b: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |m, v| if v.0 > m.0 { v } else { m })
}

/// -sum log std of the star columns, from the interchange file's own standardisation.
fn star_log_jacobian(ic: &interop::Interchange) -> f64 {
    let s = &ic.standardisation;
    let names: Vec<&str> = s["std_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let vals: Vec<f64> = s["std_vals"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    -interop::GALACTICFLOW_STARS.iter().map(|c| vals[names.iter().position(|n| n == c).unwrap()].ln()).sum::<f64>()
}

/// log q per star of the fixture's stars and per-star conditions under a gforge checkpoint (physical units).
fn gforge_log_q(ckpt: &Path) -> Vec<f64> {
    gforge_log_q_on(ckpt, &Device::Cpu)
}

fn gforge_log_q_on(ckpt: &Path, dev: &Device) -> Vec<f64> {
    let (model, _) = SavedModel::load(ckpt, dev).unwrap();
    let x: Vec<f32> = read_npy_f32(&fixture("galacticflow_x.npy")).unwrap().iter().copied().collect();
    let c = read_f64("galacticflow_c.npy");
    log_q_physical(&model, &x, Conditions::PerRow(&c), dev).unwrap()
}

/// The imported flow on every WGPU adapter (and the CPU) agrees with the reference to the same tolerance.
fn check_devices(ckpt: &Path, reference: &[f64], what: &str) {
    for dev in common::devices() {
        let ours = gforge_log_q_on(ckpt, &dev);
        let (d, _) = max_diff(&ours, reference);
        eprintln!("{what} on {dev}: max |log p - reference float64| = {d:.2e}");
        for (k, (o, r)) in ours.iter().zip(reference).enumerate() {
            assert!((o - r).abs() <= tolerance(*r), "{what} on {dev}, star {k}: gforge {o} vs {r}");
        }
    }
}

/// Float32 tolerance of a log-density summed over 10 dimensions and 2 layers: PyTorch's own float32 run of
/// the fixture lies 1.1e-5 from its float64 run; we allow 3e-6 relative plus 3e-5 absolute.
fn tolerance(reference: f64) -> f64 {
    3e-5 + 3e-6 * reference.abs()
}

#[test]
fn galacticflow_nsflow_imports_with_pytorchs_log_prob_per_star() {
    let dir = tmpdir("interop-gf");
    let ckpt = dir.join("flow.npz");
    import(&fixture("galacticflow.npz"), &ckpt, &[]);
    let (model, _) = SavedModel::load(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(model.standardizer.cond_names, ["log10_Mstars", "tau50", "Z_av"]);
    let ic = interop::read(&fixture("galacticflow.npz")).unwrap();
    let lj = star_log_jacobian(&ic);
    assert!((model.standardizer.log_jacobian() - lj).abs() < 1e-12);
    let ours = gforge_log_q(&ckpt);
    let ref64: Vec<f64> = read_f64("galacticflow_logp64.npy").iter().map(|v| v + lj).collect();
    let ref32: Vec<f64> =
        read_npy_f32(&fixture("galacticflow_logp.npy")).unwrap().iter().map(|&v| f64::from(v) + lj).collect();
    let (d64, i) = max_diff(&ours, &ref64);
    let (d32, _) = max_diff(&ours, &ref32);
    eprintln!("GalacticFlow NSFlow, 64 stars: max |log p - PyTorch float64| = {d64:.2e} (star {i}), - PyTorch float32 = {d32:.2e}");
    for (k, (o, r)) in ours.iter().zip(&ref64).enumerate() {
        assert!((o - r).abs() <= tolerance(*r), "star {k}: gforge {o} vs PyTorch {r}");
    }
    check_devices(&ckpt, &ref64, "GalacticFlow NSFlow");
    // The densities differ from star to star by far more than the tolerance: the check has teeth.
    let spread = ref64.iter().cloned().fold(f64::MIN, f64::max) - ref64.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 10.0, "{spread}");
}

#[test]
fn galacticflow_flow_without_standardisation_takes_normalised_coordinates() {
    let dir = tmpdir("interop-gf-nostd");
    // The same file without its standardisation, as a bare NSFlow state_dict converts.
    let ic = interop::read(&fixture("galacticflow.npz")).unwrap();
    let bare = dir.join("bare.npz");
    let tensors: Vec<_> = ic.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    interop::write(&bare, &ic.kind, ic.hyper.clone(), serde_json::Value::Null, "bare.pth", tensors).unwrap();
    assert_clear_error(
        &["import", bare.to_str().unwrap(), "--out", dir.join("x.npz").to_str().unwrap()],
        "carries no standardisation",
    );
    let ckpt = dir.join("flow.npz");
    import(&bare, &ckpt, &["--no-standardisation"]);
    // Standardise by hand with the file's statistics: the flow's own log p, PyTorch's NSFlow.forward.
    let s = &ic.standardisation;
    let v = |k: &str| s[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<f64>>();
    let (mu, sd) = (v("mu_vals"), v("std_vals"));
    let x = read_npy_f32(&fixture("galacticflow_x.npy")).unwrap();
    let c = read_f64("galacticflow_c.npy");
    let xs: Vec<f32> = x.iter().enumerate().map(|(i, &x)| ((f64::from(x) - mu[i % 10]) / sd[i % 10]) as f32).collect();
    let cs: Vec<f64> = c.iter().enumerate().map(|(i, &c)| (c - mu[10 + i % 3]) / sd[10 + i % 3]).collect();
    let (model, _) = SavedModel::load(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(model.standardizer.cond_names, ["c0", "c1", "c2"]);
    let ours = log_q_physical(&model, &xs, Conditions::PerRow(&cs), &Device::Cpu).unwrap();
    let reference = read_f64("galacticflow_logp64.npy");
    let (d, _) = max_diff(&ours, &reference);
    eprintln!("GalacticFlow NSFlow in normalised coordinates: max |log p - PyTorch float64| = {d:.2e}");
    for (o, r) in ours.iter().zip(&reference) {
        assert!((o - r).abs() <= tolerance(*r), "gforge {o} vs PyTorch {r}");
    }
}

#[test]
fn galacticflow_export_gives_back_pytorchs_weights_and_reimports_identically() {
    let dir = tmpdir("interop-gf-rt");
    let (ckpt, exported, again) = (dir.join("flow.npz"), dir.join("exported.npz"), dir.join("again.npz"));
    import(&fixture("galacticflow.npz"), &ckpt, &[]);
    let warn = export(&ckpt, &exported, &[]);
    assert!(warn.is_empty(), "{warn}");
    let (orig, back) = (interop::read(&fixture("galacticflow.npz")).unwrap(), interop::read(&exported).unwrap());
    assert_eq!(back.kind, "galacticflow");
    assert_eq!(orig.tensors.keys().collect::<Vec<_>>(), back.tensors.keys().collect::<Vec<_>>());
    for (k, a) in &orig.tensors {
        let b = &back.tensors[k];
        assert_eq!(a.shape(), b.shape(), "{k}");
        let d = a.shape()[0];
        for ((ix, &x), &y) in a.indexed_iter().zip(b.iter()) {
            let (r, c) = (ix[0], if a.ndim() == 2 { ix[1] } else { 0 });
            let ok = if k.ends_with(".L") {
                // GalacticFlow masks L to its strict lower part plus a unit diagonal: only those entries count.
                if c < r {
                    x == y
                } else {
                    y == if c == r { 1.0 } else { 0.0 }
                }
            } else if k.ends_with(".U") {
                if c > r {
                    x == y
                } else {
                    y == 0.0
                }
            } else if k.ends_with(".S") {
                // S goes through log|S| and back: within an ulp or two.
                (x - y).abs() <= 4.0 * f32::EPSILON * x.abs() && x.signum() == y.signum()
            } else {
                x == y
            };
            assert!(ok, "{k}{ix:?}: PyTorch {x}, exported {y} (d = {d})");
        }
    }
    for key in ["n_layers", "dim_notcond", "dim_cond", "K", "B", "hidden", "depth", "slope"] {
        let f32_of = |v: &serde_json::Value| v.as_f64().map(|v| v as f32);
        assert_eq!(f32_of(&orig.hyper[key]), f32_of(&back.hyper[key]), "hyper {key}");
    }
    for key in ["mu_names", "mu_vals", "std_names", "std_vals", "star_names", "cond_names"] {
        assert_eq!(orig.standardisation[key], back.standardisation[key], "standardisation {key}");
    }
    assert_eq!(back.standardisation["transformations"][0]["components"], serde_json::json!(["M_stars"]));
    // gforge -> PyTorch -> gforge: the same weights, bit for bit, and the same densities.
    import(&exported, &again, &[]);
    assert_same_weights(&ckpt, &again, "export and re-import");
    assert_eq!(gforge_log_q(&ckpt), gforge_log_q(&again));
}

#[test]
fn galacticforge_autoencoder_imports_with_pytorchs_latents_and_reconstructions() {
    let dir = tmpdir("interop-ae");
    let (ckpt, exported, again) = (dir.join("ae.npz"), dir.join("exported.npz"), dir.join("again.npz"));
    import(&fixture("ae.npz"), &ckpt, &[]);
    let x = read_npy_f32(&fixture("ae_x.npy")).unwrap();
    let f = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<_>>();
    let zr = f(read_npy_f32(&fixture("ae_z.npy")).unwrap().as_slice().unwrap());
    let yr = f(read_npy_f32(&fixture("ae_y.npy")).unwrap().as_slice().unwrap());
    for dev in common::devices() {
        let (model, _) = ae::load(&ckpt, &dev).unwrap();
        let z = model.encode(&Tensor::from_ndarray(&x, &dev).unwrap()).unwrap();
        let y = model.decode(&z).unwrap().to_vec().unwrap();
        let z = z.to_vec().unwrap();
        let ((dz, _), (dy, _)) = (max_diff(&f(&z), &zr), max_diff(&f(&y), &yr));
        eprintln!(
            "GalacticForge autoencoder on {dev}: max |latent - PyTorch| = {dz:.2e}, max |reconstruction - PyTorch| = \
             {dy:.2e}"
        );
        assert!(dz < 1e-5 && dy < 1e-6, "{dev}: latents {dz}, reconstructions {dy}");
    }
    let spread = yr.iter().cloned().fold(f64::MIN, f64::max) - yr.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.3, "{spread}");
    // Export: PyTorch's state_dict back, bit for bit; re-import: the same checkpoint.
    export(&ckpt, &exported, &[]);
    let (orig, back) = (interop::read(&fixture("ae.npz")).unwrap(), interop::read(&exported).unwrap());
    assert_eq!(orig.hyper, back.hyper);
    assert_eq!(orig.tensors, back.tensors);
    import(&exported, &again, &[]);
    assert_same_weights(&ckpt, &again, "export and re-import");
}

/// A copy of the GalacticFlow fixture with `edit` applied to its tensors and standardisation.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut interop::Interchange)) -> String {
    let mut ic = interop::read(&fixture("galacticflow.npz")).unwrap();
    edit(&mut ic);
    let p = dir.join(name);
    let t: Vec<_> = ic.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    interop::write(&p, &ic.kind, ic.hyper.clone(), ic.standardisation.clone(), "x.pth", t).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bad_files_give_one_clear_error_line() {
    let dir = tmpdir("interop-bad");
    let out = dir.join("out.npz");
    let o = out.to_str().unwrap();
    assert_clear_error(&["import", dir.join("missing.npz").to_str().unwrap(), "--out", o], "missing.npz");
    // A damaged and a truncated copy.
    let bytes = std::fs::read(fixture("galacticflow.npz")).unwrap();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(dir.join("flipped.npz"), &flipped).unwrap();
    assert_clear_error(&["import", dir.join("flipped.npz").to_str().unwrap(), "--out", o], "flipped.npz");
    std::fs::write(dir.join("short.npz"), &bytes[..bytes.len() / 3]).unwrap();
    assert_clear_error(&["import", dir.join("short.npz").to_str().unwrap(), "--out", o], "short.npz");
    std::fs::write(dir.join("text.npz"), "not a model").unwrap();
    assert_clear_error(&["import", dir.join("text.npz").to_str().unwrap(), "--out", o], "not a readable checkpoint");
    // A gforge checkpoint given to import, an interchange file given to export.
    let ck = dir.join("flow.npz");
    import(&fixture("galacticflow.npz"), &ck, &[]);
    assert_clear_error(&["import", ck.to_str().unwrap(), "--out", o], "it is a gforge checkpoint");
    let eval_dir = dir.join("eval");
    let (c, e) = (ck.to_str().unwrap(), eval_dir.to_str().unwrap());
    assert_clear_error(
        &["flow", "eval", "--model", c, "--data", e, "--out", e, "--device", "cpu"],
        "imported from PyTorch",
    );
    let fx = fixture("galacticflow.npz");
    assert_clear_error(&["export", fx.to_str().unwrap(), "--out", o], "not a flow checkpoint");
    // Files that read but do not fit the model.
    let p = edited(&dir, "missing_entry.npz", |ic| {
        ic.tensors.remove("layers.3.net_cond2.network.2.bias");
    });
    assert_clear_error(&["import", &p, "--out", o], "entry 'layers.3.net_cond2.network.2.bias' is missing");
    let p = edited(&dir, "extra_entry.npz", |ic| {
        ic.tensors.insert("layers.4.P".into(), ArrayD::zeros(ndarray::IxDyn(&[10, 10])));
    });
    assert_clear_error(&["import", &p, "--out", o], "entry 'layers.4.P' does not belong");
    let p = edited(&dir, "wrong_shape.npz", |ic| {
        ic.tensors.insert("layers.1.net1.network.0.weight".into(), ArrayD::zeros(ndarray::IxDyn(&[6, 4])));
    });
    assert_clear_error(&["import", &p, "--out", o], "entry 'layers.1.net1.network.0.weight' has shape [6, 4]");
    let p = edited(&dir, "singular.npz", |ic| {
        ic.tensors.get_mut("layers.2.S").unwrap()[[3]] = 0.0;
    });
    assert_clear_error(&["import", &p, "--out", o], "singular");
    let p = edited(&dir, "kind.npz", |ic| ic.kind = "realnvp".into());
    assert_clear_error(&["import", &p, "--out", o], "unknown kind 'realnvp'");
    let p = edited(&dir, "columns.npz", |ic| {
        ic.standardisation["star_names"][9] = "mass".into();
    });
    assert_clear_error(&["import", &p, "--out", o], "star columns");
    let p = edited(&dir, "transform.npz", |ic| {
        ic.standardisation["transformations"][0]["function"] = "np.log".into();
    });
    assert_clear_error(&["import", &p, "--out", o], "np.log");
    let p = edited(&dir, "hyper.npz", |ic| ic.hyper["K"] = serde_json::json!("ten"));
    assert_clear_error(&["import", &p, "--out", o], "hyper 'K'");
    assert!(!out.exists(), "a refused import wrote {o}");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        assert!(!e.file_name().to_string_lossy().ends_with(".tmp"), "left {:?}", e.path());
    }
}

#[test]
fn export_refuses_an_nsf_galacticflow_cannot_express_unless_inexact() {
    let dir = tmpdir("interop-inexact");
    let ck = dir.join("flow.npz");
    import(&fixture("galacticflow.npz"), &ck, &[]);
    // The same model with gforge's training default, nflows' spline minimums of 1e-3.
    let mut c = checkpoint::load(&ck).unwrap();
    for k in ["min_width", "min_height", "min_derivative"] {
        c.config["flow"]["spline"][k] = serde_json::json!(1e-3);
    }
    let (model, _) = SavedModel::from_checkpoint(&ck, checkpoint::load(&ck).unwrap(), &Device::Cpu).unwrap();
    let trained = dir.join("trained.npz");
    checkpoint::save(&trained, &galactic_forge::flows::all_vars(model.flow.as_ref()), &c.config).unwrap();
    let out = dir.join("out.npz");
    assert_clear_error(&["export", trained.to_str().unwrap(), "--out", out.to_str().unwrap()], "--inexact");
    assert!(!out.exists());
    let warn = export(&trained, &out, &["--inexact"]);
    assert!(warn.contains("warning") && warn.contains("differ"), "{warn}");
    assert!(interop::read(&out).is_ok());
}

#[test]
fn flow_log_prob_command_gives_pytorchs_densities_of_an_imported_flow() {
    let dir = tmpdir("interop-logprob");
    let ckpt = dir.join("flow.npz");
    import(&fixture("galacticflow.npz"), &ckpt, &[]);
    let out = dir.join("logq.npy");
    let (x, c) = (fixture("galacticflow_x.npy"), fixture("galacticflow_c.npy"));
    let args = ["flow", "log-prob", "--model", ckpt.to_str().unwrap(), "--stars", x.to_str().unwrap()];
    let mut per_star = args.to_vec();
    per_star.extend(["--conditions", c.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"]);
    let (code, _, err) = gforge(&per_star);
    assert_eq!(code, 0, "{err}");
    let ours: Vec<f64> = galactic_forge::io::read_npy_f64(&out).unwrap().iter().copied().collect();
    let lj = star_log_jacobian(&interop::read(&fixture("galacticflow.npz")).unwrap());
    let reference: Vec<f64> = read_f64("galacticflow_logp64.npy").iter().map(|v| v + lj).collect();
    for (o, r) in ours.iter().zip(&reference) {
        assert!((o - r).abs() <= tolerance(*r), "gforge {o} vs PyTorch {r}");
    }
    // One condition for every star: the first star's, so star 0 must agree with PyTorch again.
    let c0 = read_f64("galacticflow_c.npy")[..3].iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",");
    let mut one = args.to_vec();
    one.extend(["--condition", &c0, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    let (code, _, err) = gforge(&one);
    assert_eq!(code, 0, "{err}");
    let first = galactic_forge::io::read_npy_f64(&out).unwrap()[[0]];
    assert!((first - reference[0]).abs() <= tolerance(reference[0]), "{first} vs {}", reference[0]);
    // Conditions that do not fit, and stars of the wrong width: one error line each.
    let mut bad = args.to_vec();
    bad.extend(["--conditions", x.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clear_error(&bad, "expected [64, 3]");
    let mut bad = vec!["flow", "log-prob", "--model", ckpt.to_str().unwrap(), "--stars", c.to_str().unwrap()];
    bad.extend(["--condition", &c0, "--out", out.to_str().unwrap()]);
    assert_clear_error(&bad, "expected [stars, 10]");
}

/// A zuko flow fixture (`name`.npz, `name`_logp64.npy): gforge's log p matches zuko's, export gives back zuko's
/// state_dict exactly, and re-import gives back the same checkpoint.
fn check_zuko(name: &str, model_name: &str) {
    let dir = tmpdir(&format!("interop-{name}"));
    let (ckpt, exported, again) = (dir.join("flow.npz"), dir.join("exported.npz"), dir.join("again.npz"));
    let file = fixture(&format!("{name}.npz"));
    import(&file, &ckpt, &[]);
    let (model, _) = SavedModel::load(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(model.spec.name(), model_name);
    assert_eq!(model.standardizer.cond_names, ["log10_Mstars", "tau50", "Z_av"]);
    let ic = interop::read(&file).unwrap();
    let lj = star_log_jacobian(&ic);
    let ours = gforge_log_q(&ckpt);
    let reference: Vec<f64> = read_f64(&format!("{name}_logp64.npy")).iter().map(|v| v + lj).collect();
    let (d, i) = max_diff(&ours, &reference);
    eprintln!("{name}, 64 stars: max |log p - zuko float64| = {d:.2e} (star {i})");
    for (k, (o, r)) in ours.iter().zip(&reference).enumerate() {
        assert!((o - r).abs() <= tolerance(*r), "{name} star {k}: gforge {o} vs zuko {r}");
    }
    let spread =
        reference.iter().cloned().fold(f64::MIN, f64::max) - reference.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 10.0, "{spread}");
    check_devices(&ckpt, &reference, name);
    // Export gives back zuko's state_dict exactly (weights, masks, orders, base); re-import the same checkpoint.
    let warn = export(&ckpt, &exported, &[]);
    assert!(warn.is_empty(), "{warn}");
    let back = interop::read(&exported).unwrap();
    assert_eq!((back.kind.as_str(), &back.hyper), (ic.kind.as_str(), &ic.hyper));
    assert_eq!(ic.tensors, back.tensors);
    for key in ["mu_names", "mu_vals", "std_names", "std_vals", "star_names", "cond_names"] {
        assert_eq!(ic.standardisation[key], back.standardisation[key], "standardisation {key}");
    }
    import(&exported, &again, &[]);
    assert_same_weights(&ckpt, &again, "export and re-import");
}

#[test]
fn zuko_maf_imports_with_zukos_log_prob_and_exports_back_exactly() {
    check_zuko("zuko_maf", "maf");
}

#[test]
fn zuko_nice_imports_with_zukos_log_prob_and_exports_back_exactly() {
    check_zuko("zuko_nice", "nice");
}

#[test]
fn zuko_nice_that_does_not_fit_is_refused_and_gforges_own_nice_exports_only_when_it_can() {
    let dir = tmpdir("interop-nice-bad");
    let o = dir.join("out.npz");
    let o = o.to_str().unwrap();
    let mut ic = interop::read(&fixture("zuko_nice.npz")).unwrap();
    ic.tensors.get_mut("transform.transforms.1.mask").unwrap()[[4]] = 1.0;
    let p = dir.join("mask.npz");
    let t: Vec<_> = ic.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    interop::write(&p, &ic.kind, ic.hyper.clone(), ic.standardisation.clone(), "x.pth", t).unwrap();
    assert_clear_error(&["import", p.to_str().unwrap(), "--out", o], "randmask");
    // gforge's NICE: with its final scaling moved off zero, or additive, zuko cannot hold it; with gforge's
    // own clamp only --inexact exports it.
    let ck = dir.join("nice.npz");
    import(&fixture("zuko_nice.npz"), &ck, &[]);
    let save = |name: &str, edit: &dyn Fn(&mut serde_json::Value), scale: f32| {
        let mut c = checkpoint::load(&ck).unwrap();
        edit(&mut c.config);
        let (model, _) = SavedModel::from_checkpoint(&ck, checkpoint::load(&ck).unwrap(), &Device::Cpu).unwrap();
        let vars = galactic_forge::flows::all_vars(model.flow.as_ref());
        let ls = vars.iter().find(|v| v.name() == "nice.log_scale").unwrap();
        ls.set(Tensor::from_vec(vec![scale; 10], &[10], &Device::Cpu).unwrap());
        let p = dir.join(name);
        checkpoint::save(&p, &vars, &c.config).unwrap();
        p.to_str().unwrap().to_string()
    };
    let p = save("scaled.npz", &|_| {}, 0.1);
    assert_clear_error(&["export", &p, "--out", o], "final diagonal scaling");
    let p = save("clamp.npz", &|c| drop(c["flow"].as_object_mut().unwrap().remove("zuko_slope")), 0.0);
    assert_clear_error(&["export", &p, "--out", o], "--inexact");
    let warn = export(Path::new(&p), &dir.join("inexact.npz"), &["--inexact"]);
    assert!(warn.contains("warning") && warn.contains("zuko"), "{warn}");
    assert!(!dir.join("out.npz").exists());
}

#[test]
fn zuko_maf_files_that_do_not_fit_are_refused_and_gforges_own_maf_exports_only_inexactly() {
    let dir = tmpdir("interop-zuko-bad");
    let o = dir.join("out.npz");
    let o = o.to_str().unwrap();
    let edit = |name: &str, f: &dyn Fn(&mut interop::Interchange)| {
        let mut ic = interop::read(&fixture("zuko_maf.npz")).unwrap();
        f(&mut ic);
        let p = dir.join(name);
        let t: Vec<_> = ic.tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        interop::write(&p, &ic.kind, ic.hyper.clone(), ic.standardisation.clone(), "x.pth", t).unwrap();
        p.to_str().unwrap().to_string()
    };
    let p = edit("base.npz", &|ic| ic.tensors.get_mut("base.scale").unwrap()[[2]] = 2.0);
    assert_clear_error(&["import", &p, "--out", o], "the base is not N(0, I)");
    let p = edit("ctx.npz", &|ic| ic.tensors.get_mut("transform.transforms.1.hyper.0.mask").unwrap()[[3, 11]] = 0.0);
    assert_clear_error(&["import", &p, "--out", o], "does not connect every context feature");
    let p = edit("order.npz", &|ic| {
        ic.tensors.remove("transform.transforms.2.order");
    });
    assert_clear_error(&["import", &p, "--out", o], "entry 'transform.transforms.2.order' is missing");
    let p = edit("hidden.npz", &|ic| ic.hyper["hidden"] = serde_json::json!([8, 9]));
    assert_clear_error(&["import", &p, "--out", o], "entry 'transform.transforms.0.hyper.2.weight' has shape [8, 8]");
    assert!(!dir.join("out.npz").exists());
    // A MAF gforge trained keeps its own log-scale clamp, which zuko cannot express.
    let ck = dir.join("maf.npz");
    import(&fixture("zuko_maf.npz"), &ck, &[]);
    let mut c = checkpoint::load(&ck).unwrap();
    c.config["flow"].as_object_mut().unwrap().remove("zuko_slope");
    let (model, _) = SavedModel::from_checkpoint(&ck, checkpoint::load(&ck).unwrap(), &Device::Cpu).unwrap();
    let trained = dir.join("trained.npz");
    checkpoint::save(&trained, &galactic_forge::flows::all_vars(model.flow.as_ref()), &c.config).unwrap();
    assert_clear_error(&["export", trained.to_str().unwrap(), "--out", o], "--inexact");
    let warn = export(&trained, &dir.join("inexact.npz"), &["--inexact"]);
    assert!(warn.contains("warning") && warn.contains("zuko"), "{warn}");
}
