//! `loupe trace ...`: the flags of each subcommand, their conversion into loupe-trace's option
//! structs, the calls, and what the terminal shows. Reports go to stdout; progress, warnings
//! and errors to stderr. Exit status: 2 for bad input or arguments, 1 when an output cannot be
//! written (loupe-trace's `TraceError::exit_code`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use loupe_trace::analyze::capture::{self, Captures};
use loupe_trace::analyze::gate::FailIf;
use loupe_trace::analyze::hta::HtaOptions;
use loupe_trace::analyze::summary::{SummaryOptions, TraceSummary};
use loupe_trace::analyze::{diff, ranks, summarize_with, top};
use loupe_trace::export::merge::{CategoryFilter, merge};
use loupe_trace::export::parts::parse_size;
use loupe_trace::export::slice::{SliceSpec, Window, slice};
use loupe_trace::export::{TraceFormat, json, perfetto};
use loupe_trace::import::{Input, ReadOptions, open_all};
use loupe_trace::rank::RankFilter;
use loupe_trace::report::analyses::AttributionKey;
use loupe_trace::report::{self, ReportFormat, ReportOptions};
use loupe_trace::{Result, time};

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
#[derive(Args, Debug, Clone)]
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

    fn open<P: AsRef<Path>>(&self, files: &[P]) -> Result<Vec<Input>> {
        open_all(files, self.rank_regex.as_deref())
    }

    fn open_one(&self, file: &Path) -> Result<Input> {
        Ok(self.open(&[file])?.remove(0))
    }

    /// Summarises each file in turn, warning as soon as one turns out to be cut off.
    fn summaries(&self, files: &[PathBuf], analysis: &AnalysisArgs) -> Result<Vec<TraceSummary>> {
        self.summaries_with(files, analysis.options())
    }

    /// [`InputArgs::summaries`] with graph replays attributed through `captures` (read first,
    /// so a bad capture trace fails before any replay is read).
    fn summaries_through(
        &self,
        files: &[PathBuf],
        analysis: &AnalysisArgs,
        captures: &CaptureArgs,
    ) -> Result<Vec<TraceSummary>> {
        let mut opts = analysis.options();
        opts.captures = captures.read(self)?;
        let given = opts.captures.is_some();
        let summaries = self.summaries_with(files, opts)?;
        if given {
            for s in &summaries {
                let a = &s.attribution;
                if a.graph_launches == 0 {
                    eprintln!(
                        "note: {}: no CUDA-graph launches; the capture traces change nothing",
                        s.file
                    );
                } else if a.graph_kernels_captured == 0 {
                    eprintln!(
                        "note: {}: none of its {} graph launches matched a capture region; their {} kernels stay on the graph launch's op, numbers unchanged",
                        s.file, a.graph_launches, a.graph_kernels
                    );
                }
            }
        }
        Ok(summaries)
    }

    fn summaries_with(
        &self,
        files: &[PathBuf],
        analysis: SummaryOptions,
    ) -> Result<Vec<TraceSummary>> {
        let opts = self.options();
        let inputs = self.open(files)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let mut s = summarize_with(input, &opts, i, &analysis)?;
            // Every launch row of every file would stay in memory until the last file is read;
            // the commands print only their distributions.
            s.hta.launches.rows = Vec::new();
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

/// How the analyses follow HTA where it is wrong.
#[derive(Args, Debug, Clone, Default)]
pub struct AnalysisArgs {
    /// HTA 0.5.0's exact figures: its µs rounding of fractional-µs traces (which loses up to
    /// 2 µs per kernel) and its CUDA-only launch names (no hip*, cuLaunchKernel or graph
    /// launches). Default: exact nanoseconds and every launch API.
    #[arg(long)]
    pub hta_compat: bool,
}

impl AnalysisArgs {
    fn options(&self) -> SummaryOptions {
        SummaryOptions {
            hta: HtaOptions {
                hta_rounding: self.hta_compat,
                hta_launch_names: self.hta_compat,
            },
            captures: None,
        }
    }
}

/// CUDA-graph capture traces for attributing graph replays.
#[derive(Args, Debug, Clone, Default)]
pub struct CaptureArgs {
    /// CUDA-graph capture traces (repeatable): a trace file, or a directory (its
    /// execution_details.json list of {file, batch_size, mode} if present, else every .json
    /// and .json.gz file in it). Each kernel a graph launch (cudaGraphLaunch, hipGraphLaunch)
    /// replays is then attributed to the op, nn.Module path and layer whose launch call it
    /// replays, as recorded while the graph was captured, instead of to the op around the graph
    /// launch; its GPU times stay the replay's. A graph launch takes the capture whose launch
    /// sequence matches its kernels (same names in order; else in order with extra captured
    /// launches skipped; else the same names reordered), the step's batch size choosing the
    /// smallest captured size at or above it among equal matches. Unmatched graph launches
    /// keep their op and are counted in the graph_replays table. SGLang writes these traces
    /// with `capture_torch_profiler` (capture_traces/graph_capture_rank_0.*.pt.trace.json.gz)
    /// or SGLANG_ENABLE_CUDA_GRAPH_CAPTURE_TRACE (graph_capture_profile/).
    #[arg(long, value_name = "PATH")]
    pub capture_traces: Vec<PathBuf>,
}

impl CaptureArgs {
    /// The capture regions of every path given; `None` without any.
    fn read(&self, input: &InputArgs) -> Result<Option<Arc<Captures>>> {
        if self.capture_traces.is_empty() {
            return Ok(None);
        }
        let mut sources = Vec::new();
        for p in &self.capture_traces {
            sources.extend(capture::sources(p)?);
        }
        let captures = Captures::read(&sources, &input.options())?;
        eprintln!(
            "capture traces: {} CUDA-graph captures ({} launch calls) in {} file(s)",
            captures.regions.len(),
            captures.files.iter().map(|f| f.launches).sum::<u64>(),
            captures.files.len()
        );
        for note in &captures.notes {
            eprintln!("capture traces: {note}");
        }
        Ok(Some(Arc::new(captures)))
    }
}

/// `--format` of the reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Rows per operation table (0: all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Only this table (ids: timeline, kernels, ops, categories, stages, steps, ranks, key_ops,
    /// stragglers, diff). With `--format csv`, TraceLens's exact CSV columns for `timeline`.
    #[arg(long)]
    pub table: Option<String>,
}

impl ReportArgs {
    fn options(&self) -> ReportOptions {
        ReportOptions {
            format: match self.format {
                FormatArg::Table => ReportFormat::Table,
                FormatArg::Csv => ReportFormat::Csv,
                FormatArg::Json => ReportFormat::Json,
            },
            top: self.top,
            table: self.table.clone(),
        }
    }

    /// Key kernels compared across ranks: `--top`, at least 1 and at most 50.
    fn key_ops(&self) -> usize {
        self.top.clamp(1, 50)
    }
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Trace files (Kineto/Chrome JSON or .json.gz). Several files are summed; the GPU
    /// timeline is given per file.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only CPU ops by name and input shape (`args["Input Dims"]`, from `record_shapes`) with
    /// self and total time and calls, sorted by self time: torch's
    /// `key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total")`.
    #[arg(long, conflicts_with = "by")]
    pub group_by_shape: bool,
    /// Only GPU time by: `kernel` name, launching `op` (the cpu_op around the launch call,
    /// joined by correlation), `module` (`nn.Module` path, from `with_stack` traces) or
    /// `layer` (that path down to its first `*Layer`/`*Block` instance). CUDA-graph replays
    /// go to the op around the graph launch unless --capture-traces are given; a
    /// graph_replays table says how many graph kernels were attributed through them.
    #[arg(long, value_enum)]
    pub by: Option<ByArg>,
    #[command(flatten)]
    pub captures: CaptureArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also write the report as a self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    Kernel,
    Op,
    Module,
    Layer,
}

#[derive(Args, Debug)]
pub struct RanksArgs {
    /// One trace per rank (with --from-summaries: `summary --format json` outputs).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The files are `loupe trace summary --format json` outputs (one or more ranks each),
    /// made where the traces are: the same report as reading every trace.
    #[arg(long)]
    pub from_summaries: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also write the report as a self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
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
    /// Cut the window into files of at most this much JSON each (`500MB`, `1GiB`; before
    /// gzip), named OUTPUT.part1.json ... in time order, so each opens in the Perfetto UI.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
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
    /// Exit with status 1 if B - A passes a limit (repeatable): `total>+5%` (GPU busy time,
    /// host busy time for CPU traces), `op:aten::mm>+10%` (GPU time the op launched, paired by
    /// position in the step, medians over steps), `kernel:NAME<-2ms`; limits in %, ns, us,
    /// ms or s.
    #[arg(long, value_name = "EXPR")]
    pub fail_if: Vec<String>,
    /// Capture traces for both A and B (each graph launch finds its own capture).
    #[command(flatten)]
    pub captures: CaptureArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also write the report as a self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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

/// Runs one `loupe trace` subcommand; an error is printed and mapped to its exit status.
pub fn run(args: TraceArgs) -> ExitCode {
    fixed_mmap_threshold();
    match execute(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Allocations of 128 KiB and more get their own mappings, returned to the system when freed.
/// glibc otherwise raises that threshold each time such a block is freed (up to 32 MiB), so
/// the per-file row arrays of the analyses, freed after each file, were then carved from the
/// heap and stayed resident: 4 files of 1 GB peaked at 343 MB instead of 155 MB.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter (under glibc's own locks).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Status 1 without an error: a `diff --fail-if` condition held.
fn execute(command: TraceCommand) -> Result<ExitCode> {
    match command {
        TraceCommand::Summary(a) => {
            let summaries = a
                .input
                .summaries_through(&a.files, &a.analysis, &a.captures)?;
            let opts = a.report.options();
            let key = match a.by {
                Some(ByArg::Op) => Some(AttributionKey::Op),
                Some(ByArg::Module) => Some(AttributionKey::Module),
                Some(ByArg::Layer) => Some(AttributionKey::Layer),
                Some(ByArg::Kernel) | None => None,
            };
            if a.group_by_shape {
                print(&report::by_shape(&summaries, &opts));
            } else if let Some(key) = key {
                print(&report::attribution(&summaries, key, &opts));
            } else if a.by == Some(ByArg::Kernel) {
                let only = ReportOptions {
                    table: Some("kernels".into()),
                    ..opts
                };
                print(&report::summary(&summaries, &only));
            } else {
                print(&report::summary(&summaries, &opts));
            }
            if let Some(h) = &a.html {
                let mut page = crate::trace_html::summary_page(&summaries, &command_line(&a.files));
                if let Some(key) = key {
                    page.sections
                        .push(crate::trace_html::attribution_section(&summaries, key));
                }
                crate::trace_html::write(h, &page)?;
            }
        }
        TraceCommand::Ranks(a) => {
            let summaries = if a.from_summaries {
                let mut all = Vec::new();
                for f in &a.files {
                    all.extend(TraceSummary::from_json(f)?);
                }
                all
            } else {
                a.input.summaries(&a.files, &a.analysis)?
            };
            let r = ranks::compare(&summaries, a.report.key_ops());
            print(&report::ranks(&r, &a.report.options()));
            if let Some(h) = &a.html {
                crate::trace_html::write(
                    h,
                    &crate::trace_html::ranks_page(&r, &command_line(&a.files)),
                )?;
            }
        }
        TraceCommand::Diff(a) => {
            // a bad condition is a usage error before any reading
            let gates = a
                .fail_if
                .iter()
                .map(|e| FailIf::parse(e))
                .collect::<Result<Vec<_>>>()?;
            let mut s =
                a.input
                    .summaries_through(&[a.a.clone(), a.b.clone()], &a.analysis, &a.captures)?;
            let b = s.pop().expect("two inputs");
            let base = s.pop().expect("two inputs");
            let d = diff::diff(&base, &b, a.threshold);
            print(&report::diff(&d, &a.report.options()));
            if let Some(h) = &a.html {
                let page = crate::trace_html::diff_page(&d, &command_line(&[a.a, a.b]));
                crate::trace_html::write(h, &page)?;
            }
            let hits: Vec<_> = gates.iter().filter_map(|g| g.check(&d)).collect();
            for h in &hits {
                let rel = h
                    .relative
                    .map_or("new".to_string(), |r| format!("{:+.2}%", r * 100.0));
                eprintln!(
                    "fail-if {}: A {} ms -> B {} ms ({rel})",
                    h.condition,
                    report::ms(h.a_ns.round() as i64),
                    report::ms(h.b_ns.round() as i64)
                );
            }
            if !hits.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        TraceCommand::Top(a) => {
            let input = a.input.open_one(&a.file)?;
            let rows = top::top(&input, &a.input.options())?;
            print(&report::top(&rows, &a.report.options()));
        }
        TraceCommand::Slice(a) => slice_cmd(a)?,
        TraceCommand::Convert(a) => convert_cmd(a)?,
        TraceCommand::Merge(a) => {
            let inputs = a.input.open(&a.files)?;
            let filter = CategoryFilter {
                drop: a.drop_cat,
                keep: a.keep_cat,
            };
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
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn slice_cmd(a: SliceArgs) -> Result<()> {
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
        max_size: a.max_size.as_deref().map(parse_size).transpose()?,
    };
    let input = a.input.open_one(&a.file)?;
    let r = slice(&input, &a.output, &spec, &a.input.options())?;
    if let Some((start, end)) = r.range {
        eprintln!(
            "window: {} us .. {} us on the trace's clock ({} ms)",
            time::ns_to_us_string(start),
            time::ns_to_us_string(end),
            report::ms(end - start)
        );
    }
    if r.flows_dropped > 0 {
        eprintln!(
            "{} flow events dropped (one end outside the window)",
            r.flows_dropped
        );
    }
    let names: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
    eprintln!("{} events -> {}", r.events_written, names.join(", "));
    Ok(())
}

fn convert_cmd(a: ConvertArgs) -> Result<()> {
    let input = a.input.open_one(&a.file)?;
    let opts = a.input.options();
    let to = match a.to {
        Some(OutputFormat::Json) => TraceFormat::Json,
        Some(OutputFormat::Perfetto) => TraceFormat::Perfetto,
        None => TraceFormat::for_output(&a.output),
    };
    match to {
        TraceFormat::Json => {
            let n = json::convert(&input, &a.output, &opts)?;
            eprintln!("{n} events -> {}", a.output.display());
        }
        TraceFormat::Perfetto => {
            let r = perfetto::convert(&input, &a.output, &opts)?;
            let overflow = if r.overflow_lanes > 0 {
                format!(
                    " ({} extra tracks for overlapping slices)",
                    r.overflow_lanes
                )
            } else {
                String::new()
            };
            eprintln!(
                "{} events -> {} packets{overflow} -> {}",
                r.events_in,
                r.packets,
                a.output.display()
            );
        }
    }
    Ok(())
}

/// A report on stdout; a closed pipe (`| head`) is not an error worth reporting.
/// The files a page was built from, for its subtitle.
fn command_line(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!("from {}", names.join(" "))
}

fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
