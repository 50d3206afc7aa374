//! Linear probes: how much of a galaxy property the autoencoder's latents carry, as the held-out R^2 of a
//! least-squares fit (with intercept) from the latents to the property, fitted on the training galaxies.
//! A tiny ridge (1e-6 of the standardised latents' unit variance) keeps the normal equations solvable when
//! latents are collinear; it changes a well-posed fit by nothing measurable.

/// Least-squares weights [intercept, w_1..w_L] of y ~ x, in f64 via the normal equations (Cholesky).
/// Returns None if there are no rows.
pub fn fit(x: &[Vec<f32>], y: &[f64]) -> Option<Vec<f64>> {
    let n = x.len();
    if n == 0 || y.len() != n {
        return None;
    }
    let l = x[0].len();
    let d = l + 1;
    // Standardise the columns so the ridge means the same for every latent.
    let mean: Vec<f64> = (0..l).map(|j| x.iter().map(|r| f64::from(r[j])).sum::<f64>() / n as f64).collect();
    let sd: Vec<f64> = (0..l)
        .map(|j| {
            let v = x.iter().map(|r| (f64::from(r[j]) - mean[j]).powi(2)).sum::<f64>() / n as f64;
            if v > 0.0 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let row = |r: &Vec<f32>| -> Vec<f64> {
        std::iter::once(1.0).chain((0..l).map(|j| (f64::from(r[j]) - mean[j]) / sd[j])).collect()
    };
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d];
    for (r, &t) in x.iter().zip(y) {
        let f = row(r);
        for i in 0..d {
            b[i] += f[i] * t;
            for j in 0..d {
                a[i * d + j] += f[i] * f[j];
            }
        }
    }
    for i in 1..d {
        a[i * d + i] += 1e-6 * n as f64;
    }
    let w = cholesky_solve(&mut a, &b, d)?;
    // Back to the raw latents: y = w0 + sum w_j (x_j - m_j) / s_j.
    let mut out = vec![w[0]; 1];
    for j in 0..l {
        out.push(w[j + 1] / sd[j]);
        out[0] -= w[j + 1] * mean[j] / sd[j];
    }
    Some(out)
}

pub fn predict(w: &[f64], x: &[f32]) -> f64 {
    w[0] + x.iter().zip(&w[1..]).map(|(&a, &b)| f64::from(a) * b).sum::<f64>()
}

/// 1 - SS_res / SS_tot of predictions against targets (1 perfect, 0 no better than the targets' mean,
/// negative worse than it).
pub fn r_squared(pred: &[f64], y: &[f64]) -> f64 {
    let m = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let ss_res: f64 = pred.iter().zip(y).map(|(p, t)| (t - p).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|t| (t - m).powi(2)).sum();
    1.0 - ss_res / ss_tot
}

/// Fits on (train_x, train_y) and returns the R^2 on (test_x, test_y).
pub fn held_out_r2(train_x: &[Vec<f32>], train_y: &[f64], test_x: &[Vec<f32>], test_y: &[f64]) -> Option<f64> {
    let w = fit(train_x, train_y)?;
    let pred: Vec<f64> = test_x.iter().map(|r| predict(&w, r)).collect();
    Some(r_squared(&pred, test_y))
}

/// Solves A w = b for symmetric positive definite A (d x d, overwritten by its factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let s = a[j * d + j] - (0..j).map(|k| a[j * d + k].powi(2)).sum::<f64>();
        if s <= 0.0 || !s.is_finite() {
            return None;
        }
        a[j * d + j] = s.sqrt();
        for i in j + 1..d {
            let t = a[i * d + j] - (0..j).map(|k| a[i * d + k] * a[j * d + k]).sum::<f64>();
            a[i * d + j] = t / a[j * d + j];
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        z[i] = (b[i] - (0..i).map(|k| a[i * d + k] * z[k]).sum::<f64>()) / a[i * d + i];
    }
    let mut w = vec![0.0; d];
    for i in (0..d).rev() {
        w[i] = (z[i] - (i + 1..d).map(|k| a[k * d + i] * w[k]).sum::<f64>()) / a[i * d + i];
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn recovers_a_linear_map_and_scores_noise_near_zero() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let x: Vec<Vec<f32>> = (0..200).map(|_| (0..4).map(|_| rng.random_range(-2.0..2.0)).collect()).collect();
        let y: Vec<f64> = x.iter().map(|r| 0.5 + 2.0 * f64::from(r[0]) - 3.0 * f64::from(r[3])).collect();
        let w = fit(&x[..150], &y[..150]).unwrap();
        for (got, want) in w.iter().zip([0.5, 2.0, 0.0, 0.0, -3.0]) {
            assert!((got - want).abs() < 1e-4, "{w:?}");
        }
        assert!(held_out_r2(&x[..150], &y[..150], &x[150..], &y[150..]).unwrap() > 0.999_999);
        // A target independent of the latents: held-out R^2 near zero (or below).
        let noise: Vec<f64> = (0..200).map(|_| rng.random_range(-1.0..1.0)).collect();
        let r2 = held_out_r2(&x[..150], &noise[..150], &x[150..], &noise[150..]).unwrap();
        assert!(r2 < 0.15, "{r2}");
    }

    #[test]
    fn collinear_latents_still_fit() {
        let x: Vec<Vec<f32>> = (0..50).map(|i| vec![i as f32, 2.0 * i as f32, 1.0]).collect();
        let y: Vec<f64> = (0..50).map(|i| 3.0 * i as f64).collect();
        let r2 = held_out_r2(&x, &y, &x, &y).unwrap();
        assert!(r2 > 0.999_999, "{r2}");
        assert!(fit(&[], &[]).is_none());
    }
}
