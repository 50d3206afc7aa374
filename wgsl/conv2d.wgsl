// 2-D convolution as implicit GEMMs (maths and CPU reference: src/ops/conv2d/; ABI: kernels/README.md).
// Both entries follow matmul.wgsl: a 16x16 workgroup computes a 64x64 tile, 4x4 outputs per thread,
// stepping over the reduction in chunks of 16 through workgroup memory; the im2col element of the B tile
// is computed on the fly while loading (0 outside the image, the matrix or the reduction).
struct Params {
    batch: u32, cin: u32, h: u32, w: u32, cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, has_bias: u32, ksplit: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// conv2d_fwd
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// conv2d_wgrad
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

// Tiles stored k-major: as_[kk * 64 + row], bs[kk * 64 + col].
var<workgroup> as_: array<f32, 1024>;
var<workgroup> bs: array<f32, 1024>;

// 16 rank-1 updates of the thread's 4x4 sub-tile from the staged tiles.
fn mac(acc: ptr<function, array<f32, 16>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < 16u; kk++) {
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            av[i] = as_[kk * 64u + ty * 4u + i];
            bv[i] = bs[kk * 64u + tx * 4u + i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] = fma(av[i], bv[j], (*acc)[i * 4u + j]);
            }
        }
    }
}

// y [batch, cout, oh, ow] = w [cout, K] cols(x) [K, batch oh ow] (+ bias); K = cin kh kw.
// Tiles: the workgroup's linear number (kernels/README.md, "Grid") is row tile + ceil(cout / 64) column tile;
// a column tile past the end returns as a whole, before any barrier.
@compute @workgroup_size(16, 16)
fn conv2d_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let ohw = p.oh * p.ow;
    let kk2 = p.kh * p.kw;
    let kdim = p.cin * kk2;
    let ncol = p.batch * ohw;
    let blk = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let nrow = (p.cout - 1u) / 64u + 1u;
    let row0 = blk % nrow * 64u;
    let col0 = blk / nrow * 64u;
    if (col0 >= ncol) { return; }
    // This thread's B column is fixed for the whole loop: decode it once.
    let jj = tid % 64u;
    let j = col0 + jj;
    let jn = j / ohw;
    let jr = j % ohw;
    let ih0 = i32((jr / p.ow) * p.stride) - i32(p.pad);
    let iw0 = i32((jr % p.ow) * p.stride) - i32(p.pad);
    let xb = jn * p.cin * p.h * p.w;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < kdim; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            // A = w [cout, K], coalesced along K.
            let idx = tid + e * 256u;
            let ar = idx / 16u;
            let ak = idx % 16u;
            var v = 0.0;
            if (row0 + ar < p.cout && k0 + ak < kdim) { v = wt[(row0 + ar) * kdim + k0 + ak]; }
            as_[ak * 64u + ar] = v;
            // B = cols(x), coalesced along the output positions.
            let bk = tid / 64u + 4u * e;
            let k = k0 + bk;
            var u = 0.0;
            if (j < ncol && k < kdim) {
                let ci = k / kk2;
                let rr = k % kk2;
                let ih = ih0 + i32(rr / p.kw);
                let iw = iw0 + i32(rr % p.kw);
                if (ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w)) {
                    u = x[xb + (ci * p.h + u32(ih)) * p.w + u32(iw)];
                }
            }
            bs[bk * 64u + jj] = u;
        }
        workgroupBarrier();
        mac(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let co = row0 + ty * 4u + i;
        if (co >= p.cout) { break; }
        var b = 0.0;
        if (p.has_bias != 0u) { b = bias[co]; }
        for (var jc = 0u; jc < 4u; jc++) {
            let c = col0 + tx * 4u + jc;
            if (c < ncol) { y[((c / ohw) * p.cout + co) * ohw + c % ohw] = acc[i * 4u + jc] + b; }
        }
    }
}

// dw [cout, K] = g [cout, batch oh ow] cols(x)^T [batch oh ow, K], split over the reduction: slice
// z sums positions [z ksplit, min((z + 1) ksplit, batch oh ow)) and writes dw + z cout K; the host launches
// max(1, ceil(batch oh ow / ksplit)) slices. Tiles (kernels/README.md, "Grid"): columns fastest, then rows,
// then the slices; a number past the last slice returns as a whole, before any barrier.
@compute @workgroup_size(16, 16)
fn conv2d_wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let ohw = p.oh * p.ow;
    let kk2 = p.kh * p.kw;
    let ncol = p.cin * kk2;
    let ltot = p.batch * ohw;
    let blk = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let nct = (ncol - 1u) / 64u + 1u;
    let nrt = (p.cout - 1u) / 64u + 1u;
    let z = blk / nct / nrt;
    if (z >= select(1u, (ltot - 1u) / p.ksplit + 1u, ltot > 0u)) { return; }
    let row0 = blk / nct % nrt * 64u;
    let col0 = blk % nct * 64u;
    let lbeg = z * p.ksplit;
    let lend = min(lbeg + p.ksplit, ltot);
    // This thread's B column (ci, kh, kw) is fixed: decode it once.
    let cc = tid % 64u;
    let col = col0 + cc;
    let ci = col / kk2;
    let ki = i32((col % kk2) / p.kw) - i32(p.pad);
    let kj = i32(col % p.kw) - i32(p.pad);
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

    for (var l0 = lbeg; l0 < lend; l0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            // A = g viewed as [cout, batch oh ow], coalesced along the positions.
            let idx = tid + e * 256u;
            let ar = idx / 16u;
            let al = l0 + idx % 16u;
            var v = 0.0;
            if (row0 + ar < p.cout && al < lend) {
                v = gy[((al / ohw) * p.cout + row0 + ar) * ohw + al % ohw];
            }
            as_[(idx % 16u) * 64u + ar] = v;
            // B = cols(x)^T [positions, K], coalesced along K.
            let bl = tid / 64u + 4u * e;
            let l = l0 + bl;
            var u = 0.0;
            if (col < ncol && l < lend) {
                let n = l / ohw;
                let r = l % ohw;
                let ih = i32((r / p.ow) * p.stride) + ki;
                let iw = i32((r % p.ow) * p.stride) + kj;
                if (ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w)) {
                    u = x[((n * p.cin + ci) * p.h + u32(ih)) * p.w + u32(iw)];
                }
            }
            bs[bl * 64u + cc] = u;
        }
        workgroupBarrier();
        mac(&acc, tx, ty);
        workgroupBarrier();
    }
    let base = z * p.cout * ncol;
    for (var i = 0u; i < 4u; i++) {
        let co = row0 + ty * 4u + i;
        for (var jc = 0u; jc < 4u; jc++) {
            let c = col0 + tx * 4u + jc;
            if (co < p.cout && c < ncol) { dw[base + co * ncol + c] = acc[i * 4u + jc]; }
        }
    }
}
