// Fused Adam / AdamW / RAdam update (maths and CPU reference: src/optim/adam.rs). ABI: kernels/README.md.
struct Params {
    n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32,
    bc1: f32, bc2: f32, scale: f32, use_v: u32, decoupled: u32, pad: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_out: array<f32>;

@compute @workgroup_size(256)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let gg = g[i] + select(p.weight_decay * x[i], 0.0, p.decoupled == 1u);
    let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * gg;
    let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * gg * gg;
    let base = select(x[i], x[i] * (1.0 - p.lr * p.weight_decay), p.decoupled == 1u);
    let mhat = m1 / p.bc1;
    let step = select(mhat, mhat / (sqrt(v1 / p.bc2) + p.eps), p.use_v == 1u);
    x_out[i] = base - p.lr * p.scale * step;
    m_out[i] = m1;
    v_out[i] = v1;
}
