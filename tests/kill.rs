//! kill -9 at any moment loses nothing: `gforge flow train`, `gforge ae train` and `gforge glow train` are
//! killed with SIGKILL at random moments (at start-up before any checkpoint exists, mid-epoch, and on purpose
//! while a checkpoint's temporary file is half written, through the `GFORGE_TEST_WRITE_PAUSE_MS` hook of
//! `io::write_atomic`) and started again with `--resume` each time. After every kill the checkpoint on disk
//! (if any) loads with its checksums; the chain ends on the weights of an uninterrupted run, bit for bit, with
//! no temporary left.
//!
//! The moments are random (seeded from the clock, printed; `GFORGE_KILL_SEED=<n>` replays a run).
#![cfg(unix)]
mod common;

use common::{assert_same_weights, gforge, tmpdir};
use galactic_forge::checkpoint;
use galactic_forge::pipeline::train::best_path;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills each trainer must take, and how many of them while a checkpoint is being written.
const KILLS: usize = 24;
const WRITE_KILLS: usize = 6;

/// splitmix64: enough randomness for kill moments, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, d: Duration) -> Duration {
        Duration::from_micros(self.next() % (d.as_micros() as u64).max(1))
    }
}

fn seed() -> u64 {
    std::env::var("GFORGE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
    })
}

/// Four tiny galaxies from `gforge synth` (600 stars each before cleaning) in `dir/data`.
fn synth_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let (code, _, err) = gforge(&[
        "synth",
        "galaxies",
        "--out",
        s(&data),
        "--galaxies",
        "4",
        "--n-min",
        "600",
        "--n-max",
        "600",
        "--seed",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    data
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The temporary files (`*.tmp`) in `dir` (none while it does not exist).
fn temps(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect()
}

/// Every checkpoint the run keeps (`out` and its best epoch beside it) loads, checksums included.
fn assert_loadable(out: &Path) {
    for p in [out.to_path_buf(), best_path(out)] {
        if p.exists() {
            if let Err(e) = checkpoint::load(&p) {
                panic!("{} is not loadable after a kill: {e}", p.display());
            }
        }
    }
}

/// Kills `args(out) --resume` again and again until it has been killed `KILLS` times (`WRITE_KILLS` of them
/// inside a checkpoint write, at least one before any checkpoint existed), then lets it finish and compares
/// it with `args(reference)` run straight through. A chain that finishes before enough kills is checked and
/// started over.
fn kill_and_resume(name: &str, dir: &Path, args: &dyn Fn(&Path) -> Vec<String>) {
    let mut rng = Rng(seed());
    println!("{name}: kill seed {} (GFORGE_KILL_SEED replays it)", rng.0);
    let reference = dir.join("reference.npz");
    let t0 = Instant::now();
    let (code, _, err) = gforge(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let straight = t0.elapsed();

    // In a folder that does not exist yet: the trainer makes it (as `ae train` always did).
    let out = dir.join("killed").join("killed.npz");
    let odir = out.parent().unwrap().to_path_buf();
    let resume = || {
        let mut a = args(&out);
        a.push("--resume".into());
        a
    };
    let finished = |what: &str| {
        assert_same_weights(&reference, &out, what);
        assert_eq!(best_path(&reference).exists(), best_path(&out).exists(), "{what}: best epoch's file");
        if best_path(&reference).exists() {
            assert_same_weights(&best_path(&reference), &best_path(&out), what);
        }
        assert!(temps(&odir).is_empty(), "temporaries left behind: {:?}", temps(&odir));
    };
    let (mut kills, mut write_kills, mut before_first, mut chains, mut attempts) = (0, 0, 0, 1, 0);
    let log = dir.join("stderr.txt");
    while kills < KILLS || write_kills < WRITE_KILLS {
        attempts += 1;
        assert!(attempts < 4 * KILLS, "{name}: only {kills} kills in {attempts} runs");
        let in_write = write_kills < WRITE_KILLS && (rng.next().is_multiple_of(3) || kills + WRITE_KILLS >= KILLS);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gforge"));
        cmd.args(resume()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        if in_write {
            cmd.env("GFORGE_TEST_WRITE_PAUSE_MS", "400");
        }
        let had_checkpoint = out.exists();
        let mut child = cmd.spawn().unwrap();
        if in_write {
            // Kill as soon as a checkpoint's temporary appears (its first half written, the writer paused).
            let start = Instant::now();
            while temps(&odir).is_empty() && child.try_wait().unwrap().is_none() {
                assert!(start.elapsed() < Duration::from_secs(60), "{name}: no checkpoint write began");
                std::thread::sleep(Duration::from_millis(1));
            }
        } else if kills == 0 {
            // The first kill lands during start-up, before any checkpoint exists.
            std::thread::sleep(rng.below(Duration::from_millis(40)));
        } else {
            std::thread::sleep(rng.below(straight.mul_f64(0.5)));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            kills += 1;
            if in_write && !temps(&odir).is_empty() {
                write_kills += 1;
            }
            if !had_checkpoint {
                before_first += 1;
            }
            assert_loadable(&out);
        } else {
            assert_eq!(status.code(), Some(0), "{name}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            finished(&format!("{name}: a chain of kills and resumes"));
            for p in [out.clone(), best_path(&out)] {
                let _ = std::fs::remove_file(p);
            }
            chains += 1;
        }
    }
    let (code, _, err) = gforge(&resume().iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    finished(&format!("{name}: {kills} kills and resumes"));
    assert!(before_first >= 1, "{name}: no kill before the first checkpoint");
    println!(
        "{name}: {kills} kills ({write_kills} inside a checkpoint write, {before_first} before any checkpoint) over \
         {chains} chain(s) in {attempts} runs; {:.1} s in all, {:.2} s for the run straight through",
        t0.elapsed().as_secs_f64(),
        straight.as_secs_f64()
    );
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn flow_train_survives_kill_9_at_any_moment() {
    let dir = tmpdir("kill-flow");
    let data = synth_data(&dir);
    let args = |out: &Path| {
        strings(&[
            "flow",
            "train",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--layers",
            "2",
            "--hidden",
            "16",
            "--depth",
            "2",
            "--bins",
            "4",
            "--epochs",
            "30",
            "--batch",
            "64",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--val-ids",
            "g003",
            "--device",
            "cpu",
        ])
    };
    kill_and_resume("flow train", &dir, &args);
}

#[test]
fn ae_train_survives_kill_9_at_any_moment() {
    let dir = tmpdir("kill-ae");
    let data = synth_data(&dir);
    let images = dir.join("images");
    let (code, _, err) = gforge(&["synth", "images", "--data", s(&data), "--out", s(&images), "--size", "32"]);
    assert_eq!(code, 0, "{err}");
    // Checkpoints go to their own folder, away from the images' temporaries.
    let ck = dir.join("ck");
    std::fs::create_dir_all(&ck).unwrap();
    let args = |out: &Path| {
        strings(&[
            "ae",
            "train",
            "--images",
            s(&images),
            "--out",
            s(out),
            "--size",
            "16",
            "--channels",
            "3,4,8",
            "--latents",
            "4",
            "--epochs",
            "200",
            "--batch",
            "1",
            "--lr",
            "1e-3",
            "--val-ids",
            "g003",
            "--device",
            "cpu",
        ])
    };
    kill_and_resume("ae train", &ck, &args);
}

#[test]
fn glow_train_survives_kill_9_at_any_moment() {
    let dir = tmpdir("kill-glow");
    let data = dir.join("hi");
    let (code, _, err) =
        gforge(&["synth", "hi-maps", "--out", s(&data), "--sims", "8", "--maps-per-sim", "3", "--seed", "5"]);
    assert_eq!(code, 0, "{err}");
    // Checkpoints go to their own folder, away from the maps.
    let ck = dir.join("ck");
    std::fs::create_dir_all(&ck).unwrap();
    let args = |out: &Path| {
        strings(&[
            "glow",
            "train",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--blocks",
            "2",
            "--steps",
            "1",
            "--hidden",
            "4",
            "--epochs",
            "40",
            "--batch",
            "4",
            "--val-fraction",
            "0.25",
            "--device",
            "cpu",
        ])
    };
    kill_and_resume("glow train", &ck, &args);
}
