//! `--slurm`: the same plan as an sbatch script, srtctl's shape — one `srun` step per worker
//! in the background, a health wait, then the phases and benchmarks from the head node, and
//! the workers stopped on exit.

use std::fmt::Write;

use crate::job::Slurm;
use crate::plan::{Plan, bench_command, shell_line, shell_quote};

pub fn render(plan: &Plan, slurm: Option<&Slurm>) -> String {
    let mut o = String::new();
    let n = plan.workers.len();
    let _ = writeln!(o, "#!/bin/bash");
    let _ = writeln!(o, "#SBATCH --job-name={}", plan.job);
    let _ = writeln!(o, "#SBATCH --nodes={n}");
    let _ = writeln!(o, "#SBATCH --ntasks={n}");
    let _ = writeln!(o, "#SBATCH --ntasks-per-node=1");
    let _ = writeln!(
        o,
        "#SBATCH --output={}/sweep_%j.log",
        plan.log_dir.display()
    );
    if let Some(s) = slurm {
        for (k, v) in [
            ("account", &s.account),
            ("partition", &s.partition),
            ("time", &s.time_limit),
        ] {
            if let Some(v) = v {
                let _ = writeln!(o, "#SBATCH --{k}={v}");
            }
        }
    }
    let _ = writeln!(o, "\nset -euo pipefail");
    let _ = writeln!(
        o,
        "LOG_DIR={}",
        shell_quote(&plan.log_dir.display().to_string())
    );
    let _ = writeln!(o, "mkdir -p \"$LOG_DIR\"");
    let _ = writeln!(
        o,
        "mapfile -t NODES < <(scontrol show hostnames \"$SLURM_JOB_NODELIST\")"
    );
    let _ = writeln!(o, "PIDS=()");
    let _ = writeln!(o, "trap 'kill \"${{PIDS[@]}}\" 2>/dev/null; wait' EXIT");
    for (i, w) in plan.workers.iter().enumerate() {
        let name = w.label(&format!("${{NODES[{i}]}}"));
        let env: Vec<String> = w
            .env
            .iter()
            .map(|(k, v)| format!("export {k}={};", shell_quote(v)))
            .collect();
        let cmd =
            shell_line(&w.command).replace(&format!("--host {}", plan.host), "--host 0.0.0.0");
        let _ = writeln!(o, "\n# worker {i}: {} ({})", w.role.mode(), name);
        let _ = writeln!(
            o,
            "srun --overlap --nodes=1 --ntasks=1 --nodelist=\"${{NODES[{i}]}}\" --output=\"$LOG_DIR/{name}.out\" --error=\"$LOG_DIR/{name}.err\" \\\n  bash -c {} &",
            shell_quote(format!("{} {cmd}", env.join(" ")).trim())
        );
        let _ = writeln!(o, "PIDS+=($!)");
    }
    let _ = writeln!(o, "\nwait_healthy() {{  # url attempts interval");
    let _ = writeln!(
        o,
        "  for ((i = 0; i < $2; i++)); do curl -sf \"$1/health\" >/dev/null && return 0; sleep \"$3\"; done"
    );
    let _ = writeln!(o, "  echo \"$1 did not become healthy\" >&2; return 1");
    let _ = writeln!(o, "}}");
    for (i, w) in plan.workers.iter().enumerate() {
        let _ = writeln!(
            o,
            "wait_healthy \"http://${{NODES[{i}]}}:{}\" {} {}",
            w.port, plan.health.max_attempts, plan.health.interval_seconds
        );
    }
    for p in &plan.phases {
        let w = &plan.workers[p.worker];
        let url = format!("http://${{NODES[{}]}}:{}", p.worker, w.port);
        let body = plan.start_body(p);
        let _ = writeln!(o, "\n# phase {}", p.name);
        let _ = writeln!(
            o,
            "mkdir -p {}",
            shell_quote(&p.output_dir.display().to_string())
        );
        let _ = writeln!(
            o,
            "curl -sf -X POST \"{url}/start_profile\" -d {}",
            shell_quote(&body)
        );
        let bench = shell_line(&bench_command(plan, "URL", &p.traffic))
            .replace("URL", &format!("\"{url}\""));
        let _ = writeln!(
            o,
            "{bench} >> \"$LOG_DIR/benchmark.out\" 2>&1 || echo \"phase {} benchmark failed\" >&2",
            p.name
        );
        let _ = writeln!(
            o,
            "curl -s -X POST \"{url}/stop_profile\" -d '{{}}' || true"
        );
        // loupe servers say when the export is done; others (no /profile_status) do not wait.
        let _ = writeln!(
            o,
            "for _ in $(seq 600); do s=$(curl -s \"{url}/profile_status\" || true); [[ $s == *'\"state\":\"idle\"'* || $s != *'\"state\"'* ]] && break; sleep 1; done"
        );
    }
    if !plan.benches.is_empty() {
        let url = format!("http://${{NODES[0]}}:{}", plan.workers[0].port);
        for t in &plan.benches {
            let bench =
                shell_line(&bench_command(plan, "URL", t)).replace("URL", &format!("\"{url}\""));
            let _ = writeln!(o, "\n# benchmark, concurrency {}", t.concurrency);
            let _ = writeln!(
                o,
                "mkdir -p {}",
                shell_quote(
                    &t.output_file
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            );
            let _ = writeln!(o, "{bench} >> \"$LOG_DIR/benchmark.out\" 2>&1");
        }
    }
    o
}
