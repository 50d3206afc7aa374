//! Stands in for wgpu.rs in a build without the `wgpu` feature: the same items, and no adapter. Its device
//! and buffer types have no values, so no method can run; `Device::parse("wgpu")` gets one clear error.
use super::{DeviceInfo, Launch, Storage};
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

pub enum WgpuDevice {}
pub enum WgpuBuffer {}

fn absent() -> Error {
    Error::Device("this build has no WGPU backend (it was compiled without the `wgpu` feature)".into())
}

impl WgpuBuffer {
    pub fn len(&self) -> usize {
        match *self {}
    }
    pub fn is_empty(&self) -> bool {
        match *self {}
    }
}

pub fn hardware_adapter_index() -> Option<usize> {
    None
}

pub fn list() -> Result<Vec<DeviceInfo>> {
    Err(absent())
}

impl WgpuDevice {
    pub fn open(_index: usize) -> Result<Arc<WgpuDevice>> {
        Err(absent())
    }
    pub fn upload(self: &Arc<Self>, _bytes: &[u8], _len: usize) -> Result<WgpuBuffer> {
        match **self {}
    }
    pub fn alloc(self: &Arc<Self>, _len: usize) -> Result<WgpuBuffer> {
        match **self {}
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
    pub fn download(&self, _b: &WgpuBuffer) -> Result<Vec<u8>> {
        match *self {}
    }
}

impl fmt::Display for WgpuDevice {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}
