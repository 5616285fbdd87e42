//! Reading embedding matrices from `.npy` files (e.g. BYOL features computed elsewhere).
use super::SelectError;
use std::path::Path;
use tch::{Kind, Tensor};

/// Loads a 2-D float32/float64 `.npy` file as row-major `f32` values and its width.
pub fn read_embeddings_npy(path: &Path) -> Result<(Vec<f32>, usize), SelectError> {
    let err = |m: String| SelectError::Embeddings(format!("{}: {m}", path.display()));
    if !path.is_file() {
        return Err(err("no such file".into()));
    }
    check_npy_size(path).map_err(err)?;
    let t = Tensor::read_npy(path).map_err(|e| err(format!("not a readable .npy file ({e})")))?;
    if !matches!(t.kind(), Kind::Float | Kind::Double) {
        return Err(err(format!("dtype {:?}; expected float32 or float64", t.kind())));
    }
    let size = t.size();
    if size.len() != 2 || size[0] == 0 || size[1] == 0 {
        return Err(err(format!("shape {size:?}; expected a non-empty N × d matrix")));
    }
    let values =
        Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view([-1])).map_err(|e| err(e.to_string()))?;
    Ok((values, size[1] as usize))
}

/// Checks that the file holds exactly the data its header announces (shape × item size), so a
/// truncated or padded file is refused before it is read (libtorch would read past its end).
/// Headers it cannot parse are left to the reader, which names what is wrong with them.
fn check_npy_size(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open ({e})"))?;
    let file_len = file.metadata().map_err(|e| format!("cannot read its size ({e})"))?.len();
    let mut prefix = [0u8; 12];
    if file.read_exact(&mut prefix).is_err() || &prefix[..6] != b"\x93NUMPY" {
        return Ok(());
    }
    let (header_len, start) = match prefix[6] {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as u64, 10u64),
        2 | 3 => (u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64, 12u64),
        _ => return Ok(()),
    };
    let data_start = start + header_len;
    if file_len < data_start {
        return Err(format!("truncated: the file ends inside its {header_len}-byte header ({file_len} bytes in all)"));
    }
    let mut header = vec![0u8; header_len as usize];
    let read = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start));
    if read.and_then(|_| file.read_exact(&mut header)).is_err() {
        return Ok(());
    }
    let header = String::from_utf8_lossy(&header);
    let (Some(descr), Some(shape)) = (npy_header_descr(&header), npy_header_shape(&header)) else {
        return Ok(());
    };
    let Some(item) = npy_item_size(&descr) else { return Ok(()) };
    let Some(expected) = shape.iter().try_fold(item, |acc, &d| acc.checked_mul(d)) else {
        return Err(format!("header shape {shape:?} is too large"));
    };
    let actual = file_len - data_start;
    if actual == expected {
        return Ok(());
    }
    let dims = match &shape[..] {
        [] => "1".to_string(),
        _ => shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × "),
    };
    let what = if actual < expected { "truncated" } else { "longer than its header says" };
    Err(format!(
        "{what}: the header announces {dims} values of {descr:?} ({expected} bytes of data) but \
         {actual} bytes follow the header"
    ))
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
        Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.]).view([3, 2]).write_npy(&path).unwrap();
        assert!(read_embeddings_npy(&path).is_ok());
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
}
