// Constant padding of image planes by k on every side, y[q, u, v] = x[q, u - k, v - k] inside and `value` on
// the border, and its gradient, the crop of the interior (src/ops/pad2d/). One thread per output element.
// ABI and maths: kernels/README.md ("pad2d").
struct Params { planes: u32, h: u32, w: u32, pad: u32, value: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(256)
fn pad2d_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let t = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    let ho = p.h + 2u * p.pad;
    let wo = p.w + 2u * p.pad;
    if (t >= p.planes * ho * wo) { return; }
    // u - k and v - k wrap past h and w on the top and left borders, so one unsigned test covers both sides.
    let v = t % wo - p.pad;
    let u = (t / wo) % ho - p.pad;
    let q = t / (wo * ho);
    var val = p.value;
    if (u < p.h && v < p.w) { val = x[(q * p.h + u) * p.w + v]; }
    y[t] = val;
}

@compute @workgroup_size(256)
fn pad2d_crop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let s = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (s >= p.planes * p.h * p.w) { return; }
    let ho = p.h + 2u * p.pad;
    let wo = p.w + 2u * p.pad;
    let v = s % p.w;
    let u = (s / p.w) % p.h;
    let q = s / (p.w * p.h);
    gx[s] = g[(q * ho + u + p.pad) * wo + v + p.pad];
}
