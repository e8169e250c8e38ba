//! `loupe trace ...`: the flags of each subcommand and the code that runs it. The binary only
//! parses and calls [`run`]; reports go to stdout, progress and warnings to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use regex::Regex;

use crate::analyze::summary::TraceSummary;
use crate::analyze::{diff, ranks, summarize};
use crate::error::{Result, TraceError};
use crate::export::merge::{CategoryFilter, merge};
use crate::export::slice::{SliceSpec, Window, slice};
use crate::import::{Input, ReadOptions};
use crate::rank::{RankFilter, compile_rank_regex};
use crate::render;
use crate::report::ReportFormat;

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: TraceCommand,
}

#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Where the time goes: top GPU kernels and CPU ops, categories, stages, and the GPU
    /// timeline breakdown (computation, exposed communication/memcpy, idle).
    Summary(SummaryArgs),
    /// Compare ranks: per-step x per-rank compute time, imbalance, stragglers, key kernels.
    Ranks(RanksArgs),
    /// Merge per-rank traces into one, every rank labelled, time-aligned, flows kept apart.
    Merge(MergeArgs),
    /// Cut a window (time, steps, ranks, categories) small enough for the Perfetto UI.
    Slice(SliceArgs),
    /// What changed between two traces: operations added, removed, slower, faster.
    Diff(DiffArgs),
    /// Convert a trace: RPD or Nsight SQLite -> Chrome JSON, any trace -> Perfetto protobuf.
    Convert(ConvertArgs),
    /// GPU operations by total time, like RPD's `top` view (exactly it for .rpd files).
    Top(TopArgs),
}

/// How inputs are read and which rank each is.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Accept broken writers' output: raw control characters in strings, trailing commas, an
    /// event array cut off by a crash (the events before the cut are kept).
    #[arg(long)]
    pub lenient: bool,
    /// Regex applied to each file name to find its rank: a named group `rank`, else the first
    /// group (default: SGLang's TP-/DP-/PP-/EP- names, `rank3`, `rank[3]`, then
    /// `distributedInfo.rank` inside the trace).
    #[arg(long, value_name = "REGEX")]
    pub rank_regex: Option<String>,
}

impl InputArgs {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            lenient: self.lenient,
        }
    }

    fn open(&self, files: &[PathBuf]) -> Result<Vec<Input>> {
        let re: Option<Regex> = self
            .rank_regex
            .as_deref()
            .map(compile_rank_regex)
            .transpose()?;
        files.iter().map(|f| Input::open(f, re.as_ref())).collect()
    }

    fn summaries(&self, files: &[PathBuf]) -> Result<Vec<TraceSummary>> {
        let opts = self.options();
        let inputs = self.open(files)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let s = summarize(input, &opts, i)?;
            if s.truncated {
                eprintln!(
                    "warning: {}: the event array is cut off; summarising the {} events before the cut",
                    s.file, s.events
                );
            }
            out.push(s);
        }
        Ok(out)
    }
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Rows per operation table (0: all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Only this table (ids: timeline, kernels, ops, categories, stages, steps, ranks, key_ops,
    /// stragglers, diff). With `--format csv`, TraceLens's exact CSV columns for `timeline`.
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Trace files (Kineto/Chrome JSON or .json.gz). Several files are summed; the GPU
    /// timeline is given per file.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Args, Debug)]
pub struct RanksArgs {
    /// One trace per rank.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Per-rank traces, in any order (output order follows the ranks).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output file (`.json` or `.json.gz`); written under a temporary name, renamed at the end.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Drop events of these categories (comma-separated or repeated), e.g. python_function.
    #[arg(long, value_delimiter = ',')]
    pub drop_cat: Vec<String>,
    /// Keep only events of these categories (metadata events are always kept).
    #[arg(long, value_delimiter = ',')]
    pub keep_cat: Option<Vec<String>>,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Args, Debug)]
pub struct SliceArgs {
    /// The trace to cut (a single rank's or a merged one).
    pub file: PathBuf,
    /// Output file (`.json` or `.json.gz`).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Time window after the first event: `1.5s..2s`, `200ms..`, `..500us`, `10%..20%`.
    #[arg(long, conflicts_with = "steps")]
    pub time: Option<String>,
    /// Steps `N..M` (inclusive): ProfilerStep numbers, or positions (from 0) of SGLang's
    /// `step[...]` spans.
    #[arg(long)]
    pub steps: Option<String>,
    /// Ranks to keep: numbers and ranges (`0,2-3`) or label parts (`TP1`, `TP0-DP1`); matched
    /// against a merged trace's pid labels, or the file's own rank.
    #[arg(long)]
    pub ranks: Option<String>,
    /// Keep only these categories (comma-separated); metadata events are always kept.
    #[arg(long, value_delimiter = ',')]
    pub cats: Option<Vec<String>>,
    /// Drop these categories, e.g. python_function.
    #[arg(long, value_delimiter = ',')]
    pub drop_cat: Vec<String>,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline trace.
    pub a: PathBuf,
    /// The trace compared with it.
    pub b: PathBuf,
    /// Relative change of an operation's total time below which it counts as unchanged.
    #[arg(long, default_value_t = 0.05)]
    pub threshold: f64,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Chrome / Kineto JSON (`.json`, `.json.gz`).
    Json,
    /// Perfetto's native protobuf (`.pftrace`).
    Perfetto,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input: Kineto/Chrome JSON (.gz), RPD (.rpd) or an Nsight Systems SQLite export.
    pub file: PathBuf,
    /// Output file; its name picks the format unless --to says (`.pftrace`,
    /// `.perfetto-trace`, `.pb`: Perfetto; anything else: JSON, gzipped for `.gz`).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, value_enum)]
    pub to: Option<OutputFormat>,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs one `loupe trace` subcommand.
pub fn run(args: TraceArgs) -> Result<()> {
    match args.command {
        TraceCommand::Summary(a) => {
            let summaries = a.input.summaries(&a.files)?;
            emit(
                &a.report,
                || render::summary(&summaries, &a.report),
                &summaries,
            )
        }
        TraceCommand::Ranks(a) => {
            let summaries = a.input.summaries(&a.files)?;
            let report = ranks::compare(&summaries, a.report.top.clamp(1, 50));
            emit(&a.report, || render::ranks(&report), &report)
        }
        TraceCommand::Diff(a) => {
            let mut s = a.input.summaries(&[a.a.clone(), a.b.clone()])?;
            let b = s.pop().expect("two inputs");
            let base = s.pop().expect("two inputs");
            let report = diff::diff(&base, &b, a.threshold);
            emit(&a.report, || render::diff(&report, &a.report), &report)
        }
        TraceCommand::Slice(a) => {
            let window = match (&a.time, &a.steps) {
                (Some(t), _) => Some(Window::parse_time(t)?),
                (None, Some(s)) => Some(Window::parse_steps(s)?),
                (None, None) => None,
            };
            let spec = SliceSpec {
                window,
                ranks: a.ranks.as_deref().map(RankFilter::parse).transpose()?,
                categories: CategoryFilter {
                    drop: a.drop_cat.clone(),
                    keep: a.cats.clone(),
                },
            };
            check_output_is_not_input(&a.output, std::slice::from_ref(&a.file))?;
            let input = a.input.open(std::slice::from_ref(&a.file))?.remove(0);
            let r = slice(&input, &a.output, &spec, &a.input.options())?;
            if let Some((start, end)) = r.range {
                eprintln!(
                    "window: {} us .. {} us on the trace's clock ({} ms)",
                    crate::time::ns_to_us_string(start),
                    crate::time::ns_to_us_string(end),
                    crate::report::ms(end - start)
                );
            }
            if r.flows_dropped > 0 {
                eprintln!(
                    "{} flow events dropped (one end outside the window)",
                    r.flows_dropped
                );
            }
            eprintln!("{} events -> {}", r.events_written, a.output.display());
            Ok(())
        }
        TraceCommand::Convert(a) => {
            check_output_is_not_input(&a.output, std::slice::from_ref(&a.file))?;
            let input = a.input.open(std::slice::from_ref(&a.file))?.remove(0);
            let opts = a.input.options();
            let name = a.output.to_string_lossy();
            let perfetto = [".pftrace", ".perfetto-trace", ".pb"]
                .iter()
                .any(|s| name.ends_with(s));
            let to = a.to.unwrap_or(if perfetto {
                OutputFormat::Perfetto
            } else {
                OutputFormat::Json
            });
            match to {
                OutputFormat::Json => {
                    let n = crate::export::json::convert(&input, &a.output, &opts)?;
                    eprintln!("{n} events -> {}", a.output.display());
                }
                OutputFormat::Perfetto => {
                    let r = crate::export::perfetto::convert(&input, &a.output, &opts)?;
                    eprintln!(
                        "{} events -> {} packets{} -> {}",
                        r.events_in,
                        r.packets,
                        if r.overflow_lanes > 0 {
                            format!(
                                " ({} extra tracks for overlapping slices)",
                                r.overflow_lanes
                            )
                        } else {
                            String::new()
                        },
                        a.output.display()
                    );
                }
            }
            Ok(())
        }
        TraceCommand::Top(a) => {
            let input = a.input.open(std::slice::from_ref(&a.file))?.remove(0);
            let rows = crate::analyze::top::top(&input, &a.input.options())?;
            emit(&a.report, || render::top(&rows, &a.report), &rows)
        }
        TraceCommand::Merge(a) => {
            let inputs = a.input.open(&a.files)?;
            let filter = CategoryFilter {
                drop: a.drop_cat.clone(),
                keep: a.keep_cat.clone(),
            };
            check_output_is_not_input(&a.output, &a.files)?;
            let r = merge(&inputs, &a.output, &a.input.options(), &filter)?;
            for (label, file) in &r.ranks {
                eprintln!("{label} {file}");
            }
            eprintln!(
                "merged {} files, {} events -> {}",
                r.files,
                r.events_written,
                a.output.display()
            );
            Ok(())
        }
    }
}

fn check_output_is_not_input(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let o = canon(out);
    if o.is_some() && inputs.iter().any(|i| canon(i) == o) {
        return Err(TraceError::Usage(format!(
            "{}: the output would replace one of the inputs",
            out.display()
        )));
    }
    Ok(())
}

fn emit<T: serde::Serialize>(
    args: &ReportArgs,
    tables: impl FnOnce() -> Vec<crate::report::Table>,
    value: &T,
) -> Result<()> {
    let text = match args.format {
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).expect("reports serialise");
            s.push('\n');
            s
        }
        f => crate::report::render(&tables(), f, args.table.as_deref()),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// The per-rank Kineto traces among a profile's files: SGLang's `.trace.json.gz` names, less a
/// merged trace (its events are the per-rank files' again), memory snapshots and RPD files.
pub fn rank_traces<P: AsRef<Path>>(files: &[P]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".trace.json.gz") && !name.contains("merged-")
        })
        .map(Path::to_path_buf)
        .collect()
}

/// `loupe trace summary FILES --top N` as text, for the reports that embed it (`loupe bench
/// --profile`, `loupe run`'s summary.md); with several files, `loupe trace ranks` follows.
pub fn summary_text(files: &[PathBuf], top: usize) -> Result<String> {
    let summaries = InputArgs::default().summaries(files)?;
    let args = ReportArgs {
        format: ReportFormat::Table,
        top,
        table: None,
    };
    let mut tables = render::summary(&summaries, &args);
    if summaries.len() > 1 {
        tables.extend(render::ranks(&ranks::compare(&summaries, top.clamp(1, 50))));
    }
    Ok(crate::report::render(&tables, ReportFormat::Table, None))
}
