//! CPU/GPU training-step time of the MADE- and coupling-based flows (MAF, NICE, NICE affine, SOSPF):
//! forward, backward and an Adam step on random standard-normal batches; prints ms per step.
//! Usage: flow_step_speed [device] [steps] [batch] [flows, comma-separated: maf,nice,nice_affine,sospf]
use galactic_forge::flows::{nll, Flow, Maf, MafConfig, Nice, NiceConfig, Sospf, SospfConfig};
use galactic_forge::optim::{Adam, AdamConfig, AdamKind};
use galactic_forge::{backward, Device, Tensor};
use rand::SeedableRng;
use std::time::Instant;

fn main() -> galactic_forge::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let dev = Device::parse(a.get(1).map(String::as_str).unwrap_or("cpu"))?;
    let (steps, batch) = (arg(2, 200), arg(3, 1024));
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
        println!("{name:<12} device {dev} batch {batch} steps {steps}: {ms:.2} ms/step (final loss {loss:.4})");
    }
    Ok(())
}
