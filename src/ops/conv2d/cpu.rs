//! CPU conv2d: im2col into a per-thread scratch buffer, then one `gemm` call per batch element (the same
//! crate and stride conventions as src/ops/matmul/cpu.rs). Parallel over the batch when it has at least as
//! many elements as rayon has threads and its images are small (each worker reuses one column buffer).
//! A large image (a column matrix over 2^20 values, as in the 448-pixel autoencoder's outer layers) is
//! cut into tiles of output rows that run in parallel: each tile's columns (about 1 MiB) stay in cache
//! from im2col to gemm, where the whole matrix (up to 50 MB) went through memory twice. That made the
//! outer layers' forward + backward 1.2-2.2x faster (BENCHMARKS.md). A 1x1, stride-1, unpadded
//! convolution reads the input in place (its column matrix is the input).
use super::Params;
use rayon::prelude::*;
use std::ops::Range;

/// Plain sizes of a [`Params`].
#[derive(Clone, Copy)]
pub(crate) struct Geom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub s: usize,
    pub p: usize,
}

impl Geom {
    pub fn new(p: &Params) -> Self {
        let u = |v: u32| v as usize;
        Geom {
            n: u(p.batch),
            cin: u(p.cin),
            h: u(p.h),
            w: u(p.w),
            cout: u(p.cout),
            oh: u(p.oh),
            ow: u(p.ow),
            kh: u(p.kh),
            kw: u(p.kw),
            s: u(p.stride),
            p: u(p.pad),
        }
    }
    /// Rows of the column matrix: Cin * KH * KW.
    pub fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// True when the column matrix of an image is the image itself.
    pub fn identity_cols(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.s == 1 && self.p == 0 && self.oh == self.h && self.ow == self.w
    }
}

/// The output positions o < len whose input position o * s + off - p lies in [0, size): a range [lo, hi).
fn valid_range(len: usize, s: usize, off: usize, p: usize, size: usize) -> (usize, usize) {
    // o * s + off >= p  <=>  o >= ceil((p - off) / s)
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    // o * s + off - p < size  <=>  o * s < size + p - off
    let hi = if size + p <= off { 0 } else { (size + p - off).div_ceil(s) };
    (lo.min(len), hi.min(len).max(lo.min(len)))
}

/// out[q] = src[q s] for every q < out.len(). Strides 1 and 2 (every stride of the autoencoders) get
/// loops over fixed-size chunks that vectorise; `step_by` iterators here cost a third of a small
/// autoencoder's step.
fn strided_copy(out: &mut [f32], src: &[f32], s: usize) {
    match s {
        1 => out.copy_from_slice(&src[..out.len()]),
        2 => {
            let whole = out.len().min(src.len() / 2);
            for (o, pair) in out[..whole].iter_mut().zip(src.chunks_exact(2)) {
                *o = pair[0];
            }
            if whole < out.len() {
                out[whole] = src[2 * whole];
            }
        }
        _ => out.iter_mut().enumerate().for_each(|(q, o)| *o = src[q * s]),
    }
}

/// dst[q s] += src[q] for every q < src.len(), the adjoint of [`strided_copy`].
fn strided_add(dst: &mut [f32], src: &[f32], s: usize) {
    match s {
        1 => dst[..src.len()].iter_mut().zip(src).for_each(|(d, v)| *d += v),
        2 => {
            let whole = src.len().min(dst.len() / 2);
            for (pair, v) in dst.chunks_exact_mut(2).zip(&src[..whole]) {
                pair[0] += v;
            }
            if whole < src.len() {
                dst[2 * whole] += src[whole];
            }
        }
        _ => src.iter().enumerate().for_each(|(q, v)| dst[q * s] += v),
    }
}

/// One row of the column matrix: row (c, i, j) over the output positions (oh, ow):
/// `row[oh * OW + ow] = x[c, oh * s - p + i, ow * s - p + j]`, 0 outside the image. `img` is x[c].
fn im2col_row(g: &Geom, img: &[f32], i: usize, j: usize, rows: Range<usize>, row: &mut [f32]) {
    let (ylo, yhi) = valid_range(g.oh, g.s, i, g.p, g.h);
    let (xlo, xhi) = valid_range(g.ow, g.s, j, g.p, g.w);
    for (o, out) in rows.zip(row.chunks_exact_mut(g.ow)) {
        if o < ylo || o >= yhi {
            out.fill(0.0);
            continue;
        }
        let src = &img[(o * g.s + i - g.p) * g.w..][..g.w];
        out[..xlo].fill(0.0);
        out[xhi..].fill(0.0);
        if xhi > xlo {
            let first = xlo * g.s + j - g.p;
            strided_copy(&mut out[xlo..xhi], &src[first..], g.s);
        }
    }
}

/// The column matrix [Cin * KH * KW, OH * OW] of one image x [Cin, H, W].
pub(crate) fn im2col(g: &Geom, x: &[f32], col: &mut [f32], par: bool) {
    im2col_rows(g, x, 0..g.oh, col, par)
}

/// The columns of output rows `rows` only: [Cin * KH * KW, rows.len() * OW] (a tile of [`im2col`]).
fn im2col_rows(g: &Geom, x: &[f32], rows: Range<usize>, col: &mut [f32], par: bool) {
    let len = rows.len() * g.ow;
    let kk = g.kh * g.kw;
    let row = |(r, out): (usize, &mut [f32])| {
        let (c, ij) = (r / kk, r % kk);
        im2col_row(g, &x[c * g.h * g.w..][..g.h * g.w], ij / g.kw, ij % g.kw, rows.clone(), out);
    };
    if len == 0 {
        return;
    }
    if par {
        col.par_chunks_mut(len).enumerate().for_each(row);
    } else {
        col.chunks_mut(len).enumerate().for_each(row);
    }
}

/// Output rows per tile when one image's column matrix is built a tile at a time: about 256 K values
/// (1 MiB), so the tile stays in cache between im2col writing it and gemm packing it.
fn tile_rows(g: &Geom) -> usize {
    ((1usize << 18) / (g.k() * g.ow).max(1)).clamp(1, g.oh.max(1))
}

/// The tiles of output rows, [`tile_rows`] each (the last one shorter).
fn tiles(g: &Geom) -> Vec<Range<usize>> {
    let r = tile_rows(g);
    (0..g.oh).step_by(r).map(|o0| o0..(o0 + r).min(g.oh)).collect()
}

/// True when one image's column matrix is large enough to be built and multiplied in tiles of output rows.
pub(crate) fn tiled(g: &Geom) -> bool {
    !g.identity_cols() && g.k() * g.oh * g.ow > 1 << 20 && tile_rows(g) < g.oh
}

/// The adjoint of [`im2col`]: adds every column entry back onto the image position it was read from.
/// `img` [Cin, H, W] (accumulated into), `col` [Cin * KH * KW, OH * OW]. Each channel's rows only touch
/// that channel, so channels run in parallel when `par`.
pub(crate) fn col2im(g: &Geom, col: &[f32], img: &mut [f32], par: bool) {
    col2im_rows(g, col, 0..g.oh, img, 0..g.h, par)
}

/// [`col2im`] of the columns of output rows `rows` only (`col` [Cin * KH * KW, rows.len() * OW]) into the
/// image rows `img_rows` that they touch (`img` [Cin, img_rows.len(), W]).
fn col2im_rows(g: &Geom, col: &[f32], rows: Range<usize>, img: &mut [f32], img_rows: Range<usize>, par: bool) {
    let (len, kk, hw) = (rows.len() * g.ow, g.kh * g.kw, img_rows.len() * g.w);
    if len == 0 || hw == 0 {
        return;
    }
    let chan = |(c, im): (usize, &mut [f32])| {
        for ij in 0..kk {
            let (i, j) = (ij / g.kw, ij % g.kw);
            let row = &col[(c * kk + ij) * len..][..len];
            let (ylo, yhi) = valid_range(g.oh, g.s, i, g.p, g.h);
            let (ylo, yhi) = (ylo.max(rows.start), yhi.min(rows.end));
            let (xlo, xhi) = valid_range(g.ow, g.s, j, g.p, g.w);
            if xhi <= xlo {
                continue;
            }
            for o in ylo..yhi {
                let dst = &mut im[(o * g.s + i - g.p - img_rows.start) * g.w..][..g.w];
                let r = (o - rows.start) * g.ow;
                let src = &row[r + xlo..r + xhi];
                let first = xlo * g.s + j - g.p;
                strided_add(&mut dst[first..], src, g.s);
            }
        }
    };
    if par {
        img.par_chunks_mut(hw).enumerate().for_each(chan);
    } else {
        img.chunks_mut(hw).enumerate().for_each(chan);
    }
}

/// The image rows that output rows `rows` read (im2col) or write (col2im).
fn image_rows(g: &Geom, rows: &Range<usize>) -> Range<usize> {
    if rows.is_empty() {
        return 0..0;
    }
    let lo = (rows.start * g.s).saturating_sub(g.p).min(g.h);
    let hi = ((rows.end - 1) * g.s + g.kh).saturating_sub(g.p).min(g.h);
    lo..hi.max(lo)
}

/// img [Cin, H, W] += W^T-products scattered back, a tile of output rows at a time: tiles run in parallel,
/// each computing its columns (`cols(col, rows)` fills [Cin * KH * KW, rows.len() * OW]) and scattering
/// them into a private block of the image rows it touches; the blocks are then added into img per channel.
/// (Neighbouring tiles touch the same image rows, so they cannot scatter into img directly.)
pub(crate) fn col2im_tiled(g: &Geom, img: &mut [f32], cols: impl Fn(&mut [f32], Range<usize>) + Sync) {
    let (k, hw) = (g.k(), g.h * g.w);
    let tiles = tiles(g);
    let blocks: Vec<(Range<usize>, Vec<f32>)> = tiles
        .par_iter()
        .map_init(Vec::new, |col: &mut Vec<f32>, rows| {
            let len = rows.len() * g.ow;
            col.resize(k * len, 0.0);
            cols(&mut col[..k * len], rows.clone());
            let ir = image_rows(g, rows);
            let mut block = vec![0.0f32; g.cin * ir.len() * g.w];
            col2im_rows(g, &col[..k * len], rows.clone(), &mut block, ir.clone(), false);
            (ir, block)
        })
        .collect();
    img.par_chunks_mut(hw).enumerate().for_each(|(c, plane)| {
        for (ir, block) in &blocks {
            let n = ir.len() * g.w;
            let dst = &mut plane[ir.start * g.w..][..n];
            dst.iter_mut().zip(&block[c * n..][..n]).for_each(|(d, v)| *d += v);
        }
    });
}

/// A matrix operand: values from the start of a slice with (row stride, column stride) in elements.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Mat<'_> {
    /// True when every element of a [rows, cols] view lies inside the slice.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// c[m, n] (row-major, contiguous) = (c if `acc` else 0) + a b with a [m, k], b [k, n]; `dims` = (m, n, k).
/// Bounds are checked up front (O(1)), so the gemm call below cannot read or write outside the slices.
pub(crate) fn sgemm(dims: (usize, usize, usize), c: &mut [f32], a: Mat, b: Mat, acc: bool, par: bool) {
    let (m, n, k) = dims;
    assert!(c.len() >= m * n && a.covers(m, k) && b.covers(k, n), "sgemm operands smaller than {dims:?}");
    if m * n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let par = if par && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the operands cover their views (asserted above) and c, a &mut, aliases neither.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if acc { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    };
}

/// Parallel over the batch only when every thread gets at least one element and one element's column matrix
/// (`cols` values) is small: large images run one at a time with gemm's threads and a parallel im2col, which
/// measured faster (one shared column buffer stays in cache; per-thread ones of up to 50 MB do not).
pub(crate) fn batch_parallel(n: usize, cols: usize) -> bool {
    n > 1 && n >= rayon::current_num_threads() && cols <= 1 << 18
}

/// y [N, Cout, OH, OW] = conv2d(x [N, Cin, H, W], w [Cout, Cin, KH, KW]) (+ b [Cout]).
pub fn conv2d_fwd(p: &Params, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let g = Geom::new(p);
    let (k, ohw, chw) = (g.k(), g.oh * g.ow, g.cin * g.h * g.w);
    let mut y = vec![0.0f32; g.n * g.cout * ohw];
    if y.is_empty() {
        return y;
    }
    let wm = Mat { data: w, rs: k, cs: 1 };
    let one = |ni: usize, yi: &mut [f32], col: &mut Vec<f32>, par: bool| {
        let xi = &x[ni * chw..][..chw];
        if tiled(&g) {
            // y[:, tile] = W cols(tile): tiles of output rows in parallel, each with its own column buffer
            // and a one-thread gemm, into its own [Cout, tile] block; the blocks are then copied into y.
            let tiles = tiles(&g);
            let blocks: Vec<Vec<f32>> = tiles
                .par_iter()
                .map_init(Vec::new, |col: &mut Vec<f32>, rows| {
                    let len = rows.len() * g.ow;
                    col.resize(k * len, 0.0);
                    im2col_rows(&g, xi, rows.clone(), &mut col[..k * len], false);
                    let mut out = vec![0.0f32; g.cout * len];
                    sgemm((g.cout, len, k), &mut out, wm, Mat { data: &col[..k * len], rs: len, cs: 1 }, false, false);
                    out
                })
                .collect();
            yi.par_chunks_mut(ohw).enumerate().for_each(|(co, row)| {
                for (rows, blk) in tiles.iter().zip(&blocks) {
                    let len = rows.len() * g.ow;
                    row[rows.start * g.ow..][..len].copy_from_slice(&blk[co * len..][..len]);
                }
            });
        } else {
            let cols: &[f32] = if g.identity_cols() {
                xi
            } else {
                col.resize(k * ohw, 0.0);
                im2col(&g, xi, col, par);
                col
            };
            sgemm((g.cout, ohw, k), yi, wm, Mat { data: cols, rs: ohw, cs: 1 }, false, par);
        }
        if let Some(b) = b {
            for (row, bv) in yi.chunks_exact_mut(ohw).zip(b) {
                row.iter_mut().for_each(|v| *v += bv);
            }
        }
    };
    if batch_parallel(g.n, k * ohw) {
        y.par_chunks_mut(g.cout * ohw).enumerate().for_each_init(Vec::new, |col, (ni, yi)| one(ni, yi, col, false));
    } else {
        let mut col = Vec::new();
        for (ni, yi) in y.chunks_mut(g.cout * ohw).enumerate() {
            one(ni, yi, &mut col, true);
        }
    }
    y
}

/// dw [Cout, Cin, KH, KW] = sum over n, oh, ow of x[n, ci, oh s - p + kh, ow s - p + kw] g[n, co, oh, ow]:
/// per batch element, dw += g_n [Cout, OHW] cols_n^T [OHW, K]. Batch-parallel runs fold into one partial
/// dw per rayon job and add them up at the end.
pub fn conv2d_wgrad(p: &Params, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let g = Geom::new(p);
    let (k, ohw, chw) = (g.k(), g.oh * g.ow, g.cin * g.h * g.w);
    let len = g.cout * k;
    if len == 0 {
        return vec![0.0; len];
    }
    let one = |ni: usize, dw: &mut [f32], col: &mut Vec<f32>, par: bool| {
        let xi = &x[ni * chw..][..chw];
        // Tiles bring their own column buffers and threads.
        if tiled(&g) {
            // dw += g[:, tile] cols(tile)^T: tiles of output rows in parallel, each thread with its own
            // column buffer and partial dw, added up at the end.
            let tiles = tiles(&g);
            let part = tiles
                .par_iter()
                .fold(
                    || (Vec::new(), vec![0.0f32; dw.len()]),
                    |(mut col, mut acc): (Vec<f32>, Vec<f32>), rows| {
                        let len = rows.len() * g.ow;
                        col.resize(k * len, 0.0);
                        im2col_rows(&g, xi, rows.clone(), &mut col[..k * len], false);
                        let gm = Mat { data: &gy[ni * g.cout * ohw + rows.start * g.ow..], rs: ohw, cs: 1 };
                        let cm = Mat { data: &col[..k * len], rs: 1, cs: len };
                        sgemm((g.cout, k, len), &mut acc, gm, cm, true, false);
                        (col, acc)
                    },
                )
                .map(|(_, acc)| acc)
                .collect::<Vec<_>>();
            for p in part {
                dw.iter_mut().zip(&p).for_each(|(d, v)| *d += v);
            }
            return;
        }
        let cols: &[f32] = if g.identity_cols() {
            xi
        } else {
            col.resize(k * ohw, 0.0);
            im2col(&g, xi, col, par);
            col
        };
        let gm = Mat { data: &gy[ni * g.cout * ohw..], rs: ohw, cs: 1 };
        // cols^T [OHW, K]: element (l, r) at cols[r * OHW + l].
        let cm = Mat { data: cols, rs: 1, cs: ohw };
        sgemm((g.cout, k, ohw), dw, gm, cm, true, par);
    };
    if batch_parallel(g.n, k * ohw) {
        (0..g.n)
            .into_par_iter()
            .fold(
                || (Vec::new(), vec![0.0f32; len]),
                |(mut col, mut dw), ni| {
                    one(ni, &mut dw, &mut col, false);
                    (col, dw)
                },
            )
            .map(|(_, dw)| dw)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
            .unwrap_or_else(|| vec![0.0; len])
    } else {
        let (mut col, mut dw) = (Vec::new(), vec![0.0f32; len]);
        for ni in 0..g.n {
            one(ni, &mut dw, &mut col, true);
        }
        dw
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::conv_transpose2d::cpu::conv_transpose2d_fwd;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// The brute-force direct loops (f64 accumulation): the reference for the fast paths above.
    pub fn direct_fwd(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let mut y = vec![0.0f32; g.n * g.cout * g.oh * g.ow];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = b.map_or(0.0, |b| f64::from(b[co]));
                        for ci in 0..g.cin {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let (iy, ix) = (
                                        (oy * g.s + i) as isize - g.p as isize,
                                        (ox * g.s + j) as isize - g.p as isize,
                                    );
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize];
                                    let wv = w[((co * g.cin + ci) * g.kh + i) * g.kw + j];
                                    s += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((n * g.cout + co) * g.oh + oy) * g.ow + ox] = s as f32;
                    }
                }
            }
        }
        y
    }

    /// dx, dw of sum(y * gy) for y = direct_fwd(x, w): scatter each output's gradient back.
    pub fn direct_bwd(g: &Geom, x: &[f32], w: &[f32], gy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let gv = f64::from(gy[((n * g.cout + co) * g.oh + oy) * g.ow + ox]);
                        for ci in 0..g.cin {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let (iy, ix) = (
                                        (oy * g.s + i) as isize - g.p as isize,
                                        (ox * g.s + j) as isize - g.p as isize,
                                    );
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let xi = ((n * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((co * g.cin + ci) * g.kh + i) * g.kw + j;
                                    dx[xi] += gv * f64::from(w[wi]);
                                    dw[wi] += gv * f64::from(x[xi]);
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx.iter().map(|&v| v as f32).collect(), dw.iter().map(|&v| v as f32).collect())
    }

    fn rel(a: &[f32], b: &[f32]) -> f64 {
        crate::selftest::rel_err(a, b)
    }

    pub fn params(
        n: usize,
        cin: usize,
        hw: (usize, usize),
        cout: usize,
        k: (usize, usize),
        s: usize,
        p: usize,
    ) -> Params {
        let (h, w) = hw;
        let oh = (h + 2 * p - k.0) / s + 1;
        let ow = (w + 2 * p - k.1) / s + 1;
        let u = |v: usize| v as u32;
        Params {
            batch: u(n),
            cin: u(cin),
            h: u(h),
            w: u(w),
            cout: u(cout),
            oh: u(oh),
            ow: u(ow),
            kh: u(k.0),
            kw: u(k.1),
            stride: u(s),
            pad: u(p),
            ..Params::default()
        }
    }

    #[test]
    fn fast_paths_match_direct_loops() {
        let mut rng = StdRng::seed_from_u64(3);
        // (n, cin, (h, w), cout, (kh, kw), s, p): odd sizes, non-square kernels and images, padding
        // larger than the kernel overhang, strides that do not divide the extent, batch 1 and > threads.
        let cases = [
            (2, 3, (9, 11), 5, (4, 4), 2, 1),
            (3, 2, (7, 6), 3, (3, 3), 1, 1),
            (1, 4, (5, 5), 6, (1, 1), 1, 0),
            (2, 3, (8, 7), 2, (3, 2), 3, 2),
            (1, 5, (10, 9), 4, (4, 3), 2, 0),
            (4, 1, (3, 3), 2, (3, 3), 1, 2),
            (1, 2, (6, 6), 3, (1, 1), 2, 0),
            // Column matrices over 2^20 values: built and multiplied in tiles of output rows (the last
            // tile short), forward, weight gradient and the tiled col2im of dx.
            (2, 4, (262, 258), 3, (4, 4), 2, 1),
            (1, 12, (97, 101), 2, (3, 3), 1, 1),
        ];
        for (n, cin, hw, cout, k, s, p) in cases {
            let prm = params(n, cin, hw, cout, k, s, p);
            let g = Geom::new(&prm);
            let r = |len: usize, rng: &mut StdRng| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
            let x = r(n * cin * hw.0 * hw.1, &mut rng);
            let w = r(cout * cin * k.0 * k.1, &mut rng);
            let b = r(cout, &mut rng);
            let gy = r(n * cout * g.oh * g.ow, &mut rng);
            let tag = format!("{:?}, tiled {}", (n, cin, hw, cout, k, s, p), tiled(&g));
            let y = conv2d_fwd(&prm, &x, &w, Some(&b));
            assert!(rel(&y, &direct_fwd(&g, &x, &w, Some(&b))) < 1e-6, "fwd {tag}");
            let (dx, dw) = direct_bwd(&g, &x, &w, &gy);
            assert!(rel(&conv2d_wgrad(&prm, &x, &gy), &dw) < 1e-6, "wgrad {tag}");
            // dx is conv_transpose2d(gy, w) sized back to the input: swap the roles of the two sides.
            let t = Params { cin: prm.cout, h: prm.oh, w: prm.ow, cout: prm.cin, oh: prm.h, ow: prm.w, ..prm };
            assert!(rel(&conv_transpose2d_fwd(&t, &gy, &w, None), &dx) < 1e-6, "dx {tag}");
        }
    }
}
