//! Gradient-norm clipping (torch.nn.utils.clip_grad_norm_): scales every gradient by
//! min(1, max_norm / (total_norm + 1e-6)), computed on the device without a host read.
use crate::autodiff::{no_grad, Grads, Var};
use crate::error::Result;
use crate::tensor::Tensor;

/// Clips the gradients of `vars` in `grads` in place; returns the total norm before clipping (a scalar
/// tensor on the device: reading it is the caller's choice).
pub fn clip_grad_norm(grads: &mut Grads, vars: &[Var], max_norm: f32) -> Result<Option<Tensor>> {
    no_grad(|| {
        let present: Vec<Tensor> = vars.iter().map(|v| v.get()).filter(|t| grads.get(t).is_some()).collect();
        let mut total: Option<Tensor> = None;
        for t in &present {
            let s = grads.get(t).unwrap().square()?.sum_all()?;
            total = Some(match total {
                Some(acc) => acc.add(&s)?,
                None => s,
            });
        }
        let Some(total) = total else { return Ok(None) };
        let norm = total.sqrt()?;
        let max = Tensor::scalar(max_norm, norm.device())?;
        let one = Tensor::scalar(1.0, norm.device())?;
        let factor = max.div(&norm.add_scalar(1e-6)?)?.minimum(&one)?;
        for t in &present {
            let g = grads.remove(t).unwrap();
            grads.insert(t, g.mul(&factor)?);
        }
        Ok(Some(norm))
    })
}
