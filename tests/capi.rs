//! The C API as an embedding program meets it. This test builds the gforge-capi library with cargo (same
//! target folder and profile as itself, so only the small capi crate and its link are new work after
//! `cargo test` has built the main crate), compiles examples/c, examples/cpp and tests/c against
//! include/gforge.h with the system's cc and c++, and runs them on a flow and an autoencoder the CLI
//! trains here at a tiny size: the stars are bit for bit the CLI's for the same seed, log q is `flow
//! eval`'s, several threads give one thread's numbers, every misuse is a status and a message. It also
//! compares the header with the Rust signatures, so a declaration that drifts fails here, and runs the
//! capi crate's own unit tests. The CPU-only library (no GPU crates) is built and checked too.
mod common;

use common::{gforge, tmpdir};
use galactic_forge::pipeline::eval::log_q_physical;
use galactic_forge::pipeline::{sample, Conditions, SavedModel};
use galactic_forge::Device;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a command: (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Runs `gforge` with whitespace-separated arguments (this test's paths have none) and expects success.
fn gforge_ok(args: &str) {
    let (code, out, err) = gforge(&args.split_whitespace().collect::<Vec<_>>());
    assert_eq!(code, 0, "gforge {args}:\n{out}{err}");
}

/// cargo with this test's target folder and profile, in the repository.
fn cargo(args: &[&str]) -> Command {
    // This binary is target/<profile>/deps/capi-<hash>.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args(args).arg("--offline").env("CARGO_TARGET_DIR", dir.parent().unwrap());
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(p) => {
            cmd.args(["--profile", p]);
        }
        None => panic!("no profile folder above {}", exe.display()),
    }
    cmd
}

/// target/<profile>, where cargo puts libgforge.so and libgforge.a, after building them once per process;
/// and target/<profile>/cpu-only/libgforge.a, the CPU-only library (`--no-default-features`: no wgpu, no
/// cudarc), built first because both builds write the same file names.
fn libraries() -> &'static (PathBuf, PathBuf) {
    static LIB: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf();
        let (code, _, err) = run(&mut cargo(&["build", "-p", "gforge-capi", "--no-default-features"]));
        assert_eq!(code, 0, "cargo build -p gforge-capi --no-default-features:\n{err}");
        let cpu_only = dir.join("cpu-only");
        std::fs::create_dir_all(&cpu_only).unwrap();
        std::fs::copy(dir.join("libgforge.a"), cpu_only.join("libgforge.a")).unwrap();
        let (code, _, err) = run(&mut cargo(&["build", "-p", "gforge-capi"]));
        assert_eq!(code, 0, "cargo build -p gforge-capi:\n{err}");
        (dir, cpu_only)
    })
}

fn library() -> &'static Path {
    &libraries().0
}

/// What rustc's `--print native-static-libs` lists for the staticlib on Linux.
const NATIVE_STATIC_LIBS: [&str; 7] = ["-ldl", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-lc"];

/// Compiles C (or C++, when `cxx`) sources (paths in the repository, or absolute) against the header and
/// the library, shared or static, with warnings as errors so the header stays clean C99 and C++.
fn compile(sources: &[&str], exe: &Path, cxx: bool, static_link: bool) {
    compile_with(library(), sources, exe, cxx, static_link)
}

/// [`compile`] against the library in `lib`.
fn compile_with(lib: &Path, sources: &[&str], exe: &Path, cxx: bool, static_link: bool) {
    let (compiler, flags): (String, &[&str]) = if cxx {
        (std::env::var("CXX").unwrap_or_else(|_| "c++".into()), &["-std=c++17", "-pthread"])
    } else {
        (std::env::var("CC").unwrap_or_else(|_| "cc".into()), &["-std=c99"])
    };
    let mut cmd = Command::new(&compiler);
    cmd.args(flags).args(["-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I"]).arg(root().join("include"));
    cmd.args(sources.iter().map(|f| root().join(f))).arg("-o").arg(exe);
    if static_link {
        cmd.arg(lib.join("libgforge.a")).args(NATIVE_STATIC_LIBS).arg("-s");
    } else {
        cmd.arg("-L").arg(lib).arg("-lgforge").arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{compiler} {sources:?}:\n{out}{err}");
}

/// A tiny NSF the CLI trains once per process on four synthetic galaxies (g003 held out): (folder, flow).
fn trained_flow() -> &'static (PathBuf, PathBuf) {
    static FLOW: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FLOW.get_or_init(|| {
        let d = tmpdir("capi");
        let data = d.join("data");
        gforge_ok(&format!(
            "synth galaxies --out {} --galaxies 4 --m-particle 1e12 --n-min 700 --n-max 700 --seed 3",
            s(&data)
        ));
        let flow = d.join("flow.npz");
        gforge_ok(&format!(
            "flow train --data {} --out {} --device cpu --epochs 1 --layers 2 --hidden 16 --depth 2 --bins 4 \
             --batch 256 --optimizer adam --lr 1e-3 --val-ids g003",
            s(&data),
            s(&flow)
        ));
        (d, flow)
    })
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path).unwrap().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The capi crate's unit tests (a panic caught at the boundary, status mapping, the per-thread message),
/// which a plain `cargo test` of this package would not run.
#[test]
fn the_capi_crates_unit_tests_pass() {
    let (code, out, err) = run(&mut cargo(&["test", "-p", "gforge-capi", "--lib"]));
    assert_eq!(code, 0, "cargo test -p gforge-capi:\n{out}{err}");
    assert!(out.contains("test result: ok.") && !out.contains(" 0 passed"), "{out}");
}

/// Stars written by an example (raw f32 [1000, 10] for g003, seed 11) against `gforge flow sample`'s (the CLI
/// in chunks of 7, the C API in its own: the same bits), and its log q (raw f64) against what `flow eval`
/// computes (physical units, the standardisation's Jacobian included), bit for bit.
fn assert_clis_stars_and_eval_s_log_q(flow: &Path, d: &Path, stars: &Path, logp: &Path, who: &str) {
    let cli = d.join("cli.npy");
    gforge_ok(&format!(
        "flow sample --model {} --galaxy g003 --stars 1000 --seed 11 --chunk 7 --out {} --device cpu",
        s(flow),
        s(&cli)
    ));
    let want = galactic_forge::io::read_npy_f32(&cli).unwrap();
    assert_eq!(want.shape(), &[1000, 10]);
    let want: Vec<f32> = want.iter().copied().collect();
    let got = read_f32(stars);
    assert_eq!(bits32(&got), bits32(&want), "{who}'s stars differ from `gforge flow sample`'s");

    let (model, _) = SavedModel::load(flow, &Device::Cpu).unwrap();
    let cond = sample::condition(&model, Some("g003"), None).unwrap();
    let lq = log_q_physical(&model, &got, Conditions::One(&cond), &Device::Cpu).unwrap();
    let got_lq = read_f64(logp);
    assert_eq!(got_lq.len(), 1000);
    assert!(got_lq.iter().zip(&lq).all(|(a, b)| a.to_bits() == b.to_bits()), "{who}'s log q differs from eval's");
    assert!(lq.iter().all(|v| v.is_finite()));
}

#[test]
fn the_c_example_draws_the_clis_stars_and_eval_s_log_q() {
    let (d, flow) = trained_flow();
    let d = d.join("c");
    std::fs::create_dir_all(&d).unwrap();
    let exe = d.join("sample_stars");
    compile(&["examples/c/sample_stars.c"], &exe, false, false);
    let (stars, logp) = (d.join("stars.f32"), d.join("logp.f64"));
    let args = [s(flow), "cpu", "g003", "1000", "11", s(&stars), s(&logp)];
    let (code, out, err) = run(Command::new(&exe).args(args));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("galaxy g003: log10_Mstars=") && out.contains("1000 stars, mean log q ="), "{out}");
    assert_clis_stars_and_eval_s_log_q(flow, &d, &stars, &logp, "the C example");

    // The same program linked statically: the same bytes.
    if cfg!(target_os = "linux") {
        let exe = d.join("sample_stars_static");
        compile(&["examples/c/sample_stars.c"], &exe, false, true);
        let (stars2, logp2) = (d.join("stars2.f32"), d.join("logp2.f64"));
        let (code, out, err) =
            run(Command::new(&exe).args([s(flow), "cpu", "g003", "1000", "11", s(&stars2), s(&logp2)]));
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(std::fs::read(&stars2).unwrap(), std::fs::read(&stars).unwrap());
        assert_eq!(std::fs::read(&logp2).unwrap(), std::fs::read(&logp).unwrap());
        std::fs::remove_file(&exe).unwrap();
    }
}

/// A compiler or launcher a test needs (`NAME --version` runs), or None where it is missing: the test is
/// skipped, saying so, except under GFORGE_STRICT=1 (CI installs gfortran and OpenMPI), where it fails.
fn tool(name: &str) -> Option<&str> {
    if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(name);
    }
    assert!(!std::env::var("GFORGE_STRICT").is_ok_and(|v| v == "1"), "GFORGE_STRICT=1 but no {name}");
    eprintln!("skipping: no {name} on this machine");
    None
}

/// The Fortran module (include/gforge.f90) and example: `gforge flow sample`'s stars and `flow eval`'s
/// log q, bit for bit, and a failing call's status and message.
#[test]
fn the_fortran_example_draws_the_clis_stars_and_eval_s_log_q() {
    let Some(fc) = tool("gfortran") else { return };
    let (d, flow) = trained_flow();
    let d = d.join("fortran");
    std::fs::create_dir_all(&d).unwrap();
    let exe = d.join("sample_stars_f");
    let lib = library();
    let mut cmd = Command::new(fc);
    cmd.args(["-std=f2008", "-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", "-J"]).arg(&d);
    cmd.arg(root().join("include/gforge.f90")).arg(root().join("examples/fortran/sample_stars.f90"));
    cmd.arg("-o").arg(&exe).arg("-L").arg(lib).arg("-lgforge").arg(format!("-Wl,-rpath,{}", lib.display()));
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{fc}:\n{out}{err}");

    let (stars, logp) = (d.join("stars.f32"), d.join("logp.f64"));
    let (code, out, err) = run(Command::new(&exe).args([s(flow), "cpu", "g003", "1000", "11", s(&stars), s(&logp)]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("galaxy g003: log10_Mstars=") && out.contains("1000 stars, mean log q ="), "{out}");
    assert_clis_stars_and_eval_s_log_q(flow, &d, &stars, &logp, "the Fortran example");

    let (code, out, err) = run(Command::new(&exe).args([s(flow), "cpu", "nope", "10", "1"]));
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("gf_flow_galaxy_condition: GF_ERR_USAGE: galaxy 'nope'"), "{err}");
}

/// The MPI example on 1 and 2 ranks: the two ranks' files concatenated are the one rank's bit for bit,
/// and a galaxy's stars are `gforge flow sample`'s with that galaxy's seed.
#[test]
fn mpi_ranks_together_draw_what_one_process_draws() {
    let (Some(mpicc), Some(mpirun)) = (tool("mpicc"), tool("mpirun")) else { return };
    let (d, flow) = trained_flow();
    let d = d.join("mpi");
    std::fs::create_dir_all(&d).unwrap();
    let exe = d.join("sample_galaxies");
    let lib = library();
    let mut cmd = Command::new(mpicc);
    cmd.args(["-std=c99", "-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I"]).arg(root().join("include"));
    cmd.arg(root().join("examples/mpi/sample_galaxies.c")).arg("-o").arg(&exe);
    cmd.arg("-L").arg(lib).arg("-lgforge").arg(format!("-Wl,-rpath,{}", lib.display()));
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{mpicc}:\n{out}{err}");

    let read = |p: PathBuf| -> Vec<f32> { galactic_forge::io::read_npy_f32(&p).unwrap().iter().copied().collect() };
    let mut by_ranks = Vec::new();
    for ranks in [1, 2] {
        let prefix = d.join(format!("np{ranks}"));
        let np = ranks.to_string();
        // Root in CI containers; more ranks than cores on a small machine.
        let args =
            ["--allow-run-as-root", "--oversubscribe", "-np", &np, s(&exe), s(flow), "cpu", "300", "5", s(&prefix)];
        let (code, out, err) = run(Command::new(mpirun).args(args));
        assert_eq!(code, 0, "mpirun -np {ranks}: {out}{err}");
        assert!(out.contains(&format!("{ranks} rank(s): 1200 stars of 4 galaxies")), "{out}");
        by_ranks.push((0..ranks).flat_map(|r| read(d.join(format!("np{ranks}_{r}.npy")))).collect::<Vec<f32>>());
    }
    assert_eq!(by_ranks[0].len(), 1200 * 10);
    assert!(bits32(&by_ranks[0]) == bits32(&by_ranks[1]), "2 ranks draw other stars than 1");

    // Galaxy 3 of the checkpoint's 4 (rank 1's last; gf_flow_galaxy_id's order) with seed 5 + 3.
    let (model, _) = SavedModel::load(flow, &Device::Cpu).unwrap();
    let id = model.config["conditions"].as_object().unwrap().keys().nth(3).unwrap().clone();
    let cli = d.join("cli.npy");
    gforge_ok(&format!(
        "flow sample --model {} --galaxy {id} --stars 300 --seed 8 --out {} --device cpu",
        s(flow),
        s(&cli)
    ));
    assert!(bits32(&read(cli)) == bits32(&by_ranks[1][900 * 10..]), "galaxy {id}'s stars differ from the CLI's");
}

/// The lean CPU-only library: neither GPU crate nor any of the command line's (clap, plots, images, progress
/// bars) in its dependency tree, the default library's stars bit for bit, and one clear error for a GPU
/// device.
#[test]
fn the_cpu_only_library_has_no_gpu_or_cli_crates_and_draws_the_same_stars() {
    let mut tree = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    tree.current_dir(root()).args(["tree", "--offline", "-p", "gforge-capi", "--no-default-features"]);
    let (code, out, err) = run(tree.args(["-e", "normal", "--prefix", "none"]));
    assert_eq!(code, 0, "cargo tree:\n{err}");
    let crates: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(crates.contains(&"galactic-forge"), "{out}");
    for heavy in ["wgpu", "wgpu-core", "wgpu-hal", "naga", "cudarc", "clap", "ctrlc", "indicatif", "plotters", "image"]
    {
        assert!(!crates.contains(&heavy), "the CPU-only library depends on {heavy}:\n{out}");
    }

    let (d, flow) = trained_flow();
    let d = d.join("cpu-only");
    std::fs::create_dir_all(&d).unwrap();
    let draw = |lib: &Path, name: &str| {
        let exe = d.join(name);
        compile_with(lib, &["examples/c/sample_stars.c"], &exe, false, true);
        let stars = d.join(format!("{name}.f32"));
        let (code, out, err) = run(Command::new(&exe).args([s(flow), "cpu", "g003", "500", "5", s(&stars)]));
        assert_eq!(code, 0, "{name}: {out}{err}");
        (exe, std::fs::read(&stars).unwrap())
    };
    let (_, want) = draw(library(), "default");
    let (exe, got) = draw(&libraries().1, "cpu_only");
    assert_eq!(got.len(), 500 * 10 * 4);
    assert!(got == want, "the CPU-only library's stars differ from the default library's");
    for spec in ["wgpu", "cuda:0"] {
        let (code, out, err) = run(Command::new(&exe).args([s(flow), spec, "g003", "10", "5"]));
        assert_ne!(code, 0, "{spec}: {out}");
        let backend = spec.split(':').next().unwrap();
        assert!(err.contains(&format!("compiled without the `{backend}` feature")), "{spec}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn the_readme_snippet_runs() {
    let (d, _) = trained_flow();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Embedding (C API)").unwrap()..];
    let code = between(section, "```c\n", "```");
    let d = d.join("readme");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(d.parent().unwrap().join("flow.npz"), d.join("flow.npz")).unwrap();
    std::fs::write(d.join("readme.c"), code).unwrap();
    let exe = d.join("readme");
    compile(&[s(&d.join("readme.c"))], &exe, false, false);
    let (code, out, err) = run(Command::new(&exe).current_dir(&d));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("first star at x = "), "{out}");
}

#[test]
fn threads_sharing_one_flow_give_one_threads_numbers() {
    let (d, flow) = trained_flow();
    let exe = d.join("sample_threads");
    compile(&["examples/cpp/sample_threads.cpp"], &exe, true, false);
    // The CPU, then every WGPU adapter (lavapipe's Vulkan and GL in CI) with less work: a software GPU is slow.
    for dev in common::devices() {
        let spec = dev.to_string();
        let spec = spec.split(' ').next().unwrap();
        let (threads, stars) = if dev.is_cpu() { ("6", "3000") } else { ("3", "200") };
        let (code, out, err) = run(Command::new(&exe).args([s(flow), spec, threads, stars]));
        assert_eq!(code, 0, "{spec}: {out}{err}");
        let want = format!(
            "{threads} threads, {} jobs of {stars} stars over 4 galaxies: the same",
            3 * threads.parse::<usize>().unwrap()
        );
        assert!(out.contains(&want), "{spec}: {out}");
    }
}

#[test]
fn every_misuse_is_a_status_and_a_message() {
    let (d, flow) = trained_flow();
    let d = d.join("misuse");
    std::fs::create_dir_all(&d).unwrap();
    let corrupt = d.join("corrupt.npz");
    std::fs::write(&corrupt, &std::fs::read(flow).unwrap()[..300]).unwrap();
    let has_cuda = galactic_forge::backend::list_devices().0.iter().any(|i| i.spec.starts_with("cuda"));
    let exe = d.join("misuse");
    compile(&["tests/c/misuse.c"], &exe, false, false);
    let missing = d.join("missing.npz");
    let (code, out, err) =
        run(Command::new(&exe).args([s(flow), s(&corrupt), s(&missing), if has_cuda { "1" } else { "0" }]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\n0 failure(s)"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_autoencoder_encodes_what_the_cli_encodes() {
    use galactic_forge::data::images::{load_folder, render_folder, RenderConfig};
    use galactic_forge::data::synthetic::{self, SynthConfig};
    use galactic_forge::pipeline::ae::ImageSet;
    let d = tmpdir("capi-ae");
    let cfg = SynthConfig { galaxies: 4, m_particle: 1e12, n_min: 700, n_max: 700, seed: 5 };
    let (gals, truth) = synthetic::generate(&cfg);
    synthetic::write(&d.join("data"), &gals, &truth).unwrap();
    let images = d.join("images");
    render_folder(&d.join("data"), &images, &RenderConfig { size: 16, ..Default::default() }, 1).unwrap();
    let ae = d.join("ae.npz");
    gforge_ok(&format!(
        "ae train --images {} --out {} --epochs 1 --batch 2 --size 16 --channels 3,4,8 --latents 3 --lr 1e-3 \
         --val-ids g003 --device cpu",
        s(&images),
        s(&ae)
    ));
    let lat = d.join("latents");
    gforge_ok(&format!("ae encode --model {} --images {} --out {} --device cpu", s(&ae), s(&images), s(&lat)));

    // The images as `ae encode` reads them, handed to the C API as one raw float32 array.
    let set = ImageSet::from_images(load_folder(&images, 16).unwrap()).unwrap();
    let raw: Vec<u8> = set.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(d.join("images.f32"), raw).unwrap();
    let exe = d.join("encode");
    compile(&["tests/c/encode.c"], &exe, false, false);
    let n = set.len().to_string();
    let (code, out, err) =
        run(Command::new(&exe).args([s(&ae), &n, s(&d.join("images.f32")), s(&d.join("latents.f32"))]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 images of 16 x 16 -> 3 latents each"), "{out}");
    let got = read_f32(&d.join("latents.f32"));
    for (i, id) in set.ids.iter().enumerate() {
        let want = galactic_forge::io::read_npy_f32(&lat.join(format!("{id}_latent.npy"))).unwrap();
        let want: Vec<f32> = want.iter().copied().collect();
        assert_eq!(bits32(&got[3 * i..3 * i + 3]), bits32(&want), "latents of {id}");
    }
}

#[test]
fn the_glow_samples_scores_and_infers_as_the_cli() {
    use galactic_forge::pipeline::glow::{self, HiSet};
    use galactic_forge::pipeline::higlow::load_folder;
    let d = tmpdir("capi-glow");
    let data = d.join("hi");
    gforge_ok(&format!("synth hi-maps --out {} --sims 4 --maps-per-sim 2 --seed 3", s(&data)));
    let model = d.join("glow.npz");
    gforge_ok(&format!(
        "glow train --data {} --out {} --blocks 2 --steps 1 --hidden 4 --prior-hidden 4 --epochs 1 --batch 4 \
         --lr 1e-3 --val-fraction 0.25 --device cpu",
        s(&data),
        s(&model)
    ));
    let cli_samples = d.join("samples.npy");
    gforge_ok(&format!(
        "glow sample --model {} --condition 0.3,0.8 --n 3 --temp 0.7 --seed 5 --out {} --device cpu",
        s(&model),
        s(&cli_samples)
    ));
    let post_dir = d.join("post");
    gforge_ok(&format!(
        "glow infer --model {} --data {} --index 0 --grid 5 --symmetries 2 --out {} --device cpu",
        s(&model),
        s(&data),
        s(&post_dir)
    ));
    // Every map and its parameters, as raw arrays for the C program.
    let hi = load_folder(&data).unwrap().maps;
    let n = hi.len();
    let raw: Vec<u8> = (0..n).flat_map(|i| hi.map(i).to_vec()).flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(d.join("maps.f32"), raw).unwrap();
    let conds: Vec<f64> = hi.params.iter().flat_map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    std::fs::write(d.join("conds.f64"), conds.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let exe = d.join("glow");
    compile(&["tests/c/glow.c"], &exe, false, false);
    let (code, out, err) = run(Command::new(&exe).args([
        s(&model),
        &n.to_string(),
        s(&d.join("maps.f32")),
        s(&d.join("conds.f64")),
        s(&d),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\n0 failure(s)") && out.contains("maps 1 x 64 x 64"), "{out}");

    // The samples: bit for bit the CLI's.
    let want: Vec<f32> = galactic_forge::io::read_npy_f32(&cli_samples).unwrap().iter().copied().collect();
    assert_eq!(bits32(&read_f32(&d.join("samples.f32"))), bits32(&want), "samples");
    // log q in the data's units: the flow's log p of the scaled maps plus the scaling's log-Jacobian.
    let (m, meta) = glow::load(&model, &Device::Cpu).unwrap();
    let set: HiSet = glow::hi_set(&hi, &(0..n).collect::<Vec<_>>(), &meta.scaling, &meta.cond_scaling);
    let lp = glow::log_probs(&m, &set, &Device::Cpu).unwrap();
    let got = read_f64(&d.join("logp.f64"));
    for i in 0..n {
        let want = lp[i] + meta.scaling.log_abs_det(hi.map(i));
        assert!((got[i] - want).abs() <= 1e-9 * want.abs(), "map {i}: {} vs {want}", got[i]);
    }
    // The posterior grid: `glow infer`'s (model units) plus the map's log-Jacobian, on physical axes.
    let post = read_f64(&d.join("post.f64"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(post_dir.join("posteriors.json")).unwrap()).unwrap();
    let flow = &v["posteriors"][0]["flow"];
    let jac = meta.scaling.log_abs_det(hi.map(0));
    for (i, a) in flow["axis"].as_array().unwrap().iter().enumerate() {
        let [om, s8] = meta.cond_scaling.inverse([a.as_f64().unwrap(); 2]);
        assert!((post[i] - om).abs() < 1e-12 && (post[5 + i] - s8).abs() < 1e-12, "axis {i}");
    }
    for (k, l) in flow["log_like"].as_array().unwrap().iter().enumerate() {
        let want = l.as_f64().unwrap() + jac;
        assert!((post[10 + k] - want).abs() <= 1e-9 * want.abs(), "grid point {k}: {} vs {want}", post[10 + k]);
    }
}

/// The header's declarations against the `extern "C"` functions, the `#[repr(C)]` struct and the status
/// names of capi/src, type by type (C types mapped to the Rust types they must be).
#[test]
fn the_header_declares_what_the_library_defines() {
    let header = strip_c_comments(&std::fs::read_to_string(root().join("include/gforge.h")).unwrap());
    let mut rust = String::new();
    for f in std::fs::read_dir(root().join("capi/src")).unwrap() {
        rust += &std::fs::read_to_string(f.unwrap().path()).unwrap();
    }
    let c_fns = c_prototypes(&header);
    let rust_fns = rust_functions(&rust);
    assert!(c_fns.len() >= 30, "{} prototypes found", c_fns.len());
    let names = |v: &[(String, Vec<String>, String)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    let (mut cn, mut rn) = (names(&c_fns), names(&rust_fns));
    cn.sort();
    rn.sort();
    assert_eq!(cn, rn, "functions declared in gforge.h vs defined in capi/src");
    for (name, params, ret) in &c_fns {
        let (_, rparams, rret) = rust_fns.iter().find(|f| &f.0 == name).unwrap();
        assert_eq!(params, rparams, "parameters of {name}");
        assert_eq!(ret, rret, "return type of {name}");
    }
    // gf_device_info, field by field.
    let body = between(&header, "typedef struct gf_device_info {", "}");
    let c_fields: Vec<String> = body
        .split(';')
        .filter(|f| !f.trim().is_empty())
        .map(|f| format!("{}: {}", f.split_whitespace().last().unwrap(), c_param(f)))
        .collect();
    let body = between(&rust, "pub struct GfDeviceInfo {", "}");
    let r_fields: Vec<String> = body
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let (name, ty) = f.split_once(':').unwrap();
            format!("{}: {}", name.trim().trim_start_matches("pub "), norm(ty))
        })
        .collect();
    assert_eq!(c_fields, r_fields, "gf_device_info");
    // Status values and the names gf_status_name gives them.
    let c_status: Vec<String> = between(&header, "typedef enum gf_status {", "}")
        .split(',')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let r_status: Vec<String> = between(&rust, "let s = match status {", "_ =>")
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| {
            let (v, n) = a.split_once("=>").unwrap();
            format!("{} = {}", n.trim().trim_start_matches("c\"").trim_end_matches('"'), v.trim())
        })
        .collect();
    assert_eq!(c_status, r_status, "gf_status values vs gf_status_name");
    let abi = between(&header, "#define GF_ABI_VERSION", "\n").trim().to_string();
    assert!(between(&rust, "fn gf_abi_version() -> c_int {", "}").trim() == abi, "GF_ABI_VERSION {abi}");
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let i = text.find(start).unwrap_or_else(|| panic!("'{start}' not found")) + start.len();
    &text[i..i + text[i..].find(end).unwrap()]
}

fn strip_c_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        out += &rest[..i];
        rest = &rest[i + rest[i..].find("*/").unwrap() + 2..];
    }
    out + rest
}

fn norm(t: &str) -> String {
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A C type (a parameter or field with its name, or a bare return type) as the Rust type it must be.
fn c_param(decl: &str) -> String {
    let spaced = decl.replace('*', " * ");
    let mut toks: Vec<&str> = spaced.split_whitespace().collect();
    let named = toks.len() > 1 && toks.last().is_some_and(|t| *t != "*" && *t != "const");
    if named {
        toks.pop();
    }
    let is_const = toks.first() == Some(&"const");
    let base = match toks[usize::from(is_const)] {
        "char" => "c_char".to_string(),
        "int" => "c_int".into(),
        "size_t" => "usize".into(),
        "uint64_t" => "u64".into(),
        "double" => "f64".into(),
        "float" => "f32".into(),
        "void" => "()".into(),
        // gf_status -> GfStatus, gf_device_list -> GfDeviceList.
        gf => gf.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect(),
    };
    let stars = toks.iter().filter(|t| **t == "*").count();
    let mut t = base;
    for k in 0..stars {
        t = format!("*{} {t}", if k == 0 && is_const { "const" } else { "mut" });
    }
    t
}

/// (name, parameter types, return type) of every `gf_` prototype in the header.
fn c_prototypes(header: &str) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    for decl in header.split(';') {
        let decl = norm(decl.rsplit(['{', '}']).next().unwrap());
        let Some(open) = decl.find('(') else { continue };
        let head = decl[..open].trim();
        let Some(name) = head.rsplit([' ', '*']).next().filter(|n| n.starts_with("gf_")) else { continue };
        if head.starts_with('#') || head.starts_with("typedef") {
            continue;
        }
        let ret = c_param(&head[..head.len() - name.len()]);
        let args = decl[open + 1..decl.rfind(')').unwrap()].trim();
        let params = if args == "void" { vec![] } else { args.split(',').map(c_param).collect() };
        out.push((name.to_string(), params, ret));
    }
    out
}

/// (name, parameter types, return type) of every `extern "C" fn gf_...` in the Rust sources.
fn rust_functions(src: &str) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    for part in src.split("extern \"C\" fn ").skip(1) {
        let open = part.find('(').unwrap();
        let close = part.find(')').unwrap();
        let params = part[open + 1..close]
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| norm(p.split_once(':').unwrap().1))
            .collect();
        let tail = &part[close + 1..part.find('{').unwrap()];
        let ret = tail.split_once("->").map_or("()".to_string(), |(_, r)| norm(r));
        out.push((part[..open].to_string(), params, ret));
    }
    out
}
