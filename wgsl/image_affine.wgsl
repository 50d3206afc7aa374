// The per-pixel affine transforms of a conditional Glow step, with their per-element log-scales
// (src/ops/image_affine/): kind 0, the affine injector y = x exp(clamp(r, lo, hi)) + t; kind 1, the affine
// coupling y = (x + t) s with s = (1 - m) sigmoid(r + 2) + m (m = lo). The first `npass` channels pass.
// One thread per element of x. ABI and maths: kernels/README.md ("image_affine"); expressions in the CPU
// reference's order.
struct Params {
    batch: u32, c: u32, hw: u32, npass: u32,   // npass: Rust's `pass` (a WGSL keyword)
    kind: u32, inverse: u32, r_off: u32, t_off: u32,
    lo: f32, hi: f32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
// Packed [y (batch c hw), ls (batch c' hw)].
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;
@group(0) @binding(5) var<storage, read_write> gtheta: array<f32>;

// sigmoid(v) = (v >= 0 ? 1 : e) / (1 + e) with e = exp(-|v|) <= 1: never overflows, for any |v|.
fn sigmoid(v: f32) -> f32 {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// Where a transformed element's parameters and log-scale live.
struct Slot { ir: u32, it: u32, l: u32 }

// The element t = (n c + ch) hw + q of x: ch < pass passes; else its r and t indices in theta and the index
// of its log-scale within the ls part, for transformed channel j = ch - pass.
fn slot(n: u32, j: u32, q: u32) -> Slot {
    let ct = p.c - p.npass;
    let base = n * 2u * ct * p.hw + q;
    return Slot(base + (p.r_off + j) * p.hw, base + (p.t_off + j) * p.hw, (n * ct + j) * p.hw + q);
}

@compute @workgroup_size(256)
fn image_affine_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    let chw = p.c * p.hw;
    let nx = p.batch * chw;
    if (i >= nx) { return; }
    let xv = x[i];
    let ch = (i % chw) / p.hw;
    if (ch < p.npass) {
        out[i] = xv;
        return;
    }
    let sl = slot(i / chw, ch - p.npass, i % p.hw);
    let r = theta[sl.ir];
    let t = theta[sl.it];
    var y: f32;
    var ls: f32;
    if (p.kind == 0u) {
        let s = clamp(r, p.lo, p.hi);
        if (p.inverse != 0u) {
            y = (xv - t) * exp(-s);
            ls = -s;
        } else {
            y = xv * exp(s) + t;
            ls = s;
        }
    } else {
        let s = (1.0 - p.lo) * sigmoid(r + 2.0) + p.lo;
        if (p.inverse != 0u) {
            y = xv / s - t;
            ls = -log(s);
        } else {
            y = (xv + t) * s;
            ls = log(s);
        }
    }
    out[i] = y;
    out[nx + sl.l] = ls;
}

// Gradient of the forward direction; g packed like out. The injector's clamp is straight-through.
@compute @workgroup_size(256)
fn image_affine_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    let chw = p.c * p.hw;
    let nx = p.batch * chw;
    if (i >= nx) { return; }
    let gy = g[i];
    let ch = (i % chw) / p.hw;
    if (ch < p.npass) {
        gx[i] = gy;
        return;
    }
    let sl = slot(i / chw, ch - p.npass, i % p.hw);
    let xv = x[i];
    let r = theta[sl.ir];
    let t = theta[sl.it];
    let gls = g[nx + sl.l];
    if (p.kind == 0u) {
        let e = exp(clamp(r, p.lo, p.hi));
        gx[i] = gy * e;
        gtheta[sl.it] = gy;
        gtheta[sl.ir] = gy * xv * e + gls;
    } else {
        let u = sigmoid(r + 2.0);
        let s = (1.0 - p.lo) * u + p.lo;
        gx[i] = gy * s;
        gtheta[sl.it] = gy * s;
        gtheta[sl.ir] = (gy * (xv + t) + gls / s) * ((1.0 - p.lo) * u * (1.0 - u));
    }
}
