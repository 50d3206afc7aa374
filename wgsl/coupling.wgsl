// Masked affine / additive coupling fused with the log-det row sum (src/ops/coupling/). One thread per row;
// feature i reads parameter column slot[i] (0xffffffff = passes unchanged). ABI and maths: kernels/README.md
// ("coupling"); expressions in the CPU reference's order.
struct Params { rows: u32, d: u32, p: u32, affine: u32, inverse: u32, clamp: f32, inv_clamp: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read> slot: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@group(0) @binding(6) var<storage, read_write> gtheta: array<f32>;

const PASS: u32 = 0xffffffffu;

// tanh(v) = sign(v) (1 - 2 / (exp(2|v|) + 1)): saturates to ±1 instead of overflowing to NaN.
fn stable_tanh(v: f32) -> f32 {
    let t = 1.0 - 2.0 / (exp(2.0 * abs(v)) + 1.0);
    return select(t, -t, v < 0.0);
}

fn log_scale(r: f32) -> f32 {
    if (p.clamp > 0.0) { return p.clamp * stable_tanh(r * p.inv_clamp); }
    return r;
}

fn width() -> u32 { return select(p.p, 2u * p.p, p.affine != 0u); }

@compute @workgroup_size(256)
fn coupling_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let b = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (b >= p.rows) { return; }
    let xr = b * p.d;
    let tr = b * width();
    var acc = 0.0;
    for (var i = 0u; i < p.d; i++) {
        let v = x[xr + i];
        let c = slot[i];
        if (c == PASS) { out[xr + i] = v; continue; }
        let t = theta[tr + c];
        var y: f32;
        if (p.affine == 0u) {
            y = select(v + t, v - t, p.inverse != 0u);
        } else {
            let s = log_scale(theta[tr + p.p + c]);
            if (p.inverse == 0u) {
                acc += s;
                y = v * exp(s) + t;
            } else {
                acc -= s;
                y = (v - t) * exp(-s);
            }
        }
        out[xr + i] = y;
    }
    out[p.rows * p.d + b] = acc;
}

@compute @workgroup_size(256)
fn coupling_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let b = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (b >= p.rows) { return; }
    let xr = b * p.d;
    let w = width();
    let tr = b * w;
    // Dense masks leave the columns of passing features unread: their gradient is zero.
    for (var j = 0u; j < w; j++) { gtheta[tr + j] = 0.0; }
    let gld = g[p.rows * p.d + b];
    for (var i = 0u; i < p.d; i++) {
        let gy = g[xr + i];
        let c = slot[i];
        if (c == PASS || p.affine == 0u) {
            gx[xr + i] = gy;
            if (c != PASS) { gtheta[tr + c] = gy; }
            continue;
        }
        gtheta[tr + c] = gy;
        let r = theta[tr + p.p + c];
        let e = exp(log_scale(r));
        gx[xr + i] = gy * e;
        let gs = gy * x[xr + i] * e + gld;
        if (p.clamp > 0.0) {
            let u = stable_tanh(r * p.inv_clamp);
            gtheta[tr + p.p + c] = gs * (1.0 - u * u);
        } else {
            gtheta[tr + p.p + c] = gs;
        }
    }
}
