//! File I/O shared by the crate: .npy / .npz reading with one clear error per bad file, and atomic writes
//! (temporary file in the same folder, then rename), so a crash never leaves a damaged file behind.
use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

fn npy_error(path: &Path, e: ReadNpyError) -> Error {
    let msg = match e {
        ReadNpyError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => "truncated .npy file".to_string(),
        ReadNpyError::Io(e) => e.to_string(),
        ReadNpyError::MissingData => "truncated .npy file: fewer values than its header declares".to_string(),
        ReadNpyError::ExtraBytes(n) => format!("{n} bytes after the data its header declares"),
        ReadNpyError::WrongDescriptor(d) => format!("unsupported dtype {d:?} (expected float32 or float64)"),
        e => format!("not a valid .npy file: {e}"),
    };
    Error::file(path, msg)
}

/// Reads a float32 or float64 .npy file as f32.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let open = || File::open(path).map(BufReader::new).map_err(|e| Error::file(path, e));
    match ArrayD::<f32>::read_npy(open()?) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => {
            let a = ArrayD::<f64>::read_npy(open()?).map_err(|e| npy_error(path, e))?;
            Ok(a.mapv(|v| v as f32))
        }
        Err(e) => Err(npy_error(path, e)),
    }
}

/// Reads a float64 or float32 .npy file as f64 (values a float32 file holds are exact in f64).
pub fn read_npy_f64(path: &Path) -> Result<ArrayD<f64>> {
    let open = || File::open(path).map(BufReader::new).map_err(|e| Error::file(path, e));
    match ArrayD::<f64>::read_npy(open()?) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => {
            let a = ArrayD::<f32>::read_npy(open()?).map_err(|e| npy_error(path, e))?;
            Ok(a.mapv(f64::from))
        }
        Err(e) => Err(npy_error(path, e)),
    }
}

/// Writes a float64 .npy file atomically.
pub fn write_npy_f64(path: &Path, a: &ArrayD<f64>) -> Result<()> {
    write_atomic(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

/// An exclusive lock on `<path>.lock`, held while a run writes `path`, so two processes pointed at the
/// same output cannot interleave their checkpoints. The operating system drops the lock when the process
/// ends, so a killed run never leaves a stale one (its small file stays until the next run on `path` ends);
/// dropping the guard removes the file.
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked: a run starting now either sees the lock or creates a fresh file.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the [`OutputLock`] of `path`, or says which process-held file stands in the way.
pub fn lock_output(path: &Path) -> Result<OutputLock> {
    let mut name = path.file_name().ok_or_else(|| Error::file(path, "not a file path"))?.to_os_string();
    name.push(".lock");
    let lock = path.with_file_name(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| Error::file(&lock, e))?;
    match f.try_lock() {
        Ok(()) => Ok(OutputLock { path: lock, _file: f }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Usage(format!(
            "another process is writing {} (it holds {}); wait for it to finish or choose another --out",
            path.display(),
            lock.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::file(&lock, e)),
    }
}

/// Writes `write` to `path` through a temporary file renamed into place.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let tmp: PathBuf = {
        let mut name = path.file_name().ok_or_else(|| Error::file(path, "not a file path"))?.to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        path.with_file_name(name)
    };
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, e));
    }
    Ok(())
}

/// Writes a float32 .npy file atomically.
pub fn write_npy_f32(path: &Path, a: &ArrayD<f32>) -> Result<()> {
    write_atomic(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

/// Reads every array of a .npz file as f32 (float64 entries converted), in file order.
pub fn read_npz_f32(path: &Path) -> Result<Vec<(String, ArrayD<f32>)>> {
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let mut z = ndarray_npy::NpzReader::new(BufReader::new(f))
        .map_err(|e| Error::file(path, format!("not a readable .npz file: {e}")))?;
    let names = z.names().map_err(|e| Error::file(path, format!("not a readable .npz file: {e}")))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let a = match z.by_name::<OwnedRepr<f32>, IxDyn>(&name) {
            Ok(a) => a,
            Err(_) => z
                .by_name::<OwnedRepr<f64>, IxDyn>(&name)
                .map_err(|e| Error::file(path, format!("entry '{name}': {e}")))?
                .mapv(|v| v as f32),
        };
        out.push((name.trim_end_matches(".npy").to_string(), a));
    }
    Ok(out)
}

/// Flushes a writer, mapping the error to the file it writes.
pub fn flush(path: &Path, w: &mut impl Write) -> Result<()> {
    w.flush().map_err(|e| Error::file(path, e))
}
