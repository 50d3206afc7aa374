//! One error type for the crate: every failure a user can cause (bad shape, missing device, unreadable
//! file, corrupt checkpoint, kernel that fails to load) is a value with a message, never a panic.
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose shapes do not fit the op.
    #[error("shape error in {op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A device that is absent, cannot start, or failed while running.
    #[error("device error: {0}")]
    Device(String),
    /// A kernel that failed to compile, load or launch.
    #[error("kernel {kernel}: {msg}")]
    Kernel { kernel: String, msg: String },
    /// Tensors on different devices used together.
    #[error("tensors on different devices ({0} and {1}) used in one op")]
    DeviceMismatch(String, String),
    /// A file that cannot be read or written.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// Data that is well-formed on disk but unusable (NaN, wrong layout, out-of-range index...).
    #[error("invalid data: {0}")]
    Data(String),
    /// A checkpoint that is truncated, mismatched or non-finite.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },
    /// Misuse of the API or command line.
    #[error("{0}")]
    Usage(String),
    /// Training stopped on request (Ctrl-C) after saving a checkpoint at a batch boundary.
    #[error("interrupted: checkpoint {path} saved after batch {batch} of epoch {epoch}; run the same command with --resume to continue")]
    Interrupted { path: String, epoch: usize, batch: usize },
    /// A device allocation that did not fit (the host's allocator aborts instead, as in every Rust program).
    #[error("{0}")]
    OutOfMemory(String),
    /// A computation that produced a non-finite value where a finite one is needed (a diverging loss).
    #[error("{0}")]
    Numeric(String),
}

/// What kind of failure an [`Error`] is, for a program that reacts to it (the C API's status codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Misuse: a bad argument, option or combination; tensors of two devices in one op.
    Usage,
    /// Operands or buffers whose shapes do not fit.
    Shape,
    /// A file that cannot be read or written.
    Io,
    /// Bytes that were read but are unusable: a corrupt or mismatched checkpoint, NaN in data.
    Data,
    /// A device that is absent, cannot start, or failed; a kernel that failed to load or launch.
    Device,
    OutOfMemory,
    Numeric,
    /// Training stopped on request (Ctrl-C) with a checkpoint to resume from.
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shape { .. } => ErrorKind::Shape,
            Error::Device(_) | Error::Kernel { .. } => ErrorKind::Device,
            Error::DeviceMismatch(..) | Error::Usage(_) => ErrorKind::Usage,
            Error::File { .. } => ErrorKind::Io,
            Error::Data(_) | Error::Checkpoint { .. } => ErrorKind::Data,
            Error::OutOfMemory(_) => ErrorKind::OutOfMemory,
            Error::Numeric(_) => ErrorKind::Numeric,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
        }
    }
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape { op, msg: msg.into() }
    }
    pub fn file(path: &Path, msg: impl std::fmt::Display) -> Self {
        Error::File { path: path.display().to_string(), msg: msg.to_string() }
    }
    pub fn kernel(kernel: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Kernel { kernel: kernel.into(), msg: msg.to_string() }
    }
}
