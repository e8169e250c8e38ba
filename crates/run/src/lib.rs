//! `loupe run`: srtctl-style profiling jobs from a YAML file on one machine — launch the
//! server(s), wait for health, profile each phase while `loupe bench` drives its traffic,
//! collect traces and results into one run directory, and always take the servers down.
//! The same plan renders as text (`--dry-run`) or as an sbatch script (`--slurm`).
//!
//! The API: [`plan_jobs`] loads a job file into [`PlannedJob`]s (one per sweep point, nothing
//! started); each renders itself ([`PlannedJob::dry_run`], [`PlannedJob::sbatch`]) or runs
//! ([`PlannedJob::execute`]) into a [`JobOutcome`]. Nothing here prints: the run's progress
//! lines go to the caller's callback as they are written to `run.log`.
//!
//! Not here: the server (loupe serve, or any SGLang-compatible command), the load generator
//! (`loupe bench`, run as a child process so its flags are the interface), the command line
//! (crates/cli).

mod error;
mod exec;
pub mod job;
mod outcome;
pub mod plan;
pub mod slurm;
mod summary;
mod sweep;

use std::path::PathBuf;

pub use error::RunError;
pub use job::JobError;
pub use outcome::{BenchOutcome, JobOutcome, PhaseOutcome};

/// What to run and where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The job file (YAML, srtctl's vocabulary).
    pub job: PathBuf,
    /// Parent directory of run directories (`<job>_<timestamp>`), unless output.log_dir is set.
    pub log_root: PathBuf,
    /// First worker port; worker i gets base + 32 i.
    pub base_port: u16,
    /// The loupe binary for `serve` and `bench` children.
    pub loupe_bin: PathBuf,
    /// The nsys binary that wraps workers when `profiling.type: nsys`.
    pub nsys_bin: String,
    /// When the run started; names the run directories (see [`timestamp`]).
    pub started: jiff::Timestamp,
}

impl RunOptions {
    /// The command line's defaults: `logs`, port 6100, `nsys` from PATH, started now.
    pub fn new(job: PathBuf, loupe_bin: PathBuf) -> Self {
        RunOptions {
            job,
            log_root: PathBuf::from("logs"),
            base_port: 6100,
            loupe_bin,
            nsys_bin: "nsys".into(),
            started: jiff::Timestamp::now(),
        }
    }
}

/// One job of the file (one sweep point), planned and not started.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    pub job: job::LoadedJob,
    pub plan: plan::Plan,
    nsys_bin: String,
}

impl PlannedJob {
    /// `conc=2, isl=16` for a sweep's job; `None` without a sweep.
    pub fn sweep_point(&self) -> Option<String> {
        if self.job.sweep_point.is_empty() {
            return None;
        }
        let point: Vec<String> = self
            .job
            .sweep_point
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        Some(point.join(", "))
    }

    /// What would run: commands, URLs, phases, files (`--dry-run`).
    pub fn dry_run(&self) -> String {
        plan::render(&self.plan)
    }

    /// The job as an sbatch script, one srun step per worker (`--slurm`).
    pub fn sbatch(&self) -> String {
        slurm::render(&self.plan, self.job.job.slurm.as_ref())
    }

    /// The tools the plan needs beyond the servers themselves are installed (nsys for
    /// `profiling.type: nsys`).
    pub fn check_tools(&self) -> Result<(), RunError> {
        if self.plan.profiling == "nsys" && !nsys_available(&self.nsys_bin) {
            return Err(RunError::NsysMissing {
                file: self.job.file.clone(),
                bin: self.nsys_bin.clone(),
            });
        }
        Ok(())
    }

    /// Run the job: start the workers, profile each phase, run the benchmarks, write
    /// summary.md, and stop the workers before returning (or when the future is dropped).
    /// Every line of `run.log` also goes to `progress` as it is written.
    pub async fn execute(
        &self,
        progress: impl FnMut(&str) + Send + 'static,
    ) -> Result<JobOutcome, RunError> {
        exec::execute(&self.plan, &self.job.source, Box::new(progress)).await
    }
}

/// Load the job file (expanding its sweep) and plan every job; starts nothing.
pub fn plan_jobs(opts: &RunOptions) -> Result<Vec<PlannedJob>, RunError> {
    let jobs = job::load(&opts.job)?;
    let plan_opts = plan::PlanOptions {
        loupe_bin: opts.loupe_bin.clone(),
        log_root: opts.log_root.clone(),
        timestamp: timestamp(opts.started),
        host: "127.0.0.1".into(),
        hostname: hostname(),
        base_port: opts.base_port,
        nsys_bin: opts.nsys_bin.clone(),
    };
    let plans = plan::build_all(&jobs, &plan_opts);
    Ok(jobs
        .into_iter()
        .zip(plans)
        .map(|(job, plan)| PlannedJob {
            job,
            plan,
            nsys_bin: opts.nsys_bin.clone(),
        })
        .collect())
}

/// `YYYYMMDD_HHMMSS` of `at` in UTC: run directory names sort by start time.
pub fn timestamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%d_%H%M%S").to_string()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

fn nsys_available(bin: &str) -> bool {
    let path = std::path::Path::new(bin);
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use jiff::Timestamp;

    fn at(secs: i64) -> String {
        timestamp(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(at(0), "19700101_000000");
        // A leap day in a year divisible by 400.
        assert_eq!(at(951_782_400), "20000229_000000");
        // The last second of a year.
        assert_eq!(at(1_735_689_599), "20241231_235959");
        assert_eq!(at(1_735_689_600), "20250101_000000");
        // Before the epoch.
        assert_eq!(at(-1), "19691231_235959");
    }

    #[test]
    fn timestamps_sort_like_the_instants() {
        let stamps: Vec<String> = [0, 59, 3_600, 86_399, 951_782_400, 1_735_689_599]
            .into_iter()
            .map(at)
            .collect();
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(stamps, sorted);
    }
}
