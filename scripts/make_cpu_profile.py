# Builds a small CPU-only PyTorch profile with shapes and stacks, plus torch's own key_averages
# grouped by input shape, as the fixture loupe's `trace summary --group-by-shape` is checked against
# (crates/trace/tests/data/cpu_mlp.*; the trace was gzipped after writing).
# Usage: python scripts/make_cpu_profile.py TRACE.json TABLE.txt ROWS.json  (torch 2.15, CPU)
import json, sys
import torch, torch.nn as nn
from torch.profiler import profile, ProfilerActivity, schedule

torch.manual_seed(0)
torch.set_num_threads(1)

class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.fc1 = nn.Linear(64, 128); s.act = nn.GELU(); s.fc2 = nn.Linear(128, 64); s.norm = nn.LayerNorm(64)
    def forward(s, x):
        return s.norm(x + s.fc2(s.act(s.fc1(x))))

model = nn.Sequential(Block(), Block())
xs = [torch.randn(4, 64), torch.randn(8, 64)]
trace, table, rows_out = sys.argv[1:4]

def ready(p):
    p.export_chrome_trace(trace)
    ka = p.key_averages(group_by_input_shape=True)
    with open(table, "w") as f:
        f.write(ka.table(sort_by="self_cpu_time_total", row_limit=-1, max_name_column_width=60, max_shapes_column_width=80))
    rows = [dict(name=e.key, input_shapes=str(e.input_shapes), calls=e.count,
                 self_cpu_us=e.self_cpu_time_total, cpu_total_us=e.cpu_time_total) for e in ka]
    json.dump(rows, open(rows_out, "w"), indent=1)

with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_stack=True,
             schedule=schedule(wait=0, warmup=1, active=3, repeat=1), on_trace_ready=ready) as p:
    for i in range(5):
        with torch.no_grad():
            model(xs[i % 2])
        p.step()
