//! HIGlow's conditional Glow (src/models/glow.rs) against a plain-PyTorch port of HIGlow's CondGlow
//! (benches/torch/higlow.py) on identical random weights, from the fixtures tools/golden/glow_golden.py wrote
//! into tests/fixtures/glow/ (see there for the cases and the name mapping). Every parameter and buffer is
//! loaded by name (a name missing from the fixture, or a fixture name the model lacks, fails), then on the CPU
//! and every WGPU adapter: log p(x | c) per map, encode's latents, decode(fixed latents) and d sum(log p) /
//! d parameter must match PyTorch to TOL in relative norm (per tensor; both sides compute in f32).
mod common;

use common::devices;
use galactic_forge::io::read_npz_f32;
use galactic_forge::models::{CondGlow, GlowConfig, GlowPrior};
use galactic_forge::nn::Module;
use galactic_forge::selftest::rel_err;
use galactic_forge::{backward, no_grad, Device, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const TOL: f64 = 1e-4;

/// name -> (shape, values)
type Arrays = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn fixture(case: &str) -> Arrays {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glow").join(format!("{case}.npz"));
    read_npz_f32(&p)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(k, a)| (k, (a.shape().to_vec(), a.iter().copied().collect())))
        .collect()
}

struct Case {
    name: &'static str,
    cfg: GlowConfig,
    /// The case whose parameters this one starts from (its own fixture then holds only the changed ones).
    base: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let small = GlowConfig { side: 8, steps: 2, hidden: 4, floor: 0.5, ..GlowConfig::higlow() };
    let cond = GlowConfig { blocks: 3, prior: GlowPrior::Conditional { hidden: 3 }, ..small.clone() };
    vec![
        Case { name: "cond", cfg: cond.clone(), base: None },
        Case { name: "learned", cfg: GlowConfig { blocks: 2, prior: GlowPrior::Learned, ..small }, base: None },
        Case { name: "cond_clamped", cfg: cond, base: Some("cond") },
    ]
}

fn tensor(a: &Arrays, key: &str, dev: &Device) -> Tensor {
    let (shape, v) = a.get(key).unwrap_or_else(|| panic!("fixture has no '{key}'"));
    Tensor::from_slice(v, shape, dev).unwrap()
}

/// The model with every parameter and buffer from the fixture(s); the names must match exactly.
fn load(case: &Case, own: &Arrays, dev: &Device) -> CondGlow {
    let m = CondGlow::new(&case.cfg, dev).unwrap();
    let mut vars = m.vars();
    vars.extend(m.buffers());
    let ours: BTreeSet<&str> = vars.iter().map(|v| v.name()).collect();
    assert_eq!(ours.len(), vars.len(), "duplicate variable names");
    let params = |a: &Arrays| -> BTreeSet<String> { a.keys().filter(|k| k.starts_with("glow.")).cloned().collect() };
    let mut values = match case.base {
        Some(b) => {
            let base = fixture(b);
            let changed = params(own);
            let unknown: Vec<_> = changed.iter().filter(|k| !ours.contains(k.as_str())).collect();
            assert!(unknown.is_empty(), "{}: overrides of unknown variables {unknown:?}", case.name);
            base
        }
        None => Arrays::new(),
    };
    values.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    let theirs = params(&values);
    let missing: Vec<_> = ours.iter().filter(|k| !theirs.contains(**k)).collect();
    let extra: Vec<_> = theirs.iter().filter(|k| !ours.contains(k.as_str())).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{}: missing {missing:?}, extra {extra:?}", case.name);
    for v in &vars {
        let (shape, _) = &values[v.name()];
        assert_eq!(shape.as_slice(), v.get().shape(), "{}: shape of {}", case.name, v.name());
        v.set(tensor(&values, v.name(), dev));
    }
    m
}

/// (quantity, max relative error over its tensors) for one case on one device.
fn compare(case: &Case, dev: &Device) -> Vec<(String, f64)> {
    let fx = fixture(case.name);
    let m = load(case, &fx, dev);
    let (x, c) = (tensor(&fx, "x", dev), tensor(&fx, "c", dev));
    let blocks = case.cfg.blocks + 1;
    let mut errs = Vec::new();

    let lp = m.log_prob(&x, &c).unwrap();
    errs.push(("log_p".to_string(), rel_err(&lp.to_vec().unwrap(), &fx["log_p"].1)));

    let (zs, _) = no_grad(|| m.encode(&x, &c)).unwrap();
    assert_eq!(zs.len(), blocks);
    let z_err = zs
        .iter()
        .enumerate()
        .map(|(b, z)| {
            let want = &fx[&format!("z.{b}")];
            assert_eq!(z.shape(), want.0.as_slice(), "{}: shape of z.{b}", case.name);
            rel_err(&z.to_vec().unwrap(), &want.1)
        })
        .fold(0.0, f64::max);
    errs.push(("z".to_string(), z_err));

    let grads = backward(&lp.sum_all().unwrap()).unwrap();
    let (mut g_err, mut worst, mut n) = (0.0f64, String::new(), 0);
    for v in m.vars() {
        let Some(want) = fx.get(&format!("grad.{}", v.name())) else { continue };
        let got = grads.get(&v.get()).unwrap_or_else(|| panic!("{}: no gradient for {}", case.name, v.name()));
        let e = rel_err(&got.to_vec().unwrap(), &want.1);
        if e > g_err || e.is_nan() {
            (g_err, worst) = (e, v.name().to_string());
        }
        n += 1;
    }
    assert!(n > 0, "{}: no gradients in the fixture", case.name);
    errs.push((format!("grad ({n} tensors, worst {worst})"), g_err));

    if fx.contains_key("xrev") {
        let zfix: Vec<Tensor> = (0..blocks).map(|b| tensor(&fx, &format!("zfix.{b}"), dev)).collect();
        let xr = m.decode(&zfix, &c).unwrap();
        errs.push(("decode".to_string(), rel_err(&xr.to_vec().unwrap(), &fx["xrev"].1)));
    }
    errs
}

#[test]
fn cond_glow_matches_pytorch_higlow() {
    let mut failures = Vec::new();
    for dev in devices() {
        for case in cases() {
            let errs = compare(&case, &dev);
            let line = errs.iter().map(|(k, e)| format!("{k} {e:.2e}")).collect::<Vec<_>>().join(", ");
            eprintln!("{} on {dev}: {line}", case.name);
            // A NaN error fails too.
            if errs.iter().any(|(_, e)| e.is_nan() || *e >= TOL) {
                failures.push(format!("{} on {dev}: {line}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "relative errors above {TOL:e}:\n{}", failures.join("\n"));
}
