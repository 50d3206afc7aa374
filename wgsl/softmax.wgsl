// Softmax along an axis of [outer, n, inner], stabilised by the max (src/ops/softmax/). ABI: kernels/README.md.
struct Params { outer: u32, n: u32, inner: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// -inf from its bits, at run time (a literal overflows in constant evaluation, and naga cannot
// evaluate a bitcast as a constant).
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }
var<workgroup> sh: array<f32, 256>;

fn tree(v: f32, lid: u32, is_max: bool) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = select(sh[lid] + sh[lid + s], max(sh[lid], sh[lid + s]), is_max);
        }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    if (row >= p.outer) { return; }
    let base = row * p.n;
    var m = neg_inf();
    for (var j = lid; j < p.n; j += 256u) { m = max(m, x[base + j]); }
    m = tree(m, lid, true);
    var s = 0.0;
    for (var j = lid; j < p.n; j += 256u) { s += exp(x[base + j] - m); }
    s = tree(s, lid, false);
    for (var j = lid; j < p.n; j += 256u) { y[base + j] = exp(x[base + j] - m) / s; }
}

@compute @workgroup_size(256)
fn softmax_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.outer * p.inner) { return; }
    let base = (i / p.inner) * p.n * p.inner + i % p.inner;
    var m = neg_inf();
    for (var j = 0u; j < p.n; j++) { m = max(m, x[base + j * p.inner]); }
    var s = 0.0;
    for (var j = 0u; j < p.n; j++) { s += exp(x[base + j * p.inner] - m); }
    for (var j = 0u; j < p.n; j++) { y[base + j * p.inner] = exp(x[base + j * p.inner] - m) / s; }
}
