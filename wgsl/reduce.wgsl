// Reductions along an axis of [outer, n, inner] (maths and CPU reference: src/ops/reduce/).
// op: 0 sum, 1 mean, 2 max, 3 logsumexp. ABI: kernels/README.md.
struct Params { outer: u32, n: u32, inner: u32, op: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// -inf from its bits, at run time (a literal overflows in constant evaluation, and naga cannot
// evaluate a bitcast as a constant).
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }
var<workgroup> sh: array<f32, 256>;

fn tree_sum(v: f32, lid: u32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) { sh[lid] = sh[lid] + sh[lid + s]; }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier();
    return r;
}

fn tree_max(v: f32, lid: u32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) { sh[lid] = max(sh[lid], sh[lid + s]); }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier();
    return r;
}

// inner == 1: a workgroup per row, threads stride over the row, then a shared-memory tree.
@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    if (row >= p.outer) { return; }
    let base = row * p.n;
    var m = neg_inf();
    if (p.op >= 2u) {
        for (var j = lid; j < p.n; j += 256u) { m = max(m, x[base + j]); }
        m = tree_max(m, lid);
    }
    if (p.op == 2u) {
        if (lid == 0u) { y[row] = m; }
        return;
    }
    var s = 0.0;
    if (p.op == 3u) {
        if (m > neg_inf()) {
            for (var j = lid; j < p.n; j += 256u) { s += exp(x[base + j] - m); }
        }
    } else {
        for (var j = lid; j < p.n; j += 256u) { s += x[base + j]; }
    }
    s = tree_sum(s, lid);
    if (lid == 0u) {
        switch p.op {
            case 0u: { y[row] = s; }
            case 1u: { y[row] = s / f32(p.n); }
            default: { y[row] = select(neg_inf(), m + log(s), m > neg_inf()); }
        }
    }
}

// inner > 1: a thread per output (o, r); neighbouring threads read neighbouring columns.
@compute @workgroup_size(256)
fn reduce_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.outer * p.inner) { return; }
    let o = i / p.inner;
    let r = i % p.inner;
    let base = o * p.n * p.inner + r;
    var m = neg_inf();
    if (p.op >= 2u) {
        for (var j = 0u; j < p.n; j++) { m = max(m, x[base + j * p.inner]); }
    }
    var s = 0.0;
    switch p.op {
        case 2u: { y[i] = m; }
        case 3u: {
            if (m > neg_inf()) {
                for (var j = 0u; j < p.n; j++) { s += exp(x[base + j * p.inner] - m); }
                y[i] = m + log(s);
            } else {
                y[i] = neg_inf();
            }
        }
        default: {
            for (var j = 0u; j < p.n; j++) { s += x[base + j * p.inner]; }
            y[i] = select(s, s / f32(p.n), p.op == 1u);
        }
    }
}
