//! `loupe profile start|stop|status`: interactive profiling of any SGLang-compatible server,
//! with the request fields of `/start_profile` as flags (the same knobs as
//! `python -m sglang.profiler`, bounded to 5 steps by default as that tool is), and
//! `loupe profile nsys` for Nsight Systems sessions.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::nsys::{self, NsysArgs};
use super::{ProfileEndpoint, ProfileStatus, wait_files_stable};
use crate::control;
use crate::error::{BenchError, Result};

#[derive(clap::Args, Debug, Clone)]
pub struct ProfileCli {
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

impl StartArgs {
    /// The /start_profile body: only the fields given (old servers ignore unknown keys).
    pub fn body(&self) -> Value {
        let mut b = json!({"activities": self.activities});
        let mut put = |k: &str, v: Value| {
            b[k] = v;
        };
        if let Some(d) = &self.output_dir {
            put("output_dir", json!(d));
        }
        if self.num_steps > 0 {
            put("num_steps", json!(self.num_steps));
        }
        if let Some(s) = self.start_step {
            put("start_step", json!(s));
        }
        if self.profile_by_stage {
            put("profile_by_stage", json!(true));
        }
        if !self.profile_stages.is_empty() {
            put("profile_stages", json!(self.profile_stages));
        }
        if let Some(p) = &self.profile_prefix {
            put("profile_prefix", json!(p));
        }
        if let Some(p) = &self.profile_id {
            put("profile_id", json!(p));
        }
        if self.merge_profiles {
            put("merge_profiles", json!(true));
        }
        if self.no_with_stack {
            put("with_stack", json!(false));
        }
        if self.no_record_shapes {
            put("record_shapes", json!(false));
        }
        b
    }
}

fn endpoint(s: &ServerArgs) -> Result<ProfileEndpoint> {
    Ok(ProfileEndpoint {
        client: control::http_client()?,
        base: s.url.trim_end_matches('/').to_string(),
        headers: control::headers(s.api_key.as_deref(), &[])?,
    })
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
    ep: &ProfileEndpoint,
    id: Option<&str>,
    timeout: f64,
    dir: Option<&str>,
) -> Result<()> {
    let since = SystemTime::now() - Duration::from_secs(1);
    match ep
        .wait_finished(id, Duration::from_secs_f64(timeout))
        .await?
    {
        Some((st, done)) => {
            print_status(&st);
            if done {
                Ok(())
            } else {
                Err(BenchError::http(
                    format!("{}/profile_status", ep.base),
                    format!("still {} after {timeout} s", st.state),
                ))
            }
        }
        None => match dir {
            Some(d) => {
                let (files, stable) =
                    wait_files_stable(d.as_ref(), Some(since), Duration::from_secs_f64(timeout))
                        .await;
                for f in &files {
                    println!("  {}", f.display());
                }
                if stable {
                    Ok(())
                } else {
                    Err(BenchError::Usage(format!(
                        "no complete trace files in {d} after {timeout} s"
                    )))
                }
            }
            None => Err(BenchError::Usage(format!(
                "--wait: {NO_STATUS}; pass --output-dir to watch it"
            ))),
        },
    }
}

/// `loupe profile ...`.
pub async fn run(cli: ProfileCli) -> Result<()> {
    match cli.command {
        ProfileCommand::Start(a) => {
            let ep = endpoint(&a.server)?;
            let body = a.body();
            let reply = ep.start(&body).await?;
            print!("{reply}");
            if !reply.ends_with('\n') {
                println!();
            }
            println!("request: {body}");
            if a.wait {
                wait_and_list(
                    &ep,
                    a.profile_id.as_deref(),
                    a.timeout,
                    a.output_dir.as_deref(),
                )
                .await?;
            }
            Ok(())
        }
        ProfileCommand::Stop(s) => {
            let ep = endpoint(&s)?;
            let reply = ep.stop().await?;
            print!("{reply}");
            if let Some(st) = ep.status().await? {
                print_status(&st);
            }
            Ok(())
        }
        ProfileCommand::Status(a) => {
            let ep = endpoint(&a.server)?;
            if a.wait {
                return wait_and_list(&ep, None, a.timeout, None).await;
            }
            match ep.status().await? {
                Some(st) => {
                    print_status(&st);
                    Ok(())
                }
                None => Err(BenchError::Usage(format!("{}: {NO_STATUS}", a.server.url))),
            }
        }
        ProfileCommand::Nsys(n) => nsys::run(&n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        p: ProfileCli,
    }

    #[test]
    fn start_sends_only_what_was_given() {
        let cli = Cli::try_parse_from([
            "x",
            "start",
            "--url",
            "http://h:1",
            "--by-stage",
            "--num-steps",
            "3",
        ])
        .unwrap();
        let ProfileCommand::Start(a) = cli.p.command else {
            panic!()
        };
        assert_eq!(
            a.body(),
            json!({"activities": ["CPU", "GPU"], "num_steps": 3, "profile_by_stage": true})
        );
        let cli = Cli::try_parse_from([
            "x",
            "start",
            "--num-steps",
            "0",
            "--activities",
            "MEM",
            "--no-with-stack",
        ])
        .unwrap();
        let ProfileCommand::Start(a) = cli.p.command else {
            panic!()
        };
        assert_eq!(
            a.body(),
            json!({"activities": ["MEM"], "with_stack": false})
        );
        assert!(
            Cli::try_parse_from(["x", "nsys", "start", "--session", "s", "--", "-o", "r"]).is_ok()
        );
    }
}
