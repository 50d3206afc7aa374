// LU weight W = P L (U + diag(sign exp(log_s))) and log|det W| = sum log_s, and the backward to
// (lower, upper, log_s) (src/ops/lu/). ABI and maths: kernels/README.md ("lu"); sums in the CPU reference's
// order, zeros of P skipped.
struct Params { d: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lower: array<f32>;
@group(0) @binding(2) var<storage, read> upper: array<f32>;
@group(0) @binding(3) var<storage, read> log_s: array<f32>;
@group(0) @binding(4) var<storage, read> perm: array<f32>;
@group(0) @binding(5) var<storage, read> sgn: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

@group(0) @binding(6) var<storage, read> g: array<f32>;
// Packed [dlower (d * d), dupper (d * d), dlog_s (d)]: one output keeps the entry at 7 storage buffers.
@group(0) @binding(7) var<storage, read_write> gout: array<f32>;

fn l_at(k: u32, m: u32) -> f32 {
    if (m < k) { return lower[k * p.d + m]; }
    return select(0.0, 1.0, m == k);
}

fn u_at(m: u32, j: u32) -> f32 {
    if (j > m) { return upper[m * p.d + j]; }
    if (j == m) { return sgn[m] * exp(log_s[m]); }
    return 0.0;
}

@compute @workgroup_size(256)
fn lu_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    let d = p.d;
    if (t > d * d) { return; }
    if (t == d * d) {
        var s = 0.0;
        for (var m = 0u; m < d; m++) { s += log_s[m]; }
        out[t] = s;
        return;
    }
    let i = t / d;
    let j = t % d;
    var w = 0.0;
    for (var k = 0u; k < d; k++) {
        let pk = perm[i * d + k];
        if (pk == 0.0) { continue; }
        var a = 0.0;
        for (var m = 0u; m <= min(k, j); m++) { a += l_at(k, m) * u_at(m, j); }
        w += pk * a;
    }
    out[t] = w;
}

// (P^T G)[k, j].
fn ga_at(k: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < p.d; i++) {
        let pk = perm[i * p.d + k];
        if (pk != 0.0) { s += pk * g[i * p.d + j]; }
    }
    return s;
}

@compute @workgroup_size(256)
fn lu_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let t = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    let d = p.d;
    if (t >= d * d) { return; }
    let r = t / d;
    let c = t % d;
    var gl = 0.0;
    var gu = 0.0;
    if (c < r) {
        for (var j = c; j < d; j++) { gl += ga_at(r, j) * u_at(c, j); }
    } else {
        var s = 0.0;
        for (var k = r; k < d; k++) { s += l_at(k, r) * ga_at(k, c); }
        if (c > r) {
            gu = s;
        } else {
            gout[2u * d * d + r] = s * (sgn[r] * exp(log_s[r])) + g[d * d];
        }
    }
    gout[t] = gl;
    gout[d * d + t] = gu;
}
