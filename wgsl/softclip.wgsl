// Soft-clip y = x / (1 + |x| / B), element-wise, with its log-determinant and inverse (src/ops/softclip/).
// ABI and maths: kernels/README.md ("softclip"); expressions in the CPU reference's order.
struct Params { n: u32, inverse: u32, bound: f32, inv_bound: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;

// 1 - 2^-20: the inverse holds |y| <= B times this.
const EDGE: f32 = 0.99999905;

@compute @workgroup_size(256)
fn softclip_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    var v = x[i];
    var a: f32;
    if (p.inverse == 0u) {
        a = abs(v) * p.inv_bound + 1.0;
    } else {
        let edge = p.bound * EDGE;
        v = clamp(v, -edge, edge);
        a = abs(v) * -p.inv_bound + 1.0;
    }
    out[i] = v / a;
    out[p.n + i] = log(a) * -2.0;
}

@compute @workgroup_size(256)
fn softclip_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let v = x[i];
    let a = abs(v) * p.inv_bound + 1.0;
    gx[i] = g[i] / (a * a) - 2.0 * g[p.n + i] * sign(v) * p.inv_bound / a;
}
