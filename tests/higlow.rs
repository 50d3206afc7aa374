//! HIGlow's commands as a user meets them: `gforge glow train | sample | eval | infer` on a small synthetic
//! set, a bit-identical resume on the CPU, and one clear error for every bad input.
mod common;

use common::{assert_clear_error, gforge, tmpdir};
use galactic_forge::checkpoint;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small synthetic set: 6 parameter sets of 3 maps.
fn synth(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("hi");
    let (code, _, err) = gforge(&["synth", "hi-maps", "--out", s(&data), "--sims", "6", "--maps-per-sim", "3"]);
    assert_eq!(code, 0, "{err}");
    data
}

fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "glow",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--blocks",
        "2",
        "--steps",
        "1",
        "--hidden",
        "4",
        "--epochs",
        epochs,
        "--batch",
        "8",
        "--val-fraction",
        "0.34",
        "--device",
        "cpu",
    ]
}

#[test]
fn glow_train_sample_eval_infer_and_resume() {
    let d = tmpdir("glow-cli");
    let data = synth(&d);
    let model = d.join("glow.npz");
    let (code, out, err) = gforge(&train_args(s(&data), s(&model), "2"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("18 maps of 6 parameter sets: 12 for training, 6 held out (2 sets)"), "{out}");
    assert!(out.contains("epoch 2/2"), "{out}");

    // Resume from epoch 1 reaches the same weights as the uninterrupted run, bit for bit.
    let part = d.join("part.npz");
    assert_eq!(gforge(&train_args(s(&data), s(&part), "1")).0, 0);
    let mut resume = train_args(s(&data), s(&part), "2");
    resume.push("--resume");
    let (code, _, err) = gforge(&resume);
    assert_eq!(code, 0, "{err}");
    common::assert_same_weights(&model, &part, "resume");

    // A second run pointed at a model another process is writing: one clear error, the model untouched.
    let before = std::fs::read(&model).unwrap();
    let held = std::fs::File::create(d.join("glow.npz.lock")).unwrap();
    held.lock().unwrap();
    assert_clear_error(&train_args(s(&data), s(&model), "2"), "another process is writing");
    drop(held);
    assert_eq!(std::fs::read(&model).unwrap(), before);

    let maps = d.join("samples.npy");
    let (code, out, err) =
        gforge(&["glow", "sample", "--model", s(&model), "--condition", "0.3,0.8", "--n", "3", "--out", s(&maps)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 maps at Omega_m 0.3 sigma_8 0.8"), "{out}");
    let a = galactic_forge::io::read_npy_f32(&maps).unwrap();
    assert_eq!(a.shape(), [3, 64, 64]);
    assert!(a.iter().all(|v| v.is_finite() && *v > 0.0), "maps in the data's (linear, positive) units");
    assert!(!err.contains("warning"), "{err}");
    let (code, _, err) =
        gforge(&["glow", "sample", "--model", s(&model), "--condition", "0.7,0.8", "--n", "1", "--out", s(&maps)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: Omega_m = 0.7 is outside the training range"), "{err}");

    let ev = d.join("eval");
    let (code, out, err) = gforge(&[
        "glow",
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&ev),
        "--samples",
        "3",
        "--infer-maps",
        "2",
        "--grid",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("over 6 maps of 2 parameter sets") && out.contains("exact KL"), "{out}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ev.join("eval.json")).unwrap()).unwrap();
    assert!(r["nll_nats_per_dim"].as_f64().unwrap().is_finite());
    assert!(r["exact_kl_per_map"].as_f64().unwrap().is_finite());
    assert_eq!(r["spectra"].as_array().unwrap().len(), 2);
    assert_eq!(r["posteriors"].as_array().unwrap().len(), 2);
    assert_eq!(r["inference"]["grid"], 5);

    let inf = d.join("infer");
    let (code, out, err) = gforge(&[
        "glow",
        "infer",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&inf),
        "--index",
        "0,4",
        "--grid",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("map ")).count(), 2, "{out}");
    assert!(inf.join("posteriors.json").exists());
}

#[test]
fn glow_bad_input_is_one_clear_error() {
    let d = tmpdir("glow-bad");
    let data = synth(&d);
    let missing = d.join("nope");
    assert_clear_error(&train_args(s(&missing), s(&d.join("m.npz")), "1"), "no such folder");
    // A truncated maps.npy names the file.
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let bytes = std::fs::read(data.join("maps.npy")).unwrap();
    std::fs::write(bad.join("maps.npy"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(data.join("params.csv"), bad.join("params.csv")).unwrap();
    assert_clear_error(&train_args(s(&bad), s(&d.join("m.npz")), "1"), "maps.npy");
    // A corrupt checkpoint, and a star-flow checkpoint given to a Glow command.
    let corrupt = d.join("corrupt.npz");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    let sample = |m: &Path| {
        vec!["glow", "sample", "--model", s(m), "--condition", "0.3,0.8", "--out", "/tmp/x.npy", "--device", "cpu"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let args = sample(&corrupt);
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "corrupt.npz");
    let flow = d.join("flow.npz");
    checkpoint::save(&flow, &[], &serde_json::json!({ "flow": { "nsf": {} } })).unwrap();
    let args = sample(&flow);
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "star-flow checkpoint");
    // Bad settings are usage errors.
    let m = d.join("m.npz");
    let mut a = train_args(s(&data), s(&m), "1");
    a.extend(["--prior", "weird"]);
    assert_clear_error(&a, "unknown prior");
    let mut a = train_args(s(&data), s(&m), "1");
    a[7] = "7";
    assert_clear_error(&a, "divisible by 2^blocks");
}

/// Ctrl-C (SIGINT) mid-run: a checkpoint at the next batch boundary, exit 130 with how to resume, and the
/// resumed run ends on the same weights as an uninterrupted one, bit for bit.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_at_a_batch_boundary_and_resume_matches() {
    let d = tmpdir("glow-int");
    let data = d.join("hi");
    let (code, _, err) = gforge(&["synth", "hi-maps", "--out", s(&data), "--sims", "30", "--maps-per-sim", "3"]);
    assert_eq!(code, 0, "{err}");
    let args = |out: &Path| {
        let mut a: Vec<String> = train_args(s(&data), s(out), "3").iter().map(|a| a.to_string()).collect();
        let b = a.iter().position(|x| x == "--batch").unwrap();
        a[b + 1] = "2".into();
        a
    };
    let reference = d.join("ref.npz");
    let (code, _, err) = gforge(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");

    let model = d.join("int.npz");
    let (code, err) = common::gforge_interrupted(&args(&model), std::time::Duration::from_millis(100));
    assert_eq!(code, 130, "the run was not interrupted (finished first?): {err}");
    assert!(err.contains("interrupted: checkpoint") && err.contains("--resume") && !err.contains("panicked"), "{err}");

    let mut resume = args(&model);
    resume.push("--resume".into());
    let (code, _, err) = gforge(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    common::assert_same_weights(&reference, &model, "an interrupted and resumed run");
}

/// Ctrl-C in `higlow --demo`, which has no --resume: exit 130, and the message does not offer one.
#[cfg(unix)]
#[test]
fn ctrl_c_in_the_demo_does_not_offer_a_resume_it_lacks() {
    let d = tmpdir("higlow-int");
    let args: Vec<String> = ["higlow", "--demo", "--out", s(&d), "--sims", "40", "--epochs", "50", "--device", "cpu"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let (code, err) = common::gforge_interrupted(&args, std::time::Duration::from_millis(100));
    assert_eq!(code, 130, "the demo was not interrupted: {err}");
    assert!(err.contains("cannot resume, so run it again") && !err.contains("--resume"), "{err}");
    assert!(d.join("glow.npz").exists(), "the checkpoint it names");
}
