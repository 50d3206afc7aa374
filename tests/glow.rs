//! HIGlow's layers and the whole conditional Glow as bijections: inverse(forward(x)) = x and every
//! log-determinant against a brute-force Jacobian (rows by autodiff, whose rules tests/gradcheck.rs checks
//! against finite differences; log|det| in f64), on the CPU and every WGPU adapter; and the model's density
//! integrates to 1 (importance sampling at 4 dimensions).
mod common;

use common::{devices, jacobians, log_abs_det};
use galactic_forge::models::{CondGlow, GlowConfig, GlowPrior};
use galactic_forge::nn::{ActNorm, CondActNorm, CondAffineCoupling, InvConv1x1, Module};
use galactic_forge::{no_grad, Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn uniform(n: usize, lo: f32, hi: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Moves every parameter away from its (often zero, so identity-like) initial value.
fn perturb(m: &dyn Module, scale: f32, rng: &mut StdRng) {
    for v in m.vars() {
        let t = v.get();
        let noise = uniform(t.numel(), -scale, scale, rng);
        v.set(t.add(&Tensor::from_slice(&noise, t.shape(), t.device()).unwrap()).unwrap());
    }
}

/// Checks a layer: forward's log-det per sample against the brute-force Jacobian, and inverse(forward(x)).
fn check_layer(
    name: &str,
    x: &[f32],
    shape: &[usize],
    dev: &Device,
    fwd: &dyn Fn(&Tensor) -> (Tensor, Tensor),
    inv: &dyn Fn(&Tensor) -> Tensor,
) {
    let b = shape[0];
    let d = x.len() / b;
    let xt = Tensor::from_slice(x, shape, dev).unwrap();
    let (y, ld) = no_grad(|| fwd(&xt));
    let back = no_grad(|| inv(&y)).to_vec().unwrap();
    for (i, (a, r)) in back.iter().zip(x).enumerate() {
        assert!((a - r).abs() < 1e-4 * (1.0 + r.abs()), "{name} on {dev}: inverse at {i}: {a} vs {r}");
    }
    let ld: Vec<f32> = if ld.numel() == 1 { vec![ld.item().unwrap(); b] } else { ld.to_vec().unwrap() };
    let flat = |t: &Tensor| fwd(t).0.reshape(&[b, d]).unwrap();
    for (r, j) in jacobians(&flat, x, shape, dev).iter().enumerate() {
        let want = log_abs_det(j, d);
        let got = f64::from(ld[r]);
        assert!((got - want).abs() < 2e-4 * (1.0 + want.abs()), "{name} on {dev}: log-det {got} vs brute force {want}");
    }
}

#[test]
fn glow_layers_invert_and_log_dets_match_brute_force() {
    let mut rng = StdRng::seed_from_u64(31);
    for dev in devices() {
        let shape = [2usize, 4, 3, 5];
        let n: usize = shape.iter().product();
        let x = uniform(n, -1.5, 1.5, &mut rng);
        let c = Tensor::from_slice(&uniform(4, -1.0, 1.0, &mut rng), &[2, 2], &dev).unwrap();
        let mut r = StdRng::seed_from_u64(5);

        let ic = InvConv1x1::new("ic", 4, &mut r, &dev).unwrap();
        perturb(&ic, 0.3, &mut rng);
        check_layer("inv_conv1x1", &x, &shape, &dev, &|t| ic.forward(t).unwrap(), &|y| ic.inverse(y).unwrap());

        let an = ActNorm::new("an", 4, &dev).unwrap();
        check_layer("actnorm", &x, &shape, &dev, &|t| an.forward(t).unwrap(), &|y| an.inverse(y).unwrap());
        assert_eq!(an.initialized.get().item().unwrap(), 1.0, "actnorm initialised from data");

        let inj = CondActNorm::new("inj", 4, 2, 5, &mut r, &dev).unwrap();
        perturb(&inj, 0.3, &mut rng);
        check_layer("cond actnorm", &x, &shape, &dev, &|t| inj.forward(t, &c).unwrap(), &|y| {
            inj.inverse(y, &c).unwrap()
        });

        let cpl = CondAffineCoupling::new("cpl", 4, 2, 5, 0.5, &mut r, &dev).unwrap();
        perturb(&cpl, 0.3, &mut rng);
        check_layer("coupling", &x, &shape, &dev, &|t| cpl.forward(t, &c).unwrap(), &|y| cpl.inverse(y, &c).unwrap());

        let sq = [2usize, 3, 4, 6];
        let xs = uniform(sq.iter().product(), -1.0, 1.0, &mut rng);
        check_layer(
            "squeeze",
            &xs,
            &sq,
            &dev,
            &|t| (t.squeeze2x2().unwrap(), Tensor::scalar(0.0, t.device()).unwrap()),
            &|y| y.unsqueeze2x2().unwrap(),
        );
    }
}

/// A tiny model with every weight moved off its identity-like start.
fn tiny(cfg: &GlowConfig, dev: &Device, rng: &mut StdRng) -> CondGlow {
    let m = CondGlow::new(cfg, dev).unwrap();
    perturb(&m, 0.2, rng);
    m
}

#[test]
fn cond_glow_inverts_and_its_log_det_matches_brute_force() {
    let mut rng = StdRng::seed_from_u64(32);
    for dev in devices() {
        for cfg in [
            GlowConfig { side: 4, blocks: 2, steps: 2, hidden: 4, ..GlowConfig::higlow() },
            GlowConfig {
                side: 4,
                channels: 2,
                blocks: 1,
                steps: 1,
                hidden: 3,
                prior: GlowPrior::Learned,
                actnorm: true,
                ..GlowConfig::higlow()
            },
        ] {
            let m = tiny(&cfg, &dev, &mut rng);
            let b = 3;
            let shape = [b, cfg.channels, cfg.side, cfg.side];
            let x = uniform(b * cfg.dim(), -1.0, 1.0, &mut rng);
            let c = Tensor::from_slice(&uniform(b * 2, -1.0, 1.0, &mut rng), &[b, 2], &dev).unwrap();
            let flat = |zs: &[Tensor]| {
                let parts: Vec<Tensor> = zs.iter().map(|z| z.reshape(&[b, z.numel() / b]).unwrap()).collect();
                Tensor::concat(&parts.iter().collect::<Vec<_>>(), 1).unwrap()
            };
            check_layer(
                &format!("cond glow {cfg:?}"),
                &x,
                &shape,
                &dev,
                &|t| {
                    let (zs, ld) = m.encode(t, &c).unwrap();
                    (flat(&zs), ld)
                },
                &|zflat| {
                    // Undo the flattening: split z back into the blocks' shapes.
                    let mut off = 0;
                    let zs: Vec<Tensor> = m
                        .latent_shapes(b)
                        .iter()
                        .map(|s| {
                            let k = s[1] * s[2] * s[3];
                            off += k;
                            zflat.narrow(1, off - k, k).unwrap().reshape(s).unwrap()
                        })
                        .collect();
                    m.decode(&zs, &c).unwrap()
                },
            );
        }
    }
}

/// exp(log p(x | c)) integrates to 1, and sampling draws from it: for x drawn by `sample` and any normalised
/// q, E[q(x) / p(x)] = 1, and a constant error in log p (a missing Jacobian or prior term) moves it.
/// q is a diagonal Gaussian narrower than the draws; 4 dimensions.
#[test]
fn cond_glow_density_is_normalised_and_sampling_matches_it() {
    let mut rng = StdRng::seed_from_u64(33);
    let dev = Device::Cpu;
    let cfg = GlowConfig { side: 2, blocks: 1, steps: 2, hidden: 4, ..GlowConfig::higlow() };
    let m = CondGlow::new(&cfg, &dev).unwrap();
    perturb(&m, 0.05, &mut rng);
    let n = 100_000usize;
    let c = Tensor::from_slice(&[0.3f32, -0.6], &[1, 2], &dev).unwrap().broadcast_to(&[n, 2]).unwrap();
    let x = m.sample(&c, 1.0, &mut rng).unwrap();
    let lp = no_grad(|| m.log_prob(&x, &c)).unwrap().to_vec().unwrap();
    let x = x.to_vec().unwrap();
    let (mut mu, mut var) = ([0.0f64; 4], [0.0f64; 4]);
    for v in x.chunks(4) {
        (0..4).for_each(|k| mu[k] += f64::from(v[k]) / n as f64);
    }
    for v in x.chunks(4) {
        // 0.4 of the variance: q sits inside p's bulk, so the weights q / p stay bounded.
        (0..4).for_each(|k| var[k] += 0.4 * (f64::from(v[k]) - mu[k]).powi(2) / n as f64);
    }
    let lq = |v: &[f32]| -> f64 {
        (0..4)
            .map(|k| {
                -0.5 * (f64::from(v[k]) - mu[k]).powi(2) / var[k] - 0.5 * (2.0 * std::f64::consts::PI * var[k]).ln()
            })
            .sum()
    };
    let check = |shift: f64| {
        let w: Vec<f64> = lp.iter().zip(x.chunks(4)).map(|(&p, v)| (lq(v) - f64::from(p) - shift).exp()).collect();
        let mean = w.iter().sum::<f64>() / n as f64;
        let se = (w.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n * n) as f64).sqrt();
        ((mean - 1.0).abs() < 4.0 * se + 0.01, format!("E[q/p] = {mean} ± {se}"))
    };
    let (ok, msg) = check(0.0);
    assert!(ok, "{msg}");
    // A log-density off by a constant 0.05 nats (a dropped Jacobian term would be far more) fails.
    assert!(!check(0.05).0 && !check(-0.05).0, "the check cannot see a 0.05-nat error: {msg}, {}", check(0.05).1);
}
