//! The two per-pixel affine transforms of a conditional Glow step, with their log-scales, in one family.
//! x [N, C, H, W]; the first P channels pass unchanged, the other C' = C - P are transformed with per-pixel
//! parameters read from theta [N, 2C', H, W] (a conditioner net's output, so no split is needed): the raw
//! scale r at channel r_off + j and the shift t at channel t_off + j, for transformed channel j.
//!
//! ```text
//! injector (conditional actnorm, SRFlow's affine injector; P = 0, t_off = 0, r_off = C):
//!   s = clamp(r, lo, hi)            y = x e^s + t          ls = s
//!   inverse: x = (y - t) e^-s, ls = -s
//! coupling (Glow's affine coupling with HIGlow's floor m; P = C/2, r_off = 0, t_off = C'):
//!   s = (1 - m) sigmoid(r + 2) + m  y = (x + t) s          ls = log s
//!   inverse: x = y / s - t, ls = -log s
//! ```
//! The op returns y and the per-element log-scales ls [N, C', H, W]; a layer's log-determinant is the
//! per-sample sum of ls (`Tensor::logdet_rows`, the reduce family's row sum, one kernel family shared by
//! every layer). y and ls go out as one packed buffer [y (N C H W), ls (N C' H W)], so the tape sees one
//! op and its backward is one launch.
//!
//! Backward of the forward direction, (gy, gls) the two parts of the packed upstream gradient:
//!   injector: gx = gy e^s;  gt = gy;  gr = gy x e^s + gls   (the clamp is straight-through, as HIGlow's
//!             _diff_clamp: the forward clamps, the gradient passes unchanged);
//!   coupling: gx = gy s;  gt = gy s;  gr = (gy (x + t) + gls / s) (1 - m) u (1 - u), u = sigmoid(r + 2);
//!   passing channels: gx = gy.
//! Kernels: kernels/image_affine.ptx, wgsl/image_affine.wgsl; one thread per element of x forward and
//! backward (a transformed element's thread also writes its two theta gradients).
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the image_affine kernels (48 bytes).
    #[derive(Default)]
    pub struct Params for [("image_affine", "image_affine_fwd"), ("image_affine", "image_affine_bwd")] {
        pub batch: u32,
        pub c: u32,
        pub hw: u32,
        /// Leading channels that pass unchanged.
        pub pass: u32,
        /// 0 injector, 1 coupling.
        pub kind: u32,
        pub inverse: u32,
        pub r_off: u32,
        pub t_off: u32,
        /// Injector: the clamp of s. Coupling: `lo` is the floor m of the scale.
        pub lo: f32,
        pub hi: f32,
        pub pad0: u32,
        pub pad1: u32,
    }
}

impl Params {
    /// x [batch, c, hw] whose first `pass` channels pass, theta [batch, 2 (c - pass), hw] read at channel offsets
    /// `r_off` and `t_off`, the packed output [x, ls [batch, c - pass, hw]].
    pub(crate) fn new(
        [batch, c, hw, pass]: [usize; 4],
        kind: u32,
        (r_off, t_off): (usize, usize),
        (lo, hi): (f32, f32),
        inverse: bool,
    ) -> Result<Params> {
        let ct = c.saturating_sub(pass);
        let counts = [batch * 2 * ct * hw, batch * (c + ct) * hw];
        let [_, _, batch, c, hw, pass, r_off, t_off] =
            u32s("image_affine", [counts[0], counts[1], batch, c, hw, pass, r_off, t_off])?;
        let inverse = inverse as u32;
        Ok(Params { batch, c, hw, pass, kind, inverse, r_off, t_off, lo, hi, ..Params::default() })
    }
}

/// Which transform, with its constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AffineKind {
    /// y = x exp(clamp(r, lo, hi)) + t over every channel.
    Injector { lo: f32, hi: f32 },
    /// The first half of the channels pass; y_b = (x_b + t) ((1 - floor) sigmoid(r + 2) + floor).
    Coupling { floor: f32 },
}

impl Tensor {
    /// The transform of `self` [N, C, H, W] with parameters `theta` [N, 2C', H, W]: returns (y like x,
    /// ls [N, C', H, W]). `inverse` maps y back (ls is then log|dx/dy|) and is not differentiable.
    pub fn image_affine(&self, theta: &Tensor, kind: AffineKind, inverse: bool) -> Result<(Tensor, Tensor)> {
        self.check_same_device(theta)?;
        if self.rank() != 4 {
            return Err(Error::shape("image_affine", format!("x must be [N, C, H, W], got {:?}", self.shape())));
        }
        let s = self.shape().to_vec();
        let (batch, c, hw) = (s[0], s[1], s[2] * s[3]);
        let (pass, kind_id, r_off, t_off, lo, hi) = match kind {
            AffineKind::Injector { lo, hi } => {
                // Written so that a NaN bound is refused too.
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(Error::Usage(format!("image_affine: clamp [{lo}, {hi}] is empty")));
                }
                (0, 0u32, c, 0, lo, hi)
            }
            AffineKind::Coupling { floor } => {
                if c % 2 != 0 {
                    return Err(Error::shape("image_affine", format!("coupling needs an even channel count, got {c}")));
                }
                if !(0.0..1.0).contains(&floor) {
                    return Err(Error::Usage(format!("image_affine: the scale floor must be in [0, 1), got {floor}")));
                }
                (c / 2, 1, 0, c / 2, floor, 0.0)
            }
        };
        let ct = c - pass;
        if theta.shape() != [batch, 2 * ct, s[2], s[3]] {
            return Err(Error::shape(
                "image_affine",
                format!("theta {:?} for x {:?} must be [{batch}, {}, {}, {}]", theta.shape(), s, 2 * ct, s[2], s[3]),
            ));
        }
        if inverse && crate::autodiff::recording() && (self.tracks() || theta.tracks()) {
            return Err(Error::Usage("the inverse image_affine is not differentiable: run it under no_grad".into()));
        }
        let p = Params::new([batch, c, hw, pass], kind_id, (r_off, t_off), (lo, hi), inverse)?;
        let (nx, nl) = (batch * c * hw, batch * ct * hw);
        let dev = self.device();
        let storage = match (self.storage().cpu(), theta.storage().cpu()) {
            (Some(xv), Some(tv)) => Storage::Cpu(cpu::forward(&p, xv, tv)),
            _ => launch_out(
                dev,
                &Launch::elementwise("image_affine", "image_affine_fwd", &p, nx),
                &[self.storage(), theta.storage()],
                nx + nl,
            )?,
        };
        let packed = Tensor::from_op("image_affine", storage, vec![nx + nl], dev, &[self, theta], move |inp, _, g| {
            let (x, th) = (&inp[0], &inp[1]);
            let dev = x.device();
            let (gx, gth) = match (x.storage().cpu(), th.storage().cpu(), g.storage().cpu()) {
                (Some(xv), Some(tv), Some(gv)) => {
                    let (a, b) = cpu::backward(&p, xv, tv, gv);
                    (Storage::Cpu(a), Storage::Cpu(b))
                }
                _ => {
                    let (gx, gth) = (dev.alloc(x.numel())?, dev.alloc(th.numel())?);
                    let l = Launch::elementwise("image_affine", "image_affine_bwd", &p, nx);
                    dev.launch(&l, &[x.storage(), th.storage(), g.storage()], &[&gx, &gth])?;
                    (gx, gth)
                }
            };
            Ok(vec![Some(Tensor::from_storage(gx, x.shape(), dev)?), Some(Tensor::from_storage(gth, th.shape(), dev)?)])
        })?;
        Ok((packed.narrow(0, 0, nx)?.reshape(&s)?, packed.narrow(0, nx, nl)?.reshape(&[batch, ct, s[2], s[3]])?))
    }

    /// The per-sample log-determinant: the sum of every value of each sample, [N, ...] -> [N].
    pub fn logdet_rows(&self) -> Result<Tensor> {
        let n = self.shape().first().copied().unwrap_or(0);
        let m = self.numel() / n.max(1);
        self.reshape(&[n, m])?.sum(-1)
    }
}
