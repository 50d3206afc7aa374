// Layout ops: fill, slice_copy (concat / narrow), transpose of the last two axes (src/ops/copy/).
// ABI: kernels/README.md.
struct FillParams { n: u32, value: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> fp: FillParams;
@group(0) @binding(1) var<storage, read_write> fdst: array<f32>;

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= fp.n) { return; }
    fdst[i] = fp.value;
}

struct SliceParams { outer: u32, inner: u32, src_n: u32, dst_n: u32, src_off: u32, dst_off: u32, len: u32, total: u32 }
@group(0) @binding(0) var<uniform> sp: SliceParams;
@group(0) @binding(1) var<storage, read> ssrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> sdst: array<f32>;

@compute @workgroup_size(256)
fn slice_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= sp.total) { return; }
    let r = i % sp.inner;
    let j = (i / sp.inner) % sp.len;
    let o = i / (sp.inner * sp.len);
    sdst[(o * sp.dst_n + sp.dst_off + j) * sp.inner + r] = ssrc[(o * sp.src_n + sp.src_off + j) * sp.inner + r];
}

struct TransposeParams { batch: u32, rows: u32, cols: u32, pad: u32 }
@group(0) @binding(0) var<uniform> tp: TransposeParams;
@group(0) @binding(1) var<storage, read> tsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> tdst: array<f32>;

// 16 x 17: the padding column keeps the transposed reads off a single bank.
var<workgroup> tile: array<f32, 272>;

// The workgroup's tile from its linear number (kernels/README.md, "Grid"): columns fastest, then rows, then
// the batch; a number past the last tile returns as a whole, before the barrier.
@compute @workgroup_size(16, 16)
fn transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let ncol = (tp.cols - 1u) / 16u + 1u;
    let nrow = (tp.rows - 1u) / 16u + 1u;
    let bi = blk / ncol / nrow;
    if (bi >= tp.batch) { return; }
    let tc = blk % ncol;
    let tr = blk / ncol % nrow;
    let base = bi * tp.rows * tp.cols;
    let c = tc * 16u + lid.x;
    let r = tr * 16u + lid.y;
    if (r < tp.rows && c < tp.cols) {
        tile[lid.y * 17u + lid.x] = tsrc[base + r * tp.cols + c];
    }
    workgroupBarrier();
    // Write row `tc * 16 + lid.y` of the output (a column of the input), coalesced along lid.x.
    let orow = tc * 16u + lid.y;
    let ocol = tr * 16u + lid.x;
    if (orow < tp.cols && ocol < tp.rows) {
        tdst[base + orow * tp.rows + ocol] = tile[lid.x * 17u + lid.y];
    }
}
