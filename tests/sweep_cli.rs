//! `ssal sweep plan` through the real binary: files on disk, stable ids, bad input.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;
mod legacy_ids;

use ssal::config::ExperimentConfig;
use std::process::Command;

fn plan(file: &std::path::Path, results: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["sweep", "plan", file.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .output()
        .unwrap()
}

/// The configs `ssal sweep plan` wrote for the repository's `sweeps/<name>.toml` under `results`,
/// in plan order (read through `plan.tsv`).
fn planned_configs(name: &str, results: &std::path::Path) -> Vec<ExperimentConfig> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("sweeps/{name}.toml"));
    let o = plan(&file, results);
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    let tsv = std::fs::read_to_string(results.join(name).join("plan.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .map(|id| ExperimentConfig::load(&results.join(name).join("jobs").join(id).join("config.toml")).unwrap())
        .collect()
}

#[test]
fn plan_writes_one_loadable_config_per_job_with_stable_ids() {
    let t = tempfile::tempdir().unwrap();
    let repo_sweep = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/fmnist-demo.toml");
    let o = plan(&repo_sweep, t.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("15 jobs"));
    let tsv = std::fs::read_to_string(t.path().join("fmnist-demo/plan.tsv")).unwrap();
    let ids: Vec<&str> = tsv.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(ids.len(), 15);
    for id in &ids {
        let cfg = ExperimentConfig::load(&t.path().join("fmnist-demo/jobs").join(id).join("config.toml")).unwrap();
        assert_eq!(&cfg.content_hash(), id);
        assert_eq!((cfg.train.steps, cfg.rotnet.steps, cfg.rotnet.seed), (0, 300, Some(0)), "one shared RotNet");
    }
    // Planning again gives the same ids.
    let again = t.path().join("again");
    assert!(plan(&repo_sweep, &again).status.success());
    assert_eq!(std::fs::read_to_string(again.join("fmnist-demo/plan.tsv")).unwrap(), tsv);
}

#[test]
fn misspelt_axis_exits_2_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("bad.toml");
    std::fs::write(&f, "[grid]\nseed = [1]\n\"labeled.sise\" = [10]\n").unwrap();
    let o = plan(&f, t.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("labeled.sise") && err.contains("line 3") && err.contains("bad.toml"), "{err}");
    assert!(!t.path().join("bad").exists(), "nothing is written for an invalid sweep");
}

#[test]
fn the_paper_analogue_sweeps_plan_as_documented() {
    let t = tempfile::tempdir().unwrap();
    let sweeps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    for (file, jobs) in [("fmnist-init.toml", 100), ("fmnist-al.toml", 30)] {
        let o = plan(&sweeps.join(file), t.path());
        assert!(o.status.success(), "{file}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{jobs} jobs")), "{file}");
    }
    // Every AL job starts from the paper's initial selection and runs three query cycles.
    for cfg in planned_configs("fmnist-al", t.path()) {
        assert_eq!(cfg.query.budgets, vec![50, 50, 100]);
        assert_eq!(cfg.init.temperature, 0.5);
    }
}

/// The EMA batch-norm check: 5 seeds with the statistics copied and 5 with them averaged, all
/// else the calibration's supervised setting at 100 labels.
#[test]
fn the_ema_batch_norm_sweep_plans_both_settings_for_each_seed() {
    let t = tempfile::tempdir().unwrap();
    let configs = planned_configs("fmnist-ema-bn", t.path());
    assert_eq!(configs.len(), 10);
    for c in &configs {
        assert_eq!((c.labeled.size, c.train.steps, c.train.eval_every), (100, 2000, 100));
    }
    assert_eq!(configs.iter().filter(|c| c.train.ema_average_batch_norm).count(), 5);
}

#[test]
fn the_papers_protocol_sweeps_plan_with_random_initial_sets_and_the_ablation_grid() {
    use ssal::config::{InitStrategy, Method, QueryStrategy};
    let t = tempfile::tempdir().unwrap();
    let configs = |name: &str| planned_configs(name, t.path());
    // Figs. 8/9: every strategy from a random initial set; MixMatch exactly for random and the
    // two consistency strategies; the calibrated regime: warm-started cycles of 1,000 steps,
    // lambda_u = 10 ramped over 10 % of each.
    let strategies = configs("fmnist-protocol-strategies");
    assert_eq!(strategies.len(), 30);
    for c in &strategies {
        assert_eq!(c.init.strategy, InitStrategy::Random);
        let semi = matches!(
            c.query.strategy,
            QueryStrategy::Random | QueryStrategy::Consistency | QueryStrategy::ConsistencyEmbedding
        );
        assert_eq!(c.method == Method::Mixmatch, semi, "{:?}", c.query.strategy);
        assert_eq!(c.mixmatch.rampup_steps_for(c.train.steps), 100);
        assert_eq!((c.train.warm_start, c.mixmatch.lambda_u, c.train.median_of), (true, 10.0, 3));
    }
    // Figs. 10/11: init {random, diversity} x {Consistency, ours} x 5 seeds. The random-init
    // half is the strategies sweep's own runs: each diversity-init job has a strategies job of its
    // seed and query strategy whose config differs only in the initial set's fields.
    let ablation = configs("fmnist-protocol-ablation");
    assert_eq!(ablation.len(), 10);
    let initial_set_field = |f: &str| f.starts_with("init.") || f.starts_with("rotnet.");
    let without_initial_set = |c: &ssal::config::ExperimentConfig| {
        c.fields().into_iter().filter(|(f, _)| !initial_set_field(f)).collect::<Vec<_>>()
    };
    let mut cells = std::collections::BTreeSet::new();
    for c in &ablation {
        assert_eq!((c.init.strategy, c.init.temperature), (InitStrategy::Diversity, 0.5));
        let twins: Vec<_> = strategies.iter().filter(|s| without_initial_set(s) == without_initial_set(c)).collect();
        assert_eq!(twins.len(), 1, "{:?} seed {}", c.query.strategy, c.seed);
        cells.insert(format!("{:?}", c.query.strategy));
    }
    assert_eq!(cells.len(), 2, "{cells:?}");
}

#[test]
fn the_papers_own_sweeps_plan_with_the_papers_settings_and_one_gpu_per_task() {
    use ssal::config::{Method, ModelKind, QueryStrategy};
    let t = tempfile::tempdir().unwrap();
    let sweeps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    // CIFAR-10 has its fixed test set; Caltech-101's 90/10 split is one for all seeds, the split
    // its imported embedding's rows follow.
    for (name, jobs, model, budgets, n_a, median, lambda_u, split_seed) in [
        ("cifar10-paper", 30, ModelKind::Wrn28_2, vec![50, 50, 250, 250, 250], 50, 20, 75.0, None),
        ("caltech101-paper", 25, ModelKind::Resnet18, vec![388, 388, 388], 10, 6, 150.0, Some(0)),
    ] {
        let o = plan(&sweeps.join(format!("{name}.toml")), t.path());
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(&format!("{name}: {jobs} jobs")), "{stdout}");
        // The dry run shows the batch script: one GPU per task, checkpoint-and-requeue wiring.
        for line in [
            "#SBATCH --gres=gpu:1",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --requeue",
            &format!("#SBATCH --array=0-{}", jobs - 1),
        ] {
            assert!(stdout.contains(line), "{name}: no {line:?} in\n{stdout}");
        }
        let tsv = std::fs::read_to_string(t.path().join(name).join("plan.tsv")).unwrap();
        let mut seeds = std::collections::BTreeSet::new();
        for id in tsv.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap()) {
            let cfg = ExperimentConfig::load(&t.path().join(name).join("jobs").join(id).join("config.toml")).unwrap();
            assert_eq!(cfg.model, model, "{name}");
            assert_eq!(cfg.query.budgets, budgets, "{name}");
            assert_eq!((cfg.query.augmentations, cfg.train.median_of, cfg.mixmatch.lambda_u), (n_a, median, lambda_u));
            assert_eq!((cfg.train.lr, cfg.train.weight_decay, cfg.train.ema_decay), (0.002, 4e-5, 0.999));
            assert_eq!(cfg.init.temperature, 0.5);
            assert_eq!(cfg.dataset.split_seed, split_seed, "{name}");
            let supervised =
                matches!(cfg.query.strategy, QueryStrategy::Entropy | QueryStrategy::Coreset | QueryStrategy::Badge);
            assert_eq!(cfg.method == Method::Supervised, supervised, "{name}: {:?}", cfg.query.strategy);
            seeds.insert(cfg.seed);
        }
        assert_eq!(seeds.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }
}

#[test]
fn local_backend_runs_every_job_and_resume_then_submits_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 200, 50, false);
    let sweep = t.path().join("local.toml");
    std::fs::write(
        &sweep,
        format!(
            "[base]\ndevice = \"cpu\"\nmethod = \"supervised\"\n[base.dataset]\npath = \"{}\"\n[base.labeled]\nsize = 20\n\
             [base.train]\nsteps = 20\nbatch_size = 8\neval_every = 10\n[grid]\nseed = [0, 1, 2]\n",
            data.display()
        ),
    )
    .unwrap();
    let results = t.path().join("results");
    let sweep_cmd = |args: &[&str]| {
        let mut all = vec!["sweep"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[sweep.to_str().unwrap(), "--results", results.to_str().unwrap()]);
        Command::new(env!("CARGO_BIN_EXE_ssal")).args(&all).output().unwrap()
    };
    let out = sweep_cmd(&["submit", "--backend", "local"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("submitted 3 jobs (backend local)") && stdout.contains("3 done"), "{stdout}");
    for line in std::fs::read_to_string(results.join("local/plan.tsv")).unwrap().lines().skip(1) {
        let id = line.split('\t').nth(1).unwrap();
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join("local/jobs").join(id).join("result.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(r["complete"], true);
        assert!(std::fs::read_to_string(results.join("local/jobs").join(id).join("log.txt"))
            .unwrap()
            .contains("accuracy"));
    }
    let status = sweep_cmd(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("| done | 3 |"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let again = sweep_cmd(&["resume", "--backend", "local"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("submitted 0 jobs"));
    // Slurm commands missing (no SLURM_CONF cluster here): a clear error, exit 3 (scheduler
    // unavailable).
    let slurm = Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["sweep", "cancel", sweep.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(slurm.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&slurm.stderr).contains("scontrol"), "{}", String::from_utf8_lossy(&slurm.stderr));
}

/// A local sweep of cheap supervised runs on a tiny synthetic dataset, its seeds set by
/// [`LocalSweep::seeds`], driven through the binary.
struct LocalSweep {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    file: std::path::PathBuf,
    results: std::path::PathBuf,
}

impl LocalSweep {
    fn new() -> LocalSweep {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        common::write_idx_dataset(&data, 200, 50, false);
        let (file, results) = (tmp.path().join("edit.toml"), tmp.path().join("results"));
        LocalSweep { data, file, results, _tmp: tmp }
    }

    /// Writes the sweep file with `seeds` as its only axis.
    fn seeds(&self, seeds: &[u32]) {
        let list: Vec<String> = seeds.iter().map(u32::to_string).collect();
        std::fs::write(
            &self.file,
            format!(
                "[base]\ndevice = \"cpu\"\nmethod = \"supervised\"\n[base.dataset]\npath = \"{}\"\n[base.labeled]\n\
                 size = 20\n[base.train]\nsteps = 10\nbatch_size = 8\neval_every = 10\n[grid]\nseed = [{}]\n",
                self.data.display(),
                list.join(", ")
            ),
        )
        .unwrap();
    }

    /// `ssal sweep VERB FILE --results R [extra]`: (exit code, stdout, stderr).
    fn run(&self, verb: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let mut args = vec!["sweep", verb, self.file.to_str().unwrap(), "--results", self.results.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_ssal")).args(&args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn status_json(&self) -> serde_json::Value {
        let (code, stdout, stderr) = self.run("status", &["--format", "json"]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// The job directory of the job with `seed` (its config's content hash).
    fn job_dir(&self, seed: u64) -> std::path::PathBuf {
        let jobs = self.results.join("edit/jobs");
        std::fs::read_dir(&jobs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|d| ExperimentConfig::load(&d.join("config.toml")).unwrap().seed == seed)
            .unwrap_or_else(|| panic!("no job with seed {seed} under {}", jobs.display()))
    }
}

#[test]
fn a_removed_value_retires_its_job_with_its_result_and_adding_it_back_restores_it() {
    let s = LocalSweep::new();
    s.seeds(&[0, 1]);
    let (code, stdout, stderr) = s.run("submit", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("submitted 2 jobs") && stdout.contains("2 done"), "{stdout}");
    let seed0 = s.job_dir(0);
    let result0 = std::fs::read_to_string(seed0.join("result.json")).unwrap();
    let log0 = std::fs::read_to_string(seed0.join("log.txt")).unwrap();

    // Seed 0 leaves the sweep file: resume retires it and submits nothing.
    s.seeds(&[1]);
    let (code, stdout, stderr) = s.run("resume", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("submitted 0 jobs") && stdout.contains("1 done · 1 retired"), "{stdout}");
    assert!(stderr.contains("sweep edit: 1 job retired (no longer in the sweep file"), "{stderr}");
    // Status shows it as retired, apart from the plan's jobs, with its result.
    let (code, stdout, stderr) = s.run("status", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("| done | 1 |") && stdout.contains("| retired | 1 |"), "{stdout}");
    assert!(stdout.contains("retired (values no longer in the sweep file): 1 done;"), "{stdout}");
    let id0 = seed0.file_name().unwrap().to_str().unwrap();
    let line = stdout.lines().find(|l| l.contains(id0)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("[seed=0] done: ") && line.ends_with("result.json"), "{line}");
    assert!(!stderr.contains("retired"), "a second look retires nothing new: {stderr}");
    let v = s.status_json();
    assert_eq!((v["jobs"].as_u64(), v["states"]["done"].as_u64(), v["retired"].as_u64()), (Some(1), Some(1), Some(1)));
    let r = &v["retired_jobs"][0];
    assert_eq!(
        (r["job_id"].as_str(), r["axes"].as_str(), r["state"].as_str()),
        (Some(id0), Some("[seed=0]"), Some("done"))
    );
    assert_eq!(std::fs::read_to_string(r["result"].as_str().unwrap()).unwrap(), result0);
    // Its result stays reportable: ingesting the sweep's directory finds both results.
    let db = s.results.join("runs.db");
    let o = Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["results", "ingest", s.results.join("edit").to_str().unwrap(), "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seeds = ingested_seeds(&db);
    assert_eq!(seeds, vec![0, 1]);

    // Seed 0 comes back: restored as done, not run again.
    s.seeds(&[0, 1]);
    let (code, stdout, stderr) = s.run("resume", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("submitted 0 jobs") && stdout.contains("sweep edit: 2 done\n"), "{stdout}");
    assert!(stderr.contains("1 retired job restored (back in the sweep file)"), "{stderr}");
    assert_eq!(std::fs::read_to_string(seed0.join("result.json")).unwrap(), result0);
    assert_eq!(std::fs::read_to_string(seed0.join("log.txt")).unwrap(), log0, "not run again");
    let v = s.status_json();
    assert_eq!((v["states"]["done"].as_u64(), v["retired"].as_u64()), (Some(2), Some(0)));
}

#[test]
fn seeds_0_then_1_resume_submits_only_seed_1() {
    // Issue 17's report: seed 0 planned (never run), the file edited to seed 1, resume ran both.
    let s = LocalSweep::new();
    s.seeds(&[0]);
    let (code, stdout, stderr) = s.run("status", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("| planned | 1 |"), "{stdout}");
    s.seeds(&[1]);
    // Re-planning already retires it, and says so.
    let (code, stdout, stderr) = s.run("plan", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("1 job retired"), "{stderr}");
    let (code, stdout, stderr) = s.run("resume", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("submitted 1 jobs") && stdout.contains("1 done · 1 retired"), "{stdout}");
    assert!(!s.job_dir(0).join("log.txt").exists(), "seed 0 never ran");
    assert!(s.job_dir(1).join("result.json").is_file());
    let v = s.status_json();
    assert_eq!(v["retired_jobs"][0]["state"], "planned", "{v}");
    assert_eq!(v["retired_jobs"][0]["result"], serde_json::Value::Null, "{v}");
}

#[test]
fn a_sweep_run_by_an_older_ssal_is_rekeyed_without_rerunning_or_retiring_anything() {
    let s = LocalSweep::new();
    s.seeds(&[0, 1, 2]);
    let (code, stdout, stderr) = s.run("submit", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let sweep_dir = s.results.join("edit");
    let pairs = legacy_ids::as_left_by_an_older_ssal(&sweep_dir);
    // Seed 2 was stopped by the older ssal before its first cycle finished, and failed.
    let seed2 = s.job_dir(2);
    let legacy2 = seed2.file_name().unwrap().to_str().unwrap().to_string();
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(seed2.join("result.json")).unwrap()).unwrap();
    r["complete"] = false.into();
    r["cycles"] = serde_json::json!([]);
    r["labeled_indices"] = serde_json::json!([]);
    r["final_accuracy"] = serde_json::Value::Null;
    std::fs::write(seed2.join("result.json"), serde_json::to_string_pretty(&r).unwrap()).unwrap();
    rusqlite::Connection::open(sweep_dir.join("state.db"))
        .unwrap()
        .execute("UPDATE jobs SET state = 'failed' WHERE job_id = ?1", [&legacy2])
        .unwrap();
    let untouched: Vec<(std::path::PathBuf, String, String)> = [0, 1]
        .into_iter()
        .map(|seed| {
            let d = s.job_dir(seed);
            let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
            (d.clone(), read("result.json"), read("log.txt"))
        })
        .collect();
    // The results store has the three runs as the older ssal left them.
    let db = s.results.join("runs.db");
    let ingest = || {
        let o = Command::new(env!("CARGO_BIN_EXE_ssal"))
            .args(["results", "ingest", sweep_dir.to_str().unwrap(), "--db", db.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ingest();

    // This ssal re-keys them, says so once, and retires nothing.
    let (code, stdout, stderr) = s.run("status", &[]);
    assert_eq!(code, Some(1), "a failed job: {stdout}{stderr}");
    assert!(stderr.contains("ssal: sweep edit: 3 jobs re-keyed from an older ssal's ids"), "{stderr}");
    assert!(!stderr.contains("retired"), "{stderr}");
    assert!(stdout.contains("| done | 2 |") && stdout.contains("| failed | 1 |"), "{stdout}");
    let (_, json, _) = s.run("status", &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((v["jobs"].as_u64(), v["retired"].as_u64()), (Some(3), Some(0)), "{v}");
    assert_eq!(v["failed"][0]["log"], seed2.join("log.txt").to_str().unwrap(), "its log, where it is");
    for (legacy, id) in &pairs {
        let link = sweep_dir.join("jobs").join(id);
        assert_eq!(std::fs::read_link(&link).unwrap(), std::path::PathBuf::from(legacy));
        assert!(link.join("config.toml").is_file() && link.join("result.json").is_file());
    }
    let (_, _, stderr) = s.run("status", &[]);
    assert!(!stderr.contains("re-keyed"), "once: {stderr}");

    // Resume runs only the unfinished job, in its directory, and leaves the others alone.
    let (code, stdout, stderr) = s.run("resume", &["--backend", "local"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("submitted 1 jobs") && stdout.contains("sweep edit: 3 done\n"), "{stdout}");
    for (dir, result, log) in &untouched {
        assert_eq!(&std::fs::read_to_string(dir.join("result.json")).unwrap(), result, "not rewritten");
        assert_eq!(&std::fs::read_to_string(dir.join("log.txt")).unwrap(), log, "not run again");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(seed2.join("result.json")).unwrap()).unwrap();
    let id2 = &pairs.iter().find(|(l, _)| *l == legacy2).unwrap().1;
    assert_eq!((r["complete"].as_bool(), r["config_hash"].as_str()), (Some(true), Some(id2.as_str())));

    // The store: the same three runs, seed 2's replaced, none twice (the link is not a second run).
    let out = ingest();
    assert!(out.contains("0 added") && out.contains("1 replaced") && out.contains("2 unchanged"), "{out}");
    let seeds = ingested_seeds(&db);
    assert_eq!(seeds, vec![0, 1, 2]);
}

/// The seeds of the runs in the results database `db`, ascending.
fn ingested_seeds(db: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let seeds = conn
        .prepare("SELECT seed FROM runs ORDER BY seed")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    seeds
}

/// Issue 17, stages: three seeds share one RotNet config (its seed fixed). The local backend runs
/// the prepare stage first, on three slots at once the jobs wait for it, and RotNet is trained
/// exactly once: one cache entry, one "trained" line (the prepare task's), every job "from the
/// cache". `sweep plan` shows the stage.
#[test]
fn a_shared_rotnet_is_prepared_once_before_the_jobs_that_need_it() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 60, 20, false);
    let sweep = t.path().join("shared.toml");
    std::fs::write(
        &sweep,
        format!(
            "[base]\ndevice = \"cpu\"\nmethod = \"supervised\"\n[base.dataset]\npath = \"{}\"\n[base.labeled]\nsize = 4\n\
             [base.train]\nsteps = 0\n[base.init]\nstrategy = \"diversity\"\nembedding = \"rotnet\"\n\
             [base.rotnet]\nseed = 0\nsteps = 3\nwidth = 4\nbatch_size = 8\n[grid]\nseed = [0, 1, 2]\n",
            data.display()
        ),
    )
    .unwrap();
    let (results, cache) = (t.path().join("results"), t.path().join("cache"));
    let sweep_cmd = |args: &[&str]| {
        let mut all = vec!["sweep"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[sweep.to_str().unwrap(), "--results", results.to_str().unwrap()]);
        Command::new(env!("CARGO_BIN_EXE_ssal")).args(&all).env("SSAL_CACHE", &cache).output().unwrap()
    };
    let out = sweep_cmd(&["plan"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("stage 1: prepare 1 RotNet embedding for 3 jobs"), "{stdout}");
    assert!(stdout.contains("stage 2: run 3 jobs (3 wait for their embedding"), "{stdout}");
    let out = sweep_cmd(&["submit", "--backend", "local", "--devices", "a,b,c"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries = common::cached_embeddings(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let prepare_dirs: Vec<_> =
        std::fs::read_dir(results.join("shared/prepare")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(prepare_dirs.len(), 1);
    let key = prepare_dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(entries[0].ends_with(format!("rotnet-{key}.npy")), "{entries:?}");
    let prepare_log = std::fs::read_to_string(prepare_dirs[0].join("log.txt")).unwrap();
    assert!(prepare_log.contains("RotNet embedding trained and cached"), "{prepare_log}");
    let mut logs = vec![prepare_log];
    for line in std::fs::read_to_string(results.join("shared/plan.tsv")).unwrap().lines().skip(1) {
        let id = line.split('\t').nth(1).unwrap();
        let log = std::fs::read_to_string(results.join("shared/jobs").join(id).join("log.txt")).unwrap();
        assert!(log.contains("RotNet from the cache"), "{log}");
        logs.push(log);
    }
    let trained: usize = logs.iter().map(|l| l.matches("RotNet trained and cached").count()).sum();
    assert_eq!(trained, 1, "{logs:#?}");
    // Planned again with the entry cached, nothing waits.
    let stdout = String::from_utf8_lossy(&sweep_cmd(&["plan"]).stdout).into_owned();
    assert!(stdout.contains("0 to train, 1 cached") && stdout.contains("(0 wait for"), "{stdout}");
}
