//! Reading embedding matrices from `.npy` files (e.g. BYOL features computed elsewhere), without
//! libtorch: the analysis-only build selects from them too. Format: numpy's NEP 1 (`.npy` 1.0–3.0).
use super::SelectError;
use std::path::Path;

/// Loads a 2-D float32/float64 `.npy` file (C order, either byte order) as row-major `f32` values
/// and its width. A file whose data does not match its header's shape is refused, naming both.
pub fn read_embeddings_npy(path: &Path) -> Result<(Vec<f32>, usize), SelectError> {
    let err = |m: String| SelectError::Embeddings(format!("{}: {m}", path.display()));
    if !path.is_file() {
        return Err(err("no such file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read ({e})")))?;
    let npy = NpyHeader::parse(&bytes).map_err(err)?;
    if npy.fortran_order {
        return Err(err("stored in Fortran (column) order; save it with numpy.ascontiguousarray".into()));
    }
    let [rows, cols] = npy.shape[..] else {
        return Err(err(format!("shape {:?}; expected a non-empty N × d matrix", npy.shape)));
    };
    if rows == 0 || cols == 0 {
        return Err(err(format!("shape {:?}; expected a non-empty N × d matrix", npy.shape)));
    }
    let data = &bytes[npy.data_start..];
    let big_endian = npy.descr.starts_with('>');
    let values = match npy.descr.trim_start_matches(['<', '>', '=', '|']) {
        "f4" => data
            .chunks_exact(4)
            .map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                if big_endian {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            })
            .collect(),
        "f8" => data
            .chunks_exact(8)
            .map(|b| {
                let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                (if big_endian { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) }) as f32
            })
            .collect(),
        _ => return Err(err(format!("dtype {:?}; expected float32 or float64", npy.descr))),
    };
    Ok((values, cols as usize))
}

/// What a `.npy` header says, checked against the file's length.
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
    data_start: usize,
}

impl NpyHeader {
    /// Parses the header of the whole file `bytes` and checks that exactly the data it announces
    /// (shape × item size) follows it, so a truncated or padded file is refused before it is read.
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err("not a .npy file (no \\x93NUMPY magic)".into());
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            v => return Err(format!("not a readable .npy file (format version {v})")),
        };
        let data_start = start + header_len;
        if bytes.len() < data_start {
            return Err(format!(
                "truncated: the file ends inside its {header_len}-byte header ({} bytes in all)",
                bytes.len()
            ));
        }
        let header = String::from_utf8_lossy(&bytes[start..data_start]);
        let unreadable = || format!("not a readable .npy file (header {:?})", header.trim());
        let descr = npy_header_descr(&header).ok_or_else(unreadable)?;
        let shape = npy_header_shape(&header).ok_or_else(unreadable)?;
        let fortran_order = header.contains("'fortran_order': True");
        let item = npy_item_size(&descr).ok_or_else(|| format!("dtype {descr:?}; expected float32 or float64"))?;
        let Some(expected) = shape.iter().try_fold(item, |acc, &d| acc.checked_mul(d)) else {
            return Err(format!("header shape {shape:?} is too large"));
        };
        let actual = (bytes.len() - data_start) as u64;
        if actual != expected {
            let dims = match &shape[..] {
                [] => "1".to_string(),
                _ => shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × "),
            };
            let what = if actual < expected { "truncated" } else { "longer than its header says" };
            return Err(format!(
                "{what}: the header announces {dims} values of {descr:?} ({expected} bytes of data) but \
                 {actual} bytes follow the header"
            ));
        }
        Ok(NpyHeader { descr, fortran_order, shape, data_start })
    }
}

/// The `descr` value of a `.npy` header (`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`).
fn npy_header_descr(header: &str) -> Option<String> {
    let rest = &header[header.find("'descr'")? + "'descr'".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let quote = rest.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let rest = &rest[1..];
    Some(rest[..rest.find(quote)?].to_string())
}

/// The `shape` tuple of a `.npy` header; `()` (a scalar) is the empty shape.
fn npy_header_shape(header: &str) -> Option<Vec<u64>> {
    let rest = &header[header.find("'shape'")? + "'shape'".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    inner.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().ok()).collect()
}

/// Bytes per item of a numpy type string (`<f4`, `|u1`, `<c16`, `d`, …); `None` if unknown.
fn npy_item_size(descr: &str) -> Option<u64> {
    let code = descr.trim_start_matches(['<', '>', '=', '|']);
    let digits = code.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    if !digits.is_empty() && code.len() > digits.len() {
        return digits.parse().ok();
    }
    Some(match code {
        "e" => 2,
        "f" => 4,
        "d" => 8,
        "i" => 4,
        "q" => 8,
        "h" => 2,
        "b" | "B" | "?" => 1,
        "F" => 8,
        "D" => 16,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_fields_and_item_sizes() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (128, 3), }";
        assert_eq!(npy_header_descr(h).as_deref(), Some("<f8"));
        assert_eq!(npy_header_shape(h), Some(vec![128, 3]));
        assert_eq!(npy_header_shape("{'shape': (7,), 'descr': '|u1'}"), Some(vec![7]));
        assert_eq!(npy_header_shape("{'shape': ()}"), Some(vec![]));
        assert_eq!(npy_item_size("<f4"), Some(4));
        assert_eq!(npy_item_size("<c16"), Some(16));
        assert_eq!(npy_item_size("|b1"), Some(1));
        assert_eq!(npy_item_size("d"), Some(8));
        assert_eq!(npy_item_size("<U8"), Some(8));
        assert_eq!(npy_item_size("O"), None);
    }

    #[test]
    fn truncated_and_padded_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, npy_bytes("<f4", "(3, 2)", &[1f32, 2., 3., 4., 5., 6.].map(f32::to_le_bytes).concat()))
            .unwrap();
        assert_eq!(read_embeddings_npy(&path).unwrap(), (vec![1., 2., 3., 4., 5., 6.], 2));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let e = read_embeddings_npy(&path).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("truncated") && e.contains("3 × 2") && e.contains("24 bytes"), "{e}");
        assert!(e.contains("19 bytes"), "{e}");
        std::fs::write(&path, [&bytes[..], &[0u8; 4]].concat()).unwrap();
        let e = read_embeddings_npy(&path).unwrap_err().to_string();
        assert!(e.contains("longer") && e.contains("28 bytes"), "{e}");
        std::fs::write(&path, &bytes[..20]).unwrap();
        let e = read_embeddings_npy(&path).unwrap_err().to_string();
        assert!(e.contains("inside its"), "{e}");
    }

    /// A version 1.0 `.npy` file with this header and data (what `numpy.save` writes).
    fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn float64_big_endian_and_wrong_types_or_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, npy_bytes("<f8", "(2, 1)", &[0.5f64, -2.0].map(f64::to_le_bytes).concat())).unwrap();
        assert_eq!(read_embeddings_npy(&path).unwrap(), (vec![0.5, -2.0], 1));
        std::fs::write(&path, npy_bytes(">f4", "(1, 2)", &[3f32, 4.].map(f32::to_be_bytes).concat())).unwrap();
        assert_eq!(read_embeddings_npy(&path).unwrap(), (vec![3., 4.], 2));
        std::fs::write(&path, npy_bytes("<i4", "(1, 2)", &[0u8; 8])).unwrap();
        assert!(read_embeddings_npy(&path).unwrap_err().to_string().contains("expected float32"));
        std::fs::write(&path, npy_bytes("<f4", "(2,)", &[0u8; 8])).unwrap();
        assert!(read_embeddings_npy(&path).unwrap_err().to_string().contains("N × d"));
        std::fs::write(&path, b"PK\x03\x04 not numpy").unwrap();
        assert!(read_embeddings_npy(&path).unwrap_err().to_string().contains("not a .npy file"));
    }
}
