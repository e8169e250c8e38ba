//! `loupe profile start|stop|status`: interactive profiling of any SGLang-compatible server,
//! with the request fields of `/start_profile` as flags (the same knobs as
//! `python -m sglang.profiler`, bounded to 5 steps by default as that tool is), and
//! `loupe profile nsys` for Nsight Systems sessions. The engine (SGLang, vLLM, TensorRT-LLM,
//! Dynamo) is `--engine` or asked from the server, and printed; each speaks its own protocol
//! (vLLM: the strict body, a stop before each start, files listed and summarised at the
//! stop; TensorRT-LLM and Dynamo: stopped after a `--wait`ed capture too, files listed from
//! the output directory). The conversation itself is loupe-client's; this module holds the
//! flags and the terminal output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use loupe_client::nsys::{self, NsysCommand as Nsys};
use loupe_client::vllm::{self, VllmFile, VllmStart};
use loupe_client::{
    Engine, LaxInt, ProfileError, ProfileStatus, Server, StartProfile, WaitFor, Watched, trtllm,
};

#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ProfileCommand {
    /// POST /start_profile.
    Start(StartArgs),
    /// POST /stop_profile (returns once the traces are written) and list them.
    Stop(StopArgs),
    /// GET /profile_status (loupe servers): idle, armed, active or exporting, and the files.
    Status(StatusArgs),
    /// Nsight Systems interactive sessions.
    Nsys(NsysArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    #[arg(long, default_value = "http://127.0.0.1:30000")]
    pub url: String,
    /// Bearer key (admin key when the server has one).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The server's engine: sglang, vllm, trtllm or dynamo (default: asked from the server).
    #[arg(long, value_parser = crate::engine::parse)]
    pub engine: Option<Engine>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StopArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The capture's output directory (vLLM: its torch_profiler_dir), when on this machine:
    /// the files the stop wrote are listed and summarised.
    #[arg(long)]
    pub output_dir: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StartArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where the server writes (default: the server's own default). vLLM's is fixed at its
    /// launch: give its torch_profiler_dir here to have --wait list the files.
    #[arg(long)]
    pub output_dir: Option<String>,
    /// Steps to capture before the server stops by itself; 0 captures until `stop`.
    #[arg(long, default_value_t = 5)]
    pub num_steps: u64,
    /// Absolute forward step at which capture starts.
    #[arg(long)]
    pub start_step: Option<u64>,
    #[arg(long, num_args = 1.., default_values = ["CPU", "GPU"])]
    pub activities: Vec<String>,
    /// Capture prefill and decode separately.
    #[arg(long, alias = "by-stage")]
    pub profile_by_stage: bool,
    #[arg(long, num_args = 1..)]
    pub profile_stages: Vec<String>,
    #[arg(long)]
    pub profile_prefix: Option<String>,
    #[arg(long)]
    pub profile_id: Option<String>,
    #[arg(long)]
    pub merge_profiles: bool,
    #[arg(long)]
    pub no_with_stack: bool,
    #[arg(long)]
    pub no_record_shapes: bool,
    /// Wait until the capture is written, then list the files.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Wait until the server is idle (the last profile written).
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
}

/// `loupe profile nsys start|stop|list`, for a server launched under
/// `nsys launch --session-new=NAME ...` (or `nsys profile --start-later=true
/// --session-new=NAME ...`). `start`/`stop` may repeat; the server keeps running.
#[derive(clap::Args, Debug, Clone)]
pub struct NsysArgs {
    #[command(subcommand)]
    pub command: NsysCommand,
    /// The nsys executable.
    #[arg(long, env = "LOUPE_NSYS", default_value = "nsys", global = true)]
    pub nsys: String,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum NsysCommand {
    /// Begin a capture in a session (`nsys start --session=NAME`); arguments after `--` go to
    /// nsys (e.g. `-- --output run1`).
    Start {
        #[arg(long)]
        session: String,
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// End the capture and write its report (`nsys stop --session=NAME`).
    Stop {
        #[arg(long)]
        session: String,
    },
    /// The sessions nsys knows (`nsys sessions list`).
    List,
}

impl From<NsysCommand> for Nsys {
    fn from(c: NsysCommand) -> Self {
        match c {
            NsysCommand::Start { session, extra } => Nsys::Start { session, extra },
            NsysCommand::Stop { session } => Nsys::Stop { session },
            NsysCommand::List => Nsys::List,
        }
    }
}

impl StartArgs {
    /// The /start_profile body: only the fields given (old servers ignore unknown keys).
    pub fn body(&self) -> StartProfile {
        StartProfile {
            activities: Some(self.activities.clone()),
            output_dir: self.output_dir.clone(),
            num_steps: (self.num_steps > 0).then_some(LaxInt::Number(self.num_steps)),
            start_step: self.start_step.map(LaxInt::Number),
            profile_by_stage: self.profile_by_stage.then_some(true),
            profile_stages: (!self.profile_stages.is_empty()).then(|| self.profile_stages.clone()),
            profile_prefix: self.profile_prefix.clone(),
            profile_id: self.profile_id.clone(),
            merge_profiles: self.merge_profiles.then_some(true),
            with_stack: self.no_with_stack.then_some(false),
            record_shapes: self.no_record_shapes.then_some(false),
            detailed_annotations: None,
        }
    }
}

fn server(s: &ServerArgs) -> anyhow::Result<Server> {
    let headers = loupe_client::headers(s.api_key.as_deref(), &[])?;
    Ok(Server::new(&s.url, headers)?)
}

/// The engine to speak to, from `--engine` or the server's answers; printed on stderr so
/// scripts reading stdout see only the protocol's output.
async fn engine_of(s: &ServerArgs, server: &Server) -> Engine {
    let (engine, why) = match s.engine {
        Some(e) => (e, "--engine".to_string()),
        None => match server.detect_engine().await {
            Some(d) => (d.engine, d.because),
            None => (
                Engine::Sglang,
                "nothing the server answered names it".into(),
            ),
        },
    };
    eprintln!("engine: {engine} ({why})");
    engine
}

/// Which file names count as `engine`'s profile output.
fn dynamo_file(n: &str) -> bool {
    loupe_trace::files::is_profile_file(n) || vllm::is_output(n)
}

pub(crate) fn outputs(engine: Engine) -> &'static (dyn Fn(&str) -> bool + Sync) {
    match engine {
        Engine::Vllm => &vllm::is_output,
        // Its file names are unverified: any trace-like file in the capture's directory.
        Engine::TensorrtLlm => &trtllm::is_output,
        // dynamo.sglang writes SGLang's names, dynamo.vllm vLLM's.
        Engine::Dynamo => &dynamo_file,
        Engine::Sglang => &loupe_trace::files::is_profile_file,
    }
}

/// Is `name` one rank's trace (what the summary reads)?
fn is_rank_trace(engine: Engine, name: &str) -> bool {
    match VllmFile::of(name) {
        Some(VllmFile::Worker { .. }) => return true,
        Some(_) => return false,
        None => {}
    }
    match engine {
        Engine::TensorrtLlm => trtllm::is_rank_trace(name),
        _ => {
            loupe_trace::files::ProfileFile::of(name)
                == Some(loupe_trace::files::ProfileFile::RankTrace)
        }
    }
}

/// `engine`'s files in `dir` written since `since`, printed with their summary.
fn list_files(engine: Engine, dir: &str, since: SystemTime) -> anyhow::Result<()> {
    let files = loupe_client::list_outputs(std::path::Path::new(dir), Some(since), outputs(engine));
    if files.is_empty() {
        if engine == Engine::Vllm {
            bail!(
                "no vLLM trace files in {dir} (is it the server's torch_profiler_dir, on this machine?)"
            );
        }
        bail!("no trace files in {dir} (is it the capture's output_dir, on this machine?)");
    }
    for (f, len) in &files {
        println!("  {} ({len} bytes)", f.display());
    }
    let ranks: Vec<PathBuf> = files
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| is_rank_trace(engine, n))
        })
        .collect();
    if !ranks.is_empty() {
        match loupe_trace::report::summary_text(&ranks, 10) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("no trace summary: {e}"),
        }
    }
    Ok(())
}

const VLLM_DIR: &str = "vLLM writes to the torch_profiler_dir of its --profiler-config; \
                        pass it as --output-dir (when it is on this machine) to list the files";

/// `loupe profile start` on vLLM: the strict body (after a stop that clears an old session's
/// guard); with --wait, the files of the automatic stop, then a stop so the next start is
/// accepted.
async fn start_vllm(a: &StartArgs, server: &Server) -> anyhow::Result<()> {
    let mut body = a.body();
    body.output_dir = None;
    let sent = VllmStart::from_sglang(&body)?;
    let since = SystemTime::now() - Duration::from_secs(1);
    server.start_profile_on(Engine::Vllm, &body).await?;
    println!("profiling started");
    println!("request: {}", sent.to_json());
    if !a.wait {
        return Ok(());
    }
    let Some(dir) = &a.output_dir else {
        bail!("--wait: {VLLM_DIR}");
    };
    if sent.max_iterations.is_none() {
        bail!(
            "--wait on vLLM needs --num-steps > 0 (without it vLLM records until `loupe profile stop`)"
        );
    }
    let w = WaitFor {
        dir: Some(PathBuf::from(dir)),
        since: Some(since),
        use_status: false,
        dir_poll: Duration::from_millis(500),
        ..WaitFor::new(None, Duration::from_secs_f64(a.timeout.max(0.0)))
    };
    let out = server.wait_for_files(&w, &vllm::is_output).await?;
    // The automatic stop leaves vLLM's 409 guard set: only /stop_profile clears it.
    server.stop_profile_on(Engine::Vllm).await?;
    if !out.complete {
        bail!(
            "no complete vLLM trace files in {dir} after {} s (vLLM counts steps only while it serves requests)",
            a.timeout
        );
    }
    list_files(Engine::Vllm, dir, since)
}

/// The stop TensorRT-LLM and Dynamo get after a `--wait`ed capture too (their bounds are
/// unverified or not forwarded, see [`Engine::always_stops`]); refused after a bounded
/// capture, it had stopped by itself.
async fn stop_after_bounded(server: &Server, engine: Engine, bounded: bool) -> anyhow::Result<()> {
    match server.stop_profile_on(engine).await {
        Ok(_) => Ok(()),
        Err(e @ (ProfileError::Refused { .. } | ProfileError::Client(_)))
            if bounded && !matches!(&e, ProfileError::Client(c) if c.status().is_none()) =>
        {
            eprintln!(
                "note: the stop after the capture was refused (it had stopped by itself): {e}"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn print_status(st: &ProfileStatus) {
    let mut line = format!("state: {}", st.state);
    if let Some(id) = &st.profile_id {
        line.push_str(&format!(", profile_id: {id}"));
    }
    if let Some(stage) = &st.stage {
        line.push_str(&format!(", stage: {stage}"));
    }
    line.push_str(&format!(", steps captured: {}", st.steps_captured));
    println!("{line}");
    if let Some(d) = &st.output_dir {
        println!("output_dir: {d}");
    }
    for f in &st.files {
        println!("  {f}");
    }
    for e in &st.errors {
        println!("error: {e}");
    }
}

const NO_STATUS: &str = "this server has no /profile_status (SGLang servers do not); \
                         its log says when the traces are written";

/// Wait for the server to finish writing and print what it wrote.
async fn wait_and_list(
    server: &Server,
    engine: Engine,
    id: Option<&str>,
    timeout: f64,
    dir: Option<&str>,
) -> anyhow::Result<()> {
    let w = WaitFor {
        dir: dir.map(PathBuf::from),
        since: Some(SystemTime::now() - Duration::from_secs(1)),
        ..WaitFor::new(id, Duration::from_secs_f64(timeout.max(0.0)))
    };
    let since = w.since.expect("set above");
    let out = server.wait_for_files(&w, outputs(engine)).await?;
    match out.watched {
        Watched::Status(st) => {
            print_status(&st);
            if !out.complete {
                bail!(
                    "{}: still {} after {timeout} s",
                    server.url("/profile_status"),
                    st.state
                );
            }
        }
        Watched::Directory(d) => {
            if !out.complete {
                for f in &out.files {
                    println!("  {f}");
                }
                bail!(
                    "no complete trace files in {} after {timeout} s",
                    d.display()
                );
            }
            list_files(engine, &d.display().to_string(), since)?;
        }
        Watched::Nothing => bail!("--wait: {NO_STATUS}; pass --output-dir to watch it"),
    }
    Ok(())
}

/// `loupe profile ...`.
pub async fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ProfileCommand::Start(a) => {
            let server = server(&a.server)?;
            let engine = engine_of(&a.server, &server).await;
            if engine == Engine::Vllm {
                start_vllm(&a, &server).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let body = a.body();
            let reply = server.start_profile_on(engine, &body).await?;
            print!("{reply}");
            if !reply.ends_with('\n') {
                println!();
            }
            println!("request: {}", body.to_json());
            if a.wait {
                let waited = wait_and_list(
                    &server,
                    engine,
                    a.profile_id.as_deref(),
                    a.timeout,
                    a.output_dir.as_deref(),
                )
                .await;
                if engine.always_stops() {
                    stop_after_bounded(&server, engine, body.num_steps.is_some()).await?;
                }
                waited?;
            }
        }
        ProfileCommand::Stop(s) => {
            let server = server(&s.server)?;
            let engine = engine_of(&s.server, &server).await;
            let since = SystemTime::now() - Duration::from_secs(1);
            let reply = server.stop_profile_on(engine).await?;
            print!("{reply}");
            if !reply.is_empty() && !reply.ends_with('\n') {
                println!();
            }
            if engine != Engine::Vllm
                && let Some(dir) = &s.output_dir
            {
                // The traces written by the stop (SGLang's answer comes once they are).
                list_files(engine, dir, since)?;
            } else if engine == Engine::Vllm {
                // vLLM's files are complete when its stop answers.
                println!("profiling stopped");
                match &s.output_dir {
                    Some(dir) => list_files(Engine::Vllm, dir, since)?,
                    None => println!("{VLLM_DIR}"),
                }
            } else if let Some(st) = server.profile_status().await? {
                print_status(&st);
            }
        }
        ProfileCommand::Status(a) => {
            let server = server(&a.server)?;
            if a.wait {
                wait_and_list(&server, Engine::Sglang, None, a.timeout, None).await?;
            } else {
                match server.profile_status().await? {
                    Some(st) => print_status(&st),
                    None => bail!("{}: {NO_STATUS}", a.server.url),
                }
            }
        }
        ProfileCommand::Nsys(n) => nsys::run(&n.nsys, &n.command.into())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        p: ProfileArgs,
    }

    fn start(args: &[&str]) -> StartArgs {
        let argv = ["x", "start"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().p.command {
            ProfileCommand::Start(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn body(a: &StartArgs) -> serde_json::Value {
        serde_json::from_str(&a.body().to_json()).unwrap()
    }

    #[test]
    fn start_sends_only_what_was_given() {
        let a = start(&["--url", "http://h:1", "--by-stage", "--num-steps", "3"]);
        assert_eq!(
            body(&a),
            json!({"activities": ["CPU", "GPU"], "num_steps": 3, "profile_by_stage": true})
        );
        let a = start(&["--num-steps", "0", "--activities", "MEM", "--no-with-stack"]);
        assert_eq!(
            body(&a),
            json!({"activities": ["MEM"], "with_stack": false})
        );
    }

    #[test]
    fn the_request_line_keeps_its_key_order() {
        let a = start(&[
            "--profile-id",
            "p",
            "--output-dir",
            "/o",
            "--start-step",
            "4",
            "--merge-profiles",
            "--profile-prefix",
            "x",
        ]);
        assert_eq!(
            a.body().to_json(),
            r#"{"activities":["CPU","GPU"],"output_dir":"/o","num_steps":5,"start_step":4,"profile_prefix":"x","profile_id":"p","merge_profiles":true}"#
        );
    }

    #[test]
    fn nsys_commands_parse_into_session_commands() {
        let cli =
            Cli::try_parse_from(["x", "nsys", "start", "--session", "s", "--", "-o", "r"]).unwrap();
        let ProfileCommand::Nsys(n) = cli.p.command else {
            panic!()
        };
        assert_eq!(
            Nsys::from(n.command).nsys_args(),
            ["start", "--session=s", "-o", "r"]
        );
    }
}
