//! CPU matrix products through the `gemm` crate; strides express the transposes.
use rayon::prelude::*;

/// C[b] = op(A[b]) op(B[b]) for b < batch; `sa`, `sb` are the batch strides (0 broadcasts).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    sa: usize,
    sb: usize,
) -> Vec<f32> {
    if m * n == 0 || k == 0 {
        return vec![0.0f32; batch * m * n];
    }
    // gemm overwrites every element of C (alpha = 0 and read_dst = false), so C is not zero-filled first:
    // the kernels write into the spare capacity and the length is set once they are done.
    let mut c: Vec<f32> = Vec::with_capacity(batch * m * n);
    // Row and column strides of op(A) ([m, k]) and op(B) ([k, n]) in the stored layouts.
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let big = m * n * k >= 1 << 18;
    let gemm_one = |ci: *mut f32, bi: usize, par: gemm::Parallelism| {
        // SAFETY: the pointers cover [m, k], [k, n] and [m, n] with the strides given (checked by the
        // op's shape logic); dst does not alias the inputs and is only written.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                ci,
                1,
                n as isize,
                false,
                a.as_ptr().add(bi * sa),
                a_cs,
                a_rs,
                b.as_ptr().add(bi * sb),
                b_cs,
                b_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    };
    let spare = c.spare_capacity_mut();
    if batch > 1 && !big {
        spare
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(bi, ci)| gemm_one(ci.as_mut_ptr().cast(), bi, gemm::Parallelism::None));
    } else {
        let par = if big { gemm::Parallelism::Rayon(rayon::current_num_threads()) } else { gemm::Parallelism::None };
        for (bi, ci) in spare.chunks_mut(m * n).enumerate() {
            gemm_one(ci.as_mut_ptr().cast(), bi, par);
        }
    }
    // SAFETY: every one of the batch * m * n elements was written by gemm above.
    unsafe { c.set_len(batch * m * n) };
    c
}

/// The textbook triple loop in f64: the brute-force reference the tests compare against.
#[allow(clippy::too_many_arguments)]
pub fn matmul_naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for l in 0..k {
                let x = if ta { a[l * m + i] } else { a[i * k + l] };
                let y = if tb { b[j * k + l] } else { b[l * n + j] };
                s += f64::from(x) * f64::from(y);
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}
