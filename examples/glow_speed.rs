//! End-to-end speed of HIGlow's conditional Glow (GlowConfig::higlow(): 1 x 64 x 64 maps, 6 blocks, K = 20,
//! width 16, conditional priors; 4,503,312 parameters). One training step is HIGlow's (train_conditional.py):
//! log p(x | c), loss = -mean log p / (C H W), backward, gradient-norm clip 2, Adam step (lr 3e-4), on random
//! maps and conditions in [-1, 1]; 2 untimed steps, then the median of the timed ones. Sampling: maps drawn
//! from the priors at temperature 1 and decoded, median of the timed batches after one untimed.
//! The PyTorch side is benches/torch/higlow.py; benches/torch/compare_glow.sh runs both in one go.
//! Usage: glow_speed [device] [steps] [sample_steps] [batch] [blocks] [flows]   (defaults: cpu 5 3 64 6 20)
use galactic_forge::data::stats::median;
use galactic_forge::models::{CondGlow, GlowConfig};
use galactic_forge::nn::Module;
use galactic_forge::optim::{clip_grad_norm, Adam, AdamConfig, AdamKind};
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
    let (steps, sample_steps, batch) = (arg(2, 5).max(1), arg(3, 3).max(1), arg(4, 64));
    let base = GlowConfig::higlow();
    let cfg = GlowConfig { blocks: arg(5, base.blocks), steps: arg(6, base.steps), ..base };
    let model = CondGlow::new(&cfg, &dev)?;
    let vars = model.vars();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let shape = [batch, cfg.channels, cfg.side, cfg.side];
    let pool: Vec<(Tensor, Tensor)> = (0..2)
        .map(|_| {
            Ok((
                Tensor::rand_uniform(&shape, -1.0, 1.0, &mut rng, &dev)?,
                Tensor::rand_uniform(&[batch, cfg.cond], -1.0, 1.0, &mut rng, &dev)?,
            ))
        })
        .collect::<galactic_forge::Result<_>>()?;
    let mut opt = Adam::new(vars.clone(), AdamConfig::new(AdamKind::Adam, 3e-4));
    let per_dim = -1.0 / cfg.dim() as f32;
    let mut step = |i: usize| -> galactic_forge::Result<f32> {
        let (x, c) = &pool[i % pool.len()];
        let loss = model.log_prob(x, c)?.mean_all()?.scale(per_dim)?;
        let mut grads = backward(&loss)?;
        clip_grad_norm(&mut grads, &vars, 2.0)?;
        opt.step(&grads)?;
        loss.item()
    };
    for i in 0..2 {
        step(i)?;
    }
    let (mut times, mut loss) = (Vec::with_capacity(steps), f32::NAN);
    for i in 0..steps {
        dev.synchronize()?;
        let t = Instant::now();
        loss = step(i)?;
        dev.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let train_s = median(times);

    let c = &pool[0].1;
    model.sample(c, 1.0, &mut rng)?.to_vec()?;
    let mut stimes = Vec::with_capacity(sample_steps);
    for _ in 0..sample_steps {
        dev.synchronize()?;
        let t = Instant::now();
        let x = model.sample(c, 1.0, &mut rng)?.to_vec()?;
        stimes.push(t.elapsed().as_secs_f64());
        assert!(x.iter().all(|v| v.is_finite()), "non-finite sample");
    }
    let sample_s = median(stimes);
    println!(
        "{{\"impl\": \"galactic-forge\", \"device\": \"{dev}\", \"threads\": {}, \"params\": {}, \"blocks\": {}, \
         \"flows\": {}, \"batch\": {batch}, \"train_steps_per_s\": {:.4}, \"train_maps_per_s\": {:.3}, \
         \"sample_maps_per_s\": {:.3}, \"final_loss\": {loss:.5}}}",
        rayon::current_num_threads(),
        cfg.parameter_count(),
        cfg.blocks,
        cfg.steps,
        1.0 / train_s,
        batch as f64 / train_s,
        batch as f64 / sample_s
    );
    Ok(())
}
