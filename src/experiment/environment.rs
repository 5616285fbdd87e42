//! Where a run ran: host, torch and CUDA versions, GPU and Slurm ids, recorded in `result.json`
//! so that a number can be traced to the software and hardware that produced it.
use crate::result::Environment;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::Device;

/// This process's environment for a run on `device`. Asks `nvidia-smi` (for at most 10 s)
/// only when the run uses a GPU.
pub fn current_environment(device: Device) -> Environment {
    let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"));
    let libtorch = loaded_libtorch_dir();
    let (mut torch_version, mut torch_cuda) = libtorch.as_deref().map(torch_version_in).unwrap_or_default();
    if torch_version.is_none() {
        let built = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        torch_version = built(env!("SSAL_TORCH_VERSION"));
        torch_cuda = built(env!("SSAL_TORCH_CUDA"));
    }
    let cuda_visible_devices = var("CUDA_VISIBLE_DEVICES");
    let on_gpu = matches!(device, Device::Cuda(_));
    Environment {
        host,
        torch_version,
        torch_cuda,
        libtorch: libtorch.map(|d| d.display().to_string()),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count().max(0) as usize,
        cuda_runtime: on_gpu.then(tch::utils::version_cudart),
        cudnn: on_gpu.then(tch::utils::version_cudnn),
        gpu: if on_gpu { gpu_name(cuda_visible_devices.as_deref()) } else { None },
        cuda_visible_devices,
        slurm_job_id: var("SLURM_JOB_ID"),
        slurm_array_job_id: var("SLURM_ARRAY_JOB_ID"),
        slurm_array_task_id: var("SLURM_ARRAY_TASK_ID"),
        earlier: Vec::new(),
    }
}

/// The directory of the libtorch library this process has loaded (from `/proc/self/maps`).
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find_map(|p| {
        let p = Path::new(p);
        let name = p.file_name()?.to_str()?;
        (name.starts_with("libtorch_cpu.so") || name == "libtorch.so").then(|| p.parent().map(Path::to_path_buf))?
    })
}

/// The torch version and its CUDA version from the `version.py` (a Python torch install) or
/// `build-version` (a libtorch download) next to a libtorch library directory.
pub fn torch_version_in(lib: &Path) -> (Option<String>, Option<String>) {
    let root = lib.parent().unwrap_or(lib);
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                let k = k.split(':').next()?.trim();
                (k == key).then(|| v.trim().trim_matches(['\'', '"']).to_string()).filter(|v| v != "None")
            })
        };
        return (value("__version__"), value("cuda"));
    }
    let version = std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string());
    (version.filter(|v| !v.is_empty()), None)
}

/// The model of the first GPU this process sees, from `nvidia-smi` (absent when it is missing,
/// fails or takes more than 10 s).
fn gpu_name(visible: Option<&str>) -> Option<String> {
    let mut cmd = std::process::Command::new("nvidia-smi");
    cmd.args(["--query-gpu=name", "--format=csv,noheader"]);
    if let Some(first) = visible.and_then(|v| v.split(',').next()).filter(|f| !f.trim().is_empty()) {
        cmd.args(["-i", first.trim()]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    out.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_keeps_earlier_processes_that_differ() {
        let a = Environment { host: Some("a".into()), ..Default::default() };
        let b = Environment { host: Some("b".into()), ..Default::default() };
        // A fresh run has nothing earlier; a resume on the same host adds nothing.
        assert!(a.clone().after(&Environment::default()).earlier.is_empty());
        assert!(a.clone().after(&a).earlier.is_empty());
        let resumed = b.clone().after(&a);
        assert_eq!(resumed.earlier, vec![a.clone()]);
        let again = a.clone().after(&resumed);
        assert_eq!(again.earlier, vec![a.clone(), b.clone()]);
        // Older result files without the field read as empty.
        let e: Environment = serde_json::from_str("{\"host\": \"h\"}").unwrap();
        assert_eq!(e.host.as_deref(), Some("h"));
    }

    #[test]
    fn torch_version_from_version_py_or_build_version() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("torch/lib");
        std::fs::create_dir_all(&lib).unwrap();
        assert_eq!(torch_version_in(&lib), (None, None));
        std::fs::write(t.path().join("torch/build-version"), "2.11.0+cpu\n").unwrap();
        assert_eq!(torch_version_in(&lib), (Some("2.11.0+cpu".into()), None));
        std::fs::write(
            t.path().join("torch/version.py"),
            "__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n",
        )
        .unwrap();
        assert_eq!(torch_version_in(&lib), (Some("2.11.0+cu130".into()), Some("13.0".into())));
    }
}
