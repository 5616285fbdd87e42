//! `ssal select` through the real binary: hand-computed picks and every kind of bad input.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
use std::path::Path;
use std::process::{Command, Output};
use tch::{Kind, Tensor};

fn ssal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssal")).args(args).output().unwrap()
}

fn write(dir: &Path, name: &str, t: &Tensor) -> String {
    let p = dir.join(name);
    t.write_npy(&p).unwrap();
    p.to_string_lossy().into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails_with(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

#[test]
fn k_center_picks_on_a_line_for_f32_and_f64() {
    let t = tempfile::tempdir().unwrap();
    let pts = Tensor::from_slice(&[0f32, 1., 2., 10., 11., 20.]).view([6, 1]);
    let labeled = t.path().join("labeled.txt");
    std::fs::write(&labeled, "# start\n0\n").unwrap();
    for (name, kind) in [("f32.npy", Kind::Float), ("f64.npy", Kind::Double)] {
        let x = write(t.path(), name, &pts.to_kind(kind));
        let o = ssal(&[
            "select",
            "--embeddings",
            &x,
            "--k",
            "3",
            "--temperature",
            "0",
            "--labeled",
            labeled.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Farthest from 0 is 20, then 10 (d=10), then 2 (d=2 beats 1 and 11's d=1).
        assert_eq!(stdout(&o), "5\n3\n2\n");
    }
    // --out writes the same lines; the same seed gives the same random picks.
    let x = write(t.path(), "a.npy", &Tensor::randn([50, 4], (Kind::Float, tch::Device::Cpu)));
    let out = t.path().join("chosen.txt");
    let args = ["select", "--embeddings", &x, "--k", "10", "--temperature", "0.5", "--seed", "7"];
    let o = ssal(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout(&ssal(&args)));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 10);
}

#[test]
fn bad_inputs_exit_2_with_a_reason() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let good = write(d, "good.npy", &Tensor::from_slice(&[0f32, 1., 2., 3.]).view([2, 2]));
    let run = |x: &str, k: &str, extra: &[&str]| {
        ssal(&[&["select", "--embeddings", x, "--k", k, "--temperature", "0.5"][..], extra].concat())
    };
    fails_with(&run(&write(d, "int.npy", &Tensor::from_slice(&[1i64, 2, 3, 4]).view([2, 2])), "1", &[]), "dtype");
    fails_with(&run(&write(d, "flat.npy", &Tensor::from_slice(&[1f32, 2.])), "1", &[]), "shape");
    fails_with(&run(&write(d, "nan.npy", &Tensor::from_slice(&[1f32, f32::NAN]).view([1, 2])), "1", &[]), "non-finite");
    fails_with(&run(&good, "3", &[]), "k = 3 but only 2");
    fails_with(&run(&d.join("missing.npy").to_string_lossy(), "1", &[]), "missing.npy");
    std::fs::write(d.join("junk.npy"), b"not numpy").unwrap();
    fails_with(&run(&d.join("junk.npy").to_string_lossy(), "1", &[]), "junk.npy");
    std::fs::write(d.join("l1.txt"), "9\n").unwrap();
    fails_with(&run(&good, "1", &["--labeled", d.join("l1.txt").to_str().unwrap()]), "out of range");
    std::fs::write(d.join("l2.txt"), "0\nfoo\n").unwrap();
    fails_with(&run(&good, "1", &["--labeled", d.join("l2.txt").to_str().unwrap()]), "l2.txt:2");
    fails_with(&ssal(&["select", "--embeddings", &good, "--k", "1", "--temperature", "-1"]), "temperature");
    // A clap usage error also exits 2.
    assert_eq!(ssal(&["select", "--k", "1"]).status.code(), Some(2));
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // `ssal select ... | head -1`: the pipe closes before the 20,000 lines (> 64 KiB, more than a
    // pipe holds) are written, so the write fails with EPIPE whatever the timing.
    let t = tempfile::tempdir().unwrap();
    let x = write(t.path(), "x.npy", &Tensor::randn([20_000, 2], (Kind::Float, tch::Device::Cpu)));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["select", "--embeddings", &x, "--k", "20000", "--temperature", "0.5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
}
