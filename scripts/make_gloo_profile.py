# Builds a two-rank CPU-only (gloo) PyTorch profile in which rank 1 does seven forwards per step
# and rank 0 one, so rank 0 waits in every all_reduce: the fixture loupe's `trace ranks` must
# name rank 1 the straggler from (crates/trace/tests/data/cpu_gloo-rank{0,1}.trace.json.gz).
# Usage: python scripts/make_gloo_profile.py OUT_DIR FREE_PORT  (torch 2.15, CPU)
import os, sys
import torch, torch.nn as nn, torch.distributed as dist, torch.multiprocessing as mp
from torch.profiler import profile, ProfilerActivity, schedule

def run(rank, world, out, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"; os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0); torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256))
    x = torch.randn(32, 256)
    extra = 6 if rank == 1 else 0
    def ready(p):
        p.export_chrome_trace(os.path.join(out, f"cpu_gloo-rank{rank}.trace.json"))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                 schedule=schedule(wait=0, warmup=1, active=4, repeat=1), on_trace_ready=ready) as p:
        for _ in range(6):
            with torch.no_grad():
                y = model(x)
                for _ in range(extra):
                    y = model(x)
                dist.all_reduce(y)
            p.step()
    dist.destroy_process_group()

if __name__ == "__main__":
    out, port = sys.argv[1], int(sys.argv[2])
    mp.spawn(run, args=(2, out, port), nprocs=2)
