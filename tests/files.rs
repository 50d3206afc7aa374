//! Bad files get one clear error, never a panic, and checkpoints are never left damaged.
mod common;

use common::tmpdir as dir;
use galactic_forge::{checkpoint, Device, Error, Tensor, Var};

const CPU: Device = Device::Cpu;

fn vars() -> Vec<Var> {
    vec![
        Var::new("layer0.weight", Tensor::from_vec((0..12).map(|i| i as f32 * 0.5).collect(), &[3, 4], &CPU).unwrap()),
        Var::new("layer0.bias", Tensor::from_slice(&[1.0, -1.0, 0.25], &[3], &CPU).unwrap()),
    ]
}

#[test]
fn checkpoint_round_trips_and_leaves_no_temporary_files() {
    let d = dir("ck");
    let p = d.join("model.npz");
    let cfg = serde_json::json!({"model": "nsf", "layers": 14});
    checkpoint::save(&p, &vars(), &cfg).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    assert_eq!(ck.config, cfg);
    let fresh = vec![
        Var::new("layer0.weight", Tensor::zeros(&[3, 4], &CPU).unwrap()),
        Var::new("layer0.bias", Tensor::zeros(&[3], &CPU).unwrap()),
    ];
    ck.restore(&p, &fresh, &CPU).unwrap();
    assert_eq!(fresh[0].get().to_vec().unwrap(), vars()[0].get().to_vec().unwrap());
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "only the checkpoint itself remains");
}

fn ck_error(e: Error) -> String {
    match e {
        Error::Checkpoint { msg, .. } => msg,
        e => panic!("expected a checkpoint error, got {e}"),
    }
}

#[test]
fn damaged_or_mismatched_checkpoints_are_refused_by_name() {
    let d = dir("bad");
    let p = d.join("model.npz");
    checkpoint::save(&p, &vars(), &serde_json::json!({})).unwrap();
    let bytes = std::fs::read(&p).unwrap();

    let truncated = d.join("truncated.npz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let msg = ck_error(checkpoint::load(&truncated).err().unwrap());
    assert!(msg.contains("truncated") || msg.contains("unreadable"), "{msg}");

    // One flipped bit in a weight's mantissa leaves a finite, plausible value: only the checksum sees it.
    let needle = 5.5f32.to_le_bytes();
    let at = bytes.windows(4).position(|w| w == needle).expect("layer0.weight[11] in the file");
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x01;
    let damaged = d.join("flipped.npz");
    std::fs::write(&damaged, &flipped).unwrap();
    let msg = ck_error(checkpoint::load(&damaged).err().unwrap());
    assert!(msg.contains("'layer0.weight'") && msg.contains("checksum"), "{msg}");

    let ck = checkpoint::load(&p).unwrap();
    let wrong_shape = vec![Var::new("layer0.weight", Tensor::zeros(&[4, 3], &CPU).unwrap()), vars()[1].clone()];
    let msg = ck_error(ck.restore(&p, &wrong_shape, &CPU).err().unwrap());
    assert!(msg.contains("'layer0.weight'") && msg.contains("[3, 4]"), "{msg}");
    let missing = vec![Var::new("layer1.weight", Tensor::zeros(&[3, 4], &CPU).unwrap())];
    let msg = ck_error(ck.restore(&p, &missing, &CPU).err().unwrap());
    assert!(msg.contains("'layer1.weight' is missing"), "{msg}");
    let msg = ck_error(ck.restore(&p, &vars()[..1], &CPU).err().unwrap());
    assert!(msg.contains("'layer0.bias' does not belong"), "{msg}");

    assert!(checkpoint::load(&d.join("absent.npz")).is_err());
    std::fs::write(d.join("text.npz"), "not a zip").unwrap();
    assert!(checkpoint::load(&d.join("text.npz")).is_err());
}

#[test]
fn non_finite_parameters_never_replace_a_good_checkpoint() {
    let d = dir("nan");
    let p = d.join("model.npz");
    checkpoint::save(&p, &vars(), &serde_json::json!({"epoch": 1})).unwrap();
    let bad = vec![Var::new("layer0.weight", Tensor::from_slice(&[f32::NAN; 12], &[3, 4], &CPU).unwrap())];
    let msg = ck_error(checkpoint::save(&p, &bad, &serde_json::json!({"epoch": 2})).err().unwrap());
    assert!(msg.contains("'layer0.weight'"), "{msg}");
    assert_eq!(checkpoint::load(&p).unwrap().config["epoch"], 1, "the previous checkpoint is intact");
}

#[test]
fn npy_files_are_read_or_refused_clearly() {
    let d = dir("npy");
    let t = Tensor::from_vec((0..33).map(|i| i as f32).collect(), &[3, 11], &CPU).unwrap();
    let p = d.join("x.npy");
    t.write_npy(&p).unwrap();
    assert_eq!(Tensor::read_npy(&p, &CPU).unwrap().to_vec().unwrap(), t.to_vec().unwrap());
    let bytes = std::fs::read(&p).unwrap();
    let cut = d.join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let e = Tensor::read_npy(&cut, &CPU).err().unwrap().to_string();
    assert!(e.contains("cut.npy") && e.contains("truncated"), "{e}");
    let e = Tensor::read_npy(&d.join("missing.npy"), &CPU).err().unwrap().to_string();
    assert!(e.contains("missing.npy"), "{e}");
    // float64 files are converted; integer files are refused with their dtype.
    let a64 = ndarray::Array2::<f64>::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64);
    ndarray_npy::write_npy(d.join("f64.npy"), &a64).unwrap();
    assert_eq!(
        Tensor::read_npy(&d.join("f64.npy"), &CPU).unwrap().to_vec().unwrap(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    ndarray_npy::write_npy(d.join("i32.npy"), &ndarray::Array1::<i32>::zeros(4)).unwrap();
    let e = Tensor::read_npy(&d.join("i32.npy"), &CPU).err().unwrap().to_string();
    assert!(e.contains("dtype"), "{e}");
}
