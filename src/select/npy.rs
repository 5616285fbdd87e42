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
