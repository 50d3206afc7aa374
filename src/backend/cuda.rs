//! The CUDA backend: NVIDIA GPUs through the driver API, loaded at run time (cudarc, dynamic loading), so
//! the crate builds and runs with no CUDA toolkit or driver. It runs the hand-written PTX of `kernels/`,
//! JIT-compiled by the driver on first use and cached per (family, entry).
//!
//! cudarc panics if `libcuda` is missing, so every entry point first checks `is_culib_present()`.
use super::{DeviceInfo, Launch};
use crate::error::{Error, Result};
use crate::sync::lock;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct CudaDevice {
    pub index: usize,
    pub name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Blocks a grid may have along x, y and z (CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_*).
    max_grid: [u32; 3],
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
}

/// A device buffer of `len` 4-byte elements: f32 tensor data or u32 indices. As on WGPU, at least one
/// element is allocated (the driver refuses empty allocations) and the true length is reported, so an
/// empty tensor is an empty buffer on every backend.
pub struct CudaBuffer {
    data: CudaData,
    len: usize,
}

enum CudaData {
    F32(CudaSlice<f32>),
    U32(CudaSlice<u32>),
}

impl CudaBuffer {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The parameter struct as the kernel's first argument: a `.param .align 4 .b8 p[SIZE]` reads its
/// first SIZE bytes from here. 128 bytes covers every family's struct (kernels/README.md); the struct is
/// exactly SIZE bytes (`Device::launch` checks it against the size build.rs read from the kernel), so the
/// zeros past it are never read as fields.
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct ParamBlock([u8; 128]);
// SAFETY: plain bytes with the alignment PTX declares for the parameter.
unsafe impl DeviceRepr for ParamBlock {}

fn driver_present() -> Result<()> {
    // SAFETY: only probes for the shared library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::Device("no NVIDIA driver: libcuda.so could not be loaded".into()))
    }
}

fn err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| {
        let msg = format!("cuda: {what}: {e}");
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            Error::OutOfMemory(msg)
        } else {
            Error::Device(msg)
        }
    }
}

pub fn list() -> Result<Vec<DeviceInfo>> {
    driver_present()?;
    let n = CudaContext::device_count().map_err(err("cannot count devices"))?;
    let mut out = Vec::new();
    for i in 0..n.max(0) as usize {
        let ctx = CudaContext::new(i).map_err(err("cannot open device"))?;
        let major = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .unwrap_or(0);
        let minor = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .unwrap_or(0);
        out.push(DeviceInfo {
            spec: format!("cuda:{i}"),
            name: ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
            backend: "cuda".into(),
            kind: format!("sm_{major}{minor}"),
            memory: ctx.total_mem().ok().map(|m| m as u64),
            f16: major >= 6,
        });
    }
    if out.is_empty() {
        return Err(Error::Device("the NVIDIA driver reports no device".into()));
    }
    Ok(out)
}

impl std::fmt::Display for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda:{} ({})", self.index, self.name)
    }
}

impl CudaDevice {
    /// Opens `cuda:index` once per process.
    pub fn open(index: usize) -> Result<Arc<CudaDevice>> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();
        driver_present()?;
        let mut open = lock(&OPEN.get_or_init(Default::default));
        if let Some(d) = open.get(&index) {
            return Ok(d.clone());
        }
        let n = CudaContext::device_count().map_err(err("cannot count devices"))?.max(0) as usize;
        if index >= n {
            return Err(Error::Device(format!("cuda:{index} does not exist ({n} CUDA device(s))")));
        }
        let ctx = CudaContext::new(index).map_err(err("cannot create context"))?;
        let name = ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into());
        let stream = ctx.default_stream();
        use cudarc::driver::sys::CUdevice_attribute::*;
        let mut max_grid = [0u32; 3];
        for (m, a) in max_grid.iter_mut().zip([
            CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X,
            CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y,
            CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z,
        ]) {
            *m = ctx.attribute(a).map_err(err("cannot read the grid limits"))?.max(1) as u32;
        }
        let d = Arc::new(CudaDevice {
            index,
            name,
            ctx,
            stream,
            max_grid,
            modules: Mutex::default(),
            functions: Mutex::default(),
        });
        open.insert(index, d.clone());
        Ok(d)
    }

    pub fn upload_f32(&self, data: &[f32]) -> Result<CudaBuffer> {
        let len = data.len();
        let data: &[f32] = if data.is_empty() { &[0.0] } else { data };
        let s = self.stream.clone_htod(data).map_err(err("copy to device"))?;
        Ok(CudaBuffer { data: CudaData::F32(s), len })
    }

    pub fn upload_u32(&self, data: &[u32]) -> Result<CudaBuffer> {
        let len = data.len();
        let data: &[u32] = if data.is_empty() { &[0] } else { data };
        let s = self.stream.clone_htod(data).map_err(err("copy to device"))?;
        Ok(CudaBuffer { data: CudaData::U32(s), len })
    }

    pub fn alloc(&self, len: usize) -> Result<CudaBuffer> {
        if super::poisoned() {
            return self.upload_f32(&vec![f32::NAN; len.max(1)]).map(|b| CudaBuffer { len, ..b });
        }
        // SAFETY: every kernel writes each element of its outputs (checked by the poison tests).
        let s = unsafe { self.stream.alloc::<f32>(len.max(1)) }.map_err(err("alloc"))?;
        Ok(CudaBuffer { data: CudaData::F32(s), len })
    }

    pub fn download_f32(&self, b: &CudaBuffer) -> Result<Vec<f32>> {
        match &b.data {
            _ if b.len == 0 => Ok(Vec::new()),
            CudaData::F32(s) => self.stream.clone_dtoh(&s.slice(..b.len)).map_err(err("copy to host")),
            CudaData::U32(_) => Err(Error::Device("cuda: download of an index buffer as f32".into())),
        }
    }

    /// Blocks a launch may have along x, y and z.
    pub fn grid_limits(&self) -> [u32; 3] {
        self.max_grid
    }

    fn function(&self, family: &'static str, entry: &'static str) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.functions).get(&(family, entry)) {
            return Ok(f.clone());
        }
        let kname = format!("{family}::{entry}");
        let module = {
            let mut modules = lock(&self.modules);
            match modules.get(family) {
                Some(m) => m.clone(),
                None => {
                    let src = crate::kernels::ptx(family)
                        .ok_or_else(|| Error::kernel(&kname, "no kernels/ file for this family"))?;
                    let m = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(src))
                        .map_err(|e| Error::kernel(&kname, format!("the driver rejected kernels/{family}.ptx: {e}")))?;
                    modules.insert(family, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(entry).map_err(|e| Error::kernel(&kname, format!("entry not found: {e}")))?;
        lock(&self.functions).insert((family, entry), f.clone());
        Ok(f)
    }

    /// Launches `l` on a grid of `grid` blocks (folded from `l.blocks` by `Device::launch`).
    pub fn launch(
        &self,
        l: &Launch,
        grid: [u32; 3],
        inputs: &[&super::Storage],
        outputs: &[&super::Storage],
    ) -> Result<()> {
        let f = self.function(l.family, l.entry)?;
        if l.params.len() > 128 {
            return Err(Error::kernel(l.name(), "parameter struct over 128 bytes"));
        }
        let mut block = ParamBlock([0; 128]);
        block.0[..l.params.len()].copy_from_slice(l.params);
        let mut args = self.stream.launch_builder(&f);
        args.arg(&block);
        for s in inputs.iter().chain(outputs) {
            match s {
                super::Storage::Cuda(CudaBuffer { data: CudaData::F32(b), .. }) => args.arg(b),
                super::Storage::Cuda(CudaBuffer { data: CudaData::U32(b), .. }) => args.arg(b),
                _ => return Err(Error::Device(format!("{}: buffer is not on this CUDA device", l.name()))),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid[0], grid[1], grid[2]),
            block_dim: (l.block[0], l.block[1], l.block[2]),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list follows the kernel's signature (kernels/README.md): the parameter
        // block then one pointer per buffer, each buffer sized by the op that built this launch.
        unsafe { args.launch(cfg) }.map_err(|e| Error::kernel(l.name(), format!("launch failed: {e}")))?;
        Ok(())
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(err("synchronize"))
    }
}
