//! Test support: turns a sweep this ssal planned into what an ssal whose job ids hashed the whole
//! config left behind, to test the migration of legacy ids.
use std::path::Path;

/// Re-keys every job of the sweep in `sweep_dir` to its legacy id, as an older ssal had it:
/// `jobs/<legacy id>/` directories, the state's jobs, attempts and journal, the task lists of
/// submitted arrays, and results carrying the legacy id. Returns (legacy id, id) per job.
pub fn as_left_by_an_older_ssal(sweep_dir: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(sweep_dir.join("state.db")).unwrap();
    let ids: Vec<String> = db
        .prepare("SELECT job_id FROM jobs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let task_lists: Vec<_> = std::fs::read_dir(sweep_dir.join("arrays"))
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "tasks")).collect())
        .unwrap_or_default();
    let mut pairs = Vec::new();
    for id in ids {
        let new_dir = sweep_dir.join("jobs").join(&id);
        let config = ssal::config::ExperimentConfig::load(&new_dir.join("config.toml")).unwrap();
        let legacy = config.legacy_content_hash().unwrap();
        let old_dir = sweep_dir.join("jobs").join(&legacy);
        std::fs::rename(&new_dir, &old_dir).unwrap();
        let result = old_dir.join("result.json");
        if let Ok(text) = std::fs::read_to_string(&result) {
            let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
            r["config_hash"] = legacy.as_str().into();
            std::fs::write(&result, serde_json::to_string_pretty(&r).unwrap()).unwrap();
        }
        db.execute(
            "UPDATE jobs SET job_id = ?2, config_hash = ?2, dir = ?3, result_path = ?4, log_path = ?5 WHERE job_id = ?1",
            rusqlite::params![
                id,
                legacy,
                old_dir.to_str().unwrap(),
                old_dir.join("result.json").to_str().unwrap(),
                old_dir.join("log.txt").to_str().unwrap()
            ],
        )
        .unwrap();
        db.execute("UPDATE attempts SET job_id = ?2 WHERE job_id = ?1", [&id, &legacy]).unwrap();
        db.execute("UPDATE submissions SET job_ids = replace(job_ids, ?1, ?2)", [&id, &legacy]).unwrap();
        for list in &task_lists {
            let text = std::fs::read_to_string(list).unwrap().replace(id.as_str(), &legacy);
            std::fs::write(list, text).unwrap();
        }
        pairs.push((legacy, id));
    }
    pairs
}
