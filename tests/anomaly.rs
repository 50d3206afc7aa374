//! Anomaly detection (GFORGE_DETECT_ANOMALY=1, --detect-anomaly): off by default; on, the first NaN or Inf an
//! op produces, forward or backward, is an error naming the op and the layer. Its own test binary, because
//! the switch is process-wide.
mod common;

use common::{gforge, tmpdir};
use galactic_forge::autodiff::anomaly::{scope, set_detect_anomaly};
use galactic_forge::nn::Linear;
use galactic_forge::{backward, checkpoint, Device, Tensor, Var};
use rand::SeedableRng;
use std::path::Path;

const CPU: Device = Device::Cpu;

#[test]
fn planted_nans_are_reported_with_op_and_layer_only_when_asked() {
    let neg = Tensor::from_slice(&[1.0, -1.0, 2.0], &[3], &CPU).unwrap();
    // Off (the default): NaN flows through as before.
    assert!(neg.log().unwrap().to_vec().unwrap()[1].is_nan());

    set_detect_anomaly(true);
    let e = {
        let _layer = scope("planted");
        neg.log().expect_err("log(-1) must be caught").to_string()
    };
    assert!(e.contains("op 'log'") && e.contains("layer 'planted'") && e.contains("1 NaN"), "{e}");

    // A layer names itself: an Inf weight in a Linear layer is caught in that layer's op.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let lin = Linear::new("encoder.2", 3, 2, &mut rng, &CPU).unwrap();
    lin.w.set(Tensor::from_slice(&[1.0, f32::INFINITY, 0.0, 1.0, 1.0, 1.0], &[3, 2], &CPU).unwrap());
    let x = Tensor::from_slice(&[1.0, 2.0, 3.0], &[1, 3], &CPU).unwrap();
    let e = lin.forward(&x).expect_err("an Inf weight must be caught").to_string();
    assert!(e.contains("op 'linear'") && e.contains("layer 'encoder.2'") && e.contains("Inf"), "{e}");

    // Finite forward, infinite gradient: d sqrt(x)/dx at 0 is caught in the backward pass.
    let w = Var::new("w", Tensor::from_slice(&[0.0, 4.0], &[2], &CPU).unwrap());
    let loss = {
        let _layer = scope("head");
        w.get().sqrt().unwrap().sum_all().unwrap()
    };
    let e = backward(&loss).err().expect("an infinite gradient must be caught").to_string();
    assert!(e.contains("backward of op 'sqrt'") && e.contains("layer 'head'") && e.contains("Inf"), "{e}");
    // A backward rule built from ops: d(a b)/da = g b overflows to Inf while every forward value is finite;
    // it is reported as the backward of the recorded op, not as a forward op.
    let a = Var::new("a", Tensor::from_slice(&[1e-30], &[1], &CPU).unwrap());
    let big = Tensor::from_slice(&[1e30], &[1], &CPU).unwrap();
    let c = Tensor::from_slice(&[1e10], &[1], &CPU).unwrap();
    let loss2 = {
        let _layer = scope("scaled");
        c.mul(&a.get().mul(&big).unwrap()).unwrap().sum_all().unwrap()
    };
    let e = backward(&loss2).err().expect("an overflowing gradient must be caught").to_string();
    assert!(e.contains("backward of op 'mul'") && e.contains("layer 'scaled'") && e.contains("in its op"), "{e}");
    set_detect_anomaly(false);
    assert!(backward(&loss).is_ok(), "off again: no check");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The CLI: a run made to diverge (its checkpoint's learning rate rewritten to 1e30) stops, with
/// --detect-anomaly or GFORGE_DETECT_ANOMALY=1, at the first op that produces a non-finite value, naming it
/// and its layer in one error line; without, at the non-finite loss as before.
#[test]
fn flow_train_reports_the_op_and_layer_of_the_first_non_finite_value() {
    let d = tmpdir("anomaly-cli");
    let data = d.join("data");
    let (code, _, err) =
        gforge(&["synth", "galaxies", "--out", s(&data), "--galaxies", "3", "--n-min", "600", "--n-max", "600"]);
    assert_eq!(code, 0, "{err}");
    let ck = d.join("flow.npz");
    let args = |epochs: &str| {
        [
            "flow",
            "train",
            "--data",
            s(&data),
            "--out",
            s(&ck),
            "--layers",
            "2",
            "--hidden",
            "8",
            "--depth",
            "2",
            "--bins",
            "4",
            "--epochs",
            epochs,
            "--batch",
            "256",
            "--val-ids",
            "g002",
            "--device",
            "cpu",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<String>>()
    };
    let (code, _, err) = gforge(&args("1").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let mut c = checkpoint::load(&ck).unwrap();
    c.config["state"]["schedule"]["lr"] = serde_json::json!(1e30);
    let vars: Vec<Var> = c.tensors.iter().map(|(k, v)| Var::new(k, Tensor::from_ndarray(v, &CPU).unwrap())).collect();
    checkpoint::save(&ck, &vars, &c.config).unwrap();

    let mut resume = args("3");
    resume.push("--resume".into());
    let run = |extra: &[&str], env: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gforge"));
        cmd.args(&resume).args(extra).env_remove("GFORGE_DETECT_ANOMALY");
        if env {
            cmd.env("GFORGE_DETECT_ANOMALY", "1");
        }
        let o = cmd.output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    for (extra, env) in [(&["--detect-anomaly"][..], false), (&[][..], true)] {
        let (code, err) = run(extra, env);
        assert_eq!(code, Some(1), "{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gforge:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains("anomaly detected: ") && lines[0].contains(" op '"), "{err}");
        assert!(lines[0].contains("in layer 'nsf."), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        println!("{}", lines[0]);
    }
    let (code, err) = run(&[], false);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("non-finite loss") && !err.contains("anomaly detected"), "{err}");
}
