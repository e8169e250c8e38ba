//! `--dry-run` and `--slurm` output held byte for byte: every job file in `tests/data/plans/`
//! renders to its `.plan.txt` (the dry-run text) and `.sbatch` (the script). A change to the
//! plan or to either renderer shows up here as a diff a reviewer can read.

use std::path::{Path, PathBuf};

use loupe_run::{job, plan, slurm};

fn opts(timestamp: String) -> plan::PlanOptions {
    plan::PlanOptions {
        loupe_bin: PathBuf::from("/opt/loupe/bin/loupe"),
        log_root: PathBuf::from("/runs"),
        timestamp,
        host: "127.0.0.1".into(),
        hostname: "node0".into(),
        base_port: 6100,
        nsys_bin: "/usr/local/bin/nsys".into(),
    }
}

fn check(golden: &Path, got: &str) {
    if std::env::var_os("LOUPE_BLESS").is_some() {
        std::fs::write(golden, got).unwrap();
    }
    let want = std::fs::read_to_string(golden)
        .unwrap_or_else(|_| panic!("{} (run with LOUPE_BLESS=1 to write it)", golden.display()));
    assert_eq!(got, want, "{} differs", golden.display());
}

#[test]
fn dry_run_and_sbatch_output_match_the_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plans");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let jobs = job::load(&file).unwrap();
        let plans = plan::build_all(&jobs, &opts("20260101_000000".into()));
        let (mut dry, mut sbatch) = (String::new(), String::new());
        for (j, p) in jobs.iter().zip(&plans) {
            dry.push_str(&plan::render(p));
            sbatch.push_str(&slurm::render(p, j.job.slurm.as_ref()));
        }
        check(&file.with_extension("plan.txt"), &dry);
        check(&file.with_extension("sbatch"), &sbatch);
    }
}
