//! The `gforge` binary as a user meets it: devices, selftest, and one clear line on bad input.
use std::process::Command;

fn gforge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gforge")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

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
