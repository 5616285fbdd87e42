//! ssal's hot paths, each timed against a reference measured in the same run on the same machine:
//! the Python references in `benches/reference/reference.py` (NumPy / PyTorch eager, run with
//! `$SSAL_PYTHON`) and, for diversity sampling, the memory-bandwidth floor. Prints Markdown table
//! rows (`scripts/bench.sh` collects them into docs/benchmarks.md).
//!
//! `cargo bench --bench hotpaths -- diversity [DEVICE]|prune|prune-skips|consistency MODEL POOL|mixmatch [MODEL [DEVICE]]|store`
//!
//! Without DEVICE, the CPU rows of the table. With DEVICE (`cuda`: the first GPU; `cpu`: the same
//! code path on the CPU, to check it), the device rows: ssal on that device against PyTorch eager
//! on the same device, and for diversity sampling also the NumPy reference on the host's CPU. A run
//! asked for `cuda` stops with one line when libtorch sees no GPU. `prune`: exact pruned diversity
//! sampling (issue 20) on clustered, real and uniform matrices, against the unpruned sampler, the
//! floor and NumPy; `prune-skips`: only the fractions of distances it skips, untimed.
//! `SSAL_BENCH_SMOKE=1` shrinks the device rows, `prune` and `prune-skips` to a few seconds, to
//! check that they run (their numbers then mean nothing).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ssal::cache::rotnet_cache_key;
use ssal::config::{DatasetName, EmbeddingSource, ExperimentConfig, Method, ModelKind, QueryStrategy};
use ssal::data::DeviceData;
use ssal::data::{channel_stats, AugmentParams, Dataset, Split};
use ssal::embed::{embeddings_for, train_rotnet, EmbeddingMatrix};
use ssal::models::Network;
use ssal::progress::Silent;
use ssal::result::Evaluation;
use ssal::result::{CycleRecord, RunResult};
use ssal::select::{
    diversity_sample, diversity_sample_on, diversity_sample_stats, score_pool, DiversityOptions, Embeddings, Pruning,
};
use ssal::store::Store;
use ssal::train::{train, TrainSetup};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Seconds of a PyTorch eager reference in its default layout and with channels-last weights
/// (the layout ssal uses), so the table shows how much of a speed-up is the layout alone.
fn eager_seconds(args: &[&str]) -> (f64, f64) {
    let default = reference(args)["seconds"].as_f64().unwrap();
    let channels_last = reference(&[args, &["--channels-last"]].concat())["seconds"].as_f64().unwrap();
    (default, channels_last)
}

/// Runs `reference.py ARGS` and returns its JSON answer.
fn reference(args: &[&str]) -> serde_json::Value {
    try_reference(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `reference.py`: `$SSAL_REFERENCE` if set (a carried bench binary run outside this checkout),
/// else the checkout's, else `benches/reference/reference.py` under the working directory.
fn reference_script() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("SSAL_REFERENCE") {
        return p.into();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/reference.py");
    if built.is_file() {
        built
    } else {
        Path::new("benches/reference/reference.py").to_path_buf()
    }
}

/// Runs `reference.py ARGS`: its JSON answer, or what went wrong.
fn try_reference(args: &[&str]) -> Result<serde_json::Value, String> {
    let python = std::env::var("SSAL_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(reference_script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{python} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{python} {args:?}: not one JSON object ({e})"))
}

/// The device of a section's `cpu` / `cuda` argument. Without a GPU that libtorch can use, `cuda`
/// ends the run with one line (exit status 2).
fn parse_device(arg: &str) -> Device {
    match arg {
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => {
            if !tch::Cuda::is_available() {
                eprintln!(
                    "hotpaths: cuda asked for, but libtorch sees no CUDA device (no GPU or driver here, \
                     or the binary is not linked against libtorch_cuda.so)"
                );
                std::process::exit(2);
            }
            Device::Cuda(0)
        }
        other => {
            eprintln!("hotpaths: device {other:?}: expected cpu or cuda");
            std::process::exit(2);
        }
    }
}

/// Waits for the GPU's queued work (no-op on the CPU), so that a timer read after it is honest.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// `SSAL_BENCH_SMOKE=1`: the device rows and `prune` at tiny sizes (a check that they run, not a
/// measurement).
fn smoke() -> bool {
    std::env::var("SSAL_BENCH_SMOKE").is_ok_and(|v| v == "1")
}

/// How a row names the device: "GPU (NVIDIA H100 ...)" with the name PyTorch reported, or "CPU".
fn device_label(device: Device, reported: Option<&serde_json::Value>) -> String {
    match device {
        Device::Cpu => "CPU".into(),
        _ => format!("GPU ({})", reported.and_then(|v| v["device_name"].as_str()).unwrap_or("?")),
    }
}

/// A progress line on stderr (the rows go to stdout).
fn progress(text: &str) {
    eprintln!("[hotpaths] {text}");
}

/// A `/proc/self/status` size field (VmHWM: peak, VmRSS: current resident set), MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().trim_end_matches(" kB").parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) / 1024.0
}

/// Restarts the peak-RSS count from the current RSS (Linux: `5` to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A target's verdict: "TEXT: met" or "TEXT: **not met**".
fn verdict(text: &str, met: bool) -> String {
    format!("{text}: {}", if met { "met" } else { "**not met**" })
}

/// The verdict of a speed-up target (least acceptable reference / ssal time ratio).
fn faster(target: f64, ssal_s: f64, reference_s: f64) -> String {
    verdict(&format!("≥ {target}× faster"), reference_s / ssal_s >= target)
}

/// One table row comparing ssal with a reference.
fn row(name: &str, ssal_s: f64, reference_name: &str, reference_s: f64, target: String, note: &str) {
    let speedup = reference_s / ssal_s;
    println!("| {name} | {ssal_s:.3} s | {reference_name} {reference_s:.3} s | {speedup:.2}× | {target} | {note} |");
}

fn ms(x: f64) -> f64 {
    x * 1e3
}

/// The diversity sections' N × d matrix of uniform values (seed 7).
fn uniform_matrix(n: usize, d: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n * d).map(|_| rng.random::<f32>()).collect()
}

/// A row-major matrix with `d` columns written to `<temp dir>/x.npy`, for the Python reference.
fn npy_in_temp_dir(values: &[f32], d: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let rows = (values.len() / d) as i64;
    Tensor::from_slice(values).view([rows, d as i64]).write_npy(dir.path().join("x.npy")).expect("writes .npy");
    dir
}

/// The memory-bandwidth floor of unpruned diversity sampling: k streaming reads of a matrix.
struct Floor {
    /// Seconds for k reads on all cores.
    seconds: f64,
    gbps: f64,
    threads: usize,
    /// Reads actually timed (k/10, at least one); `seconds` is scaled up from them.
    reads: usize,
}

/// k full streaming reads of `values` on all cores, the time an unpruned sampler needs at least
/// (each pick reads every point once); sampled as k/10 reads and scaled. Measured on each matrix
/// because the rate depends on its size (a small matrix stays in the caches).
fn bandwidth_floor(values: &[f32], k: usize) -> Floor {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = values.len().div_ceil(threads);
    let reads = (k / 10).max(1);
    let t0 = Instant::now();
    let mut sink = 0f32;
    for _ in 0..reads {
        sink += std::thread::scope(|s| {
            let parts: Vec<_> = values
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut acc = [0f32; 8];
                        for c in part.chunks_exact(8) {
                            for j in 0..8 {
                                acc[j] += c[j];
                            }
                        }
                        acc.iter().sum::<f32>()
                    })
                })
                .collect();
            parts.into_iter().map(|h| h.join().unwrap()).sum::<f32>()
        });
    }
    let timed = t0.elapsed().as_secs_f64();
    assert!(sink.is_finite());
    let gbps = (values.len() * 4 * reads) as f64 / timed / 1e9;
    Floor { seconds: timed * k as f64 / reads as f64, gbps, threads, reads }
}

/// k = 1,000 picks from N = 50,000 × d = 512: ssal vs BADGE-style NumPy, and vs k streaming reads.
fn diversity() {
    let (n, d, k) = (50_000usize, 512usize, 1_000usize);
    let values = uniform_matrix(n, d);
    let dir = npy_in_temp_dir(&values, d);
    let npy = dir.path().join("x.npy");
    let emb = Embeddings::new(&values, d).expect("finite");
    let first = 0usize;
    let Floor { seconds: floor, gbps, threads, reads } = bandwidth_floor(&values, k);

    for temperature in [0.0, 0.5] {
        reset_peak_rss();
        let rss_before = status_mib("VmRSS");
        let t0 = Instant::now();
        let picks = diversity_sample(&emb, k, temperature, &[first], &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let ssal_s = t0.elapsed().as_secs_f64();
        let rss_peak = status_mib("VmHWM");
        let rss_extra = rss_peak - rss_before;
        let py = reference(&[
            "diversity",
            "--embeddings",
            npy.to_str().unwrap(),
            "--k",
            &k.to_string(),
            "--temperature",
            &temperature.to_string(),
            "--first",
            &first.to_string(),
        ]);
        let py_s = py["seconds"].as_f64().unwrap();
        let py_chosen: Vec<usize> =
            py["chosen"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let same = picks.iter().zip(&py_chosen).take_while(|(a, b)| a == b).count();
        let agreement = if temperature == 0.0 {
            format!("; first {same} of {k} picks identical to NumPy's")
        } else {
            String::new()
        };
        row(
            &format!("diversity sampling T = {temperature}, k = {k}, N = {n}, d = {d}"),
            ssal_s,
            "NumPy init_centers",
            py_s,
            faster(3.0, ssal_s, py_s),
            &format!(
                "{}; peak RSS while sampling {:.0} MiB, {:.1} MiB above the resident matrix and process \
                 ({:.0} MiB matrix; NumPy process peak {:.0} MiB){agreement}",
                verdict(&format!("{:.2}× the floor, ≤ 1.5×", ssal_s / floor), ssal_s / floor <= 1.5),
                rss_peak,
                rss_extra,
                (n * d * 4) as f64 / (1 << 20) as f64,
                py["peak_rss_mb"].as_f64().unwrap()
            ),
        );
    }
    println!(
        "| memory-bandwidth floor: {k} streaming reads of the {n} × {d} matrix ({threads} threads) | {floor:.3} s | — | — | — | {gbps:.1} GB/s; measured on {reads} reads, scaled ×{} |",
        k / reads
    );
}

/// The CPU section's k = 1,000 picks from N = 50,000 × d = 512 with the distance passes on a device
/// (`select::diversity_sample_on`): vs the NumPy reference on the host's CPU, the same loop in
/// PyTorch eager on the same device, ssal's CPU sampler, and k reads of the matrix on the device
/// (the floor). The device timings include copying the matrix to the device.
fn diversity_device(device: Device) {
    let (n, d, k) = if smoke() { (2_000usize, 64usize, 50usize) } else { (50_000, 512, 1_000) };
    let values = uniform_matrix(n, d);
    let dir = npy_in_temp_dir(&values, d);
    let npy = dir.path().join("x.npy");
    let emb = Embeddings::new(&values, d).expect("finite");
    let first = 0usize;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mib = (n * d * 4) as f64 / (1 << 20) as f64;

    // Warm-up: the CUDA context and the kernels, loaded once per process.
    diversity_sample_on(&emb, 10, 0.5, &[first], &mut ChaCha8Rng::seed_from_u64(1), device).unwrap();
    sync(device);

    // The floor: k reads of the matrix where it lies.
    let floor = {
        let m = Tensor::from_slice(&values).view([n as i64, d as i64]).to_device(device);
        let mut acc = m.sum(Kind::Float);
        sync(device);
        let t0 = Instant::now();
        for _ in 0..k {
            acc += m.sum(Kind::Float);
        }
        sync(device);
        assert!(acc.double_value(&[]).is_finite());
        t0.elapsed().as_secs_f64()
    };
    let gbps = (n * d * 4 * k) as f64 / floor / 1e9;

    for temperature in [0.0, 0.5] {
        let t0 = Instant::now();
        let cpu = diversity_sample(&emb, k, temperature, &[first], &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let cpu_s = t0.elapsed().as_secs_f64();
        sync(device);
        let t0 = Instant::now();
        let picks =
            diversity_sample_on(&emb, k, temperature, &[first], &mut ChaCha8Rng::seed_from_u64(1), device).unwrap();
        sync(device);
        let ssal_s = t0.elapsed().as_secs_f64();
        progress(&format!("ssal diversity T = {temperature} on {device:?}: {ssal_s:.3} s (CPU sampler {cpu_s:.3} s)"));
        let (k_s, t_s, first_s) = (k.to_string(), temperature.to_string(), first.to_string());
        let args = [
            "diversity",
            "--embeddings",
            npy.to_str().unwrap(),
            "--k",
            &k_s,
            "--temperature",
            &t_s,
            "--first",
            &first_s,
        ];
        let py = reference(&args);
        let py_s = py["seconds"].as_f64().unwrap();
        let device_arg = if device == Device::Cpu { "cpu" } else { "cuda" };
        let torch = try_reference(&[&args[..], &["--device", device_arg]].concat());
        let on = device_label(device, torch.as_ref().ok());
        let torch_note = match &torch {
            Ok(v) => {
                let s = v["seconds"].as_f64().unwrap();
                format!("PyTorch eager on the same device {s:.3} s ({:.2}×)", s / ssal_s)
            }
            Err(e) => {
                progress(e);
                "PyTorch eager on the same device: failed (see the log)".to_string()
            }
        };
        let same_prefix = |other: &[usize]| picks.iter().zip(other).take_while(|(a, b)| a == b).count();
        let mut agreement = format!("first {} of {k} picks identical to ssal's CPU sampler's", same_prefix(&cpu));
        if temperature == 0.0 {
            let np: Vec<usize> =
                py["chosen"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            agreement += &format!(", {} to NumPy's", same_prefix(&np));
        }
        row(
            &format!("diversity sampling on the {on}, T = {temperature}, k = {k}, N = {n}, d = {d}"),
            ssal_s,
            &format!("NumPy init_centers on the host CPU ({threads} threads)"),
            py_s,
            faster(3.0, ssal_s, py_s),
            &format!(
                "{torch_note}; ssal's CPU sampler on the same host {cpu_s:.3} s ({:.2}×); {:.1}× the device floor \
                 ({floor:.3} s: {k} reads of the {mib:.0} MiB matrix on the device, {gbps:.0} GB/s); device times \
                 include copying the matrix to the device; {agreement}",
                cpu_s / ssal_s,
                ssal_s / floor
            ),
        );
    }
}

/// What a `prune` row is held to (issue 20's targets).
#[derive(Debug, Clone, Copy)]
enum PruneTarget {
    /// Clustered data, where pruning is meant to pay: Auto at least 3× below the k-pass floor at
    /// T = 0 and 2× at T > 0 (where the draw still reads all N distances in index order).
    BelowFloor,
    /// Data without clusters, where it cannot: never slower than the unpruned sampler (5 % noise).
    NotSlower,
    /// Growth with N: measured, not judged.
    Unjudged,
}

/// One matrix's `prune` rows, one per temperature: ssal's default sampler (`Pruning::Auto`) timed
/// against the unpruned one (`Pruning::Never`), whose picks it must equal, against k streaming
/// reads of this matrix (the floor no unpruned sampler gets below, measured here because its rate
/// depends on the matrix's size) and, with `numpy`, against the NumPy reference.
fn prune_rows(name: &str, values: &[f32], d: usize, k: usize, temperatures: &[f64], target: PruneTarget, numpy: bool) {
    let emb = Embeddings::new(values, d).expect("finite");
    let n = emb.len();
    let floor = bandwidth_floor(values, k);
    let npy = numpy.then(|| npy_in_temp_dir(values, d));
    for &temperature in temperatures {
        let timed = |pruning| {
            let options = DiversityOptions { pruning, ..Default::default() };
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let t0 = Instant::now();
            let (picks, stats) = diversity_sample_stats(&emb, k, temperature, &[0], &mut rng, options).unwrap();
            (picks, stats, t0.elapsed().as_secs_f64())
        };
        let (picks, stats, auto_s) = timed(Pruning::Auto);
        let (unpruned, _, never_s) = timed(Pruning::Never);
        assert_eq!(picks, unpruned, "{name}, T = {temperature}: the pruned picks differ from the unpruned sampler's");
        let below = floor.seconds / auto_s;
        let target = match target {
            PruneTarget::BelowFloor => {
                let x = if temperature == 0.0 { 3.0 } else { 2.0 };
                verdict(&format!("≥ {x}× below the floor ({below:.2}×)"), below >= x)
            }
            PruneTarget::NotSlower => verdict("≤ 1.05× the unpruned time", auto_s <= 1.05 * never_s),
            PruneTarget::Unjudged => "— (growth with N)".into(),
        };
        let (numpy_text, speedup) = match &npy {
            Some(dir) => {
                let py = reference(&[
                    "diversity",
                    "--embeddings",
                    dir.path().join("x.npy").to_str().unwrap(),
                    "--k",
                    &k.to_string(),
                    "--temperature",
                    &temperature.to_string(),
                    "--first",
                    "0",
                ]);
                let py_s = py["seconds"].as_f64().unwrap();
                (format!("NumPy init_centers {py_s:.3} s"), format!("{:.2}×", py_s / auto_s))
            }
            None => ("NumPy not run at this size (minutes per run)".to_string(), "—".to_string()),
        };
        progress(&format!("prune {name}, T = {temperature}: Auto {auto_s:.3} s, Never {never_s:.3} s"));
        println!(
            "| pruned diversity sampling (default `Pruning::Auto`), {name}, T = {temperature}, k = {k}, N = {n}, d = {d} \
             | {auto_s:.3} s | {numpy_text} | {speedup} | {target} | unpruned (`Pruning::Never`) {never_s:.3} s \
             ({:.2}× Auto's time); {:.1} % of the distance evaluations skipped ({:.1} % by per-point bounds inside \
             groups that were read, {:.1} % of all by the projection bound; {} of {} centres' passes pruned); \
             Auto {:.2}× and unpruned {:.2}× the floor ({:.3} s: {k} reads, {:.1} GB/s on {} threads, measured on {}); \
             picks identical to the unpruned sampler's |",
            never_s / auto_s,
            100.0 * stats.skipped_fraction(),
            100.0 * stats.skipped_in_read_groups_fraction(),
            100.0 * stats.skipped_by_projection_fraction(),
            stats.pruned_centres,
            stats.centres,
            auto_s / floor.seconds,
            never_s / floor.seconds,
            floor.seconds,
            floor.gbps,
            floor.threads,
            floor.reads,
        );
    }
}

/// An N × d Gaussian mixture (seed 5): `clusters` centres drawn from N(0, I), each point a
/// uniformly chosen centre plus N(0, spread² I). Also returns the row's description, with the
/// smallest centre–centre distance and the mean point–centre distance, which show whether the
/// clusters are real.
fn gaussian_mixture(n: usize, d: usize, clusters: usize, spread: f32) -> (Vec<f32>, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let normal = rand_distr::StandardNormal;
    let centres: Vec<f32> = (0..clusters * d).map(|_| rng.sample::<f32, _>(normal)).collect();
    let mut values = Vec::with_capacity(n * d);
    let mut radius_sum = 0f64;
    for _ in 0..n {
        let c = &centres[rng.random_range(0..clusters) * d..][..d];
        let noise: Vec<f32> = (0..d).map(|_| spread * rng.sample::<f32, _>(normal)).collect();
        radius_sum += noise.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
        values.extend(c.iter().zip(&noise).map(|(c, x)| c + x));
    }
    let row = |i: usize| &centres[i * d..][..d];
    let closest = (0..clusters)
        .flat_map(|i| (0..i).map(move |j| (i, j)))
        .map(|(i, j)| row(i).iter().zip(row(j)).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>().sqrt())
        .fold(f64::INFINITY, f64::min);
    let about = format!(
        "Gaussian mixture of {clusters} clusters (centres ~ N(0, I), σ = {spread}: centres ≥ {closest:.1} apart, \
         points {:.1} from their centre on average)",
        radius_sum / n as f64
    );
    (values, about)
}

/// Fashion-MNIST's training pool as ssal embeds it (issue 20's real data), named for the rows:
/// the features of a short RotNet (300 steps, seed 0, through `embed::embeddings_for`, so from
/// ssal's embedding cache when a run has trained it, else trained and cached here), and the small
/// CNN's penultimate features after `steps` supervised steps on 1,000 random labels (of the EMA
/// model, which is what a query cycle scores the pool with). Smoke: a 2,000-image subset, a
/// 5-step RotNet kept out of the cache, 5 CNN steps on 100 labels.
fn fmnist_features(steps: usize) -> Vec<(String, EmbeddingMatrix)> {
    let mut config = ExperimentConfig { method: Method::Supervised, ..Default::default() };
    config.init.embedding = EmbeddingSource::Rotnet;
    config.rotnet.seed = Some(0);
    config.rotnet.steps = 300;
    let labels = if smoke() {
        config.dataset.train_subset = Some(2_000);
        config.rotnet.steps = 5;
        100
    } else {
        1_000
    };
    let (ds, augment) = fmnist(&config);
    let data = DeviceData::new(&ds, Device::Cpu, augment);
    let rot = &config.rotnet;
    progress(&format!("RotNet embedding ({} steps, cache key {})", rot.steps, rotnet_cache_key(&config)));
    let rotnet = if smoke() {
        train_rotnet(&config.rotnet, config.seed, config.train.eval_batch_size, &data, &Silent, None)
            .expect("RotNet trains")
    } else {
        embeddings_for(&config, &data, &Silent).expect("RotNet embedding").0.expect("asked for")
    };
    let rotnet_name =
        format!("Fashion-MNIST RotNet features (RotNet of {} steps, width {}, seed 0)", rot.steps, rot.width);

    config.train.steps = steps;
    config.train.eval_every = steps;
    progress(&format!("small CNN: {steps} supervised steps on {labels} labels, then the pool's features"));
    let n = ds.train.len();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let labeled = rand::seq::index::sample(&mut rng, n, labels).into_vec();
    let outcome = train(TrainSetup::of(&config), &data, &labeled, &[], None, &mut rng, &Silent, None).expect("trains");
    let pool: Vec<usize> = (0..n).collect();
    let view =
        score_pool(&outcome.ema, &data, &[], &pool, 0, config.train.eval_batch_size, &mut rng).expect("not stopped");
    let cnn = EmbeddingMatrix { values: view.features, dim: view.feature_dim };
    let cnn_name = format!(
        "Fashion-MNIST small-CNN penultimate features ({steps} supervised steps on {labels} random labels, EMA \
         model, test accuracy {:.1} %)",
        100.0 * outcome.accuracy
    );
    vec![(rotnet_name, rotnet), (cnn_name, cnn)]
}

/// Issue 20's rows: exact pruned diversity sampling, ssal's default, on (a) a Gaussian mixture
/// 200,000 × 64 with 100 clusters, (b) Fashion-MNIST features (RotNet, small CNN), (c) the
/// diversity section's uniform 50,000 × 512 matrix, at T = 0 and 0.5, and the mixture's growth
/// with N ∈ {50k, 200k, 1M} at T = 0 (NumPy skipped at 1M). `SSAL_BENCH_SMOKE=1`: tiny sizes.
fn prune() {
    let (k, sizes, cnn_steps, uniform) = if smoke() {
        (200, [2_000, 5_000, 20_000], 5, (2_000, 64))
    } else {
        (1_000, [50_000, 200_000, 1_000_000], 300, (50_000, 512))
    };
    // The middle size is (a), at both temperatures and judged; the others give the growth with N.
    for (i, n) in sizes.into_iter().enumerate() {
        let (values, about) = gaussian_mixture(n, 64, 100, 0.25);
        let (temperatures, target): (&[f64], _) =
            if i == 1 { (&[0.0, 0.5], PruneTarget::BelowFloor) } else { (&[0.0], PruneTarget::Unjudged) };
        prune_rows(&about, &values, 64, k, temperatures, target, i < 2);
    }
    for (name, m) in fmnist_features(cnn_steps) {
        prune_rows(&name, &m.values, m.dim, k, &[0.0, 0.5], PruneTarget::BelowFloor, true);
    }
    let (n, d) = uniform;
    let name = "the diversity section's uniform matrix (no clusters)";
    prune_rows(name, &uniform_matrix(n, d), d, k, &[0.0, 0.5], PruneTarget::NotSlower, true);
}

/// `prune-skips`: the fraction of distance evaluations the pruned sampler skips on issue 20's
/// clustered and real matrices ((a) and (b) of `prune`, k = 1000, T = 0 and 0.5, first centre row
/// 0), with `Pruning::Auto` and `Pruning::Always`. Nothing is timed, so unlike `prune` it gives
/// its answer on a busy machine: the counts do not depend on load.
fn prune_skips() {
    let (k, n, cnn_steps) = if smoke() { (200, 20_000, 5) } else { (1_000, 200_000, 300) };
    let (values, about) = gaussian_mixture(n, 64, 100, 0.25);
    let mut matrices = vec![(about, EmbeddingMatrix { values, dim: 64 })];
    matrices.extend(fmnist_features(cnn_steps));
    for (name, m) in &matrices {
        let emb = Embeddings::new(&m.values, m.dim).expect("finite");
        for temperature in [0.0, 0.5] {
            for pruning in [Pruning::Auto, Pruning::Always] {
                let options = DiversityOptions { pruning, ..Default::default() };
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                let (_, stats) = diversity_sample_stats(&emb, k, temperature, &[0], &mut rng, options).unwrap();
                println!(
                    "{name}, N = {}, d = {}, k = {k}, T = {temperature}, {pruning:?}: {:.1} % of the distance \
                     evaluations skipped, {:.1} % by per-point bounds inside groups that were read, {:.1} % by \
                     the projection bound ({} of {} centres' passes pruned, {} centre distances)",
                    emb.len(),
                    m.dim,
                    100.0 * stats.skipped_fraction(),
                    100.0 * stats.skipped_in_read_groups_fraction(),
                    100.0 * stats.skipped_by_projection_fraction(),
                    stats.pruned_centres,
                    stats.centres,
                    stats.centre_evaluations,
                );
            }
        }
    }
}

/// Fashion-MNIST as `config` loads it, with `config`'s augmentation, on the CPU.
fn fmnist(config: &ExperimentConfig) -> (Dataset, AugmentParams) {
    let ds = Dataset::load(config).expect("Fashion-MNIST is installed (scripts/setup.sh)");
    let d = &config.dataset;
    (ds, AugmentParams { crop_padding: d.crop_padding, horizontal_flip: d.horizontal_flip })
}

/// N_a = 50 augmented forward passes over a pool: ssal's `score_pool` vs PyTorch eager.
fn consistency(model: &str, pool: usize) {
    let kind = model_kind(model);
    let config = ExperimentConfig::default();
    let (ds, augment) = fmnist(&config);
    let data = DeviceData::new(&ds, Device::Cpu, augment);
    let dir = tempfile::tempdir().expect("temp dir");
    let images = dir.path().join("images.npy");
    ds.train.images.narrow(0, 0, pool as i64).write_npy(&images).expect("writes .npy");
    tch::manual_seed(0);
    let net = Network::new(kind, 1, 10, Device::Cpu);
    let (augmentations, batch) = (50usize, config.train.eval_batch_size);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let candidates: Vec<usize> = (0..pool).collect();
    score_pool(&net, &data, &[], &candidates[..batch / (augmentations + 1)], augmentations, batch, &mut rng)
        .expect("not stopped");
    let t0 = Instant::now();
    let view = score_pool(&net, &data, &[], &candidates, augmentations, batch, &mut rng).expect("not stopped");
    let ssal_s = t0.elapsed().as_secs_f64();
    assert_eq!(view.consistency.len(), pool);
    let (py_s, py_cl_s) = eager_seconds(&[
        "consistency",
        "--images",
        images.to_str().unwrap(),
        "--model",
        model,
        "--augmentations",
        &augmentations.to_string(),
        "--batch-size",
        &batch.to_string(),
    ]);
    row(
        &format!("consistency scoring, {model}, N_a = {augmentations}, pool {pool}"),
        ssal_s,
        "PyTorch eager",
        py_s,
        faster(1.0, ssal_s, py_s),
        &format!(
            "{:.0} views/s; batches of {batch} views; eager with channels-last weights {py_cl_s:.3} s ({:.2}×)",
            (pool * (augmentations + 1)) as f64 / ssal_s,
            py_cl_s / ssal_s
        ),
    );
}

/// `small_cnn` or `wrn28_2`.
fn model_kind(model: &str) -> ModelKind {
    match model {
        "small_cnn" => ModelKind::SmallCnn,
        "wrn28_2" => ModelKind::Wrn28_2,
        other => panic!("model {other}: expected small_cnn or wrn28_2"),
    }
}

/// `train` images of random pixels and labels shaped like CIFAR-10 (3 × 32 × 32, ten classes), with
/// 64 test images and CIFAR's augmentation: a training step's time does not depend on the pixel
/// values, and a GPU machine need not have a data set installed.
fn random_cifar_shaped(train: usize) -> (Dataset, AugmentParams) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut split = |n: usize| {
        let pixels: Vec<u8> = (0..n * 3 * 32 * 32).map(|_| rng.random::<u8>()).collect();
        let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..10)).collect();
        Split { images: Tensor::from_slice(&pixels).view([n as i64, 3, 32, 32]), labels: Tensor::from_slice(&labels) }
    };
    let (train, test) = (split(train), split(64));
    let (mean, std) = channel_stats(&train.images);
    let train_rows = (0..train.len()).map(|i| i.to_string()).collect();
    let ds = Dataset { name: DatasetName::Cifar10, train, test, num_classes: 10, mean, std, train_rows };
    (ds, AugmentParams { crop_padding: 4, horizontal_flip: true })
}

/// MixMatch steps (batch 64 labeled + 2 × 64 unlabeled views): ssal's `train` vs PyTorch eager,
/// warm-up excluded. Without a device: the CPU row, the small CNN (by default) on Fashion-MNIST.
/// With one: on that device, on random CIFAR-10-shaped images (`random_cifar_shaped`), against
/// PyTorch eager on the same device in its default layout, with channels-last weights, and with
/// channels-last weights under bf16 autocast.
fn mixmatch(model: &str, device: Option<Device>) {
    let on_device = device.is_some();
    let device = device.unwrap_or(Device::Cpu);
    let kind = model_kind(model);
    let name = if kind == ModelKind::SmallCnn { "small CNN" } else { "WRN-28-2" };
    let mut config = ExperimentConfig { method: Method::Mixmatch, model: kind, ..Default::default() };
    config.dataset.test_subset = Some(64); // the one evaluation at the last step is negligible
    let n_train = if smoke() { 500 } else { 10_000 };
    let (ds, augment) = if on_device { random_cifar_shaped(n_train) } else { fmnist(&config) };
    let data = DeviceData::new(&ds, device, augment);
    let labeled: Vec<usize> = (0..100).collect();
    let unlabeled: Vec<usize> = (100..ds.train.len()).collect();
    let (warmup, steps) = match (on_device, smoke()) {
        (false, _) => (3usize, 40usize),
        (true, false) => (10, 100),
        (true, true) => (2, 3),
    };
    let mut timed = |n: usize| {
        config.train.steps = n;
        config.train.eval_every = n;
        sync(device);
        let t0 = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        train(TrainSetup::of(&config), &data, &labeled, &unlabeled, None, &mut rng, &Silent, None).expect("trains");
        sync(device);
        t0.elapsed().as_secs_f64()
    };
    if on_device {
        // The CUDA context, cuDNN's handles and kernel loading are paid once per process: not in
        // the short run that is subtracted.
        timed(warmup);
    }
    let short = timed(warmup);
    let ssal_s = timed(warmup + steps) - short;
    let per_step = |s: f64| s / steps as f64;
    if on_device {
        progress(&format!("ssal {model} on {device:?}: {:.2} ms per MixMatch step", ms(per_step(ssal_s))));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (images, labels) = (dir.path().join("images.npy"), dir.path().join("labels.npy"));
    ds.train.images.narrow(0, 0, n_train as i64).write_npy(&images).expect("writes .npy");
    ds.train.labels.narrow(0, 0, n_train as i64).write_npy(&labels).expect("writes .npy");
    let (warmup_s, steps_s) = (warmup.to_string(), steps.to_string());
    let args = [
        "mixmatch-step",
        "--images",
        images.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--model",
        model,
        "--warmup",
        &warmup_s,
        "--steps",
        &steps_s,
    ];
    if !on_device {
        let (py_s, py_cl_s) = eager_seconds(&args);
        row(
            &format!("MixMatch step, {name}, CPU, batch 64 + 2 × 64 ({steps} steps)"),
            per_step(ssal_s),
            "PyTorch eager",
            per_step(py_s),
            faster(1.0, ssal_s, py_s),
            &format!(
                "{:.1} ms vs {:.1} ms per step; eager with channels-last weights {:.1} ms ({:.2}×)",
                ms(per_step(ssal_s)),
                ms(per_step(py_s)),
                ms(per_step(py_cl_s)),
                py_cl_s / ssal_s
            ),
        );
        return;
    }
    let device_arg = if device == Device::Cpu { "cpu" } else { "cuda" };
    let eager = |extra: &[&str]| try_reference(&[&args[..], &["--device", device_arg], extra].concat());
    let default = eager(&[]).unwrap_or_else(|e| panic!("{e}"));
    let py_s = default["seconds"].as_f64().unwrap();
    let variant = |extra: &[&str], label: &str| match eager(extra) {
        Ok(v) => {
            let s = v["seconds"].as_f64().unwrap();
            format!("{label} {:.2} ms ({:.2}×)", ms(per_step(s)), s / ssal_s)
        }
        Err(e) => {
            progress(&e);
            format!("{label}: failed (see the log)")
        }
    };
    let channels_last = variant(&["--channels-last"], "eager with channels-last weights");
    let amp = variant(
        &["--channels-last", "--amp"],
        "eager with channels-last weights and AMP (bf16 autocast; ssal and the other references run in fp32)",
    );
    row(
        &format!(
            "MixMatch step, {name}, {}, batch 64 + 2 × 64, random 3 × 32 × 32 images ({steps} steps)",
            device_label(device, Some(&default))
        ),
        per_step(ssal_s),
        "PyTorch eager, same device",
        per_step(py_s),
        faster(1.0, ssal_s, py_s),
        &format!(
            "{:.2} ms vs {:.2} ms per step; {channels_last}; {amp}; {warmup} warm-up steps not timed",
            ms(per_step(ssal_s)),
            ms(per_step(py_s))
        ),
    );
}

/// A four-cycle AL run's result, as `ssal run` writes it.
fn synthetic_result(i: usize) -> RunResult {
    let strategies = [
        QueryStrategy::Random,
        QueryStrategy::Entropy,
        QueryStrategy::Coreset,
        QueryStrategy::Badge,
        QueryStrategy::Consistency,
        QueryStrategy::ConsistencyEmbedding,
    ];
    let mut config = ExperimentConfig::default();
    config.seed = (i / 12) as u64;
    config.method = if i % 2 == 0 { Method::Mixmatch } else { Method::Supervised };
    config.query.strategy = strategies[(i / 2) % 6];
    config.query.budgets = vec![50, 50, 100];
    let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
    let mut labeled = Vec::new();
    let cycles = [100usize, 50, 50, 100]
        .iter()
        .enumerate()
        .map(|(cycle, &added)| {
            let selected: Vec<usize> = (0..added).map(|_| rng.random_range(0..60_000)).collect();
            labeled.extend(&selected);
            let evaluations: Vec<Evaluation> = (1..=10)
                .map(|s| Evaluation { step: s * 100, accuracy: rng.random_range(0.6..0.8), test_images: None })
                .collect();
            CycleRecord {
                cycle,
                n_labeled: labeled.len(),
                selected,
                class_histogram: vec![labeled.len() / 10; 10],
                class_distance: Some(rng.random_range(0.0..0.2)),
                diversity: Some(rng.random_range(0.5..1.0)),
                consistency: (cycle > 0).then(|| rng.random_range(0.0..0.1)),
                accuracy: Some(evaluations.last().unwrap().accuracy),
                evaluations,
                train_seconds: 100.0,
                embed_seconds: 1.0,
                query_seconds: 0.1,
                eval_seconds: 5.0,
            }
        })
        .collect::<Vec<_>>();
    RunResult {
        ssal_version: "bench".into(),
        git_commit: "bench".into(),
        config_hash: config.content_hash(),
        final_accuracy: cycles.last().unwrap().accuracy,
        config,
        device: "Cpu".into(),
        complete: true,
        labeled_indices: labeled,
        cycles,
        wall_seconds: 500.0,
        environment: Default::default(),
    }
}

/// Ingest of 10,000 result files (vs Python sqlite3 + json) and a report over them.
fn store() {
    let files = 10_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let results = dir.path().join("bench-sweep");
    for i in 0..files {
        let job = results.join("jobs").join(format!("{i:05}"));
        std::fs::create_dir_all(&job).unwrap();
        ssal::result::write(&job.join("result.json"), &synthetic_result(i)).unwrap();
    }
    let db = dir.path().join("ssal.db");
    let t0 = Instant::now();
    let mut store = Store::open(&db).unwrap();
    let report = store.ingest_dir(&results).unwrap();
    let ingest_s = t0.elapsed().as_secs_f64();
    assert_eq!(report.added, files);
    let py =
        reference(&["ingest", "--dir", results.to_str().unwrap(), "--db", dir.path().join("py.db").to_str().unwrap()]);
    assert_eq!(py["files"].as_u64(), Some(files as u64));
    row(
        "ingest 10,000 result.json (4 cycles each)",
        ingest_s,
        "Python sqlite3 + json",
        py["seconds"].as_f64().unwrap(),
        verdict("< 5 s", ingest_s < 5.0),
        "",
    );
    // The default grouping: every config field that varies (method and strategy here), read
    // through the field index, with the baseline matched exactly.
    let t0 = Instant::now();
    let query = ssal::analysis::SelectionQuery::default();
    let selection = ssal::analysis::Selection::select(&Store::open_read_only(&db).unwrap(), &query).unwrap();
    let query_s = t0.elapsed().as_secs_f64();
    let baseline = selection.find_row("method=mixmatch, query.strategy=random").unwrap();
    let table = ssal::report::build_table(
        &selection,
        ssal::report::Metric::Accuracy,
        Some(baseline),
        ssal::report::TestChoice::Auto,
    );
    let text = table.render(ssal::report::Format::Md);
    let report_s = t0.elapsed().as_secs_f64();
    assert!(text.lines().count() > 12);
    println!(
        "| report over the 10,000 runs ({} rows × {} columns incl. AUC, any-field grouping, paired t-tests, penalty matrix) | {report_s:.3} s | — | — | {} | selection (SQLite field index) {query_s:.3} s, table, tests and penalty matrix {:.3} s |",
        table.rows.len(),
        table.columns.len(),
        verdict("< 0.5 s", report_s < 0.5),
        report_s - query_s
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("diversity") => match args.get(1) {
            None => diversity(),
            Some(device) => diversity_device(parse_device(device)),
        },
        Some("consistency") => {
            let model = args.get(1).map_or("small_cnn", String::as_str);
            let pool = args.get(2).map_or(10_000, |p| p.parse().expect("POOL is a number"));
            consistency(model, pool)
        }
        Some("mixmatch") => {
            let model = args.get(1).map_or("small_cnn", String::as_str);
            mixmatch(model, args.get(2).map(|d| parse_device(d)))
        }
        Some("prune") => prune(),
        Some("prune-skips") => prune_skips(),
        Some("store") => store(),
        _ => eprintln!(
            "usage: cargo bench --bench hotpaths -- diversity [cpu|cuda] | prune | prune-skips | consistency MODEL POOL | \
             mixmatch [small_cnn|wrn28_2 [cpu|cuda]] | store"
        ),
    }
}
