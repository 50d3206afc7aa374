//! `gforge selftest`: every op, forward and backward, on a device against the CPU reference, on random
//! odd-sized inputs, with GPU outputs poisoned (NaN) before each launch. The same case list drives the
//! parity tests (tests/parity.rs) and the finite-difference gradient tests (tests/gradcheck.rs).
use crate::backend::{self, Device};
use crate::error::Result;
use crate::ops::gather::Indices;
use crate::ops::linear::Act;
use crate::ops::matmul::matmul_t;
use crate::ops::sos::SosCfg;
use crate::ops::spline::SplineCfg;
use crate::optim::{Adam, AdamConfig, AdamKind};
use crate::{autodiff, Tensor, Var};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Relative error allowed between a device and the CPU: f32 rounding in a different summation order,
/// and the GPU's exp/log approximations (about 2 ulp), stay well under it.
pub const TOL: f64 = 1e-5;

type OpFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync>;

/// One op under test: inputs drawn uniformly from `range` with the given shapes.
pub struct Case {
    pub name: String,
    pub shapes: Vec<Vec<usize>>,
    pub range: (f32, f32),
    /// Piecewise linear with kinks (relu, max, ...): finite differences must step over no kink.
    pub kinks: bool,
    /// False for ops with no backward (inverse transforms): gradient checks skip them.
    pub grad: bool,
    /// Relative error allowed against the CPU ([`TOL`] unless the op's conditioning says otherwise).
    pub tol: f64,
    pub f: OpFn,
}

/// A [`Case`] with the defaults its name implies: kinks for piecewise-linear ops, no gradient for inverses.
pub fn case(
    name: &str,
    shapes: &[&[usize]],
    range: (f32, f32),
    f: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) -> Case {
    // Splines are C1 in x but their log-determinant has kinks at the knots.
    let kinks =
        ["relu", "leaky_relu", "max", "maximum", "minimum", "spline"].iter().any(|k| name.split(' ').next() == Some(k));
    let grad = !name.contains("inverse");
    Case {
        name: name.into(),
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        range,
        kinks,
        grad,
        tol: TOL,
        f: Box::new(f),
    }
}

/// Indices with repeats (so scatter-add must accumulate) for an axis of length `bound`.
fn indices(n: usize, bound: usize, device: &Device) -> Result<Indices> {
    let idx: Vec<u32> = (0..n).map(|j| ((j * 7 + 3) % bound) as u32).collect();
    Indices::new(&idx, bound, device)
}

/// Every primitive op. Sizes are odd and never multiples of the 256-thread blocks or 64-wide tiles.
pub fn cases() -> Vec<Case> {
    use crate::ops::unary::UnaryOp::*;
    let sym = (-3.0, 3.0);
    let pos = (0.2, 3.0);
    let mut v = Vec::new();
    for (name, op, range) in [
        ("exp", Exp, sym),
        ("log", Log, pos),
        ("tanh", Tanh, sym),
        ("sigmoid", Sigmoid, sym),
        ("softplus", Softplus, sym),
        ("relu", Relu, sym),
        ("leaky_relu", LeakyRelu(0.2), sym),
        ("square", Square, sym),
        ("sqrt", Sqrt, pos),
        ("affine", Affine(-1.5, 0.25), sym),
    ] {
        v.push(case(name, &[&[37, 53]], range, move |x| x[0].unary(op)));
    }
    v.push(case("add (broadcast)", &[&[7, 1, 33], &[5, 33]], sym, |x| x[0].add(&x[1])));
    v.push(case("sub (broadcast)", &[&[5, 33], &[7, 1, 33]], sym, |x| x[0].sub(&x[1])));
    v.push(case("mul (broadcast)", &[&[3, 7, 5, 9], &[7, 1, 9]], sym, |x| x[0].mul(&x[1])));
    v.push(case("div", &[&[37, 53], &[37, 53]], pos, |x| x[0].div(&x[1])));
    v.push(case("maximum (broadcast)", &[&[41, 13], &[13]], sym, |x| x[0].maximum(&x[1])));
    v.push(case("minimum (scalar)", &[&[41, 13], &[]], sym, |x| x[0].minimum(&x[1])));
    v.push(case("broadcast_to", &[&[1, 33]], sym, |x| x[0].broadcast_to(&[19, 33])));
    v.push(case("matmul", &[&[67, 45], &[45, 71]], sym, |x| x[0].matmul(&x[1])));
    v.push(case("matmul A^T B", &[&[45, 67], &[45, 71]], sym, |x| matmul_t(&x[0], &x[1], true, false)));
    v.push(case("matmul A B^T", &[&[67, 45], &[71, 45]], sym, |x| matmul_t(&x[0], &x[1], false, true)));
    v.push(case("matmul A^T B^T", &[&[45, 67], &[71, 45]], sym, |x| matmul_t(&x[0], &x[1], true, true)));
    // The fused dense layer: on a GPU the composite of matmul, add and the activation, on the CPU one op, so
    // this row checks the fused CPU path against the composite one.
    for (name, act) in
        [("linear", Act::Identity), ("linear relu", Act::Relu), ("linear leaky_relu", Act::LeakyRelu(0.2))]
    {
        let mut c = case(name, &[&[67, 45], &[45, 71], &[71]], sym, move |x| x[0].linear(&x[1], &x[2], act));
        c.kinks = act != Act::Identity;
        v.push(c);
    }
    v.push(case("bmm", &[&[3, 33, 17], &[3, 17, 29]], sym, |x| x[0].matmul(&x[1])));
    v.push(case("bmm (broadcast B)", &[&[3, 33, 17], &[17, 29]], sym, |x| x[0].matmul(&x[1])));
    v.push(case("bmm (broadcast A)", &[&[33, 17], &[2, 3, 17, 29]], sym, |x| x[0].matmul(&x[1])));
    v.push(case("sum (rows)", &[&[13, 301]], sym, |x| x[0].sum(-1)));
    v.push(case("sum (cols)", &[&[7, 45, 11]], sym, |x| x[0].sum(1)));
    v.push(case("mean (rows)", &[&[13, 301]], sym, |x| x[0].mean(-1)));
    v.push(case("mean (cols)", &[&[7, 45, 11]], sym, |x| x[0].mean(1)));
    v.push(case("max (rows)", &[&[13, 301]], sym, |x| x[0].max(-1)));
    v.push(case("max (cols)", &[&[7, 45, 11]], sym, |x| x[0].max(1)));
    v.push(case("logsumexp (rows)", &[&[13, 301]], sym, |x| x[0].logsumexp(-1)));
    v.push(case("logsumexp (cols)", &[&[7, 45, 11]], sym, |x| x[0].logsumexp(1)));
    v.push(case("sum_all", &[&[37, 53]], sym, |x| x[0].sum_all()));
    v.push(case("softmax (rows)", &[&[13, 301]], sym, |x| x[0].softmax(-1)));
    v.push(case("softmax (cols)", &[&[7, 45, 11]], sym, |x| x[0].softmax(1)));
    v.push(case("concat", &[&[5, 7, 3], &[5, 2, 3], &[5, 11, 3]], sym, |x| Tensor::concat(&[&x[0], &x[1], &x[2]], 1)));
    v.push(case("split/narrow", &[&[5, 20, 3]], sym, |x| {
        let p = x[0].split(&[7, 2, 11], 1)?;
        // Weight the parts differently so each part's gradient is checked.
        Tensor::concat(&[&p[2], &p[0].scale(2.0)?], 1)
    }));
    v.push(case("transpose", &[&[3, 37, 45]], sym, |x| x[0].transpose()));
    v.push(case("gather (axis 0)", &[&[41, 13]], sym, |x| x[0].gather(0, &indices(67, 41, x[0].device())?)));
    v.push(case("gather (axis 1)", &[&[5, 41, 3]], sym, |x| x[0].gather(1, &indices(29, 41, x[0].device())?)));
    v.push(case("reshape", &[&[6, 35]], sym, |x| x[0].reshape(&[5, 42])?.square()));
    // Splines: x over [-3.5, 3.5] so some elements fall in the identity tails; raw parameters over the same range.
    // The raw parameters are halved (to [-1.75, 1.75]): wider ones make bins ~1e-3 wide, where the
    // gradients scale like 1/W^2 and f32 cancellation in (x - X_k) / W and in the softmax backward costs any
    // backend ~1e-4 relative, and the inverse's quadratic root ~1e-5. Even at this range a knot carries an
    // error of ~ulp(B) (it is -B + 2B * a cumulative sum), which xi = (x - X_k) / W turns into ~ulp(B) / (x - X_k):
    // an element just inside a steep bin (W = 0.08, H = 2.1, xi = 0.02) puts 6e-5 on its gradient in each f32
    // backend, against an f64 reference, in opposite directions. Over 400 seeds the gradient's relative
    // GPU-CPU difference had median 7e-6, 99th percentile 1.5e-4 and maximum 4.8e-4 (K = 10; 2026-12-07),
    // hence 1e-3 (the inverse, no gradient, stays at 1e-4). A 5% error in one term of one partial (d ld / d δk+1)
    // still measures 2e-3 to 3e-3 and fails.
    let wide = (-3.5, 3.5);
    for (name, k, inverse) in [("spline K=10", 10, false), ("spline K=3", 3, false), ("spline inverse K=10", 10, true)]
    {
        let cfg = SplineCfg { bins: k, ..SplineCfg::default() };
        let mut c = case(name, &[&[37, 5], &[37, 5, 3 * k - 1]], wide, move |x| {
            let run = || x[0].rq_spline(&x[1].scale(0.5)?, &cfg, inverse);
            let (y, ld) = if inverse { autodiff::no_grad(run)? } else { run()? };
            Tensor::concat(&[&y, &ld], 0)
        });
        c.tol = if inverse { 1e-4 } else { 1e-3 };
        v.push(c);
    }
    // SOS transform: x in [-1.75, 1.75] (the range scaled by 0.5), coefficients in [-0.875, 0.875]; the
    // inverse bisects 40 times on [-11, 11]. Degree-9 polynomials in x sum terms of both signs, so f32
    // rounding costs ~1e-6 relative (under 3e-6 in the worst of 100 seeds), hence 1e-4.
    for (name, k, r, inverse) in
        [("sos K=3 r=4", 3, 4, false), ("sos K=2 r=2", 2, 2, false), ("sos inverse K=3 r=4", 3, 4, true)]
    {
        let cfg = SosCfg { polynomials: k, degree: r, ..SosCfg::default() };
        let mut c = case(name, &[&[37, 5], &[37, 5, k * (r + 1) + 1]], wide, move |x| {
            let run = || x[0].scale(0.5)?.sos_transform(&x[1].scale(0.25)?, &cfg, inverse);
            let (y, ld) = if inverse { autodiff::no_grad(run)? } else { run()? };
            Tensor::concat(&[&y, &ld], 0)
        });
        c.tol = 1e-4;
        v.push(c);
    }
    // MADE's masked linear: a fixed 0/1 mask (a constant, so not an input the gradient check would perturb).
    for (name, xs) in [("masked_linear", &[67usize, 45][..]), ("masked_linear (batched)", &[3, 13, 45][..])] {
        v.push(case(name, &[xs, &[45, 71], &[71]], sym, |x| {
            let m: Vec<f32> = (0..45 * 71).map(|i| ((i / 71 * 7 + i % 71 * 3) % 5 < 3) as u8 as f32).collect();
            x[0].masked_linear(&x[1], &Tensor::from_vec(m, &[45, 71], x[0].device())?, &x[2])
        }));
    }
    // A whole MADE layer (fused on the CPU): no context, a context row per sample, one broadcast context row.
    let made_mask = |dev: &crate::Device| {
        let m: Vec<f32> = (0..45 * 71).map(|i| ((i / 71 * 5 + i % 71 * 3) % 7 < 4) as u8 as f32).collect();
        Tensor::from_vec(m, &[45, 71], dev)
    };
    let mut c = case("made_layer relu", &[&[67, 45], &[45, 71], &[71]], sym, move |x| {
        x[0].made_layer(&x[1], &made_mask(x[0].device())?, &x[2], None, Act::Relu)
    });
    c.kinks = true;
    v.push(c);
    for (name, rows) in [("made_layer (context)", 67), ("made_layer (one context row)", 1)] {
        v.push(case(name, &[&[67, 45], &[45, 71], &[71], &[rows, 6], &[6, 71]], sym, move |x| {
            x[0].made_layer(&x[1], &made_mask(x[0].device())?, &x[2], Some((&x[3], &x[4])), Act::Identity)
        }));
    }
    // Couplings: 9 features, 4 passing; compact masks read 5 columns per kind, dense ones 9. The packed output
    // (y, ld) is checked whole; raw log-scales are halved where unclamped so exp stays moderate.
    use crate::ops::coupling::{CouplingKind, CouplingMask};
    let cmask = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
    for (name, w, kind, dense, inverse) in [
        ("coupling affine clamp", 10, CouplingKind::Affine { clamp: Some(3.0) }, false, false),
        ("coupling affine", 10, CouplingKind::Affine { clamp: None }, false, false),
        ("coupling additive", 5, CouplingKind::Additive, false, false),
        ("coupling affine dense", 18, CouplingKind::Affine { clamp: Some(2.0) }, true, false),
        ("coupling inverse affine clamp", 10, CouplingKind::Affine { clamp: Some(3.0) }, false, true),
        ("coupling inverse additive", 5, CouplingKind::Additive, false, true),
    ] {
        v.push(case(name, &[&[37, 9], &[37, w]], sym, move |x| {
            let dev = x[0].device();
            let m = if dense { CouplingMask::dense(&cmask, dev)? } else { CouplingMask::new(&cmask, dev)? };
            let run = || x[0].coupling(&x[1].scale(0.5)?, &m, kind, inverse);
            let (y, ld) = if inverse { autodiff::no_grad(run)? } else { run()? };
            Tensor::concat(&[&y, &ld.reshape(&[37, 1])?], 1)
        }));
    }
    // Soft-clip at B = 2.5 over (-3.5, 3.5): |x| / B reaches 1.4; |x| puts a kink at 0 in ld. The inverse's
    // inputs (0.7 x, within ±2.45) stay inside (-3.5, 3.5): at the edge 1 - |y| / B cancels, and an fma
    // contracted on one backend would differ there by far more than rounding.
    let mut c = case("softclip", &[&[37, 53]], wide, |x| {
        let (y, ld) = x[0].softclip(2.5, false)?;
        Tensor::concat(&[&y, &ld], 0)
    });
    c.kinks = true;
    v.push(c);
    v.push(case("softclip inverse", &[&[37, 53]], wide, |x| {
        let (y, ld) = autodiff::no_grad(|| x[0].scale(0.7)?.softclip(3.5, true))?;
        Tensor::concat(&[&y, &ld], 0)
    }));
    // LU weight for D = 17 (289 + 1 threads: two blocks), a fixed permutation and mixed signs.
    v.push(case("lu_weight", &[&[17, 17], &[17, 17], &[17]], sym, |x| {
        let (d, dev) = (17, x[0].device());
        let mut perm = vec![0.0f32; d * d];
        (0..d).for_each(|i| perm[i * d + (i * 5 + 3) % d] = 1.0);
        let sign: Vec<f32> = (0..d).map(|i| if i % 3 == 1 { -1.0 } else { 1.0 }).collect();
        let (perm, sign) = (Tensor::from_vec(perm, &[d, d], dev)?, Tensor::from_vec(sign, &[d], dev)?);
        // Entries scaled so W stays O(1) (the log-scales by 0.25: exp stays within e^±0.75).
        let (w, ld) =
            crate::ops::lu::lu_weight(&x[0].scale(0.3)?, &x[1].scale(0.3)?, &x[2].scale(0.25)?, &perm, &sign)?;
        Tensor::concat(&[&w.reshape(&[d * d])?, &ld.reshape(&[1])?], 0)
    }));
    // Convolutions: the autoencoder's k4 s2 p1 both ways, k3 s1 p1, k1, a stride that leaves the last input
    // row unread (its dx is 0), and one with 67 output channels over 338 positions (several 64-wide tiles;
    // the GPU weight gradient is split over the positions).
    for (name, xs, ws, s, pd, bias) in [
        ("conv2d k4s2p1", [2, 3, 11, 11], [5, 3, 4, 4], 2, 1, true),
        ("conv2d k4s2p1 nobias", [2, 3, 9, 9], [5, 3, 4, 4], 2, 1, false),
        ("conv2d k3s1p1", [2, 3, 9, 9], [5, 3, 3, 3], 1, 1, true),
        ("conv2d k1s1p0", [2, 3, 9, 11], [5, 3, 1, 1], 1, 0, true),
        ("conv2d k3s2p0 nobias", [2, 3, 10, 9], [5, 3, 3, 3], 2, 0, false),
        ("conv2d 5->67 k3s1p1", [2, 5, 13, 13], [67, 5, 3, 3], 1, 1, true),
        ("convT2d k4s2p1", [2, 3, 9, 9], [3, 5, 4, 4], 2, 1, true),
        ("convT2d k4s2p1 nobias", [2, 5, 7, 7], [5, 3, 4, 4], 2, 1, false),
        ("convT2d k3s1p1", [2, 3, 9, 9], [3, 5, 3, 3], 1, 1, true),
        ("convT2d 67->5 k4s2p1", [2, 67, 5, 5], [67, 5, 4, 4], 2, 1, true),
    ] {
        let transposed = name.starts_with("convT");
        let cout = if transposed { ws[1] } else { ws[0] };
        let bshape = [cout];
        let shapes: Vec<&[usize]> = if bias { vec![&xs, &ws, &bshape] } else { vec![&xs, &ws] };
        v.push(case(name, &shapes, sym, move |x| {
            if transposed {
                x[0].conv_transpose2d(&x[1], x.get(2), s, pd)
            } else {
                x[0].conv2d(&x[1], x.get(2), s, pd)
            }
        }));
    }
    // HIGlow's image-flow ops. A 1x1 convolution over 5 channels of 7 x 9 pixels, both ways.
    for (name, t) in [("inv_conv1x1", false), ("inv_conv1x1 W^T", true)] {
        v.push(case(name, &[&[3, 5, 7, 9], &[5, 5]], sym, move |x| x[0].inv_conv1x1(&x[1], t)));
    }
    // The injector's raw log-scales scaled into (-0.9, 0.9), inside its clamp, so finite differences see the
    // straight-through gradient's true derivative; the inverse rows clamp at ±0.5 with scales up to ±1.5.
    use crate::ops::image_affine::AffineKind;
    for (name, kind, c, tscale) in [
        ("image_affine injector", AffineKind::Injector { lo: -1.0, hi: 1.0 }, 5, 0.3),
        ("image_affine injector inverse", AffineKind::Injector { lo: -0.5, hi: 0.5 }, 5, 0.5),
        ("image_affine coupling", AffineKind::Coupling { floor: 0.5 }, 6, 1.0),
        ("image_affine coupling floor 0", AffineKind::Coupling { floor: 0.0 }, 6, 1.0),
        ("image_affine coupling inverse", AffineKind::Coupling { floor: 0.5 }, 6, 1.0),
    ] {
        let tc = if matches!(kind, AffineKind::Injector { .. }) { 2 * c } else { c };
        let inverse = name.contains("inverse");
        v.push(case(name, &[&[3, c, 7, 9], &[3, tc, 7, 9]], sym, move |x| {
            let run = || x[0].image_affine(&x[1].scale(tscale)?, kind, inverse);
            let (y, ls) = if inverse { autodiff::no_grad(run)? } else { run()? };
            Tensor::concat(&[&y.reshape(&[y.numel()])?, &ls.reshape(&[ls.numel()])?], 0)
        }));
    }
    v.push(case("logdet_rows", &[&[3, 5, 7, 9]], sym, |x| x[0].logdet_rows()));
    v.push(case("squeeze2x2", &[&[3, 5, 6, 10]], sym, |x| x[0].squeeze2x2()));
    v.push(case("unsqueeze2x2", &[&[3, 8, 5, 7]], sym, |x| x[0].unsqueeze2x2()));
    v.push(case("pad2d (ones)", &[&[3, 5, 7, 9]], sym, |x| x[0].pad2d(1, 1.0)));
    // Stride 2 with a 1x1 kernel: the odd output rows and columns meet no tap (bias only on the GPU's phase
    // split), and output_padding adds a last row and column of them.
    v.push(case("convT2d k1s2p0 op1", &[&[2, 3, 5, 4], &[3, 5, 1, 1], &[5]], sym, |x| {
        x[0].conv_transpose2d_out(&x[1], Some(&x[2]), 2, 0, 1)
    }));
    v
}

/// Random inputs of a case, drawn on the host.
pub fn inputs(c: &Case, rng: &mut StdRng) -> Vec<Vec<f32>> {
    c.shapes
        .iter()
        .map(|s| (0..s.iter().product::<usize>()).map(|_| rng.random_range(c.range.0..c.range.1)).collect())
        .collect()
}

/// ||a - b|| / ||b|| in f64 (NaN anywhere gives NaN: it never passes).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        if !x.is_finite() || !y.is_finite() {
            return f64::NAN;
        }
        num += (f64::from(x) - f64::from(y)).powi(2);
        den += f64::from(y).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// ||a - b|| / max(||b||, floor) in f64 (NaN anywhere, or different lengths, give NaN: it never passes):
/// the relative error, except where b's norm has cancelled below the size rounding can reach.
fn grad_err(a: &[f32], b: &[f32], floor: f64) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let diff = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>().sqrt();
    let norm = b.iter().map(|&y| f64::from(y).powi(2)).sum::<f64>().sqrt();
    // Equal (empty or all-zero) results have no error, whatever their norm.
    if diff == 0.0 {
        0.0
    } else {
        diff / norm.max(floor)
    }
}

/// Output and input gradients of `loss = sum(f(x) * w)` on one device.
pub fn eval(c: &Case, xs: &[Vec<f32>], w: &[f32], device: &Device) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let leaves: Vec<Tensor> = xs
        .iter()
        .zip(&c.shapes)
        .map(|(x, s)| Ok(Tensor::from_slice(x, s, device)?.requires_grad()))
        .collect::<Result<_>>()?;
    let out = (c.f)(&leaves)?;
    let wt = Tensor::from_slice(w, out.shape(), device)?;
    let loss = out.mul(&wt)?.sum_all()?;
    let grads = autodiff::backward(&loss)?;
    let gs = leaves
        .iter()
        .map(|l| match grads.get(l) {
            Some(g) => g.to_vec(),
            None => Ok(vec![0.0; l.numel()]),
        })
        .collect::<Result<_>>()?;
    Ok((out.to_vec()?, gs))
}

/// The output shape of a case (run once on the CPU).
pub fn out_len(c: &Case, xs: &[Vec<f32>]) -> Result<usize> {
    let ts: Vec<Tensor> =
        xs.iter().zip(&c.shapes).map(|(x, s)| Tensor::from_slice(x, s, &Device::Cpu)).collect::<Result<_>>()?;
    Ok((c.f)(&ts)?.numel())
}

pub struct Row {
    pub op: String,
    pub fwd: f64,
    pub bwd: f64,
    pub error: Option<String>,
    pub tol: f64,
}

impl Row {
    pub fn pass(&self) -> bool {
        self.error.is_none() && self.fwd < self.tol && self.bwd < self.tol
    }
}

fn compare(c: &Case, device: &Device, rng: &mut StdRng) -> Row {
    let mut run = || -> Result<(f64, f64)> {
        let xs = inputs(c, rng);
        let w: Vec<f32> = (0..out_len(c, &xs)?).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (ref_out, ref_g) = eval(c, &xs, &w, &Device::Cpu)?;
        let (out, g) = eval(c, &xs, &w, device)?;
        // An input that gathers many output terms (a broadcast scalar: 533 of them in "minimum (scalar)")
        // gets a sum of weights of random sign, which now and then cancels to near zero; two summation
        // orders then differ by f32 rounding far above TOL relative to it (a seed-dependent failure of
        // earlier sessions). Errors are measured against at least a tenth of such a sum's typical size,
        // 0.1 sqrt(outputs): a wrong rule errs by O(1) of that size and still fails.
        // The forward likewise: a scalar output (sum_all of 1961 values) can cancel to near zero, so its
        // error is measured against at least 0.1 sqrt(inputs).
        let floor = 0.1 * (w.len() as f64).sqrt();
        let bwd = ref_g.iter().zip(&g).map(|(r, d)| grad_err(d, r, floor)).fold(0.0, f64::max);
        let in_floor = 0.1 * (xs.iter().map(Vec::len).sum::<usize>() as f64).sqrt();
        Ok((grad_err(&out, &ref_out, in_floor), bwd))
    };
    match run() {
        Ok((fwd, bwd)) => Row { op: c.name.clone(), fwd, bwd, error: None, tol: c.tol },
        Err(e) => Row { op: c.name.clone(), fwd: f64::NAN, bwd: f64::NAN, error: Some(e.to_string()), tol: c.tol },
    }
}

/// One Adam-family step on the device against the CPU (the optimiser kernel).
fn optim_row(kind: AdamKind, device: &Device, rng: &mut StdRng) -> Row {
    let name = format!("{kind:?} step").to_lowercase();
    let mut run = || -> Result<f64> {
        let n = 1001;
        let x: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let g: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut outs = Vec::new();
        for dev in [&Device::Cpu, device] {
            let var = Var::new("w", Tensor::from_slice(&x, &[n], dev)?);
            let mut opt =
                Adam::new(vec![var.clone()], AdamConfig { weight_decay: 0.01, ..AdamConfig::new(kind, 0.01) });
            // Several steps so the moments and RAdam's rectification both come into play.
            for _ in 0..7 {
                let mut grads = autodiff::Grads::default();
                grads.insert(&var.get(), Tensor::from_slice(&g, &[n], dev)?);
                opt.step(&grads)?;
            }
            outs.push(var.get().to_vec()?);
        }
        Ok(rel_err(&outs[1], &outs[0]))
    };
    match run() {
        Ok(e) => Row { op: name, fwd: e, bwd: 0.0, error: None, tol: TOL },
        Err(e) => Row { op: name, fwd: f64::NAN, bwd: f64::NAN, error: Some(e.to_string()), tol: TOL },
    }
}

/// Runs every case on `device` against the CPU. Output poisoning is on for the run (on this thread).
pub fn run(device: &Device, seed: u64) -> Vec<Row> {
    backend::with_poison(|| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rows = run_cases(&cases(), device, &mut rng);
        for kind in [AdamKind::Adam, AdamKind::AdamW, AdamKind::RAdam] {
            rows.push(optim_row(kind, device, &mut rng));
        }
        rows
    })
}

/// Runs `cases` on `device` against the CPU, with output poisoning on (the launch-limit tests run their own
/// cases through this too).
pub fn run_cases(cases: &[Case], device: &Device, rng: &mut StdRng) -> Vec<Row> {
    backend::with_poison(|| cases.iter().map(|c| compare(c, device, rng)).collect())
}

/// The table `gforge selftest` prints.
pub fn table(device: &Device, rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut s = format!("selftest on {device} against cpu (pass: relative error < tol)\n");
    writeln!(s, "{:<22} {:>5} {:>12} {:>12} {:>8}", "op", "pass", "fwd rel err", "bwd rel err", "tol").unwrap();
    for r in rows {
        let mark = if r.pass() { "ok" } else { "FAIL" };
        writeln!(s, "{:<22} {:>5} {:>12.2e} {:>12.2e} {:>8.0e}", r.op, mark, r.fwd, r.bwd, r.tol).unwrap();
        if let Some(e) = &r.error {
            writeln!(s, "    error: {e}").unwrap();
        }
    }
    let failed = rows.iter().filter(|r| !r.pass()).count();
    writeln!(s, "{} passed, {} failed", rows.len() - failed, failed).unwrap();
    s
}
