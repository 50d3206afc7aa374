//! The star-flow pipeline as a user meets it: bad data gets one clear error, training resumes exactly,
//! a diverging run leaves the last checkpoint intact, sampling streams reproducibly.
mod common;

use common::{assert_clear_error, tmpdir};
use galactic_forge::data::clean::CleanConfig;
use galactic_forge::data::synthetic::{self, SynthConfig};
use galactic_forge::flows::NsfConfig;
use galactic_forge::ops::spline::SplineCfg;
use galactic_forge::pipeline::train::{best_path, Keep};
use galactic_forge::pipeline::{self, sample, Conditions, FlowSpec, PrepareConfig, SavedModel, TrainConfig};
use galactic_forge::{checkpoint, Device};
use std::path::{Path, PathBuf};

/// Four small synthetic galaxies (700 stars each) written as a data folder.
fn small_data(name: &str) -> PathBuf {
    let d = tmpdir(name);
    let cfg = SynthConfig { galaxies: 4, m_particle: 1e12, n_min: 700, n_max: 700, seed: 3 };
    let (gals, truth) = synthetic::generate(&cfg);
    synthetic::write(&d, &gals, &truth).unwrap();
    d
}

fn prep() -> PrepareConfig {
    PrepareConfig {
        val_ids: vec!["g003".into()],
        clean: CleanConfig { n_min: 100, ..Default::default() },
        ..Default::default()
    }
}

fn spec() -> FlowSpec {
    FlowSpec::Nsf(NsfConfig {
        layers: 2,
        hidden: 16,
        depth: 2,
        spline: SplineCfg { bins: 4, ..Default::default() },
        ..NsfConfig::galacticflow(10, 4)
    })
}

fn tc(epochs: usize) -> TrainConfig {
    TrainConfig { epochs, batch: 256, optimizer: "adam".into(), lr: 1e-3, ..Default::default() }
}

fn write_raw_npy(path: &Path, rows: usize, cols: usize, values: impl Fn(usize) -> f32) {
    let mut bytes = sample::npy_header(rows as u64, cols);
    for i in 0..rows * cols {
        bytes.extend_from_slice(&values(i).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_data_gets_one_clear_error_naming_the_file() {
    let d = tmpdir("bad");
    let train = |dir: &Path| {
        let s = dir.to_str().unwrap().to_string();
        vec![
            "flow".to_string(),
            "train".into(),
            "--data".into(),
            s,
            "--device".into(),
            "cpu".into(),
            "--epochs".into(),
            "1".into(),
        ]
    };
    let run = |dir: &Path, what: &str| {
        let a = train(dir);
        assert_clear_error(&a.iter().map(String::as_str).collect::<Vec<_>>(), what);
    };
    run(&d.join("missing"), "no such file or folder");
    let data = small_data("batch0");
    let ds = data.to_str().unwrap();
    assert_clear_error(&["flow", "train", "--data", ds, "--device", "cpu", "--batch", "0"], "batch must be >= 1");
    run(&d, "no .npy galaxy files");
    // Ten columns.
    let ten = tmpdir("ten");
    write_raw_npy(&ten.join("g1.npy"), 50, 10, |i| i as f32);
    run(&ten, "g1.npy");
    // A NaN star.
    let nan = tmpdir("nan");
    write_raw_npy(&nan.join("g2.npy"), 50, 11, |i| if i == 11 * 7 + 3 { f32::NAN } else { 1.0 });
    run(&nan, "non-finite value NaN in star 7");
    // Truncated: the header promises more rows than the file holds.
    let tr = tmpdir("trunc");
    write_raw_npy(&tr.join("g3.npy"), 50, 11, |_| 1.0);
    let bytes = std::fs::read(tr.join("g3.npy")).unwrap();
    std::fs::write(tr.join("g3.npy"), &bytes[..bytes.len() - 100]).unwrap();
    run(&tr, "truncated");
}

#[test]
fn resume_continues_bit_identically_on_the_cpu() {
    let data = small_data("resume");
    let p = pipeline::prepare(&data, &prep()).unwrap();
    let (a, b) = (data.join("straight.npz"), data.join("resumed.npz"));
    pipeline::train(&p, &spec(), &prep(), &tc(2), &a, &Device::Cpu, false, false).unwrap();
    pipeline::train(&p, &spec(), &prep(), &tc(1), &b, &Device::Cpu, false, false).unwrap();
    pipeline::train(&p, &spec(), &prep(), &tc(2), &b, &Device::Cpu, true, false).unwrap();
    let (ca, cb) = (checkpoint::load(&a).unwrap(), checkpoint::load(&b).unwrap());
    assert_eq!(ca.tensors.len(), cb.tensors.len());
    for (name, t) in &ca.tensors {
        assert_eq!(t, &cb.tensors[name], "{name} differs after resume");
    }
    assert_eq!(ca.config["state"]["step"], cb.config["state"]["step"]);
}

#[test]
fn a_diverging_run_stops_and_leaves_the_checkpoint_intact() {
    let data = small_data("diverge");
    let p = pipeline::prepare(&data, &prep()).unwrap();
    let ck = data.join("model.npz");
    pipeline::train(&p, &spec(), &prep(), &tc(1), &ck, &Device::Cpu, false, false).unwrap();
    // Rewrite the checkpoint with an absurd learning rate in its saved schedule, then resume.
    let (model, c) = SavedModel::load(&ck, &Device::Cpu).unwrap();
    let mut config = model.config.clone();
    config["state"]["schedule"]["lr"] = serde_json::json!(1e30);
    let mut vars = galactic_forge::flows::all_vars(model.flow.as_ref());
    vars.extend(
        c.tensors
            .iter()
            .filter(|(k, _)| k.starts_with("optim/"))
            .map(|(k, v)| galactic_forge::Var::new(k, galactic_forge::Tensor::from_ndarray(v, &Device::Cpu).unwrap())),
    );
    checkpoint::save(&ck, &vars, &config).unwrap();
    let before = std::fs::read(&ck).unwrap();
    let err =
        pipeline::train(&p, &spec(), &prep(), &tc(3), &ck, &Device::Cpu, true, false).err().expect("must diverge");
    assert!(err.to_string().contains("non-finite loss"), "{err}");
    assert_eq!(std::fs::read(&ck).unwrap(), before, "the last good checkpoint was modified");
    assert!(checkpoint::load(&ck).is_ok());
}

#[test]
fn sampling_streams_reproducibly_in_physical_units() {
    let data = small_data("sample");
    let p = pipeline::prepare(&data, &prep()).unwrap();
    let ck = data.join("model.npz");
    pipeline::train(&p, &spec(), &prep(), &tc(1), &ck, &Device::Cpu, false, false).unwrap();
    let (m, _) = SavedModel::load(&ck, &Device::Cpu).unwrap();
    let c = sample::condition(&m, Some("g003"), None).unwrap();
    let (a, b) = (data.join("a.npy"), data.join("b.npy"));
    sample::sample_to_npy(&m, &c, 1001, 7, 5, &a, &Device::Cpu, false).unwrap();
    sample::sample_to_npy(&m, &c, 1001, 4096, 5, &b, &Device::Cpu, false).unwrap();
    let (xa, xb) = (galactic_forge::io::read_npy_f32(&a).unwrap(), galactic_forge::io::read_npy_f32(&b).unwrap());
    assert_eq!(xa.shape(), &[1001, 10]);
    assert_eq!(xa, xb, "the chunk size changed the samples");
    // One condition per star, each its own: still independent of the chunk size.
    let conds: Vec<f64> = (0..1001).flat_map(|i| c.iter().map(move |v| v + 1e-3 * i as f64)).collect();
    let draw = |chunk| {
        let mut v = Vec::new();
        let rows = Conditions::PerRow(&conds);
        sample::sample_chunks(&m, rows, 1001, chunk, 5, &Device::Cpu, |r| {
            v.extend_from_slice(r);
            Ok(())
        })
        .unwrap();
        v
    };
    assert_eq!(draw(7), draw(4096), "the chunk size changed the samples of per-star conditions");
    assert!(xa.iter().all(|v| v.is_finite()));
    // Physical units: the age column lies in the data's range, not around 0 with unit spread.
    let ages: Vec<f32> = xa.outer_iter().map(|r| r[9]).collect();
    let mean_age = ages.iter().sum::<f32>() / ages.len() as f32;
    assert!(mean_age > 1.0 && mean_age < 13.0, "{mean_age}");
    // The CLI: unknown galaxy and wrong condition length are usage errors.
    let ckp = ck.to_str().unwrap();
    assert_clear_error(
        &["flow", "sample", "--model", ckp, "--galaxy", "nope", "--stars", "5", "--device", "cpu"],
        "nope",
    );
    assert_clear_error(
        &["flow", "sample", "--model", ckp, "--condition", "1,2", "--stars", "5", "--device", "cpu"],
        "4 finite values",
    );
    // A training galaxy's own condition draws no warning; a mass far beyond the training galaxies' does.
    let c0 = sample::condition(&m, Some("g000"), None).unwrap();
    assert!(sample::range_warnings(&m, &c0).is_empty());
    let far: Vec<f64> = c0.iter().enumerate().map(|(j, &v)| if j == 0 { v + 10.0 } else { v }).collect();
    let w = sample::range_warnings(&m, &far);
    assert!(w.len() == 1 && w[0].contains("outside the training galaxies' range"), "{w:?}");
    // A full disk (a file-size limit, with SIGXFSZ ignored so the write fails with EFBIG instead of killing
    // the process): one clear error naming the file, the previous samples intact, no temporary left behind.
    let before = std::fs::read(&a).unwrap();
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 64; exec '{}' flow sample --model '{ckp}' --galaxy g003 --stars 200000 --out '{}' --device cpu",
        env!("CARGO_BIN_EXE_gforge"),
        a.display()
    );
    let out = std::process::Command::new("sh").args(["-c", &cmd]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sampling past the file-size limit succeeded");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gforge:")).collect();
    assert!(lines.len() == 1 && lines[0].contains("a.npy") && !err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), before, "a failed write damaged the previous file");
    let left: Vec<_> = std::fs::read_dir(&data).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains(".tmp")), "temporary left behind: {left:?}");
    let corrupt = data.join("corrupt.npz");
    std::fs::write(&corrupt, &std::fs::read(&ck).unwrap()[..300]).unwrap();
    assert_clear_error(
        &[
            "flow",
            "sample",
            "--model",
            corrupt.to_str().unwrap(),
            "--galaxy",
            "g003",
            "--stars",
            "5",
            "--device",
            "cpu",
        ],
        "corrupt.npz",
    );
}

/// Every tensor of two checkpoints (optimiser state included) is bit-identical.
fn assert_same_tensors(a: &Path, b: &Path) {
    let (ca, cb) = (checkpoint::load(a).unwrap(), checkpoint::load(b).unwrap());
    assert_eq!(ca.tensors.keys().collect::<Vec<_>>(), cb.tensors.keys().collect::<Vec<_>>());
    for (name, t) in &ca.tensors {
        assert_eq!(t, &cb.tensors[name], "{name} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn the_best_held_out_epoch_is_kept_beside_the_last_and_resume_stays_exact() {
    let data = small_data("best");
    let p = pipeline::prepare(&data, &prep()).unwrap();
    // At this rate the held-out NLL of this data bottoms out around epoch 3 of 6, then climbs.
    let best_tc = |epochs| TrainConfig { lr: 3e-2, keep: Keep::Best, ..tc(epochs) };
    let cpu = &Device::Cpu;
    let ck = data.join("model.npz");
    let s = pipeline::train(&p, &spec(), &prep(), &best_tc(6), &ck, cpu, false, false).unwrap();
    let h = &s.state.history;
    let best = s.state.best.clone().expect("a best epoch");
    let argmin = h.iter().min_by(|a, b| a.val_nll.unwrap().total_cmp(&b.val_nll.unwrap())).unwrap();
    assert_eq!((best.epoch, Some(best.val_nll)), (argmin.epoch, argmin.val_nll));
    assert!(best.epoch < 6, "held-out NLL per epoch {:?}", h.iter().map(|e| e.val_nll).collect::<Vec<_>>());

    // The best file holds that epoch's weights: a run stopped there ends with the same ones.
    let stopped = data.join("stopped.npz");
    pipeline::train(&p, &spec(), &prep(), &best_tc(best.epoch), &stopped, cpu, false, false).unwrap();
    let (kept, stop) = (checkpoint::load(&best_path(&ck)).unwrap(), checkpoint::load(&stopped).unwrap());
    assert!(!kept.tensors.is_empty() && kept.tensors.keys().all(|k| !k.starts_with("optim/")));
    for (name, t) in &kept.tensors {
        assert_eq!(t, &stop.tensors[name], "{name}");
    }
    // The checkpoint reports both and holds the last epoch, optimiser state included.
    let last = checkpoint::load(&ck).unwrap();
    assert_eq!(last.config["best"]["epoch"], best.epoch);
    assert_eq!(last.config["best"]["val_nll"], best.val_nll);
    assert_eq!(last.config["best"]["file"], "model.best.npz");
    assert_eq!((last.config["last"]["epoch"].as_u64(), last.config["state"]["epoch"].as_u64()), (Some(6), Some(6)));
    assert!(last.tensors.keys().any(|k| k.starts_with("optim/")));

    // Sampling and evaluation load the kept epoch; its weights are not the last ones.
    let (m, _) = SavedModel::load(&ck, cpu).unwrap();
    assert_eq!(m.path, best_path(&ck));
    let weights = |m: &SavedModel| {
        galactic_forge::flows::all_vars(m.flow.as_ref())
            .iter()
            .map(|v| (v.name().to_string(), v.get().to_ndarray().unwrap()))
            .collect::<Vec<_>>()
    };
    let w = weights(&m);
    assert!(w.iter().all(|(n, t)| *t == kept.tensors[n]));
    assert!(w.iter().any(|(n, t)| *t != last.tensors[n]), "the kept weights are the last epoch's");
    // Resumed from the middle, both files come out bit-identical.
    let resumed = data.join("resumed.npz");
    pipeline::train(&p, &spec(), &prep(), &best_tc(2), &resumed, cpu, false, false).unwrap();
    pipeline::train(&p, &spec(), &prep(), &best_tc(6), &resumed, cpu, true, false).unwrap();
    assert_same_tensors(&ck, &resumed);
    assert_same_tensors(&best_path(&ck), &best_path(&resumed));
    let recorded = |p: &Path| checkpoint::load(p).unwrap().config["best"]["epoch"].clone();
    assert_eq!(recorded(&resumed), recorded(&ck));

    // With --keep last the same checkpoint hands over its own weights.
    let last_run = data.join("last.npz");
    pipeline::train(
        &p,
        &spec(),
        &prep(),
        &TrainConfig { keep: Keep::Last, ..best_tc(6) },
        &last_run,
        cpu,
        false,
        false,
    )
    .unwrap();
    let (m, _) = SavedModel::load(&last_run, cpu).unwrap();
    assert_eq!(m.path, last_run);
    assert!(best_path(&last_run).is_file(), "the best epoch is written either way");

    // A missing or foreign best file, or resuming from it, is one clear error.
    let drawn = data.join("drawn.npy");
    let (ckp, drawn) = (ck.to_str().unwrap(), drawn.to_str().unwrap());
    let sample =
        ["flow", "sample", "--model", ckp, "--galaxy", "g003", "--stars", "5", "--device", "cpu", "--out", drawn];
    let (code, out, err) = common::gforge(&sample);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sampling the best held-out epoch") && out.contains("model.best.npz"), "{out}");
    std::fs::copy(&stopped, best_path(&ck)).unwrap();
    assert_clear_error(&sample, "that file is not a best-epoch copy");
    std::fs::remove_file(best_path(&ck)).unwrap();
    assert_clear_error(&sample, "model.best.npz");
    let err = pipeline::train(&p, &spec(), &prep(), &best_tc(7), &best_path(&resumed), cpu, true, false).err().unwrap();
    assert!(err.to_string().contains("resume from the checkpoint beside it"), "{err}");
}

#[test]
fn keep_best_needs_held_out_galaxies_and_the_cli_reports_both_epochs() {
    let data = small_data("keep-cli");
    let ds = data.to_str().unwrap();
    let out = data.join("flow.npz");
    let train = |keep: &str, extra: &[&str]| {
        let mut a = vec!["flow", "train", "--data", ds, "--out", out.to_str().unwrap(), "--device", "cpu"];
        a.extend(["--epochs", "2", "--layers", "2", "--hidden", "16", "--depth", "2", "--bins", "4", "--keep", keep]);
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = train("best", &["--val-ids", "g003"]);
    let (code, stdout, err) = common::gforge(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("last epoch 2 (held-out NLL") && stdout.contains("best held-out epoch"), "{stdout}");
    assert!(stdout.contains("use the best (--keep best)"), "{stdout}");
    let ev = data.join("eval");
    let (code, stdout, err) = common::gforge(&[
        "flow",
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--data",
        ds,
        "--out",
        ev.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("evaluating the best held-out epoch"), "{stdout}");
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(ev.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["model"].as_str().unwrap().ends_with("flow.best.npz"), "{metrics}");
    let args = train("worst", &[]);
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "unknown --keep 'worst'");
    // One galaxy: nothing is held out to choose the best epoch by.
    let one = tmpdir("keep-one");
    std::fs::copy(data.join("g000.npy"), one.join("g000.npy")).unwrap();
    let mut args = train("best", &[]);
    args[3] = one.to_str().unwrap().to_string();
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "--keep best needs held-out galaxies");
}

/// Ctrl-C during `flow train`: a checkpoint at the next batch boundary, exit 130, and `--resume` ends on the
/// weights of an uninterrupted run, bit for bit; a second run on the same --out meanwhile is refused.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_at_a_batch_boundary_and_resume_matches() {
    let data = small_data("flow-int");
    let ds = data.to_str().unwrap().to_string();
    let args = |out: &Path| -> Vec<String> {
        [
            "flow",
            "train",
            "--data",
            &ds,
            "--out",
            out.to_str().unwrap(),
            "--layers",
            "2",
            "--hidden",
            "16",
            "--bins",
            "4",
            "--epochs",
            "12",
            "--batch",
            "64",
            "--val-ids",
            "g003",
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let reference = data.join("ref.npz");
    let (code, _, err) = common::gforge(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");

    let model = data.join("int.npz");
    let (code, err) = common::gforge_interrupted(&args(&model), std::time::Duration::from_millis(150));
    assert_eq!(code, 130, "the run was not interrupted (finished first?): {err}");
    assert!(err.contains("interrupted: checkpoint") && !err.contains("panicked"), "{err}");
    let mut resume = args(&model);
    resume.push("--resume".into());
    let held = std::fs::File::create(data.join("int.npz.lock")).unwrap();
    held.lock().unwrap();
    assert_clear_error(&resume.iter().map(String::as_str).collect::<Vec<_>>(), "another process is writing");
    drop(held);
    let (code, _, err) = common::gforge(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    common::assert_same_weights(&reference, &model, "an interrupted and resumed run");
}
