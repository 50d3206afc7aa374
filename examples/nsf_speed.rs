//! End-to-end speed of GalacticFlow's NSF: training stars/s (forward, backward, RAdam step on batches of
//! random standard-normal stars) and sampling stars/s (inverse pass, one condition, chunks of 300,000).
//! The PyTorch side is benches/torch/nsf.py; benches/torch/compare_nsf.sh runs both in one go.
//! Usage: nsf_speed [device] [layers] [train_steps] [sample_stars] [conditions] [batch] [hidden] [depth]
use galactic_forge::flows::{nll, sample, Nsf, NsfConfig};
use galactic_forge::nn::Module;
use galactic_forge::optim::{Adam, AdamConfig, AdamKind};
use galactic_forge::{backward, Device, Tensor};
use rand::SeedableRng;
use std::time::Instant;

/// Keeps large freed buffers for reuse (src/alloc.rs explains why training needs it).
#[global_allocator]
static ALLOC: galactic_forge::alloc::CachingAlloc = galactic_forge::alloc::CachingAlloc::new(8 << 30);

fn main() -> galactic_forge::Result<()> {
    // Once into the worker pool, not once per op (src/pool.rs).
    galactic_forge::on_pool(run)
}

fn run() -> galactic_forge::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let dev = Device::parse(a.get(1).map(String::as_str).unwrap_or("cpu"))?;
    let (layers, steps, stars, conds, batch, hidden, depth) =
        (arg(2, 14), arg(3, 50), arg(4, 300_000), arg(5, 4), arg(6, 1024), arg(7, 128), arg(8, 4));
    let cfg = NsfConfig { layers, hidden, depth, ..NsfConfig::galacticflow(10, conds) };
    let flow = Nsf::new(cfg, &dev)?;
    let params: usize = flow.vars().iter().map(|v| v.get().numel()).sum();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let pool: Vec<(Tensor, Tensor)> = (0..8)
        .map(|_| Ok((Tensor::randn(&[batch, 10], &mut rng, &dev)?, Tensor::randn(&[batch, conds], &mut rng, &dev)?)))
        .collect::<galactic_forge::Result<_>>()?;
    let mut opt = Adam::new(flow.vars(), AdamConfig::new(AdamKind::RAdam, 9e-5));
    let mut step = |i: usize| -> galactic_forge::Result<f32> {
        let (x, c) = &pool[i % pool.len()];
        let loss = nll(&flow, x, c)?;
        opt.step(&backward(&loss)?)?;
        loss.item()
    };
    for i in 0..3 {
        step(i)?;
    }
    dev.synchronize()?;
    let t = Instant::now();
    let mut loss = 0.0;
    for i in 0..steps {
        loss = step(i)?;
    }
    dev.synchronize()?;
    let train_s = t.elapsed().as_secs_f64();
    let c = Tensor::randn(&[1, conds], &mut rng, &dev)?;
    sample(&flow, 1024.min(stars), &c, &mut rng)?.to_vec()?;
    let t = Instant::now();
    let mut done = 0;
    while done < stars {
        let m = (stars - done).min(300_000);
        let x = sample(&flow, m, &c, &mut rng)?.to_vec()?;
        assert!(x.iter().all(|v| v.is_finite()));
        done += m;
    }
    let sample_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"impl\": \"galactic-forge\", \"device\": \"{dev}\", \"params\": {params}, \"layers\": {layers}, \"batch\": {batch}, \
         \"train_stars_per_s\": {:.1}, \"sample_stars_per_s\": {:.1}, \"final_loss\": {loss:.4}}}",
        (steps * batch) as f64 / train_s,
        stars as f64 / sample_s
    );
    Ok(())
}
