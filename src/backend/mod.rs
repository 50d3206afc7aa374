//! Devices and their buffers. Three backends, chosen at run time:
//! - `cpu`: plain `Vec<f32>`; every op's reference implementation lives in `src/ops/<op>/cpu.rs`.
//! - `wgpu`: any Vulkan/Metal/DX12/GL adapter, running the WGSL kernels in `wgsl/`.
//! - `cuda`: NVIDIA GPUs through the driver API (loaded at run time), running the PTX in `kernels/`.
//!
//! The two GPU backends are Cargo features (both on by default). A build without one compiles its
//! `*_absent.rs` instead: the same items over types with no values, so this file has no `cfg` and the
//! missing backend's device specs get a clear error.
//!
//! The two GPU backends share one launch description ([`Launch`]): the same parameter struct, buffer
//! order and block numbering (see kernels/README.md), so an op describes its GPU launch once, and each
//! backend fits it to its device's grid limits.
#[cfg_attr(not(feature = "cuda"), path = "cuda_absent.rs")]
pub mod cuda;
#[cfg_attr(not(feature = "wgpu"), path = "wgpu_absent.rs")]
pub mod wgpu;

use crate::error::{Error, Result};
use crate::kernels::KernelParams;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

/// Threads per block (workgroup) of every 1-D kernel.
pub const BLOCK: u32 = 256;

/// Where a tensor lives.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Wgpu(Arc<wgpu::WgpuDevice>),
    Cuda(Arc<cuda::CudaDevice>),
}

/// A device's memory holding f32 (tensors) or u32 (indices) values.
pub enum Storage {
    Cpu(Vec<f32>),
    CpuU32(Vec<u32>),
    Wgpu(wgpu::WgpuBuffer),
    Cuda(cuda::CudaBuffer),
}

impl Storage {
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(v) => v.len(),
            Storage::CpuU32(v) => v.len(),
            Storage::Wgpu(b) => b.len(),
            Storage::Cuda(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The host slice of a CPU f32 buffer (ops use this for their CPU path).
    pub fn cpu(&self) -> Option<&[f32]> {
        match self {
            Storage::Cpu(v) => Some(v),
            _ => None,
        }
    }
}

/// One GPU kernel launch, as both GPU backends execute it.
pub struct Launch<'a> {
    /// Kernel family: the file `kernels/<family>.ptx` / `wgsl/<family>.wgsl`.
    pub family: &'static str,
    /// Entry point in that file.
    pub entry: &'static str,
    /// The `#[repr(C)]` parameter struct as bytes (4-byte fields); [`Device::launch`] refuses it unless it is
    /// exactly the entry's declared block ([`crate::kernels::param_bytes`]).
    pub params: &'a [u8],
    /// Blocks (workgroups) to run. Kernels number their blocks linearly and find their place in the op
    /// from that number alone (kernels/README.md, "Grid"), so each backend folds them into whatever grid
    /// its device allows ([`fold_grid`]). 0 runs nothing.
    pub blocks: usize,
    pub block: [u32; 3],
}

/// The constructors take only a struct made for the kernel ([`KernelParams::KERNELS`]); debug builds check it.
fn params_for<'a, P: KernelParams>(family: &str, entry: &str, params: &'a P) -> &'a [u8] {
    debug_assert!(
        P::KERNELS.contains(&(family, entry)),
        "{family}::{entry} launched with {}, which is the parameter struct of {:?}",
        std::any::type_name::<P>(),
        P::KERNELS
    );
    bytemuck::bytes_of(params)
}

impl<'a> Launch<'a> {
    pub fn name(&self) -> String {
        format!("{}::{}", self.family, self.entry)
    }

    /// The parameter block must be exactly the size the kernel declares: a shorter struct would leave the
    /// kernel reading zeros (CUDA passes a fixed 128-byte block) and a longer one fields it never reads.
    pub(crate) fn check_params(&self) -> Result<()> {
        match crate::kernels::param_bytes(self.family, self.entry) {
            Some(n) if n == self.params.len() => Ok(()),
            Some(n) => Err(Error::kernel(
                self.name(),
                format!("{} bytes of parameters for the kernel's block of {n} bytes", self.params.len()),
            )),
            None => Err(Error::kernel(self.name(), "no such kernel in kernels/ and wgsl/")),
        }
    }

    /// A 1-D kernel over `n` elements in blocks of [`BLOCK`] threads.
    pub fn elementwise<P: KernelParams>(family: &'static str, entry: &'static str, params: &'a P, n: usize) -> Self {
        Launch {
            family,
            entry,
            params: params_for(family, entry, params),
            blocks: n.div_ceil(BLOCK as usize),
            block: [BLOCK, 1, 1],
        }
    }

    /// A kernel along one axis of [outer, n, inner]: `rows` (a block per row) when inner = 1,
    /// else `cols` (a thread per output element).
    pub fn along_axis<P: KernelParams>(
        family: &'static str,
        (rows, cols): (&'static str, &'static str),
        params: &'a P,
        outer: usize,
        inner: usize,
    ) -> Self {
        if inner == 1 {
            Self::per_block(family, rows, params, outer)
        } else {
            Self::elementwise(family, cols, params, outer * inner)
        }
    }

    /// One block of [`BLOCK`] threads per item (a row, an entry of a weight gradient).
    pub fn per_block<P: KernelParams>(family: &'static str, entry: &'static str, params: &'a P, items: usize) -> Self {
        Launch { family, entry, params: params_for(family, entry, params), blocks: items, block: [BLOCK, 1, 1] }
    }

    /// A tiled kernel of 16 x 16 threads per tile over `tiles` = (d0, d1, d2) tiles, d0 fastest in the
    /// block number (kernels/README.md).
    pub fn tiled<P: KernelParams>(family: &'static str, entry: &'static str, params: &'a P, tiles: [usize; 3]) -> Self {
        let params = params_for(family, entry, params);
        Launch { family, entry, params, blocks: tiles.iter().product(), block: [16, 16, 1] }
    }

    /// Threads per block.
    pub fn threads(&self) -> u32 {
        self.block.iter().product()
    }
}

/// The grid (gx, gy, gz) that runs `blocks` blocks of `threads` threads within the per-dimension `limits`:
/// x is filled first, then y, then z. Kernels number block (x, y, z) as `(z gy + y) gx + x`; the numbers
/// past `blocks` (the last row and plane may be partial) find themselves past the end of the op and do
/// nothing. Every block and thread number must fit in u32 (kernels/README.md, "Sizes"): None when the
/// launch does not fit, never a wrapped index.
pub fn fold_grid(blocks: usize, threads: u32, limits: [u32; 3]) -> Option<[u32; 3]> {
    let [lx, ly, lz] = limits.map(|l| u64::from(l.max(1)));
    let b = (blocks as u64).max(1);
    let gx = b.min(lx);
    let rows = b.div_ceil(gx);
    let gy = rows.min(ly);
    let gz = rows.div_ceil(gy);
    (gz <= lz && gx * gy * gz * u64::from(threads) <= 1 << 32).then_some([gx as u32, gy as u32, gz as u32])
}

thread_local! {
    static GRID_LIMIT: Cell<Option<u32>> = const { Cell::new(None) };
    static LAUNCHES: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with every grid dimension of this thread's launches capped at `limit` blocks, as on a device
/// that allowed no more: tests tile small launches this way exactly as launches past 65,535 blocks per
/// dimension are tiled on real devices.
pub fn with_grid_limit<R>(limit: u32, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u32>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRID_LIMIT.set(self.0);
        }
    }
    let _restore = Restore(GRID_LIMIT.replace(Some(limit.max(1))));
    f()
}

/// A device's per-dimension grid limits, lowered by [`with_grid_limit`] on this thread.
pub(crate) fn grid_limits(device: [u32; 3]) -> [u32; 3] {
    match GRID_LIMIT.get() {
        Some(l) => device.map(|d| d.min(l)),
        None => device,
    }
}

/// Kernels this thread has dispatched so far (tests check that ops on empty tensors launch nothing).
pub fn launch_count() -> u64 {
    LAUNCHES.get()
}

thread_local! {
    static POISON: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every GPU output buffer that this thread allocates filled with NaN before its kernel runs, so
/// an element the kernel fails to write shows up (selftest, the parity and limit tests). The switch belongs to
/// the calling thread, as [`with_grid_limit`]'s does: tests running in parallel cannot turn each other's off,
/// and it is restored when `f` returns or panics (an inner call leaves an outer one on).
pub fn with_poison<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            POISON.set(self.0);
        }
    }
    let _restore = Restore(POISON.replace(true));
    f()
}

/// Whether this thread's GPU outputs are poisoned now ([`with_poison`]).
pub fn poisoned() -> bool {
    POISON.get()
}

impl Device {
    /// Parses `auto`, `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`. `auto` picks CUDA, then a hardware WGPU
    /// adapter, then the CPU. Devices are opened once per process and shared.
    pub fn parse(spec: &str) -> Result<Device> {
        let (kind, index) = match spec.split_once(':') {
            Some((k, i)) => {
                let i = i.parse::<usize>().map_err(|_| {
                    Error::Usage(format!("bad device '{spec}': expected auto, cpu, wgpu[:N] or cuda[:N]"))
                })?;
                (k, Some(i))
            }
            None => (spec, None),
        };
        match kind {
            "cpu" if index.is_none() => Ok(Device::Cpu),
            "wgpu" => Ok(Device::Wgpu(wgpu::WgpuDevice::open(index.unwrap_or(0))?)),
            "cuda" => Ok(Device::Cuda(cuda::CudaDevice::open(index.unwrap_or(0))?)),
            "auto" if index.is_none() => Ok(Self::auto()),
            _ => Err(Error::Usage(format!("bad device '{spec}': expected auto, cpu, wgpu[:N] or cuda[:N]"))),
        }
    }

    fn auto() -> Device {
        if let Ok(d) = cuda::CudaDevice::open(0) {
            return Device::Cuda(d);
        }
        if let Some(i) = wgpu::hardware_adapter_index() {
            if let Ok(d) = wgpu::WgpuDevice::open(i) {
                return Device::Wgpu(d);
            }
        }
        Device::Cpu
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Wgpu(a), Device::Wgpu(b)) => Arc::ptr_eq(a, b),
            (Device::Cuda(a), Device::Cuda(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Copies host values to a new buffer on this device.
    pub fn upload(&self, data: &[f32]) -> Result<Storage> {
        match self {
            Device::Cpu => Ok(Storage::Cpu(data.to_vec())),
            Device::Wgpu(d) => Ok(Storage::Wgpu(d.upload(bytemuck::cast_slice(data), data.len())?)),
            Device::Cuda(d) => Ok(Storage::Cuda(d.upload_f32(data)?)),
        }
    }

    /// Copies host indices to a new buffer on this device.
    pub fn upload_u32(&self, data: &[u32]) -> Result<Storage> {
        match self {
            Device::Cpu => Ok(Storage::CpuU32(data.to_vec())),
            Device::Wgpu(d) => Ok(Storage::Wgpu(d.upload(bytemuck::cast_slice(data), data.len())?)),
            Device::Cuda(d) => Ok(Storage::Cuda(d.upload_u32(data)?)),
        }
    }

    /// Reads a buffer of f32 back to the host (waits for the work that writes it).
    pub fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        match (self, s) {
            (_, Storage::Cpu(v)) => Ok(v.clone()),
            // Byte by byte: a Vec<u8> need not be 4-byte aligned (an empty one never is), so no cast_slice.
            (Device::Wgpu(d), Storage::Wgpu(b)) => {
                Ok(d.download(b)?.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            (Device::Cuda(d), Storage::Cuda(b)) => d.download_f32(b),
            _ => Err(Error::Device("download: buffer of another device".into())),
        }
    }

    /// A new f32 buffer of `n` elements for a kernel to write (NaN-filled inside [`with_poison`]).
    pub fn alloc(&self, n: usize) -> Result<Storage> {
        match self {
            Device::Cpu => Ok(Storage::Cpu(vec![0.0; n])),
            Device::Wgpu(d) => Ok(Storage::Wgpu(d.alloc(n)?)),
            Device::Cuda(d) => Ok(Storage::Cuda(d.alloc(n)?)),
        }
    }

    /// Runs one kernel on a GPU device: `inputs` are read, `outputs` written. A launch of no blocks, or
    /// whose outputs are all empty, runs nothing: the one rule for empty tensors on every backend (an op
    /// whose result is empty returns it without launching; ops check their shapes first, so nothing is
    /// skipped that should have failed).
    pub fn launch(&self, l: &Launch, inputs: &[&Storage], outputs: &[&Storage]) -> Result<()> {
        let grid = || {
            let limits = grid_limits(self.grid_limits());
            fold_grid(l.blocks, l.threads(), limits).ok_or_else(|| {
                let [x, y, z] = limits;
                Error::kernel(
                    l.name(),
                    format!(
                        "{} blocks of {} threads do not fit the device's grid of {x} x {y} x {z} blocks with 32-bit \
                         thread numbers",
                        l.blocks,
                        l.threads()
                    ),
                )
            })
        };
        l.check_params()?;
        match self {
            Device::Cpu => return Err(Error::Device(format!("{} is a GPU kernel; the CPU runs src/ops", l.name()))),
            _ if l.blocks == 0 || (!outputs.is_empty() && outputs.iter().all(|o| o.is_empty())) => return Ok(()),
            Device::Wgpu(d) => d.launch(l, grid()?, inputs, outputs)?,
            Device::Cuda(d) => d.launch(l, grid()?, inputs, outputs)?,
        }
        LAUNCHES.set(LAUNCHES.get() + 1);
        Ok(())
    }

    /// The most blocks a launch may have along x, y and z (the CPU has no grid).
    pub fn grid_limits(&self) -> [u32; 3] {
        match self {
            Device::Cpu => [u32::MAX; 3],
            Device::Wgpu(d) => d.grid_limits(),
            Device::Cuda(d) => d.grid_limits(),
        }
    }

    /// Waits for all queued work (for timing; reads wait by themselves).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Wgpu(d) => d.synchronize(),
            Device::Cuda(d) => d.synchronize(),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Wgpu(d) => d.fmt(f),
            Device::Cuda(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One line of `gforge devices`.
pub struct DeviceInfo {
    pub spec: String,
    pub name: String,
    pub backend: String,
    pub kind: String,
    pub memory: Option<u64>,
    pub f16: bool,
}

/// Every device this machine offers, without opening them for work.
pub fn list_devices() -> (Vec<DeviceInfo>, Vec<String>) {
    let mut out = vec![DeviceInfo {
        spec: "cpu".into(),
        name: cpu_name(),
        backend: "cpu".into(),
        kind: format!("{} threads", rayon::current_num_threads()),
        memory: host_memory(),
        f16: false,
    }];
    let mut notes = Vec::new();
    match cuda::list() {
        Ok(mut v) => out.append(&mut v),
        Err(e) => notes.push(format!("cuda: {e}")),
    }
    match wgpu::list() {
        Ok(mut v) => out.append(&mut v),
        Err(e) => notes.push(format!("wgpu: {e}")),
    }
    (out, notes)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn host_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("MemTotal"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBGPU: [u32; 3] = [65_535; 3];
    const CUDA: [u32; 3] = [i32::MAX as u32, 65_535, 65_535];

    /// Two threads poison at once, and the one that turned poison on first turns it off first (as a parallel
    /// test that ends does): the other stays poisoned, and a third thread that never asked is not poisoned
    /// meanwhile. With one process-wide switch, B's exit (whether it sets the switch off or restores what it
    /// found) leaves A unpoisoned.
    #[test]
    fn poison_is_per_thread() {
        use std::sync::Barrier;
        let (b_on, both_on, b_done) = (Barrier::new(3), Barrier::new(3), Barrier::new(3));
        std::thread::scope(|s| {
            let b = s.spawn(|| {
                with_poison(|| {
                    b_on.wait();
                    both_on.wait();
                });
                b_done.wait();
                poisoned()
            });
            let a = s.spawn(|| {
                b_on.wait();
                with_poison(|| {
                    both_on.wait();
                    b_done.wait();
                    poisoned()
                })
            });
            let c = s.spawn(|| {
                b_on.wait();
                both_on.wait();
                let c = poisoned();
                b_done.wait();
                c
            });
            assert!(a.join().unwrap(), "another thread turned this thread's poison off");
            assert!(!b.join().unwrap(), "with_poison left the switch on");
            assert!(!c.join().unwrap(), "a thread that never asked for poison got it");
        });
    }

    /// Nested calls keep the outer one on, and a panic inside still restores the switch.
    #[test]
    fn poison_nests_and_survives_panics() {
        assert!(!poisoned());
        with_poison(|| {
            with_poison(|| assert!(poisoned()));
            assert!(poisoned(), "the inner call turned the outer one off");
        });
        assert!(!poisoned());
        assert!(std::panic::catch_unwind(|| with_poison(|| panic!("inside"))).is_err());
        assert!(!poisoned());
    }

    /// A parameter struct of the wrong size for the entry is refused before any device sees it (CUDA would
    /// zero-pad a short one into its 128-byte block), as is an entry no kernel file declares.
    #[test]
    fn launches_check_the_parameter_block_size() {
        let p = crate::ops::unary::UnaryOp::Exp.params(10).unwrap();
        let l = Launch::elementwise("unary", "unary_fwd", &p, 10);
        assert!(l.check_params().is_ok());
        let short = Launch { params: &l.params[..12], ..l };
        let e = short.check_params().unwrap_err().to_string();
        assert!(e.contains("12 bytes of parameters for the kernel's block of 16 bytes"), "{e}");
        let long = [0u8; 20];
        assert!(Launch { params: &long, ..l }.check_params().is_err());
        assert!(Launch { entry: "no_such_entry", ..l }.check_params().is_err());
        assert!(Device::Cpu.launch(&short, &[], &[]).unwrap_err().to_string().contains("12 bytes"));
    }

    /// Debug builds refuse a struct made for another kernel at construction.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "unary::unary_fwd launched with")]
    fn launches_take_only_the_entry_s_own_struct() {
        let p = crate::ops::softclip::Params::new(10, false, 1.0).unwrap();
        let _ = Launch::elementwise("unary", "unary_fwd", &p, 10);
    }

    #[test]
    fn grids_fold_past_a_dimension_limit() {
        assert_eq!(fold_grid(100, 256, WEBGPU), Some([100, 1, 1]));
        // 70,001 blocks on one dimension: past WebGPU's limit, within CUDA's x.
        assert_eq!(fold_grid(70_001, 256, WEBGPU), Some([65_535, 2, 1]));
        assert_eq!(fold_grid(70_001, 256, CUDA), Some([70_001, 1, 1]));
        // A tiny device: x, then y, then z, with spare blocks in the last plane.
        assert_eq!(fold_grid(5, 256, [2, 2, 2]), Some([2, 2, 2]));
        assert_eq!(fold_grid(9, 256, [3, 3, 3]), Some([3, 3, 1]));
        assert_eq!(fold_grid(10, 256, [3, 3, 3]), Some([3, 3, 2]));
        assert_eq!(fold_grid(28, 256, [3, 3, 3]), None);
        // Every thread number must fit in u32.
        assert_eq!(fold_grid(1 << 24, 256, CUDA), Some([1 << 24, 1, 1]));
        assert_eq!(fold_grid((1 << 24) + 1, 256, CUDA), None);
        // (65,535-wide rows would add 65,279 spare blocks, whose thread numbers pass 2^32.)
        assert_eq!(fold_grid(1 << 24, 256, WEBGPU), None);
        assert_eq!(fold_grid(1 << 23, 256, WEBGPU), Some([65_535, 129, 1]));
    }

    #[test]
    fn the_grid_limit_is_per_thread_and_restored() {
        assert_eq!(grid_limits(WEBGPU), WEBGPU);
        let inner = with_grid_limit(7, || {
            let other = std::thread::spawn(|| grid_limits(WEBGPU)).join().unwrap();
            (grid_limits(WEBGPU), other)
        });
        assert_eq!(inner, ([7; 3], WEBGPU));
        assert_eq!(grid_limits(CUDA), CUDA);
    }
}
