//! `result.json` records where a run ran: host, torch, CUDA and the Slurm job.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use std::process::Command;

#[test]
fn a_run_records_its_host_torch_and_slurm_ids() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 100, 20, false);
    let cfg = format!(
        "method = \"supervised\"\ndevice = \"cpu\"\n[dataset]\npath = \"{}\"\n[labeled]\nsize = 10\n[train]\nsteps = 0\n",
        data.display()
    );
    std::fs::write(t.path().join("cfg.toml"), cfg).unwrap();
    let run = |slurm: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssal"));
        let out = t.path().join(if slurm { "slurm" } else { "plain" });
        cmd.args(["run", "--config", t.path().join("cfg.toml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
        for k in ["SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"] {
            cmd.env_remove(k);
        }
        if slurm {
            cmd.env("SLURM_JOB_ID", "42").env("SLURM_ARRAY_JOB_ID", "41").env("SLURM_ARRAY_TASK_ID", "1");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(out.join("result.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["environment"].clone()
    };

    let env = run(true);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(env["host"], host.trim(), "{env}");
    assert_eq!(env["slurm_job_id"], "42", "{env}");
    assert_eq!(env["slurm_array_job_id"], "41", "{env}");
    assert_eq!(env["slurm_array_task_id"], "1", "{env}");
    // The torch version of this build (e.g. "2.11.0+cu130") and the library directory in use.
    let torch = env["torch_version"].as_str().unwrap_or_default();
    assert!(torch.starts_with(|c: char| c.is_ascii_digit()) && torch.contains('.'), "{env}");
    assert!(std::path::Path::new(env["libtorch"].as_str().unwrap()).is_dir(), "{env}");
    assert!(env["cuda_available"].is_boolean() && env["cuda_devices"].is_u64(), "{env}");
    // On the CPU, nothing GPU-specific is asked.
    assert!(env["gpu"].is_null() && env["cuda_runtime"].is_null() && env["cudnn"].is_null(), "{env}");

    // Outside Slurm the ids are absent.
    let env = run(false);
    assert!(env["slurm_job_id"].is_null() && env["slurm_array_task_id"].is_null(), "{env}");
    assert_eq!(env["host"], host.trim());
}
