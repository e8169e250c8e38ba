#!/usr/bin/env python3
"""Writes a synthetic SGLang-style Kineto trace of a given size, for benchmarks.

    gen_trace.py OUT.trace.json --mb 1024 --rank 0 [--seed 1]

The shape follows real SGLang/vLLM traces (docs: spec/trace-formats.md §1.4): per decode step a
`step[DECODE bs=..]` span on the scheduler thread, python_function frames (the bulk of
`with_stack` traces), cpu_op operators, cudaLaunchKernel runtime calls with `ac2g` flows to the
kernels on stream 7, an NCCL all-reduce per layer on another stream, and a memcpy per step.
Time stamps are relative to `baseTimeNanoseconds` (which comes first, as SGLang writes it) and
printed with three decimals like Kineto. Pipe through gzip for a `.json.gz`.
"""
import argparse
import random
import sys

KERNELS = [
    "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT256x32x64_MI16x16x1_SN_LDSB1_AFC1_AFEM1",
    "void paged_attention_ll4mi_QKV_mfma16_kernel<0, __hip_bfloat16, __hip_bfloat16, 1, 128, 256>(float*, int)",
    "_ZN5aiter24add_rmsnorm_quant_kernelIDF16bDF16bLi256ELi16ELb1ELb0ELb1ELi1EEEvPT0_PT_PfS4_S4_S4_diiiiiiib",
    "void rotary_embedding_kernel<c10::BFloat16, true>(long const*, c10::BFloat16*, c10::BFloat16*, int)",
    "void at::native::elementwise_kernel_manual_unroll<128, 8, at::native::direct_copy_kernel_cuda>(int)",
    "_ZN7sgl_hip10activation18act_and_mul_kernelI14__hip_bfloat16TnPFT_RKS3_EXadL_Z4siluIS2_ES3_S5_EEEEvPS3_PS4_i",
]
OPS = ["aten::mm", "sglang::store_cache", "aiter::rmsnorm", "aten::copy_", "sgl_kernel::rotary_embedding",
       "sgl_kernel::silu_and_mul"]
PY = ["sglang/srt/layers/linear.py(1280): forward", "torch/nn/modules/module.py(1750): _call_impl",
      "sglang/srt/layers/radix_attention.py(108): forward", "sglang/srt/models/qwen3.py(250): forward",
      "torch/utils/_contextlib.py(117): decorate_context", "sglang/srt/layers/layernorm.py(86): forward_cuda"]
NCCL = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--mb", type=float, default=1024)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rnd = random.Random(a.seed * 1000 + a.rank)
    limit = int(a.mb * 1e6)
    out = open(a.out, "w") if a.out != "-" else sys.stdout
    head = ('{"schemaVersion": 1, "deviceProperties": [{"id": %d, "name": "NVIDIA H100 80GB HBM3", '
            '"totalGlobalMem": 85045870592, "numSms": 132}], "distributedInfo": {"backend": "nccl", '
            '"rank": %d, "world_size": 8}, "displayTimeUnit": "ms", "baseTimeNanoseconds": '
            '1727743122000000000, "traceEvents": [\n' % (a.rank, a.rank))
    out.write(head)
    written = len(head)
    pid, tid, gpu = 1000 + a.rank, 1000 + a.rank, a.rank
    t = 1_000_000_000  # ns since the base
    gt = t
    corr = 1
    ext = 1
    step = 0
    first = True
    chunks = []
    while written < limit:
        # one decode step: 36 layers, each a few ops with their kernels
        step_start = t
        buf = []
        for layer in range(36):
            for k in range(len(KERNELS)):
                for depth in range(3):
                    buf.append('{"ph": "X", "cat": "python_function", "name": "%s", "pid": %d, "tid": %d, '
                               '"ts": %d.%03d, "dur": %d.%03d, "args": {"Python parent id": %d, "Python id": %d, '
                               '"Python thread": 0}}' % (
                                   PY[(k + depth) % len(PY)], pid, tid, t // 1000, t % 1000,
                                   (9000 - depth * 2000) // 1000, rnd.randrange(1000), ext, ext + 1))
                    t += rnd.randrange(300, 900)
                op_dur = rnd.randrange(4000, 9000)
                buf.append('{"ph": "X", "cat": "cpu_op", "name": "%s", "pid": %d, "tid": %d, "ts": %d.%03d, '
                           '"dur": %d.%03d, "args": {"External id": %d, "Record function id": 0, "Ev Idx": %d, '
                           '"Input Dims": [[32, 4096], [4096, 4096]], "Input type": ["c10::BFloat16", '
                           '"c10::BFloat16"]}}' % (OPS[k], pid, tid, t // 1000, t % 1000, op_dur // 1000,
                                                   op_dur % 1000, ext, ext))
                lt = t + 1500
                buf.append('{"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": %d, "tid": %d, '
                           '"ts": %d.%03d, "dur": 3.%03d, "args": {"External id": %d, "cbid": 211, '
                           '"correlation": %d}}' % (pid, tid, lt // 1000, lt % 1000, rnd.randrange(1000), ext, corr))
                buf.append('{"ph": "s", "id": %d, "pid": %d, "tid": %d, "ts": %d.%03d, "cat": "ac2g", '
                           '"name": "ac2g"}' % (corr, pid, tid, lt // 1000, lt % 1000))
                gt = max(gt, lt + 5000)
                kd = rnd.randrange(2000, 60000)
                buf.append('{"ph": "X", "cat": "kernel", "name": "%s", "pid": %d, "tid": 7, "ts": %d.%03d, '
                           '"dur": %d.%03d, "args": {"External id": %d, "queued": 0, "device": %d, "context": 1, '
                           '"stream": 7, "correlation": %d, "registers per thread": 128, "shared memory": 0, '
                           '"blocks per SM": 1.5, "warps per SM": 6, "grid": [132, 1, 1], "block": [256, 1, 1], '
                           '"est. achieved occupancy %%": 9}}' % (
                               KERNELS[k], gpu, gt // 1000, gt % 1000, kd // 1000, kd % 1000, ext, gpu, corr))
                buf.append('{"ph": "f", "id": %d, "pid": %d, "tid": 7, "ts": %d.%03d, "cat": "ac2g", '
                           '"name": "ac2g", "bp": "e"}' % (corr, gpu, gt // 1000, gt % 1000))
                gt += kd + rnd.randrange(500, 3000)
                t += op_dur
                corr += 1
                ext += 1
            # tensor-parallel all-reduce on the communication stream
            cd = rnd.randrange(8000, 30000)
            buf.append('{"ph": "X", "cat": "kernel", "name": "%s", "pid": %d, "tid": 27, "ts": %d.%03d, '
                       '"dur": %d.%03d, "args": {"External id": %d, "device": %d, "stream": 27, "correlation": %d, '
                       '"Collective name": "allreduce", "In msg nelems": 131072, "Out msg nelems": 131072, '
                       '"Group size": 8, "dtype": "BFloat16", "Process Group Name": "0"}}' % (
                           NCCL, gpu, gt // 1000, gt % 1000, cd // 1000, cd % 1000, ext, gpu, corr))
            gt += cd
            corr += 1
            ext += 1
        buf.append('{"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH (Device -> Pinned)", "pid": %d, '
                   '"tid": 7, "ts": %d.%03d, "dur": 4.%03d, "args": {"device": %d, "stream": 7, "bytes": 256}}' % (
                       gpu, gt // 1000, gt % 1000, rnd.randrange(1000), gpu))
        buf.append('{"ph": "X", "cat": "user_annotation", "name": "step[DECODE bs=%d]", "pid": %d, "tid": %d, '
                   '"ts": %d.%03d, "dur": %d.%03d, "args": {"External id": %d}}' % (
                       32 + step % 32, pid, tid, step_start // 1000, step_start % 1000, (t - step_start) // 1000,
                       (t - step_start) % 1000, ext))
        ext += 1
        step += 1
        t = max(t, gt) + 20000
        gt = t
        text = ",\n".join(buf)
        if not first:
            text = ",\n" + text
        first = False
        out.write(text)
        written += len(text)
        chunks.append(len(buf))
    tail = ('\n], "traceName": "synthetic-TP-%d.trace.json"}\n' % a.rank)
    out.write(tail)
    out.close()
    print("%s: %d steps, %d events, %.1f MB" % (a.out, step, sum(chunks), (written + len(tail)) / 1e6),
          file=sys.stderr)


if __name__ == "__main__":
    main()
