//! Every op's backward rule against finite differences of loss = sum(f(x) * w), on the CPU.
//!
//! The ops are f32, so the check is made in f64 around them (loss summed in f64, the step actually taken
//! measured in f64) and chosen so that f32 rounding of the outputs stays far below the signal:
//! - smooth ops: directional derivatives along 12 random Gaussian directions v, central differences
//!   at h = 1e-2 and h/2 combined by Richardson extrapolation, against grad . v. The h^2 truncation
//!   term cancels, leaving O(h^4) (under 1e-4 of the signal even for log and div at x = 0.2), and
//!   output rounding (2^-24 relative per output) stays under about 3e-4 of it (logsumexp over 301
//!   values is the worst); a wrong rule (missing factor, wrong sign, swapped transpose) errs by O(1)
//!   in some direction, and a rule off by 1% fails (tested below). Tolerance 1e-3.
//! - piecewise-linear ops (relu, max, ...): single coordinates with h = 1e-3 (no truncation error; a
//!   step that crosses a kink shows as one-sided differences that disagree, and is skipped, at most a
//!   quarter of them).
use galactic_forge::selftest::{cases, eval, inputs, out_len, rel_err, Case};
use galactic_forge::{no_grad, Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

const TOL: f64 = 1e-3;

fn loss(c: &Case, xs: &[Vec<f32>], w: &[f32]) -> f64 {
    no_grad(|| {
        let ts: Vec<Tensor> =
            xs.iter().zip(&c.shapes).map(|(x, s)| Tensor::from_slice(x, s, &Device::Cpu).unwrap()).collect();
        let out = (c.f)(&ts).unwrap().to_vec().unwrap();
        out.iter().zip(w).map(|(&o, &w)| f64::from(o) * f64::from(w)).sum()
    })
}

/// (numeric, analytic) directional derivatives along random directions, Richardson-extrapolated:
/// with D(s) = L(x + s v) - L(x - s v), 8 D(h/2) - D(h) = 6 h grad.v + O(h^5) (the h^3 terms cancel).
fn directional(c: &Case, xs: &[Vec<f32>], w: &[f32], grads: &[Vec<f32>], rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let h = 1e-2f32;
    let (mut num, mut ana) = (Vec::new(), Vec::new());
    for _ in 0..12 {
        let v: Vec<Vec<f32>> = xs.iter().map(|x| x.iter().map(|_| rng.sample(StandardNormal)).collect()).collect();
        // (numeric, analytic) change of the loss from x - s v to x + s v; the analytic side uses the
        // displacement actually stored in f32.
        let diff = |s: f32| -> (f64, f64) {
            let (mut l, mut a) = (0.0, 0.0);
            for sign in [1.0f32, -1.0] {
                let p: Vec<Vec<f32>> =
                    xs.iter().zip(&v).map(|(x, v)| x.iter().zip(v).map(|(x, v)| x + sign * s * v).collect()).collect();
                let dot: f64 = p
                    .iter()
                    .zip(xs)
                    .zip(grads)
                    .map(|((p, x), g)| {
                        p.iter()
                            .zip(x)
                            .zip(g)
                            .map(|((p, x), g)| (f64::from(*p) - f64::from(*x)) * f64::from(*g))
                            .sum::<f64>()
                    })
                    .sum();
                l += f64::from(sign) * loss(c, &p, w);
                a += f64::from(sign) * dot;
            }
            (l, a)
        };
        let ((l1, a1), (l2, a2)) = (diff(h / 2.0), diff(h));
        num.push((8.0 * l1 - l2) as f32);
        ana.push((8.0 * a1 - a2) as f32);
    }
    (num, ana)
}

/// (numeric, analytic) partial derivatives at random coordinates away from kinks; also (skipped, tried).
fn coordinates(
    c: &Case,
    xs: &[Vec<f32>],
    w: &[f32],
    grads: &[Vec<f32>],
    rng: &mut StdRng,
) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let h = 1e-3f32;
    let (mut num, mut ana, mut skipped, mut tried) = (Vec::new(), Vec::new(), 0, 0);
    for (i, x) in xs.iter().enumerate() {
        for _ in 0..24.min(x.len()) {
            let j = rng.random_range(0..x.len());
            let at = |v: f32| {
                let mut p = xs.to_vec();
                p[i][j] = v;
                loss(c, &p, w)
            };
            let (xp, xm) = (x[j] + h, x[j] - h);
            let (lp, l0, lm) = (at(xp), at(x[j]), at(xm));
            let (fwd, bwd) = ((lp - l0) / f64::from(xp - x[j]), (l0 - lm) / f64::from(x[j] - xm));
            tried += 1;
            if (fwd - bwd).abs() > 1e-2 * (fwd.abs() + bwd.abs()) + 1e-3 {
                skipped += 1;
                continue;
            }
            num.push(((lp - lm) / f64::from(xp - xm)) as f32);
            ana.push(grads[i][j]);
        }
    }
    (num, ana, skipped, tried)
}

#[test]
fn every_op_backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(12345);
    let mut failures = Vec::new();
    for c in cases() {
        if !c.grad {
            println!("{:<22} (no backward: skipped)", c.name);
            continue;
        }
        let xs = inputs(&c, &mut rng);
        let w: Vec<f32> = (0..out_len(&c, &xs).unwrap()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (_, grads) = eval(&c, &xs, &w, &Device::Cpu).unwrap();
        let (e, note, ok) = if c.kinks {
            let (num, ana, skipped, tried) = coordinates(&c, &xs, &w, &grads, &mut rng);
            let e = rel_err(&ana, &num);
            (e, format!("{skipped}/{tried} coordinates skipped at kinks"), skipped * 4 <= tried)
        } else {
            let (num, ana) = directional(&c, &xs, &w, &grads, &mut rng);
            (rel_err(&ana, &num), "12 directions".to_string(), true)
        };
        println!("{:<22} rel err {e:.2e} ({note})", c.name);
        if !(e < TOL && ok) {
            failures.push(format!("{}: {e:e} ({note})", c.name));
        }
    }
    assert!(failures.is_empty(), "gradient check failed: {failures:?}");
}

/// The check itself must fail on a wrong rule: a backward that is off by a factor is caught.
#[test]
fn gradcheck_catches_a_wrong_rule() {
    let mut rng = StdRng::seed_from_u64(7);
    let c = cases().into_iter().find(|c| c.name == "exp").unwrap();
    let xs = inputs(&c, &mut rng);
    let w: Vec<f32> = (0..xs[0].len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (_, mut grads) = eval(&c, &xs, &w, &Device::Cpu).unwrap();
    grads[0].iter_mut().for_each(|g| *g *= 1.01);
    let (num, ana) = directional(&c, &xs, &w, &grads, &mut rng);
    assert!(rel_err(&ana, &num) > TOL);
}
