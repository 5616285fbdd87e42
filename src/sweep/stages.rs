//! Stages: work that several jobs of a sweep share runs once, before them. Today that is the
//! RotNet embedding of each distinct RotNet config (every job with `init.embedding = "rotnet"`
//! needs one, and a cluster's array tasks all start at once): the jobs are grouped by the
//! embedding's cache key, and each group not yet in the cache gets one prepare task
//! (`ssal prepare`) that its jobs wait for.
use super::Job;
use crate::config::ExperimentConfig;
use crate::scheduler::PREPARE_DIR;
use std::path::{Path, PathBuf};

/// One prepare stage: a RotNet embedding that `jobs` share.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The embedding's cache key ([`crate::cache::rotnet_cache_key`]).
    pub key: String,
    /// The cache file it fills.
    pub entry: PathBuf,
    /// The config `ssal prepare` reads: the first job's (every job of the stage has the same
    /// embedding).
    pub config: ExperimentConfig,
    /// The ids of the jobs that need it, in plan order.
    pub jobs: Vec<String>,
}

impl Stage {
    /// Whether the embedding is already in the cache (then nothing waits for it). Asked of
    /// the cache this process sees, which compute nodes share on a usual cluster; where they do
    /// not, the prepare task finds its own cache and the jobs wait for it all the same.
    pub fn is_cached(&self) -> bool {
        self.entry.is_file()
    }

    /// The stage's directory under the sweep's directory `sweep_dir`: `prepare/<key>/`, holding
    /// the stage's `config.toml` (that of its first job) and its `log.txt`.
    pub fn dir(&self, sweep_dir: &Path) -> PathBuf {
        sweep_dir.join(PREPARE_DIR).join(&self.key)
    }
}

/// The prepare stages of `jobs`: one per distinct RotNet embedding they need, in the order of
/// the first job needing each.
pub fn stages(jobs: &[Job]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for job in jobs {
        let Some(key) = crate::cache::needed_rotnet_key(&job.config) else { continue };
        match out.iter_mut().find(|s| s.key == key) {
            Some(stage) => stage.jobs.push(job.id.clone()),
            None => out.push(Stage {
                key,
                entry: crate::cache::rotnet_entry(&job.config),
                config: job.config.clone(),
                jobs: vec![job.id.clone()],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_grouped_by_the_embedding_they_share() {
        // Three seeds share one RotNet (its seed is fixed), a fourth job has its own width, and
        // random initial sets without an embedding share nothing.
        let text = "[base]\nrotnet.seed = 0\nrotnet.steps = 7\ninit.embedding = \"rotnet\"\n\
                    [grid]\nseed = [0, 1, 2]\n[[include]]\nrotnet.width = 8\n[[include]]\ninit.embedding = \"none\"\n";
        let plan = crate::sweep::plan_str(text, Path::new("s.toml")).unwrap();
        assert_eq!(plan.jobs.len(), 5);
        let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.stages[0].jobs, ids[..3]);
        assert_eq!(plan.stages[1].jobs, ids[3..4]);
        assert_ne!(plan.stages[0].key, plan.stages[1].key);
        assert_eq!(plan.stages[0].config, plan.jobs[0].config);
        assert_eq!(plan.stages[0].dir(Path::new("/r/s")), Path::new("/r/s/prepare").join(&plan.stages[0].key));
        // The stage's config is written where its prepare task reads it.
        let t = tempfile::tempdir().unwrap();
        plan.write(t.path()).unwrap();
        let written = std::fs::read_to_string(plan.stages[1].dir(t.path()).join("config.toml")).unwrap();
        assert_eq!(written, plan.jobs[3].config.canonical_toml());
    }
}
