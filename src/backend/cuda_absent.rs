//! Stands in for cuda.rs in a build without the `cuda` feature: the same items, and no device. Its device
//! and buffer types have no values, so no method can run; `Device::parse("cuda")` gets one clear error.
use super::{DeviceInfo, Launch, Storage};
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

pub enum CudaDevice {}
pub enum CudaBuffer {}

fn absent() -> Error {
    Error::Device("this build has no CUDA backend (it was compiled without the `cuda` feature)".into())
}

impl CudaBuffer {
    pub fn len(&self) -> usize {
        match *self {}
    }
    pub fn is_empty(&self) -> bool {
        match *self {}
    }
}

pub fn list() -> Result<Vec<DeviceInfo>> {
    Err(absent())
}

impl CudaDevice {
    pub fn open(_index: usize) -> Result<Arc<CudaDevice>> {
        Err(absent())
    }
    pub fn upload_f32(&self, _data: &[f32]) -> Result<CudaBuffer> {
        match *self {}
    }
    pub fn upload_u32(&self, _data: &[u32]) -> Result<CudaBuffer> {
        match *self {}
    }
    pub fn alloc(&self, _len: usize) -> Result<CudaBuffer> {
        match *self {}
    }
    pub fn download_f32(&self, _b: &CudaBuffer) -> Result<Vec<f32>> {
        match *self {}
    }
    pub fn grid_limits(&self) -> [u32; 3] {
        match *self {}
    }
    pub fn launch(&self, _l: &Launch, _grid: [u32; 3], _in: &[&Storage], _out: &[&Storage]) -> Result<()> {
        match *self {}
    }
    pub fn synchronize(&self) -> Result<()> {
        match *self {}
    }
}

impl fmt::Display for CudaDevice {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}
