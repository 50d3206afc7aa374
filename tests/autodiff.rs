//! The tape, the optimisers, clipping and schedules.
use galactic_forge::optim::{clip_grad_norm, Adam, AdamConfig, AdamKind, ExponentialLr, ReduceOnPlateau};
use galactic_forge::{backward, no_grad, Device, Grads, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;

const CPU: Device = Device::Cpu;

fn t(v: &[f32], s: &[usize]) -> Tensor {
    Tensor::from_slice(v, s, &CPU).unwrap()
}

#[test]
fn gradients_accumulate_over_every_use() {
    // d/dx sum(x*x + x + exp(x)*x) = 2x + 1 + exp(x)(1 + x)
    let x = t(&[0.5, -1.0, 2.0], &[3]).requires_grad();
    let y = x.mul(&x).unwrap().add(&x).unwrap().add(&x.exp().unwrap().mul(&x).unwrap()).unwrap();
    let g = backward(&y.sum_all().unwrap()).unwrap();
    let got = g.get(&x).unwrap().to_vec().unwrap();
    for (i, &v) in [0.5f32, -1.0, 2.0].iter().enumerate() {
        let want = 2.0 * v + 1.0 + v.exp() * (1.0 + v);
        assert!((got[i] - want).abs() < 1e-5, "{} vs {want}", got[i]);
    }
}

#[test]
fn untracked_work_records_nothing() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    assert!(x.exp().unwrap().tracks());
    assert!(!no_grad(|| x.exp().unwrap()).tracks(), "no_grad must record nothing");
    assert!(!x.detach().exp().unwrap().tracks());
    assert!(!t(&[1.0], &[1]).exp().unwrap().tracks(), "plain tensors record nothing");
    // A detached branch contributes no gradient.
    let y = x.mul(&x.detach()).unwrap().sum_all().unwrap();
    assert_eq!(backward(&y).unwrap().get(&x).unwrap().to_vec().unwrap(), vec![1.0, 2.0]);
    assert!(backward(&x).is_err(), "backward needs a scalar");
}

#[test]
fn only_leaves_get_gradients_and_untouched_leaves_get_none() {
    let a = t(&[1.0, 2.0], &[2]).requires_grad();
    let b = t(&[3.0], &[1]).requires_grad();
    let h = a.scale(2.0).unwrap();
    let g = backward(&h.sum_all().unwrap()).unwrap();
    assert_eq!(g.len(), 1);
    assert!(g.get(&h).is_none() && g.get(&b).is_none());
}

/// Least squares y = X w*: every Adam variant must reach the closed-form solution.
#[test]
fn adam_family_solves_least_squares() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = Tensor::randn(&[64, 5], &mut rng, &CPU).unwrap();
    let w_true = t(&[1.0, -2.0, 0.5, 3.0, -1.0], &[5, 1]);
    let y = x.matmul(&w_true).unwrap();
    for kind in [AdamKind::Adam, AdamKind::AdamW, AdamKind::RAdam] {
        let w = Var::new("w", Tensor::zeros(&[5, 1], &CPU).unwrap());
        let cfg = AdamConfig { weight_decay: 0.0, ..AdamConfig::new(kind, 0.05) };
        let mut opt = Adam::new(vec![w.clone()], cfg);
        let mut last = f32::INFINITY;
        for _ in 0..600 {
            let r = x.matmul(&w.get()).unwrap().sub(&y).unwrap();
            let loss = r.square().unwrap().mean_all().unwrap();
            last = loss.item().unwrap();
            opt.step(&backward(&loss).unwrap()).unwrap();
        }
        let got = w.get().to_vec().unwrap();
        let err = got.iter().zip([1.0, -2.0, 0.5, 3.0, -1.0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-2 && last < 1e-4, "{kind:?}: loss {last}, weights {got:?}");
    }
}

#[test]
fn radam_warms_up_like_torch() {
    // rho_t <= 5 for the first 5 steps with beta2 = 0.999 (momentum only), rectified from step 6.
    let cfg = AdamConfig::new(AdamKind::RAdam, 1e-3);
    let use_v: Vec<u32> = (1..=7).map(|t| Adam::params(&cfg, 1, t).unwrap().use_v).collect();
    assert_eq!(use_v, vec![0, 0, 0, 0, 0, 1, 1]);
    let p = Adam::params(&cfg, 1, 1000).unwrap();
    assert!(p.scale > 0.0 && p.scale < 1.0);
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let a = Var::new("a", t(&[0.0, 0.0], &[2]));
    let b = Var::new("b", t(&[0.0], &[1]));
    let mut g = Grads::default();
    g.insert(&a.get(), t(&[3.0, 0.0], &[2]));
    g.insert(&b.get(), t(&[4.0], &[1]));
    let norm = clip_grad_norm(&mut g, &[a.clone(), b.clone()], 1.0).unwrap().unwrap();
    assert!((norm.item().unwrap() - 5.0).abs() < 1e-6);
    let ga = g.get(&a.get()).unwrap().to_vec().unwrap();
    assert!((ga[0] - 0.6).abs() < 1e-5 && (g.get(&b.get()).unwrap().item().unwrap() - 0.8).abs() < 1e-5);
    // Below the limit nothing changes.
    clip_grad_norm(&mut g, &[a.clone(), b], 10.0).unwrap();
    assert!((g.get(&a.get()).unwrap().to_vec().unwrap()[0] - 0.6).abs() < 1e-5);
}

#[test]
fn schedules_follow_torch() {
    // GalacticFlow: gamma 0.998 every 10 batches, every 120 once lr <= 3e-6.
    let mut s = ExponentialLr::new(9e-5, 0.998, 10).with_slow_phase(3e-6, 120);
    for _ in 0..9 {
        assert_eq!(s.step(), 9e-5);
    }
    assert!((s.step() - 9e-5 * 0.998).abs() < 1e-12);
    let mut p = ReduceOnPlateau::new(1e-3, 0.5, 2, 1e-4);
    for m in [1.0, 0.9, 0.95, 0.95] {
        assert_eq!(p.step(m), 1e-3);
    }
    assert_eq!(p.step(0.95), 5e-4, "third epoch without improvement past patience 2 halves the rate");
    for _ in 0..20 {
        p.step(1.0);
    }
    assert_eq!(p.lr, 1e-4, "never below min_lr");
}
