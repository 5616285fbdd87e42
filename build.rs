//! Makes the binary find libtorch without LD_LIBRARY_PATH and keep CUDA linked.
//!
//! torch-sys exports the libtorch library directory as `DEP_TCH_LIBTORCH_LIB`. We embed it as an
//! rpath, and when `libtorch_cuda.so` is present we link it with `--no-as-needed`: nothing in the
//! binary references its symbols directly, so `--as-needed` would otherwise drop it and CUDA
//! would read as unavailable at run time. It also records the git commit and the torch version
//! the binary is built from, for `result.json`.
use std::path::Path;

fn main() {
    embed_git_commit();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    embed_torch_version(lib.as_deref().map(Path::new));
    let Some(lib) = lib else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// Records the commit the binary was built from, for `result.json`.
fn embed_git_commit() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SSAL_GIT_COMMIT={commit}");
}

/// Records the torch version (and its CUDA version) the binary is built against, for
/// `result.json` when the loaded library's directory does not say: `version.py` of a Python
/// torch install or `build-version` of a libtorch download, next to the library directory.
fn embed_torch_version(lib: Option<&Path>) {
    let (mut version, mut cuda) = (String::new(), String::new());
    if let Some(root) = lib.and_then(Path::parent) {
        let py = root.join("version.py");
        let plain = root.join("build-version");
        // Only existing files: a missing one would rerun this script (and rebuild) every time.
        for file in [&py, &plain].into_iter().filter(|f| f.is_file()) {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        if let Ok(text) = std::fs::read_to_string(&py) {
            for line in text.lines() {
                let Some((key, value)) = line.split_once('=') else { continue };
                let value = value.trim().trim_matches(['\'', '"']).to_string();
                match key.split(':').next().unwrap_or("").trim() {
                    "__version__" => version = value,
                    "cuda" if value != "None" => cuda = value,
                    _ => {}
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(&plain) {
            version = text.trim().to_string();
        }
    }
    println!("cargo:rustc-env=SSAL_TORCH_VERSION={version}");
    println!("cargo:rustc-env=SSAL_TORCH_CUDA={cuda}");
}
