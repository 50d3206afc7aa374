//! LU-decomposed invertible linear map (Kingma & Dhariwal 2018; GalacticFlow's "1x1 conv" on star vectors):
//! W = P L (U + diag(sign * exp(log_s))), L unit lower triangular, U strictly upper, P and sign fixed at
//! initialisation from the LU decomposition of a random orthogonal matrix. y = x W, log|det W| = sum log_s.
//! W and log|det W| come from one `lu_weight` op (src/ops/lu/) on the D x D parameters (D = 10 for stars); the
//! batch work is one matmul. Sampling inverts W on the host in f64 (a D x D matrix once per call).
use super::Module;
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::ops::lu::lu_weight;
use crate::tensor::Tensor;
use rand_distr::{Distribution, StandardNormal};

pub struct LuLinear {
    pub d: usize,
    pub lower: Var,
    pub upper: Var,
    pub log_s: Var,
    /// Buffers: the permutation matrix and the signs of the diagonal.
    pub perm: Var,
    pub sign: Var,
}

/// A random orthogonal matrix (Gram-Schmidt on a Gaussian matrix, f64), row-major.
fn random_orthogonal(d: usize, rng: &mut impl rand::Rng) -> Vec<f64> {
    let mut q: Vec<f64> = (0..d * d).map(|_| StandardNormal.sample(rng)).collect();
    for i in 0..d {
        for j in 0..i {
            let dot: f64 = (0..d).map(|k| q[i * d + k] * q[j * d + k]).sum();
            for k in 0..d {
                q[i * d + k] -= dot * q[j * d + k];
            }
        }
        let norm = (0..d).map(|k| q[i * d + k].powi(2)).sum::<f64>().sqrt();
        (0..d).for_each(|k| q[i * d + k] /= norm);
    }
    q
}

/// A = P L U with partial pivoting: returns (perm, L, U) with (L U)[i] = A[piv[i]], i.e. A[piv[i]] = LU[i].
fn lu_decompose(a: &[f64], d: usize) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    let mut u = a.to_vec();
    let mut l = vec![0.0; d * d];
    let mut piv: Vec<usize> = (0..d).collect();
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| u[i * d + c].abs().total_cmp(&u[j * d + c].abs())).unwrap();
        if p != c {
            for k in 0..d {
                u.swap(c * d + k, p * d + k);
                l.swap(c * d + k, p * d + k);
            }
            piv.swap(c, p);
        }
        for r in c + 1..d {
            let f = u[r * d + c] / u[c * d + c];
            l[r * d + c] = f;
            for k in c..d {
                u[r * d + k] -= f * u[c * d + k];
            }
        }
    }
    (0..d).for_each(|i| l[i * d + i] = 1.0);
    (piv, l, u)
}

/// Inverse of a row-major d x d matrix in f64 (Gauss-Jordan with partial pivoting).
pub fn invert(a: &[f64], d: usize) -> Result<Vec<f64>> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; d * d];
    (0..d).for_each(|i| inv[i * d + i] = 1.0);
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| m[i * d + c].abs().total_cmp(&m[j * d + c].abs())).unwrap();
        if m[p * d + c].abs() < 1e-300 || !m[p * d + c].is_finite() {
            return Err(Error::Data("singular or non-finite matrix in an invertible linear layer".into()));
        }
        for k in 0..d {
            m.swap(c * d + k, p * d + k);
            inv.swap(c * d + k, p * d + k);
        }
        let f = 1.0 / m[c * d + c];
        for k in 0..d {
            m[c * d + k] *= f;
            inv[c * d + k] *= f;
        }
        for r in 0..d {
            if r != c {
                let g = m[r * d + c];
                for k in 0..d {
                    m[r * d + k] -= g * m[c * d + k];
                    inv[r * d + k] -= g * inv[c * d + k];
                }
            }
        }
    }
    Ok(inv)
}

impl LuLinear {
    pub fn new(name: &str, d: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<LuLinear> {
        // The host's d x d work matrices (q, l, u), before they are allocated.
        crate::build_budget::take_shape(&[3, d, d])?;
        let q = random_orthogonal(d, rng);
        let (piv, l, u) = lu_decompose(&q, d);
        // W = P (L U) with W[piv[i]] = (LU)[i]: P[piv[i], i] = 1.
        let mut p = vec![0.0f32; d * d];
        for (i, &r) in piv.iter().enumerate() {
            p[r * d + i] = 1.0;
        }
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let diag: Vec<f64> = (0..d).map(|i| u[i * d + i]).collect();
        let strict_u: Vec<f64> = (0..d * d).map(|i| if i % d > i / d { u[i] } else { 0.0 }).collect();
        let strict_l: Vec<f64> = (0..d * d).map(|i| if i % d < i / d { l[i] } else { 0.0 }).collect();
        Ok(LuLinear {
            d,
            lower: Var::new(&format!("{name}.lower"), Tensor::from_vec(f(strict_l), &[d, d], dev)?),
            upper: Var::new(&format!("{name}.upper"), Tensor::from_vec(f(strict_u), &[d, d], dev)?),
            log_s: Var::new(
                &format!("{name}.log_s"),
                Tensor::from_vec(diag.iter().map(|s| s.abs().ln() as f32).collect(), &[d], dev)?,
            ),
            perm: Var::new(&format!("{name}.perm"), Tensor::from_vec(p, &[d, d], dev)?),
            sign: Var::new(
                &format!("{name}.sign"),
                Tensor::from_vec(diag.iter().map(|s| s.signum() as f32).collect(), &[d], dev)?,
            ),
        })
    }

    /// (W = P L (U + diag(sign exp(log_s))), log|det W| = sum log_s), differentiable in lower, upper and log_s.
    pub fn weight_and_logdet(&self) -> Result<(Tensor, Tensor)> {
        lu_weight(&self.lower.get(), &self.upper.get(), &self.log_s.get(), &self.perm.get(), &self.sign.get())
    }

    /// W = P L (U + diag(sign exp(log_s))).
    pub fn weight(&self) -> Result<Tensor> {
        Ok(self.weight_and_logdet()?.0)
    }

    /// x [B, D] -> (x W, log|det W|) with the log-det a scalar tensor (the same for every row).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.lower);
        let (w, ld) = self.weight_and_logdet()?;
        Ok((x.matmul(&w)?, ld))
    }

    /// The inverse matrix W^-1, computed on the host in f64 (D x D, once per sampling call).
    pub fn inverse_weight(&self) -> Result<Tensor> {
        let w = crate::autodiff::no_grad(|| self.weight())?;
        let dev = w.device().clone();
        let w64: Vec<f64> = w.to_vec()?.into_iter().map(f64::from).collect();
        let inv = invert(&w64, self.d)?;
        Tensor::from_vec(inv.into_iter().map(|x| x as f32).collect(), &[self.d, self.d], &dev)
    }
}

impl Module for LuLinear {
    fn vars(&self) -> Vec<Var> {
        vec![self.lower.clone(), self.upper.clone(), self.log_s.clone()]
    }
    fn buffers(&self) -> Vec<Var> {
        vec![self.perm.clone(), self.sign.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lu_reconstructs_the_orthogonal_init() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let d = 7;
        let q = random_orthogonal(d, &mut rng);
        let lu = LuLinear::new("t", d, &mut rand::rngs::StdRng::seed_from_u64(4), &Device::Cpu).unwrap();
        let w = lu.weight().unwrap().to_vec().unwrap();
        for (a, b) in w.iter().zip(&q) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Orthogonal: |det| = 1, so sum log_s = 0.
        let ld = lu.log_s.get().sum_all().unwrap().item().unwrap();
        assert!(ld.abs() < 1e-4, "{ld}");
        let inv = invert(&q, d).unwrap();
        for i in 0..d {
            for j in 0..d {
                assert!((inv[i * d + j] - q[j * d + i]).abs() < 1e-10);
            }
        }
    }
}
