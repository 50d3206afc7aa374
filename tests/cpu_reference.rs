//! The CPU reference of every op against brute force: textbook loops in f64, ndarray's own
//! broadcasting / axis reductions / concatenation, and analytic values.
use galactic_forge::ops::gather::Indices;
use galactic_forge::ops::matmul::{cpu::matmul_naive, matmul_t};
use galactic_forge::selftest::rel_err;
use galactic_forge::{Device, Tensor};
use ndarray::{Array, ArrayD, Axis, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const CPU: Device = Device::Cpu;

fn rand_array(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-2.0f32..2.0))
}

fn t(a: &ArrayD<f32>) -> Tensor {
    Tensor::from_ndarray(a, &CPU).unwrap()
}

fn close(a: &Tensor, b: &ArrayD<f32>, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "shape");
    let e = rel_err(&a.to_vec().unwrap(), &b.iter().copied().collect::<Vec<_>>());
    assert!(e <= tol, "relative error {e:e} > {tol:e}");
}

#[test]
fn matmul_matches_triple_loop_for_every_transpose_and_size() {
    let mut rng = StdRng::seed_from_u64(1);
    // The last size is large enough for the multithreaded gemm path.
    for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (67, 45, 71), (70, 80, 90)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = rand_array(&if ta { [k, m] } else { [m, k] }, &mut rng);
            let b = rand_array(&if tb { [n, k] } else { [k, n] }, &mut rng);
            let c = matmul_t(&t(&a), &t(&b), ta, tb).unwrap();
            let want = matmul_naive(a.as_slice().unwrap(), b.as_slice().unwrap(), m, n, k, ta, tb);
            let e = rel_err(&c.to_vec().unwrap(), &want);
            assert!(e < 1e-6, "m{m} n{n} k{k} ta{ta} tb{tb}: {e:e}");
        }
    }
}

#[test]
fn batched_matmul_is_per_batch_matmul_and_broadcasts() {
    let mut rng = StdRng::seed_from_u64(2);
    let a = rand_array(&[4, 6, 5], &mut rng);
    let b = rand_array(&[4, 5, 3], &mut rng);
    let b2 = rand_array(&[5, 3], &mut rng);
    let c = t(&a).matmul(&t(&b)).unwrap().to_vec().unwrap();
    let c2 = t(&a).matmul(&t(&b2)).unwrap().to_vec().unwrap();
    for i in 0..4 {
        let ai = a.index_axis(Axis(0), i).to_owned();
        let want = matmul_naive(
            ai.as_slice().unwrap(),
            b.index_axis(Axis(0), i).to_owned().as_slice().unwrap(),
            6,
            3,
            5,
            false,
            false,
        );
        assert!(rel_err(&c[i * 18..(i + 1) * 18], &want) < 1e-6);
        let want2 = matmul_naive(ai.as_slice().unwrap(), b2.as_slice().unwrap(), 6, 3, 5, false, false);
        assert!(rel_err(&c2[i * 18..(i + 1) * 18], &want2) < 1e-6);
    }
    assert!(t(&a).matmul(&t(&rand_array(&[3, 5, 3], &mut rng))).is_err(), "mismatched batch must be refused");
    assert!(t(&a).matmul(&t(&rand_array(&[4, 4, 3], &mut rng))).is_err(), "mismatched k must be refused");
}

#[test]
fn binary_ops_broadcast_like_ndarray() {
    let mut rng = StdRng::seed_from_u64(3);
    for (sa, sb) in [
        (vec![7, 1, 33], vec![5, 33]),
        (vec![3, 7, 5, 9], vec![7, 1, 9]),
        (vec![41, 13], vec![]),
        (vec![1], vec![4, 1, 2]),
    ] {
        let a = rand_array(&sa, &mut rng);
        let b = rand_array(&sb, &mut rng).mapv(|v| v.abs() + 0.5);
        close(&t(&a).add(&t(&b)).unwrap(), &(&a + &b), 1e-7);
        close(&t(&a).sub(&t(&b)).unwrap(), &(&a - &b), 1e-7);
        close(&t(&a).mul(&t(&b)).unwrap(), &(&a * &b), 1e-7);
        close(&t(&a).div(&t(&b)).unwrap(), &(&a / &b), 1e-7);
        let bb =
            b.broadcast(IxDyn(&galactic_forge::ops::binary::broadcast_shape(&sa, &sb).unwrap())).unwrap().to_owned();
        let ab = a.broadcast(bb.raw_dim()).unwrap().to_owned();
        let max = ndarray::Zip::from(&ab).and(&bb).map_collect(|x, y| x.max(*y));
        close(&t(&a).maximum(&t(&b)).unwrap(), &max, 0.0);
    }
    assert!(t(&rand_array(&[3, 4], &mut rng)).add(&t(&rand_array(&[5], &mut rng))).is_err());
}

#[test]
fn reductions_match_ndarray_along_every_axis() {
    let mut rng = StdRng::seed_from_u64(4);
    let a = rand_array(&[5, 7, 9], &mut rng);
    for ax in 0..3 {
        let x = t(&a);
        close(&x.sum(ax as isize).unwrap(), &a.sum_axis(Axis(ax)), 1e-6);
        close(&x.mean(ax as isize).unwrap(), &a.mean_axis(Axis(ax)).unwrap(), 1e-6);
        close(
            &x.max(ax as isize).unwrap(),
            &a.map_axis(Axis(ax), |v| v.fold(f32::NEG_INFINITY, |m, &x| m.max(x))),
            0.0,
        );
        let lse = a.map_axis(Axis(ax), |v| v.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln() as f32);
        close(&x.logsumexp(ax as isize).unwrap(), &lse, 1e-6);
    }
    // Analytic values: logsumexp(0, ln 3) = ln 4; logsumexp of -inf is -inf; keepdim keeps the axis.
    let v = Tensor::from_slice(&[0.0, 3f32.ln()], &[2], &CPU).unwrap();
    assert!((v.logsumexp(0).unwrap().item().unwrap() - 4f32.ln()).abs() < 1e-6);
    let ninf = Tensor::from_slice(&[f32::NEG_INFINITY; 3], &[3], &CPU).unwrap();
    assert_eq!(ninf.logsumexp(0).unwrap().item().unwrap(), f32::NEG_INFINITY);
    assert_eq!(t(&a).sum_keepdim(1).unwrap().shape(), &[5, 1, 9]);
    assert!(t(&a).sum(3).is_err() && t(&a).sum(-4).is_err());
}

#[test]
fn softmax_matches_formula_and_sums_to_one() {
    let mut rng = StdRng::seed_from_u64(5);
    let a = rand_array(&[4, 6, 5], &mut rng).mapv(|v| v * 20.0); // large values: needs the max shift
    for ax in 0..3 {
        let y = t(&a).softmax(ax as isize).unwrap();
        let mut want = a.mapv(f64::from);
        for mut lane in want.lanes_mut(Axis(ax)) {
            let m = lane.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            lane.mapv_inplace(|x| (x - m).exp());
            let s = lane.sum();
            lane.mapv_inplace(|x| x / s);
        }
        close(&y, &want.mapv(|v| v as f32), 1e-6);
    }
    let eq = Tensor::full(&[3, 8], 2.5, &CPU).unwrap().softmax(-1).unwrap().to_vec().unwrap();
    assert!(eq.iter().all(|&v| (v - 0.125).abs() < 1e-7));
}

#[test]
fn unary_ops_match_f64_maths() {
    let xs: Vec<f32> = (0..200).map(|i| -4.0 + 8.0 * i as f32 / 199.0).collect();
    let x = Tensor::from_slice(&xs, &[200], &CPU).unwrap();
    let check = |y: Tensor, f: &dyn Fn(f64) -> f64| {
        let want: Vec<f32> = xs.iter().map(|&v| f(f64::from(v)) as f32).collect();
        let e = rel_err(&y.to_vec().unwrap(), &want);
        assert!(e < 1e-6, "{e:e}");
    };
    check(x.exp().unwrap(), &f64::exp);
    check(x.tanh().unwrap(), &f64::tanh);
    check(x.sigmoid().unwrap(), &|v| 1.0 / (1.0 + (-v).exp()));
    check(x.softplus().unwrap(), &|v| v.exp().ln_1p());
    check(x.relu().unwrap(), &|v| v.max(0.0));
    check(x.leaky_relu(0.2).unwrap(), &|v| if v > 0.0 { v } else { 0.2 * v });
    check(x.square().unwrap(), &|v| v * v);
    check(x.affine(3.0, -1.0).unwrap(), &|v| 3.0 * v - 1.0);
    let p = x.abs_for_test();
    check(p.log().unwrap().exp().unwrap(), &|v| v.abs() + 0.1);
    check(p.sqrt().unwrap().square().unwrap(), &|v| v.abs() + 0.1);
    // Extremes: sigmoid and softplus stay finite and exact in the tails.
    let ext = Tensor::from_slice(&[-100.0, 100.0], &[2], &CPU).unwrap();
    assert_eq!(ext.sigmoid().unwrap().to_vec().unwrap(), vec![(-100f64).exp() as f32, 1.0]);
    assert_eq!(ext.softplus().unwrap().to_vec().unwrap()[1], 100.0);
}

trait AbsForTest {
    fn abs_for_test(&self) -> Tensor;
}
impl AbsForTest for Tensor {
    /// |x| + 0.1 through the ops under test's neighbours (square, sqrt): a positive input for log/sqrt.
    fn abs_for_test(&self) -> Tensor {
        let v: Vec<f32> = self.to_vec().unwrap().iter().map(|v| v.abs() + 0.1).collect();
        Tensor::from_slice(&v, self.shape(), &CPU).unwrap()
    }
}

#[test]
fn layout_ops_match_ndarray() {
    let mut rng = StdRng::seed_from_u64(6);
    let (a, b, c) =
        (rand_array(&[5, 7, 3], &mut rng), rand_array(&[5, 2, 3], &mut rng), rand_array(&[5, 11, 3], &mut rng));
    let cat = Tensor::concat(&[&t(&a), &t(&b), &t(&c)], 1).unwrap();
    close(&cat, &ndarray::concatenate(Axis(1), &[a.view(), b.view(), c.view()]).unwrap(), 0.0);
    let parts = cat.split(&[7, 2, 11], 1).unwrap();
    close(&parts[0], &a, 0.0);
    close(&parts[1], &b, 0.0);
    close(&parts[2], &c, 0.0);
    assert!(cat.split(&[7, 2], 1).is_err());
    let m = rand_array(&[3, 37, 45], &mut rng);
    close(&t(&m).transpose().unwrap(), &m.clone().permuted_axes(vec![0, 2, 1]).as_standard_layout().to_owned(), 0.0);
    let idx: Vec<u32> = vec![4, 0, 4, 2, 1];
    let g = t(&m).gather(1, &Indices::new(&idx, 37, &CPU).unwrap()).unwrap();
    close(&g, &m.select(Axis(1), &idx.iter().map(|&i| i as usize).collect::<Vec<_>>()), 0.0);
    assert!(Indices::new(&[37], 37, &CPU).is_err(), "out-of-range index must be refused");
}
