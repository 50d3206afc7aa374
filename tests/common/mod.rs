//! Helpers the integration tests share: run the `gforge` binary, make a scratch folder, and check that bad
//! input gets one clear error line. (Each test file uses a subset, hence the allow.)
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

/// An empty folder of this test process.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gforge-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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
