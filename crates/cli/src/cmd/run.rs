//! `loupe run`: the flags, the plan printed (`--dry-run`, `--slurm`) or executed job by job
//! with its progress lines, and each job's result.

use std::path::PathBuf;
use std::process::ExitCode;

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

/// Exit 0 when every phase of every job succeeded, 1 when one failed, 2 when the job itself
/// is invalid or cannot start.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let loupe_bin = match args.loupe_bin.clone() {
        Some(p) => p,
        None => match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return Ok(invalid(format!("cannot find the loupe binary: {e}"))),
        },
    };
    let mut opts = loupe_run::RunOptions::new(args.job.clone(), loupe_bin);
    opts.log_root = args.log_root.clone();
    opts.base_port = args.base_port;
    if let Ok(bin) = std::env::var("SRTCTL_NSYS_BIN") {
        opts.nsys_bin = bin;
    }
    let jobs = match loupe_run::plan_jobs(&opts) {
        Ok(jobs) => jobs,
        Err(e) => return Ok(invalid(e)),
    };
    let mut all_ok = true;
    for (i, job) in jobs.iter().enumerate() {
        if let Some(point) = job.sweep_point() {
            eprintln!("sweep point {}: {point}", i + 1);
        }
        if args.dry_run {
            print!("{}", job.dry_run());
            continue;
        }
        if args.slurm {
            print!("{}", job.sbatch());
            continue;
        }
        if let Err(e) = job.check_tools() {
            return Ok(invalid(e));
        }
        let name = &job.plan.job;
        let outcome = tokio::select! {
            r = job.execute(|line| eprintln!("{line}")) => r.map_err(|e| e.to_string()),
            _ = tokio::signal::ctrl_c() => Err("interrupted: the workers were stopped".to_string()),
        };
        if let Ok(o) = &outcome
            && let Err(e) = super::run_html::write(o)
        {
            all_ok = false;
            eprintln!("job {name}: {e:#}");
        }
        match outcome {
            Ok(o) if o.succeeded() => {
                eprintln!("job {name} done: {}", o.summary_path().display());
            }
            Ok(o) => {
                all_ok = false;
                for f in o.failures() {
                    eprintln!("job {name}: {f}");
                }
            }
            Err(e) => {
                all_ok = false;
                eprintln!("job {name} failed: {e}");
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn invalid(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
