//! Devices and their buffers. Three backends, all compiled in and chosen at run time:
//! - `cpu`: plain `Vec<f32>`; every op's reference implementation lives in `src/ops/<op>/cpu.rs`.
//! - `wgpu`: any Vulkan/Metal/DX12/GL adapter, running the WGSL kernels in `wgsl/`.
//! - `cuda`: NVIDIA GPUs through the driver API (loaded at run time), running the PTX in `kernels/`.
//!
//! The two GPU backends share one launch description ([`Launch`]): the same parameter struct, buffer
//! order and grid (see kernels/README.md), so an op describes its GPU launch once.
pub mod cuda;
pub mod wgpu;

use crate::error::{Error, Result};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Threads per block (workgroup) of every 1-D kernel.
pub const BLOCK: u32 = 256;
/// WebGPU's cap on each grid dimension; CUDA's is larger but one grid mapping serves both.
const MAX_GRID: u32 = 65535;

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
    /// The `#[repr(C)]` parameter struct as bytes (4-byte fields).
    pub params: &'a [u8],
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

impl<'a> Launch<'a> {
    pub fn name(&self) -> String {
        format!("{}::{}", self.family, self.entry)
    }

    /// A 1-D kernel over `n` elements in blocks of [`BLOCK`] threads.
    pub fn elementwise<P: bytemuck::Pod>(family: &'static str, entry: &'static str, params: &'a P, n: usize) -> Self {
        Launch { family, entry, params: bytemuck::bytes_of(params), grid: grid_1d(n), block: [BLOCK, 1, 1] }
    }

    /// A kernel along one axis of [outer, n, inner]: `rows` (a block per row) when inner = 1,
    /// else `cols` (a thread per output element).
    pub fn along_axis<P: bytemuck::Pod>(
        family: &'static str,
        (rows, cols): (&'static str, &'static str),
        params: &'a P,
        outer: usize,
        inner: usize,
    ) -> Self {
        if inner == 1 {
            Launch {
                family,
                entry: rows,
                params: bytemuck::bytes_of(params),
                grid: grid_blocks(outer),
                block: [BLOCK, 1, 1],
            }
        } else {
            Self::elementwise(family, cols, params, outer * inner)
        }
    }
}

/// Grid for a 1-D kernel over `n` elements with blocks of [`BLOCK`] threads, split over x and y.
pub fn grid_1d(n: usize) -> [u32; 3] {
    grid_blocks(n.div_ceil(BLOCK as usize))
}

/// Grid of `blocks` blocks split over x and y (kernels index blocks as `y * gridDim.x + x`).
pub fn grid_blocks(blocks: usize) -> [u32; 3] {
    let blocks = blocks.max(1);
    let gx = blocks.min(MAX_GRID as usize);
    [gx as u32, blocks.div_ceil(gx) as u32, 1]
}

static POISON: AtomicBool = AtomicBool::new(false);

/// When on, every GPU output buffer is filled with NaN before its kernel runs, so an element the kernel
/// fails to write shows up in tests (selftest and the parity tests turn it on).
pub fn set_poison(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

pub(crate) fn poison() -> bool {
    POISON.load(Ordering::Relaxed)
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
            (Device::Wgpu(d), Storage::Wgpu(b)) => Ok(bytemuck::cast_slice(&d.download(b)?).to_vec()),
            (Device::Cuda(d), Storage::Cuda(b)) => d.download_f32(b),
            _ => Err(Error::Device("download: buffer of another device".into())),
        }
    }

    /// A new f32 buffer of `n` elements for a kernel to write (NaN-filled in poison mode).
    pub fn alloc(&self, n: usize) -> Result<Storage> {
        match self {
            Device::Cpu => Ok(Storage::Cpu(vec![0.0; n])),
            Device::Wgpu(d) => Ok(Storage::Wgpu(d.alloc(n)?)),
            Device::Cuda(d) => Ok(Storage::Cuda(d.alloc(n)?)),
        }
    }

    /// Runs one kernel on a GPU device: `inputs` are read, `outputs` written.
    pub fn launch(&self, l: &Launch, inputs: &[&Storage], outputs: &[&Storage]) -> Result<()> {
        match self {
            Device::Cpu => Err(Error::Device(format!("{} is a GPU kernel; the CPU runs src/ops", l.name()))),
            Device::Wgpu(d) => d.launch(l, inputs, outputs),
            Device::Cuda(d) => d.launch(l, inputs, outputs),
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
            Device::Wgpu(d) => write!(f, "wgpu:{} ({})", d.index, d.info.name),
            Device::Cuda(d) => write!(f, "cuda:{} ({})", d.index, d.name),
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
