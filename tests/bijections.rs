//! Every bijection: inverse(forward(x)) = x, and its log-determinant against a brute-force Jacobian
//! (the full Jacobian of the output, row by row through autodiff, whose rules tests/gradcheck.rs checks
//! against finite differences; its log|det| in f64 by Gaussian elimination). On the CPU and every WGPU adapter.
mod common;

use common::{devices, jacobians, log_abs_det};
use galactic_forge::flows::{Flow, Maf, MafConfig, Nice, NiceConfig, Nsf, NsfConfig, Sospf, SospfConfig};
use galactic_forge::nn::LuLinear;
use galactic_forge::ops::spline::SplineCfg;
use galactic_forge::{no_grad, Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn uniform(n: usize, lo: f32, hi: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

#[test]
fn spline_inverts_and_its_log_det_is_the_derivative() {
    let mut rng = StdRng::seed_from_u64(21);
    for dev in devices() {
        for k in [3usize, 10] {
            let cfg = SplineCfg { bins: k, ..SplineCfg::default() };
            let n = 301;
            let x = uniform(n, -3.4, 3.4, &mut rng);
            let th = uniform(n * (3 * k - 1), -2.0, 2.0, &mut rng);
            let xt = Tensor::from_slice(&x, &[n], &dev).unwrap();
            let tt = Tensor::from_slice(&th, &[n, 3 * k - 1], &dev).unwrap();
            let (y, ld) = no_grad(|| xt.rq_spline(&tt, &cfg, false)).unwrap();
            let (xb, ldi) = no_grad(|| y.rq_spline(&tt, &cfg, true)).unwrap();
            let (y, ld, xb, ldi) =
                (y.to_vec().unwrap(), ld.to_vec().unwrap(), xb.to_vec().unwrap(), ldi.to_vec().unwrap());
            for i in 0..n {
                // f32 rounding of y (a few ulp) maps back to x through the slope dx/dy = exp(-ld).
                let tol = 1e-5 * (1.0 + x[i].abs()) + 1e-6 * (1.0 + y[i].abs()) * (-ld[i]).exp();
                assert!((xb[i] - x[i]).abs() < tol, "{dev} K={k}: x {} -> {} -> {}", x[i], y[i], xb[i]);
                // The inverse's ξ carries the same slope-amplified rounding, and ld moves with ξ.
                assert!(
                    (ld[i] + ldi[i]).abs() < 1e-4 * (1.0 + ld[i].abs()),
                    "{dev} K={k}: ld {} inverse ld {}",
                    ld[i],
                    ldi[i]
                );
                // The derivative by central differences in f64 around the f32 evaluation.
                let h = 1e-2f32;
                let at = |v: f32| {
                    let t = Tensor::from_slice(&[v], &[1], &dev).unwrap();
                    let th1 =
                        Tensor::from_slice(&th[i * (3 * k - 1)..(i + 1) * (3 * k - 1)], &[1, 3 * k - 1], &dev).unwrap();
                    f64::from(no_grad(|| t.rq_spline(&th1, &cfg, false)).unwrap().0.to_vec().unwrap()[0])
                };
                let (xp, xm) = (x[i] + h, x[i] - h);
                let fd = (at(xp) - at(xm)) / f64::from(xp - xm);
                let fd2 = (at(x[i] + h / 2.0) - at(x[i] - h / 2.0)) / f64::from(h);
                // Richardson: (4 D(h/2) - D(h)) / 3; skip steps that straddle a knot (the second derivative jumps).
                let est = (4.0 * fd2 - fd) / 3.0;
                if (fd - fd2).abs() < 1e-3 * fd.abs() {
                    // f32 rounding of y over a step h limits the estimate where the slope is small.
                    let fd_noise = 4.0 * f64::from(f32::EPSILON) * (1.0 + f64::from(y[i].abs())) / (f64::from(h) * est);
                    let e = (est.ln() - f64::from(ld[i])).abs();
                    assert!(
                        e < 2e-3 + fd_noise,
                        "{dev} K={k}: x {} ld {} vs finite differences {}",
                        x[i],
                        ld[i],
                        est.ln()
                    );
                }
            }
        }
    }
}

#[test]
fn lu_linear_inverts_and_log_det_matches_the_matrix() {
    let mut rng = StdRng::seed_from_u64(5);
    for dev in devices() {
        let lu = LuLinear::new("lu", 10, &mut rng, &dev).unwrap();
        // Move away from the orthogonal init so |det| != 1.
        lu.log_s.set(Tensor::from_vec(uniform(10, -0.5, 0.5, &mut rng), &[10], &dev).unwrap());
        lu.lower.set(Tensor::from_vec(uniform(100, -0.5, 0.5, &mut rng), &[10, 10], &dev).unwrap());
        let w: Vec<f64> = lu.weight().unwrap().to_vec().unwrap().into_iter().map(f64::from).collect();
        let ld = lu.log_s.get().sum_all().unwrap().item().unwrap();
        assert!((log_abs_det(&w, 10) - f64::from(ld)).abs() < 1e-4, "{dev}: {} vs {ld}", log_abs_det(&w, 10));
        let x = Tensor::from_vec(uniform(70, -2.0, 2.0, &mut rng), &[7, 10], &dev).unwrap();
        let back = lu.forward(&x).unwrap().0.matmul(&lu.inverse_weight().unwrap()).unwrap();
        let e = galactic_forge::selftest::rel_err(&back.to_vec().unwrap(), &x.to_vec().unwrap());
        assert!(e < 1e-5, "{dev}: {e}");
    }
}

/// inverse(forward(x)) = x and log|det dz/dx| against the brute-force Jacobian, with every weight pushed
/// off its initial value (by up to `amp`) so the transforms are far from the identity.
fn check_flow(flow: &dyn Flow, dev: &Device, rng: &mut StdRng, amp: f32, inv_tol: f64) {
    for v in galactic_forge::nn::Module::vars(flow) {
        let t = v.get();
        let noise = Tensor::from_vec(uniform(t.numel(), -amp, amp, rng), t.shape(), dev).unwrap();
        v.set(t.add(&noise).unwrap());
    }
    let (b, d, nc) = (9, flow.dim(), flow.cond_dim());
    let x = uniform(b * d, -2.5, 2.5, rng);
    let c = Tensor::from_vec(uniform(b * nc, -1.0, 1.0, rng), &[b, nc], dev).unwrap();
    let xt = Tensor::from_slice(&x, &[b, d], dev).unwrap();
    let (z, ld) = no_grad(|| flow.forward(&xt, &c)).unwrap();
    let back = flow.inverse(&z, &c).unwrap().to_vec().unwrap();
    let e = galactic_forge::selftest::rel_err(&back, &x);
    assert!(e < inv_tol, "{dev}: inverse(forward(x)) relative error {e}");
    let jac = jacobians(&|xt| flow.forward(xt, &c).unwrap().0, &x, &[b, d], dev);
    let ld = ld.to_vec().unwrap();
    for r in 0..b {
        let brute = log_abs_det(&jac[r], d);
        assert!((brute - f64::from(ld[r])).abs() < 1e-3 * (1.0 + brute.abs()), "{dev} row {r}: {} vs {brute}", ld[r]);
    }
}

#[test]
fn nsf_inverts_and_log_det_matches_brute_force_jacobian() {
    for dev in devices() {
        let cfg = NsfConfig {
            layers: 3,
            hidden: 16,
            depth: 3,
            spline: SplineCfg { bins: 6, ..SplineCfg::default() },
            seed: 3,
            ..NsfConfig::galacticflow(5, 3)
        };
        check_flow(&Nsf::new(cfg, &dev).unwrap(), &dev, &mut StdRng::seed_from_u64(9), 0.3, 1e-4);
    }
}

#[test]
fn maf_inverts_and_log_det_matches_brute_force_jacobian() {
    for dev in devices() {
        // Ours (3 tanh(r / 3)) and zuko's log-scale (r / (1 + |r / ln 1e-3|), an imported zuko MAF).
        for zuko_slope in [None, Some(1e-3)] {
            let cfg = MafConfig {
                transforms: 3,
                hidden: vec![24, 24],
                seed: 4,
                zuko_slope,
                ..MafConfig::galacticforge(6, 2)
            };
            check_flow(&Maf::new(cfg, &dev).unwrap(), &dev, &mut StdRng::seed_from_u64(11), 0.3, 1e-4);
        }
    }
}

#[test]
fn nice_inverts_and_log_det_matches_brute_force_jacobian() {
    for dev in devices() {
        // Additive, affine with gforge's clamp, affine with zuko's log-scale (an imported zuko NICE).
        for (affine, zuko_slope) in [(false, None), (true, None), (true, Some(1e-3))] {
            let cfg = NiceConfig {
                transforms: 4,
                hidden: vec![20, 20],
                affine,
                seed: 5,
                zuko_slope,
                ..NiceConfig::galacticforge(7, 2)
            };
            check_flow(&Nice::new(cfg, &dev).unwrap(), &dev, &mut StdRng::seed_from_u64(13), 0.3, 1e-4);
        }
    }
}

#[test]
fn sospf_inverts_and_log_det_matches_brute_force_jacobian() {
    for dev in devices() {
        let cfg = SospfConfig { transforms: 3, hidden: vec![24, 24], seed: 6, ..SospfConfig::galacticforge(4, 2) };
        // Smaller pushes: with MADE weights moved by 0.3, three stacked degree-9 polynomials reach 1e8 and the
        // f32 inverse loses its digits. Even here f(x) sums degree-9 terms of both signs: its f32 rounding
        // (~1e-6 of the largest term) maps back to x through 1/f'(x), hence 1e-3 for the round trip.
        check_flow(&Sospf::new(cfg, &dev).unwrap(), &dev, &mut StdRng::seed_from_u64(17), 0.05, 1e-3);
    }
}

#[test]
fn sos_transform_inverts_and_its_log_det_is_the_derivative() {
    use galactic_forge::ops::sos::SosCfg;
    let mut rng = StdRng::seed_from_u64(23);
    for dev in devices() {
        let cfg = SosCfg::default();
        let (n, np) = (301, cfg.params_per_dim());
        let x = uniform(n, -3.0, 3.0, &mut rng);
        let th = uniform(n * np, -0.6, 0.6, &mut rng);
        let xt = Tensor::from_slice(&x, &[n], &dev).unwrap();
        let tt = Tensor::from_slice(&th, &[n, np], &dev).unwrap();
        let (y, ld) = no_grad(|| xt.sos_transform(&tt, &cfg, false)).unwrap();
        let (xb, ldi) = no_grad(|| y.sos_transform(&tt, &cfg, true)).unwrap();
        let (y, ld, xb, ldi) = (y.to_vec().unwrap(), ld.to_vec().unwrap(), xb.to_vec().unwrap(), ldi.to_vec().unwrap());
        for i in 0..n {
            // f32 rounding of f (a few ulp of its larger terms, ~|y| + 1 here) maps back through dx/dy = exp(-ld).
            let tol = 1e-5 * (1.0 + x[i].abs()) + 1e-6 * (1.0 + y[i].abs()) * (-ld[i]).exp();
            assert!((xb[i] - x[i]).abs() < tol, "{dev}: x {} -> {} -> {} (ld {})", x[i], y[i], xb[i], ld[i]);
            assert!((ld[i] + ldi[i]).abs() < 1e-4 * (1.0 + ld[i].abs()), "{dev}: ld {} inverse ld {}", ld[i], ldi[i]);
            // ld against central differences of y in f64 around the f32 evaluation.
            let at = |v: f32| {
                let t = Tensor::from_slice(&[v], &[1], &dev).unwrap();
                let t1 = Tensor::from_slice(&th[i * np..(i + 1) * np], &[1, np], &dev).unwrap();
                f64::from(no_grad(|| t.sos_transform(&t1, &cfg, false)).unwrap().0.to_vec().unwrap()[0])
            };
            let h = 1e-2f32;
            let d1 = (at(x[i] + h) - at(x[i] - h)) / (2.0 * f64::from(h));
            let d2 = (at(x[i] + h / 2.0) - at(x[i] - h / 2.0)) / f64::from(h);
            let est = (4.0 * d2 - d1) / 3.0;
            let noise = 4.0 * f64::from(f32::EPSILON) * (1.0 + f64::from(y[i].abs())) / (f64::from(h) * est);
            assert!(
                (est.ln() - f64::from(ld[i])).abs() < 1e-3 + noise,
                "{dev}: x {} ld {} vs {}",
                x[i],
                ld[i],
                est.ln()
            );
        }
    }
}

/// The coupling op alone (every kind, compact and dense masks): inverse(forward(x)) = x, the inverse's log-det
/// is minus the forward's, and the forward's matches the brute-force Jacobian of x -> y row by row.
#[test]
fn coupling_inverts_and_log_det_matches_brute_force_jacobian() {
    use galactic_forge::ops::coupling::{CouplingKind, CouplingMask};
    let mut rng = StdRng::seed_from_u64(29);
    let mask = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
    let (b, d) = (5, mask.len());
    for dev in devices() {
        for kind in
            [CouplingKind::Additive, CouplingKind::Affine { clamp: None }, CouplingKind::Affine { clamp: Some(3.0) }]
        {
            for dense in [false, true] {
                let m = if dense {
                    CouplingMask::dense(&mask, &dev).unwrap()
                } else {
                    CouplingMask::new(&mask, &dev).unwrap()
                };
                let w = m.columns() * if kind == CouplingKind::Additive { 1 } else { 2 };
                let x = uniform(b * d, -2.5, 2.5, &mut rng);
                let th = Tensor::from_vec(uniform(b * w, -2.0, 2.0, &mut rng), &[b, w], &dev).unwrap();
                let xt = Tensor::from_slice(&x, &[b, d], &dev).unwrap();
                let (y, ld) = no_grad(|| xt.coupling(&th, &m, kind, false)).unwrap();
                let (xb, ldi) = no_grad(|| y.coupling(&th, &m, kind, true)).unwrap();
                let e = galactic_forge::selftest::rel_err(&xb.to_vec().unwrap(), &x);
                assert!(e < 1e-5, "{dev} {kind:?} dense {dense}: inverse(forward(x)) relative error {e}");
                let (ld, ldi) = (ld.to_vec().unwrap(), ldi.to_vec().unwrap());
                let jac = jacobians(&|xt| xt.coupling(&th, &m, kind, false).unwrap().0, &x, &[b, d], &dev);
                for r in 0..b {
                    let brute = log_abs_det(&jac[r], d);
                    assert!(
                        (ld[r] + ldi[r]).abs() < 1e-5 * (1.0 + ld[r].abs()),
                        "{dev} {kind:?}: {} {}",
                        ld[r],
                        ldi[r]
                    );
                    assert!((brute - f64::from(ld[r])).abs() < 1e-4 * (1.0 + brute.abs()), "{dev} {kind:?}: {brute}");
                }
            }
        }
    }
}

/// The soft-clip: inverse(forward(x)) = x, the log-det against the brute-force Jacobian (rows of 8), and the
/// inverse's saturation: |y| >= B comes back finite (from the edge B (1 - 2^-20): 1 - |y| / B there is 2^-20
/// up to the f32 rounding of |y| / B, a few percent of it) instead of infinite.
#[test]
fn softclip_inverts_saturates_and_log_det_matches_brute_force_jacobian() {
    let mut rng = StdRng::seed_from_u64(31);
    let (b, d, bound) = (6, 8, 2.5f32);
    for dev in devices() {
        let x = uniform(b * d, -6.0, 6.0, &mut rng);
        let xt = Tensor::from_slice(&x, &[b, d], &dev).unwrap();
        let (y, ld) = no_grad(|| xt.softclip(bound, false)).unwrap();
        let (xb, ldi) = no_grad(|| y.softclip(bound, true)).unwrap();
        // dx/dy = (1 + |x| / B)² <= 12 here: the f32 rounding of y comes back amplified by that much.
        let e = galactic_forge::selftest::rel_err(&xb.to_vec().unwrap(), &x);
        assert!(e < 1e-5, "{dev}: inverse(forward(x)) relative error {e}");
        let (ld, ldi) = (ld.to_vec().unwrap(), ldi.to_vec().unwrap());
        for i in 0..b * d {
            assert!((ld[i] + ldi[i]).abs() < 1e-5 * (1.0 + ld[i].abs()), "{dev}: {} {}", ld[i], ldi[i]);
        }
        let jac = jacobians(&|xt| xt.softclip(bound, false).unwrap().0, &x, &[b, d], &dev);
        for r in 0..b {
            let brute = log_abs_det(&jac[r], d);
            let sum: f64 = ld[r * d..(r + 1) * d].iter().map(|&v| f64::from(v)).sum();
            assert!((brute - sum).abs() < 1e-4 * (1.0 + brute.abs()), "{dev} row {r}: {sum} vs {brute}");
        }
        let sat = Tensor::from_slice(&[bound, -bound, 3.0 * bound, f32::INFINITY], &[4], &dev).unwrap();
        let back = no_grad(|| sat.softclip(bound, true)).unwrap().0.to_vec().unwrap();
        let edge = f64::from(bound) * (1.0 - 2f64.powi(-20)) / 2f64.powi(-20);
        for (v, s) in back.iter().zip([1.0, -1.0, 1.0, 1.0]) {
            assert!(v.is_finite() && (f64::from(*v) - s * edge).abs() < 0.2 * edge, "{dev}: {v} vs {}", s * edge);
        }
    }
}

/// The LU weight op: x -> x W has Jacobian W^T, so its brute-force log|det| per row must equal the op's
/// log-det, for a layer moved off its orthogonal init (random permutation and signs from the LU of it).
#[test]
fn lu_weight_log_det_matches_brute_force_jacobian() {
    let mut rng = StdRng::seed_from_u64(37);
    for dev in devices() {
        let d = 7;
        let lu = LuLinear::new("lu", d, &mut rng, &dev).unwrap();
        lu.log_s.set(Tensor::from_vec(uniform(d, -0.6, 0.6, &mut rng), &[d], &dev).unwrap());
        lu.lower.set(Tensor::from_vec(uniform(d * d, -0.5, 0.5, &mut rng), &[d, d], &dev).unwrap());
        lu.upper.set(Tensor::from_vec(uniform(d * d, -0.5, 0.5, &mut rng), &[d, d], &dev).unwrap());
        let ld = f64::from(lu.weight_and_logdet().unwrap().1.item().unwrap());
        let x = uniform(4 * d, -2.0, 2.0, &mut rng);
        let jac = jacobians(&|xt| lu.forward(xt).unwrap().0, &x, &[4, d], &dev);
        for (r, j) in jac.iter().enumerate() {
            let brute = log_abs_det(j, d);
            assert!((brute - ld).abs() < 1e-4 * (1.0 + brute.abs()), "{dev} row {r}: {ld} vs {brute}");
        }
        let xt = Tensor::from_slice(&x, &[4, d], &dev).unwrap();
        let back = lu.forward(&xt).unwrap().0.matmul(&lu.inverse_weight().unwrap()).unwrap();
        let e = galactic_forge::selftest::rel_err(&back.to_vec().unwrap(), &x);
        assert!(e < 1e-5, "{dev}: {e}");
    }
}

/// max |x| over the rows of the inverse of z * lambda, divided by lambda * max |z|: far from the data, the
/// inverse's growth rate.
fn far_slope(flow: &dyn Flow, dim: usize, lambda: f32, rng: &mut StdRng) -> f64 {
    let dev = Device::Cpu;
    let n = 64;
    let z: Vec<f32> = uniform(n * dim, -1.0, 1.0, rng);
    let zmax = z.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let zt = Tensor::from_vec(z.iter().map(|v| v * lambda).collect(), &[n, dim], &dev).unwrap();
    let c = Tensor::from_vec(uniform(2, -1.0, 1.0, rng), &[1, 2], &dev).unwrap();
    let x = flow.inverse(&zt, &c).unwrap().to_vec().unwrap();
    x.iter().fold(0f64, |m, v| m.max(f64::from(v.abs()))) / (f64::from(lambda) * zmax)
}

/// Samples must not explode (issue 12): with the conditioners reading soft-clipped inputs, an affine flow's
/// inverse far from the data is an affine map of z whose slope is at most e^(3 L) for L affine layers
/// (each scale soft-clamped to e^±3) and 1 for additive couplings, however large the networks' weights.
/// Without the clip (old checkpoints: conditioner_clip None) the shifts feed back through the conditioners
/// and the same weights give a slope far beyond that: the test checks both, so it can tell them apart.
#[test]
fn affine_flows_do_not_explode_far_from_the_data() {
    let dev = Device::Cpu;
    let dim = 6;
    let build = |kind: &str, clip: Option<f32>| -> (Box<dyn Flow>, f64) {
        let flow: Box<dyn Flow> = match kind {
            "maf" => Box::new(
                Maf::new(
                    MafConfig {
                        transforms: 3,
                        hidden: vec![32, 32],
                        seed: 8,
                        conditioner_clip: clip,
                        ..MafConfig::galacticforge(dim, 2)
                    },
                    &dev,
                )
                .unwrap(),
            ),
            _ => Box::new(
                Nice::new(
                    NiceConfig {
                        transforms: 4,
                        hidden: vec![32, 32],
                        affine: kind == "nice-affine",
                        seed: 8,
                        conditioner_clip: clip,
                        ..NiceConfig::galacticforge(dim, 2)
                    },
                    &dev,
                )
                .unwrap(),
            ),
        };
        // Weights as large as a trained network's can be: every parameter scaled up by 4.
        for v in flow.vars() {
            v.set(v.get().scale(4.0).unwrap());
        }
        let bound = match kind {
            "maf" => (3.0f64 * 3.0).exp(),
            "nice-affine" => (3.0f64 * 4.0).exp(),
            _ => 1.0,
        };
        (flow, bound)
    };
    for kind in ["maf", "nice", "nice-affine"] {
        let mut rng = StdRng::seed_from_u64(31);
        let (flow, bound) = build(kind, Some(galactic_forge::flows::CONDITIONER_CLIP));
        let slope = no_grad(|| far_slope(flow.as_ref(), dim, 1e6, &mut rng));
        assert!(slope <= bound * 1.01, "{kind}: far-field slope {slope:.3e} above the bound {bound:.3e}");
        let mut rng = StdRng::seed_from_u64(31);
        let (old, _) = build(kind, None);
        let old_slope = no_grad(|| far_slope(old.as_ref(), dim, 1e6, &mut rng));
        println!("{kind}: far-field slope {slope:.3e} (bound {bound:.3e}); without the clip {old_slope:.3e}");
        assert!(old_slope > bound, "{kind}: without the clip the slope is only {old_slope:.3e}");
    }
}
