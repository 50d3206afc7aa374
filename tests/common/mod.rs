//! Helpers the integration tests share: run the `gforge` binary, make a scratch folder, check that bad
//! input gets one clear error line, list the devices a device test must cover, and brute-force Jacobians
//! with their log|det|. (Each test file uses a subset, hence the allow.)
#![allow(dead_code)]
use std::path::PathBuf;
use std::process::Command;

/// Runs `gforge args...`: (exit code, stdout, stderr).
pub fn gforge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gforge")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// An empty folder of this test process: `<temp>/gforge-tests/<pid>/<name>`. The folders of test processes
/// that have ended are removed first, so runs do not pile up scratch data (a failed run's folder stays
/// until the next run, for a look).
pub fn tmpdir(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join("gforge-tests");
    let me = std::process::id();
    if std::path::Path::new("/proc/self").exists() {
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let pid = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            if pid.is_some_and(|p| p != me && !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let d = root.join(me.to_string()).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `gforge args...` and sends it SIGINT (Ctrl-C) `after` its first line of output (printed before
/// training starts, once the handler is installed): (exit code, stderr).
#[cfg(unix)]
pub fn gforge_interrupted(args: &[String], after: std::time::Duration) -> (i32, String) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gforge"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::sleep(after);
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // Drain stdout so the child never blocks on a full pipe.
    std::io::copy(&mut out, &mut std::io::sink()).unwrap();
    let o = child.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into())
}

/// The checkpoints `a` and `b` hold the same entries with bit-identical values (a resumed run against an
/// uninterrupted one).
pub fn assert_same_weights(a: &std::path::Path, b: &std::path::Path, what: &str) {
    use galactic_forge::checkpoint;
    let (a, b) = (checkpoint::load(a).unwrap(), checkpoint::load(b).unwrap());
    assert_eq!(a.tensors.keys().collect::<Vec<_>>(), b.tensors.keys().collect::<Vec<_>>());
    for (k, v) in &a.tensors {
        assert_eq!(v, &b.tensors[k], "{k} differs after {what}");
    }
}

/// One `gforge: ...` line naming `what`, a non-zero exit, no panic.
pub fn assert_clear_error(args: &[&str], what: &str) {
    let (code, _, err) = gforge(args);
    assert_ne!(code, 0, "{args:?} succeeded");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gforge:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].contains(what), "{args:?}: expected '{what}' in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The CPU and every WGPU adapter; with GFORGE_STRICT=1 (CI) a machine without an adapter fails instead of
/// silently testing the CPU alone.
pub fn devices() -> Vec<galactic_forge::Device> {
    use galactic_forge::{backend, Device};
    let mut v = vec![Device::Cpu];
    let (infos, _) = backend::list_devices();
    for i in infos.iter().filter(|i| i.spec.starts_with("wgpu")) {
        v.push(Device::parse(&i.spec).unwrap());
    }
    if std::env::var("GFORGE_STRICT").is_ok_and(|s| s == "1") {
        assert!(v.len() > 1, "GFORGE_STRICT=1 but no WGPU adapter");
    }
    v
}

/// log|det| of a row-major d x d matrix in f64 (Gaussian elimination with partial pivoting).
pub fn log_abs_det(m: &[f64], d: usize) -> f64 {
    let mut a = m.to_vec();
    let mut acc = 0.0;
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| a[i * d + c].abs().total_cmp(&a[j * d + c].abs())).unwrap();
        for k in 0..d {
            a.swap(c * d + k, p * d + k);
        }
        let piv = a[c * d + c];
        acc += piv.abs().ln();
        for r in c + 1..d {
            let f = a[r * d + c] / piv;
            for k in c..d {
                a[r * d + k] -= f * a[c * d + k];
            }
        }
    }
    acc
}

/// Per-sample Jacobians [B][D*D] of a map of x (shape [B, ..], D values per sample) to z [B, D], one backward
/// pass per output coordinate.
pub fn jacobians(
    f: &dyn Fn(&galactic_forge::Tensor) -> galactic_forge::Tensor,
    x: &[f32],
    shape: &[usize],
    dev: &galactic_forge::Device,
) -> Vec<Vec<f64>> {
    use galactic_forge::{backward, Tensor};
    let b = shape[0];
    let d = x.len() / b;
    let mut jac = vec![vec![0.0; d * d]; b];
    for i in 0..d {
        let xt = Tensor::from_slice(x, shape, dev).unwrap().requires_grad();
        let z = f(&xt);
        let pick: Vec<f32> = (0..b * d).map(|k| if k % d == i { 1.0 } else { 0.0 }).collect();
        let loss = z.mul(&Tensor::from_slice(&pick, &[b, d], dev).unwrap()).unwrap().sum_all().unwrap();
        let g = backward(&loss).unwrap().get(&xt).unwrap().to_vec().unwrap();
        for r in 0..b {
            for j in 0..d {
                jac[r][i * d + j] = f64::from(g[r * d + j]);
            }
        }
    }
    jac
}
