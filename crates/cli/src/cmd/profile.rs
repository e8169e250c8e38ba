//! `loupe profile start|stop|status`: interactive profiling of any SGLang-compatible server,
//! with the request fields of `/start_profile` as flags (the same knobs as
//! `python -m sglang.profiler`, bounded to 5 steps by default as that tool is), and
//! `loupe profile nsys` for Nsight Systems sessions. The conversation itself is
//! loupe-client's; this module holds the flags and the terminal output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use loupe_client::nsys::{self, NsysCommand as Nsys};
use loupe_client::{LaxInt, ProfileStatus, Server, StartProfile, WaitFor, Watched};

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
    Stop(ServerArgs),
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
}

#[derive(clap::Args, Debug, Clone)]
pub struct StartArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where the server writes (default: the server's own default).
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
    id: Option<&str>,
    timeout: f64,
    dir: Option<&str>,
) -> anyhow::Result<()> {
    let w = WaitFor {
        dir: dir.map(PathBuf::from),
        since: Some(SystemTime::now() - Duration::from_secs(1)),
        ..WaitFor::new(id, Duration::from_secs_f64(timeout.max(0.0)))
    };
    let out = server
        .wait_for_files(&w, &loupe_trace::files::is_profile_file)
        .await?;
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
            for f in &out.files {
                println!("  {f}");
            }
            if !out.complete {
                bail!(
                    "no complete trace files in {} after {timeout} s",
                    d.display()
                );
            }
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
            let body = a.body();
            let reply = server.start_profile(&body).await?;
            print!("{reply}");
            if !reply.ends_with('\n') {
                println!();
            }
            println!("request: {}", body.to_json());
            if a.wait {
                wait_and_list(
                    &server,
                    a.profile_id.as_deref(),
                    a.timeout,
                    a.output_dir.as_deref(),
                )
                .await?;
            }
        }
        ProfileCommand::Stop(s) => {
            let server = server(&s)?;
            let reply = server.stop_profile().await?;
            print!("{reply}");
            if let Some(st) = server.profile_status().await? {
                print_status(&st);
            }
        }
        ProfileCommand::Status(a) => {
            let server = server(&a.server)?;
            if a.wait {
                wait_and_list(&server, None, a.timeout, None).await?;
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
