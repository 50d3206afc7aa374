//! Every op, forward and backward, on each GPU device against the CPU (the selftest cases), with outputs
//! poisoned before each launch. WGPU runs on whatever adapters exist (lavapipe and GL/llvmpipe in CI);
//! with GFORGE_STRICT=1 a missing adapter fails instead of skipping. CUDA runs where a driver exists.
use galactic_forge::backend::{self, wgpu, Device, Launch};
use galactic_forge::ops::unary::UnaryOp;
use galactic_forge::selftest;
use galactic_forge::Tensor;

fn strict() -> bool {
    std::env::var("GFORGE_STRICT").is_ok_and(|v| v == "1")
}

/// A fresh seed per run (printed, so a failure can be replayed with GFORGE_SEED).
fn seed() -> u64 {
    std::env::var("GFORGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

fn wgpu_devices() -> Vec<Device> {
    match wgpu::list() {
        Ok(list) => list.iter().enumerate().map(|(i, _)| Device::parse(&format!("wgpu:{i}")).unwrap()).collect(),
        Err(e) => {
            assert!(!strict(), "GFORGE_STRICT=1 but no WGPU adapter: {e}");
            eprintln!("skipping WGPU parity: {e}");
            Vec::new()
        }
    }
}

fn check(dev: &Device) {
    let seed = seed();
    let rows = selftest::run(dev, seed);
    let table = selftest::table(dev, &rows);
    println!("seed {seed}\n{table}");
    assert!(rows.iter().all(|r| r.pass()), "{dev} differs from the CPU (seed {seed}):\n{table}");
}

#[test]
fn wgpu_matches_cpu_on_every_adapter() {
    for dev in wgpu_devices() {
        check(&dev);
    }
}

#[test]
fn cuda_matches_cpu() {
    match Device::parse("cuda") {
        Ok(dev) => check(&dev),
        Err(e) => eprintln!("skipping CUDA parity: {e}"),
    }
}

/// The poison is what makes an unwritten element visible: a launch that covers one element too few
/// must leave a NaN that the comparison rejects.
#[test]
fn poisoned_outputs_expose_unwritten_elements() {
    for dev in wgpu_devices() {
        let n = 1000;
        let x = Tensor::from_vec((0..n).map(|i| i as f32 / n as f32).collect(), &[n], &dev).unwrap();
        let p = UnaryOp::Exp.params(n - 1).unwrap();
        let l = Launch::elementwise("unary", "unary_fwd", &p, n);
        let y = backend::with_poison(|| {
            let out = dev.alloc(n).unwrap();
            dev.launch(&l, &[x.storage()], &[&out]).unwrap();
            dev.download(&out).unwrap()
        });
        assert!(y[..n - 1].iter().all(|v| v.is_finite()) && y[n - 1].is_nan(), "{dev}");
        let want: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32).exp()).collect();
        assert!(selftest::rel_err(&y, &want).is_nan());
    }
}

/// The poison belongs to the thread: another thread that turned poison on first and leaves its poisoned section
/// first (as a parallel test does when it ends) does not unpoison this one's outputs.
#[test]
fn poison_survives_another_thread_turning_its_own_off() {
    use std::sync::Barrier;
    for dev in wgpu_devices() {
        let (other_on, both_on, other_done) = (Barrier::new(2), Barrier::new(2), Barrier::new(2));
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                backend::with_poison(|| {
                    other_on.wait();
                    both_on.wait();
                });
                other_done.wait();
            });
            other_on.wait();
            let y = backend::with_poison(|| {
                both_on.wait();
                other_done.wait();
                let out = dev.alloc(777).unwrap();
                dev.download(&out).unwrap()
            });
            other.join().unwrap();
            assert!(y.len() == 777 && y.iter().all(|v| v.is_nan()), "{dev}: an output was allocated unpoisoned");
        });
    }
}

/// A launch that breaks the kernel's binding layout is an error value, not a panic or an abort.
#[test]
fn invalid_launch_is_an_error_not_a_panic() {
    for dev in wgpu_devices() {
        let x = Tensor::from_vec(vec![1.0; 10], &[10], &dev).unwrap();
        let p = UnaryOp::Exp.params(10).unwrap();
        let l = Launch::elementwise("unary", "unary_fwd", &p, 10);
        let err = dev.launch(&l, &[x.storage()], &[]).and_then(|_| dev.synchronize());
        assert!(err.is_err(), "{dev}: a missing output binding must be reported");
        let missing = Launch { entry: "no_such_entry", ..l };
        assert!(dev.launch(&missing, &[x.storage()], &[x.storage()]).is_err());
        // The device stays usable afterwards.
        assert!((x.exp().unwrap().to_vec().unwrap()[0] - 1f32.exp()).abs() < 1e-6);
    }
}

#[test]
fn tensors_on_different_devices_are_refused() {
    for dev in wgpu_devices().into_iter().take(1) {
        let a = Tensor::ones(&[3], &dev).unwrap();
        let b = Tensor::ones(&[3], &Device::Cpu).unwrap();
        assert!(a.add(&b).is_err());
        assert_eq!(a.to_device(&Device::Cpu).unwrap().add(&b).unwrap().to_vec().unwrap(), vec![2.0; 3]);
    }
}
