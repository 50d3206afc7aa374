//! Devices: list what the machine offers, open one by its spec ("auto", "cpu", "wgpu:1", "cuda:0").
use crate::args::{handle, out, string};
use crate::status::{guard, guard_free, GfStatus};
use galactic_forge::backend::list_devices;
use galactic_forge::{Device, Error};
use std::ffi::{c_char, c_int, CString};

/// `gf_device`: an opened device. Devices are opened once per process and shared, so two handles of
/// "wgpu:0" drive the same adapter.
pub struct GfDevice {
    pub(crate) device: Device,
    name: CString,
}

/// `gf_device_info`: one line of `gforge devices`; its strings belong to the list.
#[repr(C)]
pub struct GfDeviceInfo {
    pub spec: *const c_char,
    pub name: *const c_char,
    pub backend: *const c_char,
    pub kind: *const c_char,
    pub memory: u64,
    pub f16: c_int,
}

struct Line {
    spec: CString,
    name: CString,
    backend: CString,
    kind: CString,
    memory: u64,
    f16: bool,
}

/// `gf_device_list`: the devices found when it was made, and why a backend offers none.
pub struct GfDeviceList {
    lines: Vec<Line>,
    notes: CString,
}

pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

#[no_mangle]
pub unsafe extern "C" fn gf_list_devices(list: *mut *mut GfDeviceList) -> GfStatus {
    guard(|| {
        let list = out(list, "list")?;
        *list = std::ptr::null_mut();
        let (infos, notes) = list_devices();
        let lines = infos
            .iter()
            .map(|i| Line {
                spec: cstring(&i.spec),
                name: cstring(&i.name),
                backend: cstring(&i.backend),
                kind: cstring(&i.kind),
                memory: i.memory.unwrap_or(0),
                f16: i.f16,
            })
            .collect();
        *list = Box::into_raw(Box::new(GfDeviceList { lines, notes: cstring(&notes.join("\n")) }));
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_list_len(list: *const GfDeviceList, len: *mut usize) -> GfStatus {
    guard(|| {
        *out(len, "len")? = handle(list, "list")?.lines.len();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_list_get(list: *const GfDeviceList, i: usize, info: *mut GfDeviceInfo) -> GfStatus {
    guard(|| {
        let l = handle(list, "list")?;
        let line = l.lines.get(i).ok_or_else(|| Error::Usage(format!("device {i} of a list of {}", l.lines.len())))?;
        *out(info, "info")? = GfDeviceInfo {
            spec: line.spec.as_ptr(),
            name: line.name.as_ptr(),
            backend: line.backend.as_ptr(),
            kind: line.kind.as_ptr(),
            memory: line.memory,
            f16: c_int::from(line.f16),
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_list_notes(list: *const GfDeviceList, notes: *mut *const c_char) -> GfStatus {
    guard(|| {
        *out(notes, "notes")? = handle(list, "list")?.notes.as_ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_list_free(list: *mut GfDeviceList) {
    guard_free(|| {
        if !list.is_null() {
            drop(Box::from_raw(list));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_open(spec: *const c_char, device: *mut *mut GfDevice) -> GfStatus {
    guard(|| {
        let device = out(device, "device")?;
        *device = std::ptr::null_mut();
        let d = Device::parse(string(spec, "spec")?)?;
        let name = cstring(&d.to_string());
        *device = Box::into_raw(Box::new(GfDevice { device: d, name }));
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_name(device: *const GfDevice, name: *mut *const c_char) -> GfStatus {
    guard(|| {
        *out(name, "name")? = handle(device, "device")?.name.as_ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_device_free(device: *mut GfDevice) {
    guard_free(|| {
        if !device.is_null() {
            drop(Box::from_raw(device));
        }
    })
}
