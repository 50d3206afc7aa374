//! End-to-end training speed of GalacticForge's image autoencoder: images/s of forward, backward and an
//! Adam step (lr 3e-5) on batches of random images in [0, 1], after 2 untimed steps. The PyTorch side is
//! benches/torch/ae.py (same model, same batch); benches/torch/compare_ae.sh runs both in one go.
//! Usage: ae_speed [device] [image] [channels, comma-separated] [batch] [steps]
//! (defaults: cpu 448 3,64,128,256,512,1024,2048 4 3: the published model).
use galactic_forge::models::{AeConfig, Autoencoder};
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
    let dev = Device::parse(a.get(1).map(String::as_str).unwrap_or("cpu"))?;
    let arg = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let mut cfg = AeConfig::galacticforge();
    cfg.image = arg(2, cfg.image);
    if let Some(ch) = a.get(3) {
        cfg.channels = ch.split(',').map(|c| c.trim().parse().unwrap_or(0)).collect();
    }
    let (batch, steps) = (arg(4, 4), arg(5, 3));
    let ae = Autoencoder::new(&cfg, &dev)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let pool: Vec<Tensor> = (0..2)
        .map(|_| Tensor::rand_uniform(&[batch, 3, cfg.image, cfg.image], 0.0, 1.0, &mut rng, &dev))
        .collect::<galactic_forge::Result<_>>()?;
    let mut opt = Adam::new(ae.all_vars(), AdamConfig::new(AdamKind::Adam, 3e-5));
    let mut step = |i: usize| -> galactic_forge::Result<f32> {
        let loss = ae.loss(&pool[i % pool.len()])?;
        opt.step(&backward(&loss)?)?;
        loss.item()
    };
    for i in 0..2 {
        step(i)?;
    }
    dev.synchronize()?;
    let t = Instant::now();
    let mut loss = 0.0;
    for i in 0..steps {
        loss = step(i)?;
    }
    dev.synchronize()?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{{\"impl\": \"galactic-forge\", \"device\": \"{dev}\", \"params\": {}, \"image\": {}, \"channels\": {:?}, \
         \"batch\": {batch}, \"steps\": {steps}, \"images_per_s\": {:.3}, \"final_loss\": {loss:.5}}}",
        cfg.parameter_count(),
        cfg.image,
        cfg.channels,
        (steps * batch) as f64 / s
    );
    Ok(())
}
