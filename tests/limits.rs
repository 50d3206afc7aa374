//! Launch limits and sizes, on the CPU and every WGPU adapter (CUDA where a driver exists):
//! - every op family on tensors with a dimension past 65,535 (70,001 rows; the row reductions, softmax, batched
//!   products and the transpose launch more than 65,535 blocks, as does a 1-D op over 2^24 + 256 elements), so
//!   grids past a device's per-dimension limit are tiled for real;
//! - every selftest case with each grid dimension capped at 7 blocks, so launches' blocks fold over x, y and z
//!   exactly as launches past 65,535 blocks per dimension do on a real GPU;
//! - tensors past 2^32 elements refused with a clear error before anything is allocated;
//! - every op family on tensors with a zero-length dimension: an empty result of the right shape with no launch,
//!   and the CPU's values and gradients, on every backend.
//!
//! The PTX side of the tiling is checked by tools/ptxsim (`tiled`).
mod common;

use galactic_forge::backend::{self, with_grid_limit};
use galactic_forge::ops::coupling::{CouplingKind, CouplingMask};
use galactic_forge::ops::gather::Indices;
use galactic_forge::ops::image_affine::AffineKind;
use galactic_forge::ops::linear::Act;
use galactic_forge::ops::sos::SosCfg;
use galactic_forge::ops::spline::SplineCfg;
use galactic_forge::optim::{Adam, AdamConfig, AdamKind};
use galactic_forge::selftest::{self, case, Case};
use galactic_forge::{no_grad, Device, Grads, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Rows of the big cases: past the 65,535 blocks a grid dimension holds on WebGPU (and CUDA's y and z).
const ROWS: usize = 70_001;

/// The tests here take turns on the devices: each fills them with hundreds of MB, and wgpu's GL backend has
/// panicked (wgpu-hal gles `unmap_buffer`) when two of them mapped large buffers at once.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// GL adapters: llvmpipe's GL runs the tiled products about 9 times slower than lavapipe (265 s for the
/// batched product of 70,001 matrices, forward and backward), so that one case is left to the tiled test there.
fn is_gl(dev: &Device) -> bool {
    let (infos, _) = backend::list_devices();
    infos.iter().any(|i| i.backend == "wgpu/gl" && dev.to_string().starts_with(&format!("{} ", i.spec)))
}

fn gpu_devices() -> Vec<Device> {
    let mut v: Vec<Device> = common::devices().into_iter().filter(|d| !d.is_cpu()).collect();
    v.extend(Device::parse("cuda").ok());
    v
}

/// A constant [rows, cols] parameter on `dev` with values in [-1, 1].
fn constant(rows: usize, cols: usize, dev: &Device) -> galactic_forge::Result<Tensor> {
    Tensor::from_vec((0..rows * cols).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect(), &[rows, cols], dev)
}

/// One case per op family on `r` rows (a leading dimension of the inputs): 70,001 for the big tests, 0 for the
/// empty ones. Weights and biases are constants: their gradients sum over all the rows in one invocation's
/// loop, and Mesa's software adapters (lavapipe, llvmpipe) stop any shader loop after 65,535 iterations, so
/// those sums come out truncated there (they launch one block: there is no grid to tile). The LU weight has no
/// row dimension: D = 17, or 0 when r = 0.
fn family_cases(r: usize) -> Vec<Case> {
    let sym = (-3.0, 3.0);
    let wide = (-3.5, 3.5);
    let mut v = vec![
        case("exp", &[&[r, 3]], sym, |x| x[0].exp()),
        case("add (broadcast)", &[&[r, 3]], sym, |x| x[0].add(&constant(1, 3, x[0].device())?)),
        case("sum (rows)", &[&[r, 3]], sym, |x| x[0].sum(-1)),
        case("sum (cols)", &[&[r, 3, 2]], sym, |x| x[0].sum(1)),
        case("softmax (rows)", &[&[r, 3]], sym, |x| x[0].softmax(-1)),
        case("bmm", &[&[r, 2, 3], &[r, 3, 2]], sym, |x| x[0].matmul(&x[1])),
        case("matmul", &[&[r, 3]], sym, |x| x[0].matmul(&constant(3, 4, x[0].device())?)),
        case("linear", &[&[r, 3]], sym, |x| {
            let dev = x[0].device();
            x[0].linear(&constant(3, 4, dev)?, &constant(1, 4, dev)?.reshape(&[4])?, Act::Identity)
        }),
        case("transpose", &[&[r, 3, 2]], sym, |x| x[0].transpose()),
        case("concat/split", &[&[r, 2], &[r, 3]], sym, |x| {
            let p = Tensor::concat(&[&x[0], &x[1]], 1)?.split(&[4, 1], 1)?;
            Tensor::concat(&[&p[1], &p[0].scale(2.0)?], 1)
        }),
        case("gather", &[&[r, 3]], sym, move |x| {
            let idx: Vec<u32> = (0..r).map(|j| ((j * 7 + 3) % r) as u32).collect();
            x[0].gather(0, &Indices::new(&idx, r, x[0].device())?)
        }),
        case("masked_linear", &[&[r, 3]], sym, |x| {
            let dev = x[0].device();
            let m: Vec<f32> = (0..12).map(|i| (i % 3 != 1) as u8 as f32).collect();
            let (w, b) = (constant(3, 4, dev)?, constant(1, 4, dev)?.reshape(&[4])?);
            x[0].masked_linear(&w, &Tensor::from_vec(m, &[3, 4], dev)?, &b)
        }),
        case("coupling", &[&[r, 9], &[r, 10]], sym, |x| {
            let m = CouplingMask::new(&[1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0], x[0].device())?;
            let (y, ld) = x[0].coupling(&x[1].scale(0.5)?, &m, CouplingKind::Affine { clamp: Some(3.0) }, false)?;
            Tensor::concat(&[&y, &ld.reshape(&[ld.numel(), 1])?], 1)
        }),
        case("conv2d", &[&[r, 1, 2, 2]], sym, |x| {
            let dev = x[0].device();
            let (w, b) = (constant(2, 1, dev)?.reshape(&[2, 1, 1, 1])?, constant(1, 2, dev)?.reshape(&[2])?);
            x[0].conv2d(&w, Some(&b), 1, 0)
        }),
        case("convT2d", &[&[r, 1, 1, 1]], sym, |x| {
            let dev = x[0].device();
            let (w, b) = (constant(1, 8, dev)?.reshape(&[1, 2, 2, 2])?, constant(1, 2, dev)?.reshape(&[2])?);
            x[0].conv_transpose2d(&w, Some(&b), 2, 0)
        }),
        case("inv_conv1x1", &[&[r, 2, 1, 1], &[2, 2]], sym, |x| x[0].inv_conv1x1(&x[1], false)),
        case("image_affine", &[&[r, 2, 1, 1], &[r, 2, 1, 1]], sym, |x| {
            let (y, ls) = x[0].image_affine(&x[1], AffineKind::Coupling { floor: 0.5 }, false)?;
            Tensor::concat(&[&y.reshape(&[y.numel()])?, &ls.reshape(&[ls.numel()])?], 0)
        }),
        case("squeeze2x2", &[&[r, 1, 2, 2]], sym, |x| x[0].squeeze2x2()),
        case("unsqueeze2x2", &[&[r, 4, 1, 1]], sym, |x| x[0].unsqueeze2x2()),
        case("pad2d", &[&[r, 1, 1]], sym, |x| x[0].pad2d(1, 0.5)),
    ];
    // Raw spline parameters a quarter of the selftest's range: 140,002 elements would otherwise meet a few bins
    // narrow enough for f32 rounding in the gradient to pass the tolerance (see selftest.rs on the spline).
    let spline = SplineCfg::default();
    let mut c = case("spline", &[&[r, 2], &[r, 2, spline.params_per_dim()]], wide, move |x| {
        let (y, ld) = x[0].rq_spline(&x[1].scale(0.25)?, &spline, false)?;
        Tensor::concat(&[&y, &ld], 0)
    });
    c.tol = 1e-4;
    v.push(c);
    let sos = SosCfg::default();
    let mut c = case("sos", &[&[r, 2], &[r, 2, sos.params_per_dim()]], wide, move |x| {
        let (y, ld) = x[0].scale(0.5)?.sos_transform(&x[1].scale(0.25)?, &sos, false)?;
        Tensor::concat(&[&y, &ld], 0)
    });
    c.tol = 1e-4;
    v.push(c);
    let mut c = case("softclip", &[&[r, 3]], wide, |x| {
        let (y, ld) = x[0].softclip(2.5, false)?;
        Tensor::concat(&[&y, &ld], 0)
    });
    c.kinks = true;
    v.push(c);
    let d = r.min(17);
    v.push(case("lu_weight", &[&[d, d], &[d, d], &[d]], sym, move |x| {
        let dev = x[0].device();
        let mut perm = vec![0.0f32; d * d];
        (0..d).for_each(|i| perm[i * d + (i * 5 + 3) % d] = 1.0);
        let (perm, sign) = (Tensor::from_vec(perm, &[d, d], dev)?, Tensor::ones(&[d], dev)?);
        let (w, ld) =
            galactic_forge::ops::lu::lu_weight(&x[0].scale(0.3)?, &x[1].scale(0.3)?, &x[2].scale(0.25)?, &perm, &sign)?;
        Tensor::concat(&[&w.reshape(&[d * d])?, &ld.reshape(&[1])?], 0)
    }));
    v
}

fn assert_rows_pass(dev: &Device, what: &str, rows: &[selftest::Row]) {
    let table = selftest::table(dev, rows);
    println!("{what}\n{table}");
    assert!(rows.iter().all(|r| r.pass()), "{what} on {dev}:\n{table}");
}

/// The CPU reference itself on the big cases: every value finite, every gradient present (the GPU runs are
/// compared with it below).
#[test]
fn cpu_runs_every_family_past_65535_rows() {
    let mut rng = StdRng::seed_from_u64(1);
    for c in family_cases(ROWS) {
        let xs = selftest::inputs(&c, &mut rng);
        let w = vec![0.5; selftest::out_len(&c, &xs).unwrap()];
        let (out, grads) = selftest::eval(&c, &xs, &w, &Device::Cpu).unwrap();
        assert!(out.iter().chain(grads.iter().flatten()).all(|v| v.is_finite()), "{}", c.name);
    }
}

/// Every family past 65,535 rows on each GPU device against the CPU, forward and backward, outputs poisoned.
#[test]
fn gpu_matches_cpu_past_65535_rows() {
    let _turn = turn();
    for dev in gpu_devices() {
        let mut rows = Vec::new();
        for (i, c) in family_cases(ROWS).iter().enumerate() {
            if c.name == "bmm" && is_gl(&dev) {
                println!("{dev}: bmm over 70,001 batches skipped on GL (see is_gl)");
                continue;
            }
            let t = Instant::now();
            let mut rng = StdRng::seed_from_u64(i as u64);
            rows.extend(selftest::run_cases(std::slice::from_ref(c), &dev, &mut rng));
            println!("{dev}: {} in {:.1} s", c.name, t.elapsed().as_secs_f64());
        }
        assert_rows_pass(&dev, "70,001 rows", &rows);
    }
}

/// A 1-D launch of 65,537 blocks of 256 (2^24 + 256 elements), and an Adam step on as many parameters.
#[test]
fn gpu_matches_cpu_past_65535_blocks_1d() {
    let n = 65_537 * 256;
    let cases = [case("exp (65,537 blocks)", &[&[n]], (-3.0, 3.0), |x| x[0].exp())];
    let _turn = turn();
    for dev in gpu_devices() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_rows_pass(&dev, "65,537 blocks", &selftest::run_cases(&cases, &dev, &mut rng));
        let steps: Vec<Vec<f32>> = [&Device::Cpu, &dev]
            .iter()
            .map(|d| {
                let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 / 1000.0 - 0.5).collect();
                let var = Var::new("w", Tensor::from_vec(x.clone(), &[n], d).unwrap());
                let mut opt = Adam::new(vec![var.clone()], AdamConfig::new(AdamKind::Adam, 0.01));
                let mut grads = Grads::default();
                grads.insert(&var.get(), Tensor::from_vec(x, &[n], d).unwrap());
                opt.step(&grads).unwrap();
                var.get().to_vec().unwrap()
            })
            .collect();
        assert!(selftest::rel_err(&steps[1], &steps[0]) < selftest::TOL, "{dev}: adam step");
    }
}

/// Every selftest case with every grid dimension capped at 7 blocks: launches of 8 to 343 blocks fold over
/// y and z with spare blocks at the end, the way a launch past 65,535 blocks per dimension is tiled.
#[test]
fn tiled_launches_match_cpu() {
    let _turn = turn();
    for dev in gpu_devices() {
        let rows = with_grid_limit(7, || selftest::run(&dev, 4));
        assert_rows_pass(&dev, "grid limited to 7 x 7 x 7 blocks", &rows);
    }
}

/// A launch that no grid within the limits holds is an error, not a wrapped index or a panic.
#[test]
fn launch_past_every_grid_limit_is_an_error() {
    for dev in gpu_devices() {
        let x = Tensor::from_vec(vec![1.0; 1000], &[1000], &dev).unwrap();
        let err = with_grid_limit(1, || x.exp()).unwrap_err().to_string();
        assert!(err.contains("do not fit the device's grid of 1 x 1 x 1"), "{dev}: {err}");
        assert!((x.exp().unwrap().to_vec().unwrap()[0] - 1f32.exp()).abs() < 1e-6, "{dev}: unusable afterwards");
    }
}

/// Sizes past u32 are refused before anything is allocated: inputs of 2^17 and 2^16 values whose broadcast or
/// product has 2^33 elements give the error at once (an allocation of 32 GiB would fail or take the machine).
#[test]
fn tensors_past_u32_are_refused_before_allocating() {
    for dev in gpu_devices() {
        let a = Tensor::zeros(&[1 << 17, 1], &dev).unwrap();
        let b = Tensor::zeros(&[1, 1 << 16], &dev).unwrap();
        for r in [a.add(&b), a.matmul(&b), a.masked_linear(&b, &b, &Tensor::zeros(&[1 << 16], &dev).unwrap())] {
            let err = r.unwrap_err().to_string();
            assert!(err.contains("index with 32 bits"), "{dev}: {err}");
        }
        let err = Tensor::zeros(&[1 << 33], &dev).unwrap_err().to_string();
        assert!(err.contains("index with 32 bits"), "{dev}: {err}");
    }
}

/// Zero-length cases beyond the row dimension: a product with k = 0 (zeros), sums over an empty axis (zeros),
/// a convolution with no input channels (the bias), an empty slice.
fn empty_reduction_cases() -> Vec<Case> {
    let sym = (-3.0, 3.0);
    vec![
        case("matmul k = 0", &[&[3, 0], &[0, 4]], sym, |x| x[0].matmul(&x[1])),
        case("sum over empty axis", &[&[3, 0]], sym, |x| x[0].sum(-1)),
        case("sum over empty cols", &[&[2, 0, 3]], sym, |x| x[0].sum(1)),
        case("conv2d cin = 0", &[&[2, 0, 3, 3], &[4, 0, 3, 3], &[4]], sym, |x| x[0].conv2d(&x[1], Some(&x[2]), 1, 1)),
        case("narrow to nothing", &[&[3, 4]], sym, |x| x[0].narrow(1, 2, 0)),
        case("pad2d of empty planes", &[&[2, 0, 3]], sym, |x| x[0].pad2d(1, 0.5)),
    ]
}

/// Every family with a zero-length dimension on every backend: the CPU's shapes and values, forward and
/// backward, and no kernel launched by a forward whose result is empty.
#[test]
fn empty_tensors_on_every_backend() {
    let cases: Vec<Case> = family_cases(0).into_iter().chain(empty_reduction_cases()).collect();
    let _turn = turn();
    for dev in common::devices().into_iter().chain(Device::parse("cuda").ok()) {
        let mut rng = StdRng::seed_from_u64(5);
        for c in &cases {
            let xs = selftest::inputs(c, &mut rng);
            let ts = |d: &Device| -> Vec<Tensor> {
                xs.iter().zip(&c.shapes).map(|(x, s)| Tensor::from_slice(x, s, d).unwrap()).collect()
            };
            let want = no_grad(|| (c.f)(&ts(&Device::Cpu))).unwrap();
            let inputs = ts(&dev);
            let before = backend::launch_count();
            let got = no_grad(|| (c.f)(&inputs)).unwrap_or_else(|e| panic!("{dev}: {}: {e}", c.name));
            assert_eq!(got.shape(), want.shape(), "{dev}: {}", c.name);
            if want.numel() == 0 {
                assert_eq!(backend::launch_count(), before, "{dev}: {} launched a kernel for an empty result", c.name);
            }
        }
        let rows = selftest::run_cases(&cases, &dev, &mut rng);
        assert_rows_pass(&dev, "zero-length dimensions", &rows);
    }
}

/// An optimiser step on an empty parameter leaves it empty and launches nothing.
#[test]
fn adam_steps_an_empty_parameter() {
    for dev in common::devices() {
        let var = Var::new("w", Tensor::zeros(&[0, 3], &dev).unwrap());
        let mut opt = Adam::new(vec![var.clone()], AdamConfig::new(AdamKind::AdamW, 0.01));
        let mut grads = Grads::default();
        grads.insert(&var.get(), Tensor::zeros(&[0, 3], &dev).unwrap());
        let before = backend::launch_count();
        opt.step(&grads).unwrap();
        assert_eq!(var.get().shape(), [0, 3]);
        assert_eq!(backend::launch_count(), before, "{dev}");
    }
}
