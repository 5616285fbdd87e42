//! Makes the binary find libtorch without LD_LIBRARY_PATH and keep CUDA linked.
//!
//! torch-sys exports the libtorch library directory as `DEP_TCH_LIBTORCH_LIB`. We embed it as an
//! rpath, and when `libtorch_cuda.so` is present we link it with `--no-as-needed`: nothing in the
//! binary references its symbols directly, so `--as-needed` would otherwise drop it and CUDA
//! would read as unavailable at run time.
use std::path::Path;

fn main() {
    embed_git_commit();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
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
