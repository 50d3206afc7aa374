//! CPU/GPU training-step time of the MADE- and coupling-based flows (MAF, NICE, NICE affine, SOSPF):
//! forward, backward and an Adam step on random standard-normal batches; prints ms per step (and stars/s),
//! then sampling stars/s (the inverse pass for one condition, as benches/torch/zuko_flows.py samples).
//! Usage: flow_step_speed [device] [steps] [batch] [flows, comma-separated: maf,nice,nice_affine,sospf]
//!        [sample_stars (default 0: no sampling)]
use galactic_forge::flows::{nll, sample, Flow, Maf, MafConfig, Nice, NiceConfig, Sospf, SospfConfig};
use galactic_forge::optim::{Adam, AdamConfig, AdamKind};
use galactic_forge::{backward, Device, Tensor};
use rand::SeedableRng;
use std::time::Instant;

/// As `gforge` does (src/alloc.rs).
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
    let (steps, batch, stars) = (arg(2, 200), arg(3, 1024), arg(5, 0));
    let which = a.get(4).cloned().unwrap_or_else(|| "maf,nice,nice_affine,sospf".into());
    let (dim, conds) = (10, 4);
    for name in which.split(',') {
        let flow: Box<dyn Flow> = match name {
            "maf" => Box::new(Maf::new(MafConfig::galacticforge(dim, conds), &dev)?),
            "nice" => Box::new(Nice::new(NiceConfig::galacticforge(dim, conds), &dev)?),
            "nice_affine" => {
                Box::new(Nice::new(NiceConfig { affine: true, ..NiceConfig::galacticforge(dim, conds) }, &dev)?)
            }
            "sospf" => Box::new(Sospf::new(SospfConfig::galacticforge(dim, conds), &dev)?),
            other => return Err(galactic_forge::Error::Usage(format!("unknown flow {other}"))),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let pool: Vec<(Tensor, Tensor)> = (0..4)
            .map(|_| {
                Ok((Tensor::randn(&[batch, dim], &mut rng, &dev)?, Tensor::randn(&[batch, conds], &mut rng, &dev)?))
            })
            .collect::<galactic_forge::Result<_>>()?;
        let mut opt = Adam::new(flow.vars(), AdamConfig::new(AdamKind::Adam, 1e-4));
        let mut step = |i: usize| -> galactic_forge::Result<f32> {
            let (x, c) = &pool[i % pool.len()];
            let loss = nll(flow.as_ref(), x, c)?;
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
        let ms = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        let per_s = batch as f64 / ms * 1e3;
        println!("{name:<12} device {dev} batch {batch} steps {steps}: {ms:.2} ms/step, {per_s:.0} stars/s (final loss {loss:.4})");
        if stars > 0 {
            // Chunks of 300,000, as zuko_flows.py and nsf_speed sample.
            let c = Tensor::randn(&[1, conds], &mut rng, &dev)?;
            sample(flow.as_ref(), 1024.min(stars), &c, &mut rng)?.to_vec()?;
            let t = Instant::now();
            let mut done = 0;
            while done < stars {
                let m = (stars - done).min(300_000);
                sample(flow.as_ref(), m, &c, &mut rng)?.to_vec()?;
                done += m;
            }
            println!("{name:<12} sampling: {:.0} stars/s", stars as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
