"""The multi-turn and scraper sections of scripts/bench_client.py (see its docstring):
multiturn-lag, multiturn-peer and scrape-cost, on the same helpers (the pinned `loupe serve`,
one client run with its CPU over the measured phase)."""

import json
import sys
from pathlib import Path

from bench_client import PY_WRAPPER, Server, loupe_bench, med, metric, run_client


def mooncake_trace(path, sessions, gap_ms, pool, blocks, input_len, output_len):
    """A Mooncake-format trace: sessions `gap_ms` apart, each opening with `blocks` hash_ids
    drawn from the first `pool` ids (shared prefixes), then ids of its own."""
    import random

    rng = random.Random(7)
    with open(path, "w") as f:
        for k in range(sessions):
            shared = [rng.randrange(pool) for _ in range(blocks - 1)]
            f.write(json.dumps({"timestamp": k * gap_ms, "input_length": input_len,
                                "output_length": output_len,
                                "hash_ids": shared + [pool + k]}) + "\n")


def first_round_lag(csv_path):
    """Schedule lag (ms) of each conversation's first round, from loupe's per-request CSV."""
    import csv

    with open(csv_path) as f:
        lags = sorted(float(r["schedule_lag_ms"]) for r in csv.DictReader(f) if r["turn"] == "0")
    q = lambda p: lags[min(len(lags) - 1, int(p / 100 * len(lags)))]
    return len(lags), q(50), q(99), lags[-1]


def section_multiturn_lag(args, work, report):
    log = open(work / "server-mt-lag.log", "w")
    server = Server(args.loupe, args.port + 4, ["--model-path", "tiny", "--max-running-requests", "1024"], log)
    trace = work / "mooncake-lag.jsonl"
    mooncake_trace(trace, 5000, 1, 64, 2, 32, 4)
    cases = (
        ("mooncake, 1 round", ["--dataset-name", "mooncake", "--dataset-path", str(trace),
                               "--mooncake-block-tokens", "16", "--num-prompts", "5000"]),
        ("mooncake, 2 rounds", ["--dataset-name", "mooncake", "--dataset-path", str(trace),
                                "--mooncake-block-tokens", "16", "--num-prompts", "5000",
                                "--mooncake-num-rounds", "2"]),
        ("GSP, 2 turns, Poisson", ["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "50",
                                   "--gsp-prompts-per-group", "100", "--gsp-system-prompt-len", "16",
                                   "--gsp-question-len", "8", "--gsp-output-len", "4",
                                   "--gsp-num-turns", "2", "--request-rate", "1000"]),
        # The same at constant spacing: tells the arrival process's bursts from the workload.
        ("GSP, 2 turns, constant spacing", ["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "50",
                                            "--gsp-prompts-per-group", "100", "--gsp-system-prompt-len", "16",
                                            "--gsp-question-len", "8", "--gsp-output-len", "4",
                                            "--gsp-num-turns", "2", "--request-rate", "1000",
                                            "--burstiness", "inf"]),
    )
    rows = []
    try:
        for label, extra in cases:
            out = str(work / f"mtlag-{len(rows)}.jsonl")
            csv_path = work / f"mtlag-{len(rows)}.csv"
            r = loupe_bench(args, server, out, [*extra, "--output-csv", str(csv_path)],
                            work / f"mtlag-{len(rows)}.log", work)
            rec = json.loads(Path(out).read_text().splitlines()[-1])
            n, p50, p99, mx = first_round_lag(csv_path)
            r.update(case=label, failed=rec["failed"], conversations=n, lag_p50_ms=p50,
                     lag_p99_ms=p99, lag_max_ms=mx)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report["multiturn-lag"] = rows
    lines = [
        "| workload at 1,000 conversations/s | conversations | requests | failed | first-round lag p50 ms | p99 ms | max ms | client CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['conversations']} | {r['completed'] + r['failed']} | {r['failed']} | "
            f"{r['lag_p50_ms']:.3f} | {r['lag_p99_ms']:.3f} | {r['lag_max_ms']:.3f} | {r['client_cpu_s']:.2f} |"
        )
    report["multiturn-lag_table"] = "\n".join(lines)


def section_multiturn_peer(args, work, report):
    trace = work / "mooncake-peer.jsonl"
    mooncake_trace(trace, 40, 50, 8, 3, 384, 16)
    moon = ["--dataset-name", "mooncake", "--dataset-path", str(trace), "--num-prompts", "40",
            "--mooncake-num-rounds", "2"]
    gsp = ["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "4",
           "--gsp-prompts-per-group", "8", "--gsp-system-prompt-len", "256",
           "--gsp-question-len", "32", "--gsp-output-len", "16", "--gsp-num-turns", "2",
           "--max-concurrency", "8"]
    peer_section(args, work, report, "multiturn-peer", "tiny", 5, moon, gsp)


def section_multiturn_peer_small(args, work, report):
    """The same comparison server-bound: the `small` preset (hidden 1024, 8 layers) on its one
    core takes tens of milliseconds a decode step, so neither client is the bottleneck."""
    trace = work / "mooncake-peer-small.jsonl"
    mooncake_trace(trace, 6, 200, 4, 2, 256, 16)
    moon = ["--dataset-name", "mooncake", "--dataset-path", str(trace), "--num-prompts", "6",
            "--mooncake-num-rounds", "2"]
    gsp = ["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "2",
           "--gsp-prompts-per-group", "8", "--gsp-system-prompt-len", "128",
           "--gsp-question-len", "16", "--gsp-output-len", "48", "--gsp-num-turns", "2",
           "--max-concurrency", "8"]
    peer_section(args, work, report, "multiturn-peer-small", "small", 7, moon, gsp,
                 ["--mooncake-block-tokens", "128"])


SERVER_COUNTERS = ("prompt_tokens_total", "cached_tokens_total", "generation_tokens_total",
                   "forward_steps_total")


def server_work(server):
    """The server's own counters (`/metrics`), for deltas over one client's run."""
    return {"server_" + c: metric(server.base, "sglang:" + c) for c in SERVER_COUNTERS}


def peer_section(args, work, report, name, model, port_offset, moon, gsp, real_extra=()):
    log = open(work / f"server-{name}.log", "w")
    server = Server(args.loupe, args.port + port_offset, ["--model-path", model], log)
    workloads = (
        ("mooncake (loupe: canned, as upstream)", "sglang", moon, ["--mooncake-history", "canned"]),
        ("mooncake (loupe: real history)", "sglang", moon, list(real_extra)),
        ("GSP 2 turns, chat", "sglang-oai-chat", gsp, []),
    )
    wanted = args.workloads.split(",")
    workloads = tuple(w for w in workloads if any(p in w[0] for p in wanted))
    rows = []
    try:
        for rnd in range(args.rounds):
            for wl, backend, case, loupe_only in workloads:
                order = ["loupe", "sglang-python"] if rnd % 2 == 0 else ["sglang-python", "loupe"]
                for client in order:
                    out = str(work / f"{name}-{len(rows)}.jsonl")
                    common = ["--backend", backend, "--base-url", server.base, "--output-file", out,
                              "--disable-tqdm", "--warmup-requests", "1", "--flush-cache", *case]
                    if client == "loupe":
                        cmd = [args.loupe, "bench", *common, "--disable-retokenize", *loupe_only]
                    else:
                        cmd = [args.python, "-c", PY_WRAPPER, *common]
                    before = server_work(server)
                    r = run_client(client, cmd, server, out, work / f"{name}-{len(rows)}.log", cwd=work)
                    # what the server did for this client: the same prompts should cost the same
                    r.update({k: v - before[k] for k, v in server_work(server).items()})
                    r.update(round=rnd, workload=wl)
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report[name] = rows
    lines = [
        "| workload | figure | loupe bench (median) | SGLang Python (median) | loupe / Python |",
        "|---|---|---|---|---|",
    ]
    for wl, *_ in workloads:
        by = {n: [r for r in rows if r["client"] == n and r["workload"] == wl] for n in ("loupe", "sglang-python")}
        for key, label in (("mean_ttft_ms", "mean TTFT (ms)"), ("mean_tpot_ms", "mean TPOT (ms)"),
                           ("output_tok_s", "output throughput (tok/s)"),
                           ("server_prompt_tokens_total", "server: prompt tokens"),
                           ("server_cached_tokens_total", "server: of which cached"),
                           ("server_forward_steps_total", "server: forward steps")):
            a, b = med(by["loupe"], key), med(by["sglang-python"], key)
            ratio = f"{a / b:.3f}" if b else "-"
            lines.append(f"| {wl} | {label} | {a:.2f} | {b:.2f} | {ratio} |")
    report[name + "_table"] = "\n".join(lines)


def section_scrape_cost(args, work, report):
    log = open(work / "server-scrape.log", "w")
    server = Server(args.loupe, args.port + 6, ["--model-path", "tiny", "--max-running-requests", "1024"], log)
    case = ["--dataset-name", "random-ids", "--num-prompts", "2000", "--request-rate", "400",
            "--random-input-len", "16", "--random-output-len", "32", "--random-range-ratio", "1",
            "--percentiles", "50,99"]
    rows = []
    try:
        for rnd in range(args.rounds):
            modes = [("off", []), ("100 ms", ["--scrape-metrics", "100"])]
            for mode, extra in (modes if rnd % 2 == 0 else modes[::-1]):
                out = str(work / f"scrape-{len(rows)}.jsonl")
                r = loupe_bench(args, server, out, [*case, *extra], work / f"scrape-{len(rows)}.log", work)
                rec = json.loads(Path(out).read_text().splitlines()[-1])
                r.update(mode=mode, round=rnd, lag_p99_ms=rec["hdr_percentiles_ms"]["schedule_lag"]["p99"],
                         scrapes=(rec.get("server_metrics") or {}).get("scrapes", 0))
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    finally:
        server.stop()
    report["scrape-cost"] = rows
    by = {m: [r for r in rows if r["mode"] == m] for m in ("off", "100 ms")}
    lines = [
        "| figure | without scraping (median) | --scrape-metrics 100 (median) | with / without | each run, without / with |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("client_cpu_per_1000_chunks_s", "client CPU s / 1000 chunks"),
                       ("client_cpu_s", "client CPU s"), ("server_cpu_s", "server CPU s"),
                       ("mean_ttft_ms", "mean TTFT (ms)"), ("p99_ttft_ms", "p99 TTFT (ms)"),
                       ("mean_itl_ms", "mean ITL (ms)"), ("p99_itl_ms", "p99 ITL (ms)"),
                       ("lag_p99_ms", "schedule lag p99 (ms)")):
        a, b = med(by["off"], key), med(by["100 ms"], key)
        each = "; ".join(f"{x[key]:.3f}" for x in by["off"]) + " / " + "; ".join(f"{x[key]:.3f}" for x in by["100 ms"])
        lines.append(f"| {label} | {a:.4f} | {b:.4f} | {b / a if a else float('nan'):.3f} | {each} |")
    lines.append(f"| scrapes per run | 0 | {med(by['100 ms'], 'scrapes'):.0f} | | |")
    report["scrape-cost_table"] = "\n".join(lines)

