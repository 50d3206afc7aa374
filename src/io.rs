//! File I/O shared by the crate: .npy / .npz reading with one clear error per bad file, and atomic writes
//! (temporary file in the same folder, then rename), so a crash never leaves a damaged file behind.
use crate::error::{Error, Result};
use crate::npy;
use ndarray::ArrayD;
use ndarray_npy::WriteNpyExt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Reads a float32 or float64 .npy file (either byte order, C or Fortran order) as f32 in C order. The
/// size its header declares is checked against the file's length before anything is allocated
/// ([`crate::npy`]).
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    match npy::read(&mut BufReader::new(f), len).map_err(|e| Error::file(path, e))? {
        npy::Value::F32(a) => Ok(a),
        npy::Value::U8(_) => Err(Error::file(path, "unsupported dtype uint8 (expected float32 or float64)")),
    }
}

/// Opens an .npz archive for [`npy::Npz::read`].
pub fn open_npz(path: &Path) -> Result<npy::Npz<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    npy::Npz::new(BufReader::new(f), len).map_err(|e| Error::file(path, e))
}

/// Reads a float64 or float32 .npy file as f64 (values a float32 file holds are exact in f64), with the
/// checks of [`read_npy_f32`].
pub fn read_npy_f64(path: &Path) -> Result<ArrayD<f64>> {
    let f = File::open(path).map_err(|e| Error::file(path, e))?;
    let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    npy::read_f64(&mut BufReader::new(f), len).map_err(|e| Error::file(path, e))
}

/// Writes a float64 .npy file atomically.
pub fn write_npy_f64(path: &Path, a: &ArrayD<f64>) -> Result<()> {
    write_atomic(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

/// An exclusive lock on `<path>.lock`, held while a run writes `path`, so two processes pointed at the
/// same output cannot interleave their checkpoints. The operating system drops the lock when the process
/// ends, so a killed run never leaves a stale one (its small file stays until the next run on `path` ends);
/// dropping the guard removes the file. Taking the lock also removes the temporaries a killed writer of
/// `path` left behind ([`remove_stale_temps`]).
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
        Ok(()) => {
            remove_stale_temps(path);
            Ok(OutputLock { path: lock, _file: f })
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Usage(format!(
            "another process is writing {} (it holds {}); wait for it to finish or choose another --out",
            path.display(),
            lock.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::file(&lock, e)),
    }
}

/// The temporary file [`write_atomic`] writes through. With `GFORGE_TEST_WRITE_PAUSE_MS=<ms>` in the
/// environment (a hook for the kill tests, tests/kill.rs), its first write stores only half of what it is
/// given and then sleeps that long, so a test can kill the process while a half-written temporary exists.
pub struct TempFile {
    file: File,
    pause: Option<std::time::Duration>,
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.pause.take() {
            Some(pause) if buf.len() > 1 => {
                let n = self.file.write(&buf[..buf.len() / 2])?;
                std::thread::sleep(pause);
                Ok(n)
            }
            _ => self.file.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl std::io::Seek for TempFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// `<name>.<pid>.tmp` beside `path`: where [`write_atomic`] writes `path` before renaming it.
fn temp_name(path: &Path, pid: u32) -> Result<PathBuf> {
    let mut name = path.file_name().ok_or_else(|| Error::file(path, "not a file path"))?.to_os_string();
    name.push(format!(".{pid}.tmp"));
    Ok(path.with_file_name(name))
}

/// Removes the temporaries of `path` that a killed writer left (`<name>.<pid>.tmp`). Only for a caller
/// that holds `path`'s [`OutputLock`], so no live process is writing them.
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let f = e.file_name();
        let Some(rest) = f.to_str().and_then(|f| f.strip_prefix(name)).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let pid = rest.strip_suffix(".tmp").filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if pid.is_some() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes `write` to `path` through a temporary file renamed into place.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut BufWriter<TempFile>) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_name(path, std::process::id())?;
    let pause = std::env::var("GFORGE_TEST_WRITE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    let result = (|| {
        let mut w = BufWriter::new(TempFile { file: File::create(&tmp)?, pause });
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.file.sync_all()?;
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
    let mut z = open_npz(path)?;
    let mut out = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        match z.read(i) {
            Ok((name, npy::Value::F32(a))) => out.push((name, a)),
            Ok((name, npy::Value::U8(_))) => {
                return Err(Error::file(
                    path,
                    format!("entry '{name}': unsupported dtype uint8 (expected float32 or float64)"),
                ))
            }
            Err((name, e)) => return Err(Error::file(path, format!("entry '{name}': {e}"))),
        }
    }
    Ok(out)
}

/// Flushes a writer, mapping the error to the file it writes.
pub fn flush(path: &Path, w: &mut impl Write) -> Result<()> {
    w.flush().map_err(|e| Error::file(path, e))
}
