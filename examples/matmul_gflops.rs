//! Matmul GFLOP/s at n^3 on one device: the figure BENCHMARKS.md compares with PyTorch
//! (benches/torch/compare_matmul.sh runs both in one go).
//! Usage: cargo run --release --example matmul_gflops -- [device] [n] [repeats]
use galactic_forge::{no_grad, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dev = Device::parse(args.get(1).map(String::as_str).unwrap_or("cpu"))?;
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rng = StdRng::seed_from_u64(0);
    let a = Tensor::randn(&[n, n], &mut rng, &dev)?;
    let b = Tensor::randn(&[n, n], &mut rng, &dev)?;
    let mut times = Vec::new();
    for i in 0..reps + 3 {
        let t = Instant::now();
        no_grad(|| a.matmul(&b))?;
        dev.synchronize()?;
        if i >= 3 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "galactic-forge {dev} matmul {n}^3: median {:.2} ms, {:.1} GFLOP/s",
        med * 1e3,
        2.0 * (n as f64).powi(3) / med / 1e9
    );
    Ok(())
}
