// Masked linear of MADE: C = (op(A) (op(B) ⊙ M)) ⊙ M + bias, each factor by its flag (src/ops/made/).
// matmul.wgsl's tiling (a 16x16 workgroup computes a 64x64 tile of C, 4x4 per thread, k in chunks of 16 through
// workgroup memory) with the mask multiplied into the B tile as it is staged (mask_b: the mask is stored like b)
// or into C as it is stored (mask_c: the mask is stored [m, n] like c), and the bias added on store.
// ABI: kernels/README.md ("made").
struct Params { m: u32, n: u32, k: u32, trans_a: u32, trans_b: u32, mask_b: u32, mask_c: u32, bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

// Tiles stored k-major: as_[kk * 64 + row], bs[kk * 64 + col].
var<workgroup> as_: array<f32, 1024>;
var<workgroup> bs: array<f32, 1024>;

// The workgroup's tile from its linear number (kernels/README.md, "Grid"): columns fastest, then rows; a
// number past the last tile returns as a whole, before any barrier.
@compute @workgroup_size(16, 16)
fn made(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let ncol = (p.n - 1u) / 64u + 1u;
    if (blk / ncol >= (p.m - 1u) / 64u + 1u) { return; }
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let row0 = blk / ncol * 64u;
    let col0 = blk % ncol * 64u;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        // Each thread loads 4 elements of each tile; the fastest index follows memory so loads coalesce.
        for (var e = 0u; e < 4u; e++) {
            let idx = tid + e * 256u;
            var r: u32;
            var kk: u32;
            if (p.trans_a == 0u) { r = idx / 16u; kk = idx % 16u; } else { kk = idx / 64u; r = idx % 64u; }
            let gr = row0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < p.m && gk < p.k) {
                v = a[select(gr * p.k + gk, gk * p.m + gr, p.trans_a != 0u)];
            }
            as_[kk * 64u + r] = v;

            var cc: u32;
            if (p.trans_b == 0u) { kk = idx / 64u; cc = idx % 64u; } else { cc = idx / 16u; kk = idx % 16u; }
            let gc = col0 + cc;
            let gk2 = k0 + kk;
            var w = 0.0;
            if (gc < p.n && gk2 < p.k) {
                let o = select(gk2 * p.n + gc, gc * p.k + gk2, p.trans_b != 0u);
                w = b[o];
                if (p.mask_b != 0u) { w *= mask[o]; }
            }
            bs[kk * 64u + cc] = w;
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
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + ty * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let cl = col0 + tx * 4u + j;
            if (r < p.m && cl < p.n) {
                let o = r * p.n + cl;
                var v = acc[i * 4u + j];
                if (p.mask_c != 0u) { v *= mask[o]; }
                if (p.bias != 0u) { v += bias[cl]; }
                c[o] = v;
            }
        }
    }
}
