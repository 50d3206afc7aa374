//! conv2d / conv_transpose2d against PyTorch: forward and x / w / b gradients of loss = sum(y * gy), from the
//! fixtures tools/golden/conv_golden.py wrote into tests/fixtures/conv/ (see there for the cases). The small cases
//! run on the CPU and on every WGPU adapter; the autoencoder's outer layers at full size (448 x 448) on the CPU,
//! with inputs from the same formula as the script and outputs compared at sampled positions and by their sum
//! of squares. Relative errors stay under 1e-5: both sides sum the same f32 products in different orders.
mod common;

use common::devices;
use galactic_forge::selftest::rel_err;
use galactic_forge::{backward, Device, Tensor};
use std::path::PathBuf;

const TOL: f64 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conv").join(format!("{name}.npy"))
}

fn load(name: &str, dev: &Device) -> Option<Tensor> {
    let p = fixture(name);
    p.exists().then(|| Tensor::read_npy(&p, dev).unwrap())
}

fn vals(name: &str) -> Vec<f32> {
    load(name, &Device::Cpu).unwrap_or_else(|| panic!("missing fixture {name}")).to_vec().unwrap()
}

fn show(errs: &[(&str, f64)]) -> String {
    errs.iter().map(|(k, e)| format!("{k} {e:.2e}")).collect::<Vec<_>>().join(", ")
}

/// y = conv(x, w, b) and the gradients of sum(y * gy): (y, gx, gw, gb).
fn run(
    transposed: bool,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    gy: &Tensor,
    stride: usize,
    pad: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let (x, w, b) = (x.requires_grad(), w.requires_grad(), b.map(|b| b.requires_grad()));
    let y = if transposed {
        x.conv_transpose2d(&w, b.as_ref(), stride, pad).unwrap()
    } else {
        x.conv2d(&w, b.as_ref(), stride, pad).unwrap()
    };
    assert_eq!(y.shape(), gy.shape());
    let grads = backward(&y.mul(gy).unwrap().sum_all().unwrap()).unwrap();
    let g = |t: &Tensor| grads.get(t).unwrap().to_vec().unwrap();
    (y.to_vec().unwrap(), g(&x), g(&w), b.as_ref().map(g))
}

#[test]
fn small_cases_match_pytorch() {
    // (fixture name, transposed, stride, padding)
    let cases = [
        ("conv_k4s2p1", false, 2, 1),
        ("convT_k4s2p1", true, 2, 1),
        ("conv_k3s1p1", false, 1, 1),
        ("conv_k1s1p0", false, 1, 0),
        ("convT_k3s1p1", true, 1, 1),
        ("conv_k3s2p0", false, 2, 0),
    ];
    let mut failures = Vec::new();
    for dev in devices() {
        for (name, transposed, s, p) in cases {
            let t = |k: &str| load(&format!("{name}_{k}"), &dev);
            let (x, w, b, gy) = (t("x").unwrap(), t("w").unwrap(), t("b"), t("gy").unwrap());
            let (y, gx, gw, gb) = run(transposed, &x, &w, b.as_ref(), &gy, s, p);
            let mut errs = vec![
                ("y", rel_err(&y, &vals(&format!("{name}_y")))),
                ("gx", rel_err(&gx, &vals(&format!("{name}_gx")))),
                ("gw", rel_err(&gw, &vals(&format!("{name}_gw")))),
            ];
            if let Some(gb) = gb {
                errs.push(("gb", rel_err(&gb, &vals(&format!("{name}_gb")))));
            }
            println!("{dev} {name:<14} {}", show(&errs));
            for (k, e) in errs {
                if e.is_nan() || e >= TOL {
                    failures.push(format!("{dev} {name} {k}: {e:e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "differs from PyTorch: {failures:?}");
}

/// v[i] = offset + scale sin(a i + phase) over the flat index, in f64 then rounded: the script's `formula`.
fn formula(shape: &[usize], a: f64, phase: f64, offset: f64, scale: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| (offset + scale * (a * i as f64 + phase).sin()) as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Values at the stored positions and the sum of squares against the fixture's.
fn sampled(name: &str, key: &str, got: &[f32]) -> (f64, f64) {
    let idx = vals(&format!("{name}_{key}_idx"));
    let want = vals(&format!("{name}_{key}_val"));
    let at: Vec<f32> = idx.iter().map(|&i| got[i as usize]).collect();
    let sumsq: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let ref_sumsq = f64::from(vals(&format!("{name}_{key}_sumsq"))[0]);
    (rel_err(&at, &want), (sumsq - ref_sumsq).abs() / ref_sumsq)
}

#[test]
fn autoencoder_outer_layers_at_full_size_match_pytorch() {
    // (fixture name, transposed, x shape, w shape): Conv2d(3, 64, 4, 2, 1) at 448, ConvTranspose2d(64, 3, 4, 2, 1)
    // at 224 -> 448.
    let cases = [
        ("ae_enc1", false, [1, 3, 448, 448], [64, 3, 4, 4], 64),
        ("ae_dec6", true, [1, 64, 224, 224], [64, 3, 4, 4], 3),
    ];
    let mut failures = Vec::new();
    for (name, transposed, xs, ws, cout) in cases {
        let x = formula(&xs, 0.37, 0.1, 0.5, 0.5);
        let w = formula(&ws, 1.3, 0.5, 0.0, 0.1);
        let b = formula(&[cout], 0.7, 0.3, 0.0, 0.05);
        let oh = if transposed { 2 * xs[2] } else { xs[2] / 2 };
        let gy = formula(&[1, cout, oh, oh], 0.11, 0.2, 0.5, 0.5);
        let (y, gx, gw, gb) = run(transposed, &x, &w, Some(&b), &gy, 2, 1);
        let (ys, yq) = sampled(name, "y", &y);
        let (xs_, xq) = sampled(name, "gx", &gx);
        let errs = [
            ("y samples", ys),
            ("y sumsq", yq),
            ("gx samples", xs_),
            ("gx sumsq", xq),
            ("gw", rel_err(&gw, &vals(&format!("{name}_gw")))),
            ("gb", rel_err(&gb.unwrap(), &vals(&format!("{name}_gb")))),
        ];
        println!("{name:<8} {}", show(&errs));
        for (k, e) in errs {
            if e.is_nan() || e >= TOL {
                failures.push(format!("{name} {k}: {e:e}"));
            }
        }
    }
    assert!(failures.is_empty(), "differs from PyTorch: {failures:?}");
}
