//! The image autoencoder: load a checkpoint `gforge ae train` wrote, encode images to latents (what
//! `gforge ae encode` writes to latents.csv) and decode latents to images.
use crate::args::{expect_len, handle, out, slice, slice_mut, string};
use crate::device::GfDevice;
use crate::status::{guard, guard_free, GfStatus};
use galactic_forge::models::Autoencoder;
use galactic_forge::pipeline::ae::{self, ImageSet};
use galactic_forge::{Device, Error};
use std::ffi::c_char;
use std::path::Path;

/// Images per pass through the decoder (the encoder batches on its own, as `gforge ae encode`).
const CHUNK: usize = 16;

/// `gf_ae`: a loaded autoencoder on its device; read-only after loading.
pub struct GfAe {
    ae: Autoencoder,
    device: Device,
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_load(path: *const c_char, device: *const GfDevice, ae: *mut *mut GfAe) -> GfStatus {
    guard(|| {
        let ae_out = out(ae, "ae")?;
        *ae_out = std::ptr::null_mut();
        let device = handle(device, "device")?.device.clone();
        let (model, _) = ae::load(Path::new(string(path, "path")?), &device)?;
        *ae_out = Box::into_raw(Box::new(GfAe { ae: model, device }));
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_free(ae: *mut GfAe) {
    guard_free(|| {
        if !ae.is_null() {
            drop(Box::from_raw(ae));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_image_size(ae: *const GfAe, side: *mut usize) -> GfStatus {
    guard(|| {
        *out(side, "side")? = handle(ae, "ae")?.ae.cfg.image;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_latent_dim(ae: *const GfAe, latent_dim: *mut usize) -> GfStatus {
    guard(|| {
        *out(latent_dim, "latent_dim")? = handle(ae, "ae")?.ae.cfg.latents;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_encode(
    ae: *const GfAe,
    n: usize,
    images: *const f32,
    images_len: usize,
    latents: *mut f32,
    latents_len: usize,
) -> GfStatus {
    guard(|| {
        let a = handle(ae, "ae")?;
        let side = a.ae.cfg.image;
        expect_len("images_len", images_len, n, 3 * side * side)?;
        expect_len("latents_len", latents_len, n, a.ae.cfg.latents)?;
        let px = slice(images, images_len, "images")?;
        if let Some(i) = px.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!("image {} pixel {} is {}, not finite", i / (3 * side * side), i, px[i])));
        }
        let set = ImageSet { ids: vec![String::new(); n], size: side, data: px.to_vec() };
        let z = ae::encode(&a.ae, &set, &a.device)?;
        slice_mut(latents, latents_len, "latents")?.copy_from_slice(&z.concat());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn gf_ae_decode(
    ae: *const GfAe,
    n: usize,
    latents: *const f32,
    latents_len: usize,
    images: *mut f32,
    images_len: usize,
) -> GfStatus {
    guard(|| {
        let a = handle(ae, "ae")?;
        let (side, l) = (a.ae.cfg.image, a.ae.cfg.latents);
        expect_len("latents_len", latents_len, n, l)?;
        expect_len("images_len", images_len, n, 3 * side * side)?;
        let z = slice(latents, latents_len, "latents")?;
        if let Some(i) = z.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!("latent {} of image {} is {}, not finite", i % l, i / l, z[i])));
        }
        let images = slice_mut(images, images_len, "images")?;
        let mut at = 0;
        for rows in z.chunks(CHUNK * l.max(1)) {
            let rows: Vec<Vec<f32>> = rows.chunks(l).map(<[f32]>::to_vec).collect();
            for img in ae::decode(&a.ae, &rows, &a.device)? {
                images[at..at + img.len()].copy_from_slice(&img);
                at += img.len();
            }
        }
        Ok(())
    })
}
