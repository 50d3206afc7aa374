//! The .npy / .npz reader every file of the crate goes through (galaxies, HI maps, checkpoints). Written for
//! hostile input: the header is parsed by hand and the size it declares is checked against the bytes that
//! are really there (the file's length, or a stored .npz entry's length, itself checked against the
//! archive's) before a single value is allocated, so a header that claims terabytes is one error, never an
//! allocation failure. Accepted: float32 and float64 (little- or big-endian, read as f32), uint8 for the
//! checkpoint's config; C or Fortran order (Fortran is reordered to C); headers of format 1.0, 2.0 and 3.0
//! up to numpy's own limit of 10,000 bytes. Anything else (other dtypes, structured arrays, pickles,
//! compressed .npz entries) is refused with a message saying what was found.
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::io::Read;

/// numpy's `max_header_size` (numpy.lib.format): a longer header is refused before it is read.
pub const MAX_HEADER: usize = 10_000;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element types the crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    U8,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
            Elem::U8 => 1,
        }
    }
}

/// A parsed .npy header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub elem: Elem,
    pub big_endian: bool,
    pub fortran: bool,
    pub shape: Vec<usize>,
    /// Bytes before the data (magic, version, length field and the header text).
    pub len: u64,
}

impl Header {
    /// Values the shape declares (None on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }
}

/// An array as read: float data as f32 in C order, or raw bytes.
#[derive(Debug)]
pub enum Value {
    F32(ArrayD<f32>),
    U8(Vec<u8>),
}

fn dtype(descr: &str) -> Result<(Elem, bool), String> {
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => (&descr[..1], &descr[1..]),
        _ => ("|", descr),
    };
    let big = order == ">";
    match (code, order) {
        ("f4", "<" | ">") => Ok((Elem::F32, big)),
        ("f8", "<" | ">") => Ok((Elem::F64, big)),
        ("u1" | "B", _) => Ok((Elem::U8, false)),
        _ => Err(format!("unsupported dtype '{descr}' (expected float32 or float64, '<f4', '>f4', '<f8' or '>f8')")),
    }
}

/// The header's Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
fn parse_dict(text: &str) -> Result<(String, bool, Vec<usize>), String> {
    let shown: String = text.trim_end().chars().take(160).collect();
    let bad = |what: &str| format!("not a valid .npy header ({what}): {}", shown.escape_default());
    let mut s = text.trim();
    s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).ok_or_else(|| bad("no {...} dictionary"))?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        s = s.trim_start();
        if s.is_empty() {
            break;
        }
        let q = s.chars().next().filter(|c| *c == '\'' || *c == '"').ok_or_else(|| bad("a key is not quoted"))?;
        let end = s[1..].find(q).ok_or_else(|| bad("unterminated key"))?;
        let key = &s[1..1 + end];
        s = s[end + 2..].trim_start().strip_prefix(':').ok_or_else(|| bad("':' missing"))?.trim_start();
        match s.chars().next() {
            Some(c @ ('\'' | '"')) => {
                let end = s[1..].find(c).ok_or_else(|| bad("unterminated string"))?;
                if key == "descr" {
                    descr = Some(s[1..1 + end].to_string());
                }
                s = &s[end + 2..];
            }
            Some('(') => {
                let end = s.find(')').ok_or_else(|| bad("unterminated shape"))?;
                let dims = s[1..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| d.trim_end_matches('L').parse::<usize>().map_err(|_| bad("a dimension is not a number")))
                    .collect::<Result<Vec<usize>, String>>()?;
                if key == "shape" {
                    shape = Some(dims);
                }
                s = &s[end + 1..];
            }
            Some('[') if key == "descr" => {
                return Err("structured dtype (a record array) is not supported: expected float32 or float64".into())
            }
            _ if s.starts_with("True") || s.starts_with("False") => {
                let v = s.starts_with("True");
                if key == "fortran_order" {
                    fortran = Some(v);
                }
                s = &s[if v { 4 } else { 5 }..];
            }
            _ => return Err(bad(&format!("unreadable value of '{key}'"))),
        }
        s = s.trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err(bad("'descr', 'fortran_order' or 'shape' missing")),
    }
}

/// Reads and checks a header from `r`, which holds `available` bytes in all.
pub fn read_header(r: &mut impl Read, available: u64) -> Result<Header, String> {
    let mut pre = [0u8; 8];
    if available < 10 {
        return Err(format!("not a .npy file: {available} bytes, shorter than any .npy header"));
    }
    r.read_exact(&mut pre).map_err(|e| format!("unreadable .npy header: {e}"))?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy file (it does not start with \\x93NUMPY)".into());
    }
    let (major, minor) = (pre[6], pre[7]);
    let (text_len, fixed) = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| format!("unreadable .npy header: {e}"))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| format!("unreadable .npy header: {e}"))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        _ => return Err(format!("unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)")),
    };
    if text_len > MAX_HEADER {
        return Err(format!("its header claims {text_len} bytes, more than numpy's limit of {MAX_HEADER}"));
    }
    let len = (fixed + text_len) as u64;
    if len > available {
        return Err(format!("truncated .npy file: its header claims {text_len} bytes, the file is {available} bytes"));
    }
    let mut text = vec![0u8; text_len];
    r.read_exact(&mut text).map_err(|e| format!("truncated .npy header: {e}"))?;
    // Format 1.0 and 2.0 headers are latin-1, 3.0 UTF-8; a valid one is plain ASCII either way.
    let text: String = text.iter().map(|&b| b as char).collect();
    let (descr, fortran, shape) = parse_dict(&text)?;
    let (elem, big_endian) = dtype(&descr)?;
    Ok(Header { elem, big_endian, fortran, shape, len })
}

/// Reads one array (header and data) from `r`, which holds exactly `available` bytes: the declared size
/// is checked against them before anything is allocated, and bytes left after the data are refused.
/// `r` is then read to its end, so a reader that checks a checksum there (a zip entry) does. Float data
/// comes as f32 ([`read_f64`] keeps float64 whole).
pub fn read(r: &mut impl Read, available: u64) -> Result<Value, String> {
    Ok(match read_raw(r, available)? {
        (_, Raw::U8(v)) => Value::U8(v),
        (h, Raw::F32(v)) => Value::F32(array(&h, v)?),
        (h, Raw::F64(v)) => Value::F32(array(&h, v.into_iter().map(|x| x as f32).collect())?),
    })
}

/// As [`read`], for a float32 or float64 array read as f64 (float32 values are exact in f64).
pub fn read_f64(r: &mut impl Read, available: u64) -> Result<ArrayD<f64>, String> {
    match read_raw(r, available)? {
        (_, Raw::U8(_)) => Err("unsupported dtype uint8 (expected float32 or float64)".into()),
        (h, Raw::F32(v)) => array(&h, v.into_iter().map(f64::from).collect()),
        (h, Raw::F64(v)) => array(&h, v),
    }
}

/// The data of one array in file order, native byte order.
enum Raw {
    U8(Vec<u8>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

fn read_raw(r: &mut impl Read, available: u64) -> Result<(Header, Raw), String> {
    let h = read_header(r, available)?;
    let n = h.numel().ok_or_else(|| format!("its shape {:?} overflows", h.shape))?;
    let bytes =
        (n as u64).checked_mul(h.elem.size() as u64).ok_or_else(|| format!("its shape {:?} overflows", h.shape))?;
    let there = available - h.len;
    if bytes > there {
        return Err(format!(
            "truncated .npy file: its header declares shape {:?} ({n} values, {bytes} bytes of data), but only \
             {there} bytes follow it",
            h.shape
        ));
    }
    if bytes < there {
        return Err(format!("{} bytes after the data its header declares (shape {:?})", there - bytes, h.shape));
    }
    let short = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "truncated .npy file: fewer values than its header declares".to_string()
        } else {
            e.to_string()
        }
    };
    let value = match h.elem {
        Elem::U8 => {
            let mut v = vec![0u8; n];
            r.read_exact(&mut v).map_err(short)?;
            if h.shape.len() != 1 {
                return Err(format!("a uint8 array of shape {:?}, expected one dimension", h.shape));
            }
            Raw::U8(v)
        }
        Elem::F32 => {
            let mut v = vec![0f32; n];
            r.read_exact(bytemuck::cast_slice_mut(&mut v)).map_err(short)?;
            for x in &mut v {
                let b = x.to_ne_bytes();
                *x = if h.big_endian { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
            }
            Raw::F32(v)
        }
        Elem::F64 => {
            let mut v = vec![0f64; n];
            r.read_exact(bytemuck::cast_slice_mut(&mut v)).map_err(short)?;
            for x in &mut v {
                let b = x.to_ne_bytes();
                *x = if h.big_endian { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
            }
            Raw::F64(v)
        }
    };
    let mut rest = [0u8; 1];
    match r.read(&mut rest) {
        Ok(0) => Ok((h, value)),
        Ok(_) => Err("bytes after the data its header declares".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn array<T: Clone>(h: &Header, v: Vec<T>) -> Result<ArrayD<T>, String> {
    let err = |e: ndarray::ShapeError| format!("shape {:?}: {e}", h.shape);
    if h.fortran {
        let a = ArrayD::from_shape_vec(IxDyn(&h.shape).f(), v).map_err(err)?;
        Ok(a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(IxDyn(&h.shape), v).map_err(err)
    }
}

/// An .npz archive (numpy's `savez`: a zip of `<name>.npy` entries, stored uncompressed).
pub struct Npz<R: Read + std::io::Seek> {
    zip: zip::ZipArchive<R>,
    len: u64,
}

impl<R: Read + std::io::Seek> Npz<R> {
    /// Opens an archive of `len` bytes.
    pub fn new(r: R, len: u64) -> Result<Self, String> {
        let zip = zip::ZipArchive::new(r).map_err(|e| format!("not a readable .npz archive: {e}"))?;
        Ok(Npz { zip, len })
    }

    pub fn len(&self) -> usize {
        self.zip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zip.is_empty()
    }

    /// Entry `i`: its name without `.npy`, and its array. A damaged entry whose CRC-32 does not match
    /// says so (the message holds "checksum"), whatever else is wrong with it.
    pub fn read(&mut self, i: usize) -> Result<(String, Value), (String, String)> {
        let len = self.len;
        let mut f = self.zip.by_index(i).map_err(|e| (format!("#{i}"), format!("unreadable entry: {e}")))?;
        let name = f.name().trim_end_matches(".npy").to_string();
        let fail = |msg: String| (name.clone(), msg);
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(fail(format!(
                "compressed with {:?}: only uncompressed archives (numpy's savez, not savez_compressed) are read",
                f.compression()
            )));
        }
        let size = f.size();
        if size > len || f.compressed_size() != size {
            return Err(fail(format!("the archive's index claims {size} bytes for it, the archive has {len}")));
        }
        match read(&mut f, size) {
            Ok(v) => Ok((name, v)),
            Err(msg) => {
                // Read on to the end, where the zip reader checks the CRC: a damaged entry is named as such.
                match std::io::copy(&mut f, &mut std::io::sink()) {
                    Err(e) if e.to_string().contains("checksum") => Err(fail(e.to_string())),
                    _ => Err(fail(msg)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut text = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(data);
        b
    }

    fn read_all(b: &[u8]) -> Result<Value, String> {
        read(&mut &b[..], b.len() as u64)
    }

    fn f32s(v: Value) -> ArrayD<f32> {
        match v {
            Value::F32(a) => a,
            Value::U8(_) => panic!("bytes"),
        }
    }

    #[test]
    fn every_layout_and_byte_order_reads_the_same_values() {
        let vals: Vec<f64> = (0..6).map(|i| i as f64 * 1.5 - 2.0).collect();
        let want = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vals.iter().map(|&v| v as f32).collect()).unwrap();
        // Fortran order: column-major bytes of the same matrix.
        let col_major: Vec<f64> = (0..3).flat_map(|c| (0..2).map(move |r| r * 3 + c)).map(|i| vals[i]).collect();
        for (descr, order) in [("<f4", &vals), ("<f8", &vals), (">f4", &vals), (">f8", &vals)] {
            for fortran in [false, true] {
                let src = if fortran { &col_major } else { order };
                let data: Vec<u8> = src
                    .iter()
                    .flat_map(|&v| match descr {
                        "<f4" => (v as f32).to_le_bytes().to_vec(),
                        ">f4" => (v as f32).to_be_bytes().to_vec(),
                        "<f8" => v.to_le_bytes().to_vec(),
                        _ => v.to_be_bytes().to_vec(),
                    })
                    .collect();
                let got = f32s(read_all(&npy(descr, fortran, "(2, 3)", &data)).unwrap());
                assert_eq!(got, want, "{descr} fortran={fortran}");
            }
        }
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_refused_before_allocating() {
        // 2^61 float32 values would be an allocation failure if allocated first.
        let e = read_all(&npy("<f4", false, "(2305843009213693952,)", &[0; 8])).unwrap_err();
        assert!(e.contains("truncated") && e.contains("only 8 bytes"), "{e}");
        let e = read_all(&npy("<f8", false, "(4294967296, 4294967296, 16)", &[])).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let e = read_all(&npy("<f4", false, "(3,)", &[0; 16])).unwrap_err();
        assert!(e.contains("4 bytes after the data"), "{e}");
        // The header's own length field beyond the file, and beyond numpy's limit.
        let mut b = npy("<f4", false, "(1,)", &[0; 4]);
        b[8..10].copy_from_slice(&9000u16.to_le_bytes());
        assert!(read_all(&b).unwrap_err().contains("truncated"));
        let mut b = npy("<f4", false, "(1,)", &[0; 4]);
        b[6] = 2;
        b.splice(8..10, 1_000_000u32.to_le_bytes());
        assert!(read_all(&b).unwrap_err().contains("numpy's limit"));
    }

    #[test]
    fn other_dtypes_and_broken_headers_are_refused_clearly() {
        for d in ["<i8", "<f2", "<c8", "|O", "<u4", "|b1", "<U3"] {
            let e = read_all(&npy(d, false, "(1,)", &[0; 8])).unwrap_err();
            assert!(e.contains("unsupported dtype"), "{d}: {e}");
        }
        let mut b = npy("<f4", false, "(1,)", &[0; 4]);
        let at = b.iter().position(|&c| c == b'\'').unwrap();
        b.splice(at..at + 14, *b"[('a', '<f4')]");
        assert!(read_all(&b).is_err());
        assert!(read_all(&npy("<f4", false, "(1,", &[0; 4])).unwrap_err().contains("not a valid .npy header"));
        assert!(read_all(&npy("<f4", false, "(-1,)", &[0; 4])).unwrap_err().contains("not a number"));
        assert!(read_all(b"\x93NUMPY").unwrap_err().contains("shorter"));
        assert!(read_all(b"PK\x03\x04 not an npy at all").unwrap_err().contains("\\x93NUMPY"));
        let mut v9 = npy("<f4", false, "(1,)", &[0; 4]);
        v9[6] = 9;
        assert!(read_all(&v9).unwrap_err().contains("version 9.0"));
        // A structured dtype is a list where the descr string should be.
        let text = "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }";
        assert!(parse_dict(text).unwrap_err().contains("structured"));
    }

    #[test]
    fn python2_long_dimensions_and_scalars_read() {
        let a = f32s(read_all(&npy("<f4", false, "(2L, 1L)", &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap());
        assert_eq!(a.shape(), &[2, 1]);
        assert_eq!(a.as_slice().unwrap(), &[1.0, 2.0]);
        let a = f32s(read_all(&npy("<f4", false, "()", &1.5f32.to_le_bytes())).unwrap());
        assert_eq!(a.shape(), &[] as &[usize]);
        let a = f32s(read_all(&npy("<f4", false, "(0, 11)", &[])).unwrap());
        assert_eq!(a.shape(), &[0, 11]);
    }
}
