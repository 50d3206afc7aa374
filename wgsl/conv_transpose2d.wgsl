// 2-D transposed convolution as phase-split implicit GEMMs (maths and CPU reference:
// src/ops/conv_transpose2d/; ABI and the phase split: kernels/README.md; tiling as wgsl/conv2d.wgsl).
// Outputs (oy, ox) = (py + s qy, px + s qx) of phase (py, px) only meet the taps kh = kh0 + s ty,
// kw = kw0 + s tx (kh0 = (py + pad) mod s, kw0 likewise), which read x[n, ci, qy + d0y - ty, qx + d0x - tx]
// with d0y = (py + pad - kh0) / s: per phase, y = A [cout, K] B [K, batch nqy nqx] (+ bias) with
// K = cin nth ntw, A[co, (ci, ty, tx)] = w[ci, co, kh0 + s ty, kw0 + s tx] and B that x element (0 outside).
struct Params {
    batch: u32, cin: u32, h: u32, w: u32, cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, has_bias: u32, ksplit: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> as_: array<f32, 1024>;
var<workgroup> bs: array<f32, 1024>;

// ceil(a / s) for a > 0, else 0: the outputs or taps of a phase that starts at offset `start` of `len`.
fn count(len: u32, start: u32, s: u32) -> u32 {
    return select(0u, (len - start + s - 1u) / s, len > start);
}

// Tiles: the workgroup's linear number (kernels/README.md, "Grid") is row tile + ceil(cout / 64) column tile,
// the column tiles of every phase in turn. A workgroup walks the phases to find its own; one past the last
// returns as a whole, before any barrier.
@compute @workgroup_size(16, 16)
fn conv_transpose2d_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let s = p.stride;
    let blk = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let nrow = (p.cout - 1u) / 64u + 1u;
    let row0 = blk % nrow * 64u;
    var tile = blk / nrow;
    var ph = 0u;
    var nqx = 0u;
    var nq = 0u;
    var ncol = 0u;
    loop {
        if (ph >= s * s) { return; }
        nqx = count(p.ow, ph % s, s);
        nq = count(p.oh, ph / s, s) * nqx;
        ncol = p.batch * nq;
        let tiles = (ncol + 63u) / 64u;
        if (tile < tiles) { break; }
        tile -= tiles;
        ph += 1u;
    }
    let py = ph / s;
    let px = ph % s;
    let col0 = tile * 64u;
    let kh0 = (py + p.pad) % s;
    let kw0 = (px + p.pad) % s;
    let d0y = (py + p.pad - kh0) / s;
    let d0x = (px + p.pad - kw0) / s;
    let ntw = count(p.kw, kw0, s);
    let nt = count(p.kh, kh0, s) * ntw;
    let kdim = p.cin * nt;
    let ohw = p.oh * p.ow;
    // This thread's B column (n, qy, qx) is fixed: decode it once.
    let jj = tid % 64u;
    let j = col0 + jj;
    let jr = j % nq;
    let by = i32(jr / nqx + d0y);
    let bx = i32(jr % nqx + d0x);
    let xb = (j / nq) * p.cin * p.h * p.w;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < kdim; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            let idx = tid + e * 256u;
            let ar = idx / 16u;
            let ak = k0 + idx % 16u;
            var v = 0.0;
            if (row0 + ar < p.cout && ak < kdim) {
                let rr = ak % nt;
                let kh = kh0 + s * (rr / ntw);
                let kw = kw0 + s * (rr % ntw);
                v = wt[(((ak / nt) * p.cout + row0 + ar) * p.kh + kh) * p.kw + kw];
            }
            as_[(idx % 16u) * 64u + ar] = v;
            let bk = tid / 64u + 4u * e;
            let k = k0 + bk;
            var u = 0.0;
            if (j < ncol && k < kdim) {
                let rr = k % nt;
                let iy = by - i32(rr / ntw);
                let ix = bx - i32(rr % ntw);
                if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                    u = x[xb + ((k / nt) * p.h + u32(iy)) * p.w + u32(ix)];
                }
            }
            bs[bk * 64u + jj] = u;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = as_[kk * 64u + ty * 4u + i];
                bv[i] = bs[kk * 64u + tx * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var q = 0u; q < 4u; q++) {
                    acc[i * 4u + q] = fma(av[i], bv[q], acc[i * 4u + q]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let co = row0 + ty * 4u + i;
        if (co >= p.cout) { break; }
        var b = 0.0;
        if (p.has_bias != 0u) { b = bias[co]; }
        for (var jc = 0u; jc < 4u; jc++) {
            let c = col0 + tx * 4u + jc;
            if (c < ncol) {
                let r = c % nq;
                let oy = py + s * (r / nqx);
                let ox = px + s * (r % nqx);
                y[((c / nq) * p.cout + co) * ohw + oy * p.ow + ox] = acc[i * 4u + jc] + b;
            }
        }
    }
}
