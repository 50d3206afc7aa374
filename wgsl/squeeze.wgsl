// 2x2 space-to-depth y[n, 4 ci + 2i + j, a, b] = x[n, ci, 2a + i, 2b + j] and its inverse, one thread per
// output element (src/ops/squeeze/). Params in x's full-resolution geometry. ABI and maths: kernels/README.md
// ("squeeze"). The plane k = n 4c + 4 ci + 2i + j of y gives x's plane k / 4 = n c + ci, i = (k / 2) % 2, j = k % 2.
struct Params { batch: u32, c: u32, h: u32, w: u32 }
@group(0) @binding(0) var<uniform> p: Params;
// squeeze_fwd(x, y): src = x, dst = y;  unsqueeze_fwd(y, x): src = y, dst = x.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn squeeze_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let o = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (o >= p.batch * p.c * p.h * p.w) { return; }
    let w2 = p.w / 2u;
    let h2 = p.h / 2u;
    let b = o % w2;
    let a = (o / w2) % h2;
    let k = o / (w2 * h2);
    let i = (k >> 1u) & 1u;
    let j = k & 1u;
    dst[o] = src[((k >> 2u) * p.h + 2u * a + i) * p.w + 2u * b + j];
}

@compute @workgroup_size(256)
fn unsqueeze_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let s = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (s >= p.batch * p.c * p.h * p.w) { return; }
    let v = s % p.w;
    let u = (s / p.w) % p.h;
    let m = s / (p.w * p.h);
    let k = 4u * m + 2u * (u & 1u) + (v & 1u);
    dst[s] = src[(k * (p.h / 2u) + u / 2u) * (p.w / 2u) + v / 2u];
}
