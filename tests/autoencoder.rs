//! The image autoencoder and the full forge pipeline as a user meets them: `gforge ae train | encode | show`
//! write what they promise, training resumes bit-identically on the CPU, bad images and checkpoints get one
//! clear error, and `gforge forge` on a user's folders matches images to star files by galaxy id.
mod common;

use common::{assert_clear_error, gforge, tmpdir};
use galactic_forge::data::conditions::ExtraConditions;
use galactic_forge::data::images::{render_folder, RenderConfig};
use galactic_forge::data::synthetic::{self, SynthConfig};
use galactic_forge::models::AeConfig;
use galactic_forge::optim::{Adam, AdamConfig, AdamKind};
use galactic_forge::pipeline::ae::{self, AeTrainConfig, ImageSet};
use galactic_forge::{backward, checkpoint, Device, Tensor};
use std::path::{Path, PathBuf};

/// `n` small synthetic galaxies (700 stars each) and their 32 x 32 mock images: (data, images).
fn galaxies_and_images(name: &str, n: usize) -> (PathBuf, PathBuf) {
    let d = tmpdir(name);
    let cfg = SynthConfig { galaxies: n, m_particle: 1e12, n_min: 700, n_max: 700, seed: 5 };
    let (gals, truth) = synthetic::generate(&cfg);
    synthetic::write(&d.join("data"), &gals, &truth).unwrap();
    render_folder(&d.join("data"), &d.join("images"), &RenderConfig { size: 32, ..Default::default() }, 1).unwrap();
    (d.join("data"), d.join("images"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const TINY: [&str; 8] = ["--size", "16", "--channels", "3,4,8", "--latents", "3", "--device", "cpu"];

#[test]
fn ae_commands_train_encode_and_show() {
    let (_, images) = galaxies_and_images("cli", 6);
    let d = images.parent().unwrap().to_path_buf();
    let ck = d.join("ae.npz");
    let mut args = vec!["ae", "train", "--images", s(&images), "--out", s(&ck), "--epochs", "2", "--batch", "2"];
    args.extend(TINY);
    args.extend(["--lr", "1e-3", "--val-ids", "g001,g004"]);
    let (code, out, err) = gforge(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("4 training and 2 held-out images"), "{out}");
    let lat = d.join("latents");
    let (code, _, err) =
        gforge(&["ae", "encode", "--model", s(&ck), "--images", s(&images), "--out", s(&lat), "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    for i in 0..6 {
        let z = galactic_forge::io::read_npy_f32(&lat.join(format!("g{i:03}_latent.npy"))).unwrap();
        assert_eq!(z.shape(), &[3]);
    }
    // The table is exactly what `flow train --extra-conditions` reads.
    let table = ExtraConditions::read_csv(&lat.join("latents.csv")).unwrap();
    assert_eq!(table.names, ["z0", "z1", "z2"]);
    assert_eq!(table.by_id.len(), 6);
    let z0 = galactic_forge::io::read_npy_f32(&lat.join("g000_latent.npy")).unwrap();
    for (a, b) in z0.iter().zip(&table.by_id["g000"]) {
        assert!((f64::from(*a) - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} {b}");
    }
    let show = d.join("show");
    let (code, _, err) =
        gforge(&["ae", "show", "--model", s(&ck), "--images", s(&images), "--out", s(&show), "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    for f in ["reconstructions.png", "traversal.png"] {
        let img = image::open(show.join(f)).unwrap();
        assert!(img.width() > 100 && img.height() > 100, "{f}");
    }
}

#[test]
fn ae_training_resumes_bit_identically_on_the_cpu() {
    let (_, images) = galaxies_and_images("resume", 5);
    let d = images.parent().unwrap().to_path_buf();
    let set = ImageSet::from_images(galactic_forge::data::images::load_folder(&images, 16).unwrap()).unwrap();
    let val_ids = vec!["g002".to_string()];
    let (train, val) = (set.select(&val_ids, false), set.select(&val_ids, true));
    let cfg = AeConfig { image: 16, channels: vec![3, 4, 8], latents: 3, seed: 2 };
    let tc = |epochs| AeTrainConfig { epochs, batch: 3, lr: 1e-3, seed: 7 };
    let (full, split) = (d.join("full.npz"), d.join("split.npz"));
    ae::train(&train, &val, &cfg, &tc(3), &full, &Device::Cpu, false, false).unwrap();
    ae::train(&train, &val, &cfg, &tc(1), &split, &Device::Cpu, false, false).unwrap();
    ae::train(&train, &val, &cfg, &tc(3), &split, &Device::Cpu, true, false).unwrap();
    common::assert_same_weights(&full, &split, "resume");
    // A different model cannot resume from it.
    let other = AeConfig { latents: 4, ..cfg.clone() };
    assert!(ae::train(&train, &val, &other, &tc(4), &split, &Device::Cpu, true, false).is_err());
}

#[test]
fn the_autoencoder_learns_a_batch() {
    // Two rendered galaxies, 60 Adam steps: the reconstruction error must fall well below the
    // untrained model's (the conv and transposed-conv gradients drive it).
    let (_, images) = galaxies_and_images("learn", 2);
    let set = ImageSet::from_images(galactic_forge::data::images::load_folder(&images, 16).unwrap()).unwrap();
    let cfg = AeConfig { image: 16, channels: vec![3, 8, 16], latents: 4, seed: 1 };
    let model = galactic_forge::models::Autoencoder::new(&cfg, &Device::Cpu).unwrap();
    let x = Tensor::from_slice(&set.data, &[2, 3, 16, 16], &Device::Cpu).unwrap();
    let mut opt = Adam::new(model.all_vars(), AdamConfig::new(AdamKind::Adam, 3e-3));
    let first = model.loss(&x).unwrap().item().unwrap();
    let mut last = first;
    for _ in 0..60 {
        let loss = model.loss(&x).unwrap();
        last = loss.item().unwrap();
        opt.step(&backward(&loss).unwrap()).unwrap();
    }
    assert!(last < 0.2 * first, "MSE {first} -> {last}");
}

#[test]
fn bad_images_and_checkpoints_get_one_clear_error() {
    let (_, images) = galaxies_and_images("bad", 3);
    let d = images.parent().unwrap().to_path_buf();
    let mut base = vec!["ae", "train", "--out", "/dev/null/x.npz", "--epochs", "1"];
    base.extend(TINY);
    let with = |dir: &str| {
        let mut a = base.clone();
        a.extend(["--images", dir]);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let missing = d.join("nowhere");
    let args = with(s(&missing));
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "nowhere");
    std::fs::write(images.join("g009.png"), b"not a png").unwrap();
    let args = with(s(&images));
    assert_clear_error(&args.iter().map(String::as_str).collect::<Vec<_>>(), "g009.png");
    std::fs::remove_file(images.join("g009.png")).unwrap();
    // A truncated checkpoint.
    let ck = d.join("ae.npz");
    let mut args = vec!["ae", "train", "--images", s(&images), "--out", s(&ck), "--epochs", "1"];
    args.extend(TINY);
    assert_eq!(gforge(&args).0, 0);
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    assert_clear_error(
        &["ae", "encode", "--model", s(&ck), "--images", s(&images), "--out", s(&d), "--device", "cpu"],
        "ae.npz",
    );
    // An image side the convs cannot halve down evenly.
    assert_clear_error(&["ae", "train", "--images", s(&images), "--out", s(&ck), "--size", "15"], "divisible");
}

#[test]
fn forge_on_user_folders_matches_images_to_stars_by_id() {
    let (data, images) = galaxies_and_images("forge", 6);
    let d = data.parent().unwrap().to_path_buf();
    let out = d.join("out");
    let args = |out: &Path| {
        vec![
            "forge".to_string(),
            "--data".into(),
            s(&data).into(),
            "--images".into(),
            s(&images).into(),
            "--out".into(),
            s(out).into(),
            "--device".into(),
            "cpu".into(),
            "--ae-size".into(),
            "16".into(),
            "--ae-channels".into(),
            "3,4".into(),
            "--ae-epochs".into(),
            "1".into(),
            "--epochs".into(),
            "1".into(),
        ]
    };
    let a = args(&out);
    let (code, stdout, err) = gforge(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stdout}\n{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["exact_kl_nats_per_held_out_star"]["with_latents"].as_f64().unwrap().is_finite(), "{summary}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval/metrics.json")).unwrap()).unwrap();
    // The flow saw the 4 parameters then the 16 latents, in that order, and stored them for sampling.
    let ck = checkpoint::load(&out.join("flow.npz")).unwrap();
    let names: Vec<String> = serde_json::from_value(ck.config["standardizer"]["cond_names"].clone()).unwrap();
    assert_eq!(names.len(), 4 + 16, "{names:?}");
    assert_eq!(&names[4..6], ["z0", "z1"]);
    assert!(!metrics["galaxies"].as_array().unwrap().is_empty());
    // A checkpoint of the other kind is named as such.
    let ae_ck = out.join("autoencoder/ae.npz");
    assert_clear_error(
        &["flow", "sample", "--model", s(&ae_ck), "--galaxy", "g000", "--stars", "5", "--out", s(&d.join("x.npy"))],
        "autoencoder checkpoint",
    );
    assert_clear_error(
        &[
            "ae",
            "encode",
            "--model",
            s(&out.join("flow.npz")),
            "--images",
            s(&images),
            "--out",
            s(&d),
            "--device",
            "cpu",
        ],
        "flow checkpoint",
    );
    // Without the image of one galaxy: one clear error naming it.
    std::fs::remove_file(images.join("g003.png")).unwrap();
    let a = args(&d.join("out2"));
    assert_clear_error(&a.iter().map(String::as_str).collect::<Vec<_>>(), "g003");
}
