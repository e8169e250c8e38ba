//! `loupe run`: srtctl-style profiling jobs from a YAML file on one machine — launch the
//! server(s), wait for health, profile each phase while `loupe bench` drives its traffic,
//! collect traces and results into one run directory, and always take the servers down.
//! `--dry-run` prints the plan; `--slurm` renders the same plan as an sbatch script.
//!
//! Not here: the server (loupe serve, or any SGLang-compatible command), the load generator
//! (`loupe bench`, run as a child process so its flags are the interface).

pub mod exec;
pub mod job;
pub mod plan;
pub mod slurm;
mod summary;
mod sweep;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use exec::{Report, RunError};
pub use job::JobError;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The job file (YAML, srtctl's vocabulary).
    pub job: PathBuf,
    /// Print what would run (commands, URLs, phases, files) and start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the job as an sbatch script (one srun step per worker) instead of running it.
    #[arg(long)]
    pub slurm: bool,
    /// Parent directory of run directories (`<job>_<timestamp>`), unless output.log_dir is set.
    #[arg(long, default_value = "logs")]
    pub log_root: PathBuf,
    /// First worker port; worker i gets base + 32 i.
    #[arg(long, default_value_t = 6100)]
    pub base_port: u16,
    /// The loupe binary for `serve` and `bench` children (default: this one).
    #[arg(long)]
    pub loupe_bin: Option<PathBuf>,
}

/// `YYYYMMDD_HHMMSS` in UTC.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}_{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

/// Load, plan and (unless dry-run or slurm) execute every job of the file. Returns whether
/// every run succeeded.
pub async fn run(args: RunArgs) -> Result<bool, String> {
    let jobs = job::load(&args.job).map_err(|e| e.to_string())?;
    let loupe_bin = match &args.loupe_bin {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().map_err(|e| format!("cannot find the loupe binary: {e}"))?
        }
    };
    let opts = plan::RunOptions {
        loupe_bin,
        log_root: args.log_root.clone(),
        timestamp: timestamp(),
        host: "127.0.0.1".into(),
        hostname: hostname(),
        base_port: args.base_port,
        nsys_bin: std::env::var("SRTCTL_NSYS_BIN").unwrap_or_else(|_| "nsys".into()),
    };
    let mut all_ok = true;
    for (i, j) in jobs.iter().enumerate() {
        let mut opts = opts.clone();
        if jobs.len() > 1 {
            opts.timestamp = format!("{}_{i}", opts.timestamp);
        }
        let plan = plan::build(j, &opts);
        if !j.sweep_point.is_empty() {
            let point: Vec<String> = j
                .sweep_point
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!("sweep point {}: {}", i + 1, point.join(", "));
        }
        if args.dry_run {
            print!("{}", plan::render(&plan));
            continue;
        }
        if args.slurm {
            print!("{}", slurm::render(&plan, j.job.slurm.as_ref()));
            continue;
        }
        if plan.profiling == "nsys" && !nsys_available(&opts.nsys_bin) {
            return Err(format!(
                "{}: profiling.type nsys needs Nsight Systems: '{}' is not installed (install nsys or set SRTCTL_NSYS_BIN)",
                args.job.display(),
                opts.nsys_bin
            ));
        }
        let outcome = tokio::select! {
            r = exec::execute(&plan, &j.source) => r.map_err(|e| e.to_string()),
            _ = tokio::signal::ctrl_c() => Err("interrupted: the workers were stopped".to_string()),
        };
        match outcome {
            Ok(report) if report.failures.is_empty() => {
                eprintln!(
                    "job {} done: {}",
                    plan.job,
                    report.log_dir.join("summary.md").display()
                );
            }
            Ok(report) => {
                all_ok = false;
                for f in &report.failures {
                    eprintln!("job {}: {f}", plan.job);
                }
            }
            Err(e) => {
                all_ok = false;
                eprintln!("job {} failed: {e}", plan.job);
            }
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_sortable_utc() {
        let t = super::timestamp();
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("20") && t.as_bytes()[8] == b'_');
    }
}
