//! The paper's Fig. 7 under one model: the first queries of several runs scored by a common
//! model, so that their consistency and diversity columns compare the picks and not the models
//! that made them (each run's own record scores its picks under its own model).
//!
//! The common model is the cycle-0 EMA model of one run, trained again from that run's config:
//! on the CPU training is deterministic, so the retrained model reproduces the recorded
//! evaluations exactly, and [`CommonScores::reproduced`] says whether it did.
use crate::config::ExperimentConfig;
use crate::data::DeviceData;
use crate::experiment::{load_for_run, unlabeled_pool, RunError};
use crate::metrics::diversity;
use crate::progress::Silent;
use crate::result::{Evaluation, RunResult};
use crate::select::score_pool;
use crate::train::{train, TrainSetup};

/// One run's first query under the common model.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScore {
    /// Images the run queried in cycle 1.
    pub picks: usize,
    /// Mean consistency c_i (Eq. 3) of the picks under the common model.
    pub consistency: f64,
    /// Mean pairwise L2 distance of the picks in the common model's penultimate features.
    pub diversity: f64,
    /// The same two values as the run recorded them, under its own model.
    pub own_consistency: Option<f64>,
    pub own_diversity: Option<f64>,
}

/// Every run's score and whether the common model is the one its run had.
#[derive(Debug, Clone)]
pub struct CommonScores {
    pub scores: Vec<QueryScore>,
    /// The common run's recorded cycle-0 evaluations and those of the retrained model.
    pub recorded: Vec<Evaluation>,
    pub retrained: Vec<Evaluation>,
}

impl CommonScores {
    /// Whether the retrained cycle-0 model is the common run's own: its evaluations equal the
    /// recorded ones.
    pub fn reproduced(&self) -> bool {
        self.recorded == self.retrained
    }
}

/// Whether `run`'s first query can be scored under the model of `common`: `common` trains a
/// model (`train.steps > 0`, a finished cycle 0), `run` uses the same data (dataset section) and
/// has finished cycle 1. Cheap, so that callers check every run before training any model.
pub fn check_scorable(common: &RunResult, run: &RunResult) -> Result<(), RunError> {
    if common.config.train.steps == 0 || common.cycles.is_empty() {
        return Err(RunError::Size("the common run trains no model (train.steps = 0 or no finished cycle)".into()));
    }
    if run.config.dataset != common.config.dataset {
        return Err(RunError::Size("uses other data than the common run (its [dataset] differs)".into()));
    }
    if run.cycles.len() < 2 {
        return Err(RunError::Size("has not finished its first query (cycle 1)".into()));
    }
    Ok(())
}

/// Scores the cycle-1 picks of each of `runs` under the cycle-0 model of `common`; every run must
/// pass [`check_scorable`] (the error names the run by its position, from 1).
pub fn score_first_queries(common: &RunResult, runs: &[RunResult]) -> Result<CommonScores, RunError> {
    let config: &ExperimentConfig = &common.config;
    for (i, r) in runs.iter().enumerate() {
        check_scorable(common, r).map_err(|e| RunError::Size(format!("run {}: {e}", i + 1)))?;
    }
    let (dataset, device, augment) = load_for_run(config)?;
    let data = DeviceData::new(&dataset, device, augment);
    // Cycle 0 exactly as `experiment::run` trains it: the run's seeds, its recorded initial set.
    let labeled = &common.cycles[0].selected;
    let (mut rng, torch_seed) = crate::seeds::cycle(config.seed, 0);
    tch::manual_seed(torch_seed);
    let unlabeled = unlabeled_pool(dataset.train.len(), labeled);
    let setup = TrainSetup::of(config);
    let outcome = train(setup, &data, labeled, &unlabeled, None, &mut rng, &Silent, None).map_err(RunError::Train)?;
    let recorded = common.cycles[0].evaluations.clone();

    let mut candidates: Vec<usize> = runs.iter().flat_map(|r| r.cycles[1].selected.iter().copied()).collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut score_rng = crate::seeds::Stream::CommonScoring.rng(config.seed);
    let view = score_pool(
        &outcome.ema,
        &data,
        labeled,
        &candidates,
        config.query.augmentations,
        config.train.eval_batch_size,
        &mut score_rng,
    )
    .map_err(|_| RunError::Interrupted { cycle: 1, step: None })?;
    let row_of = |image: usize| view.n_labeled + candidates.binary_search(&image).expect("a candidate");
    let scores = runs
        .iter()
        .map(|r| {
            let cycle = &r.cycles[1];
            let rows: Vec<usize> = cycle.selected.iter().map(|&i| row_of(i)).collect();
            QueryScore {
                picks: rows.len(),
                consistency: rows.iter().map(|&i| view.consistency[i] as f64).sum::<f64>() / rows.len() as f64,
                diversity: diversity(&view.features, view.feature_dim, &rows),
                own_consistency: cycle.consistency,
                own_diversity: cycle.diversity,
            }
        })
        .collect();
    Ok(CommonScores { scores, recorded, retrained: outcome.evaluations })
}

/// Why runs cannot be matched to common models or gathered into one table.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PairingError {
    #[error("two common runs have seed {seed} ({first} and {second}): give one per seed")]
    TwoCommonsForSeed { seed: u64, first: String, second: String },
    #[error("run {run} has seed {seed}, and no common run has it: give one common run per seed of the runs")]
    NoCommonForSeed { run: String, seed: u64 },
    #[error("runs {first} and {second} fall in one row ({row}) with one seed ({seed}): the summary would merge them")]
    TwoRunsInCell { row: String, seed: u64, first: String, second: String },
}

/// Which common run (an index into `commons`) scores each run; both are (name, seed) pairs.
/// With one common run it scores every run whatever its seed; with several, each run is scored
/// under the common run of its own seed, so that every seed is an independent sample of
/// model-and-picks. A seed with two common runs, or a run whose seed has none, is refused:
/// choosing silently would mix models.
pub fn common_for_each_run(commons: &[(&str, u64)], runs: &[(&str, u64)]) -> Result<Vec<usize>, PairingError> {
    if commons.len() == 1 {
        return Ok(vec![0; runs.len()]);
    }
    let mut by_seed = std::collections::BTreeMap::new();
    for (i, &(name, seed)) in commons.iter().enumerate() {
        if let Some(first) = by_seed.insert(seed, i) {
            let first = commons[first].0.to_string();
            return Err(PairingError::TwoCommonsForSeed { seed, first, second: name.to_string() });
        }
    }
    runs.iter()
        .map(|&(run, seed)| {
            by_seed.get(&seed).copied().ok_or_else(|| PairingError::NoCommonForSeed { run: run.to_string(), seed })
        })
        .collect()
}

/// One row of the summary over seeds: the runs of one configuration (seed aside).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The config fields that vary among the runs, as `field=value` joined by ", ".
    pub label: String,
    /// Indices (into the runs) of this row's runs.
    pub runs: Vec<usize>,
    /// Common-model consistency and diversity of the row's picks, by seed.
    pub consistency: std::collections::BTreeMap<i64, f64>,
    pub diversity: std::collections::BTreeMap<i64, f64>,
}

/// Gathers scored runs (name, config, score) into rows named by the config fields that vary
/// among them, the seed aside — as a report's rows are. Two runs of one row and seed are refused.
pub fn rows_by_config(runs: &[(&str, &ExperimentConfig, &QueryScore)]) -> Result<Vec<ScoreRow>, PairingError> {
    let fields: Vec<_> = runs.iter().map(|(_, c, _)| c.fields()).collect();
    let keys: std::collections::BTreeSet<&String> = fields.iter().flat_map(|f| f.keys()).collect();
    let varying: Vec<&String> = keys
        .into_iter()
        .filter(|k| k.as_str() != "seed" && fields.iter().any(|f| f.get(*k) != fields[0].get(*k)))
        .collect();
    let mut rows: Vec<ScoreRow> = Vec::new();
    for (i, ((name, config, score), f)) in runs.iter().zip(&fields).enumerate() {
        let label = varying
            .iter()
            .map(|k| format!("{k}={}", f.get(*k).map_or("(unset)", String::as_str)))
            .collect::<Vec<_>>()
            .join(", ");
        let position = rows.iter().position(|r| r.label == label).unwrap_or_else(|| {
            rows.push(ScoreRow { label, runs: vec![], consistency: Default::default(), diversity: Default::default() });
            rows.len() - 1
        });
        let row = &mut rows[position];
        let seed = config.seed as i64;
        if let Some(&other) = row.runs.iter().find(|&&j| runs[j].1.seed == config.seed) {
            return Err(PairingError::TwoRunsInCell {
                row: row.label.clone(),
                seed: config.seed,
                first: runs[other].0.to_string(),
                second: name.to_string(),
            });
        }
        row.runs.push(i);
        row.consistency.insert(seed, score.consistency);
        row.diversity.insert(seed, score.diversity);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueryStrategy;

    #[test]
    fn one_common_run_scores_every_seed_and_several_pair_by_seed() {
        let runs = [("a", 0), ("b", 1), ("c", 1)];
        assert_eq!(common_for_each_run(&[("x", 5)], &runs), Ok(vec![0, 0, 0]));
        assert_eq!(common_for_each_run(&[("y", 1), ("x", 0)], &runs), Ok(vec![1, 0, 0]));
        assert_eq!(
            common_for_each_run(&[("x", 0), ("y", 2)], &runs),
            Err(PairingError::NoCommonForSeed { run: "b".into(), seed: 1 })
        );
        assert_eq!(
            common_for_each_run(&[("x", 0), ("y", 1), ("z", 0)], &runs),
            Err(PairingError::TwoCommonsForSeed { seed: 0, first: "x".into(), second: "z".into() })
        );
    }

    fn run(strategy: QueryStrategy, seed: u64, lambda_u: f64) -> ExperimentConfig {
        let mut c = ExperimentConfig { seed, ..Default::default() };
        c.query.strategy = strategy;
        c.mixmatch.lambda_u = lambda_u;
        c
    }

    fn score(consistency: f64) -> QueryScore {
        QueryScore { picks: 1, consistency, diversity: 2.0 * consistency, own_consistency: None, own_diversity: None }
    }

    #[test]
    fn rows_are_named_by_the_fields_that_vary_and_refuse_two_runs_of_one_seed() {
        use QueryStrategy::{Consistency, Random};
        let configs =
            [run(Random, 0, 10.0), run(Consistency, 0, 10.0), run(Random, 1, 10.0), run(Consistency, 1, 10.0)];
        let scores = [score(0.1), score(0.3), score(0.2), score(0.5)];
        let names = ["r0", "c0", "r1", "c1"];
        let runs: Vec<_> = names.iter().zip(&configs).zip(&scores).map(|((n, c), s)| (*n, c, s)).collect();
        let rows = rows_by_config(&runs).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
            ["query.strategy=random", "query.strategy=consistency"]
        );
        assert_eq!(rows[1].runs, [1, 3]);
        assert_eq!(rows[1].consistency.iter().map(|(s, v)| (*s, *v)).collect::<Vec<_>>(), [(0, 0.3), (1, 0.5)]);
        assert_eq!(rows[1].diversity[&1], 1.0);
        // A second field that varies names the rows; two runs of one row and seed are refused.
        let other = run(Consistency, 1, 75.0);
        let mut more = runs.clone();
        more.push(("c1-75", &other, &scores[0]));
        let rows = rows_by_config(&more).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].label, "mixmatch.lambda_u=75.0, query.strategy=consistency");
        more.push(("c1-again", &configs[3], &scores[0]));
        assert_eq!(
            rows_by_config(&more),
            Err(PairingError::TwoRunsInCell {
                row: "mixmatch.lambda_u=10.0, query.strategy=consistency".into(),
                seed: 1,
                first: "c1".into(),
                second: "c1-again".into()
            })
        );
    }
}
