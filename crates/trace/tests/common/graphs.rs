//! Small Kineto traces of CUDA-graph serving, shaped like SGLang's: a capture trace (warm-up
//! launches, then per graph `cudaStreamBeginCapture`, the model's forward under `nn.Module`
//! frames with its launch calls, `cudaStreamEndCapture`; no kernels run) and a replay trace
//! (per step a `step[DECODE bs=N]` span, one `cudaGraphLaunch` whose correlation every replayed
//! kernel carries, and an eager `aten::argmax` launch). Shared by loupe-trace's and the
//! binary's tests (`#[path]`), so it needs nothing but std.

#![allow(dead_code)]

/// One launch call of a captured layer, and the GPU operation it makes.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    /// The `nn.Module` inside the layer (`Attention`, `MLP`).
    pub module: &'static str,
    pub op: &'static str,
    /// `cudaLaunchKernel`, `cudaMemcpyAsync`.
    pub api: &'static str,
    /// The GPU operation's name (a memcpy's as Kineto names it).
    pub gpu: &'static str,
    /// Its duration when replayed, µs.
    pub us: i64,
}

impl Launch {
    fn is_memcpy(&self) -> bool {
        self.api.contains("Memcpy")
    }
}

/// A captured graph: `layers` decoder layers, each making `per_layer`'s launches.
#[derive(Clone, Debug)]
pub struct Graph {
    pub layers: usize,
    pub per_layer: Vec<Launch>,
}

impl Graph {
    /// The graph's GPU operations in launch order.
    pub fn ops(&self) -> Vec<Launch> {
        (0..self.layers)
            .flat_map(|_| self.per_layer.iter().copied())
            .collect()
    }
}

fn x(cat: &str, name: &str, tid: u32, ts: i64, dur: i64, args: &str) -> String {
    format!(
        r#"{{"ph":"X","cat":"{cat}","name":"{name}","pid":1,"tid":{tid},"ts":{ts},"dur":{dur},"args":{{{args}}}}}"#
    )
}

fn trace(events: &[String]) -> String {
    format!(
        r#"{{"schemaVersion":1,"displayTimeUnit":"ms","traceEvents":[{}]}}"#,
        events.join(",\n")
    )
}

/// A capture trace of `graphs`, in order; `kernel_args`: whether launch calls carry
/// `args.kernel` (newer profilers record it).
pub fn capture_trace(graphs: &[Graph], kernel_args: bool) -> String {
    let mut ev = Vec::new();
    let mut corr = 1000;
    // an eager warm-up forward before capturing: launches outside every region, and its kernel
    ev.push(x("cpu_op", "aten::warmup", 1, 10, 20, ""));
    ev.push(x(
        "cuda_runtime",
        "cudaLaunchKernel",
        1,
        15,
        5,
        &format!(r#""correlation":{corr},"kernel":"warmup_kernel""#),
    ));
    ev.push(x(
        "kernel",
        "warmup_kernel",
        7,
        40,
        3,
        &format!(r#""stream":7,"correlation":{corr}"#),
    ));
    let mut t = 1_000;
    for g in graphs {
        corr += 1;
        ev.push(x(
            "cuda_runtime",
            "cudaStreamBeginCapture",
            1,
            t,
            5,
            &format!(r#""correlation":{corr}"#),
        ));
        let per = g.per_layer.len() as i64;
        let layer_us = 10 + per * 100;
        let model_start = t + 10;
        let model_us = g.layers as i64 * (layer_us + 10);
        ev.push(x(
            "python_function",
            "nn.Module: Qwen3Model_0",
            1,
            model_start,
            model_us,
            "",
        ));
        for layer in 0..g.layers {
            let l = model_start + 5 + layer as i64 * (layer_us + 10);
            ev.push(x(
                "python_function",
                &format!("nn.Module: Qwen3DecoderLayer_{layer}"),
                1,
                l,
                layer_us,
                "",
            ));
            for (k, launch) in g.per_layer.iter().enumerate() {
                corr += 1;
                let m = l + 5 + k as i64 * 100;
                ev.push(x(
                    "python_function",
                    &format!("nn.Module: {}_0", launch.module),
                    1,
                    m,
                    90,
                    "",
                ));
                ev.push(x("cpu_op", launch.op, 1, m + 5, 80, ""));
                let args = if kernel_args && !launch.is_memcpy() {
                    format!(r#""correlation":{corr},"kernel":"{}""#, launch.gpu)
                } else {
                    format!(r#""correlation":{corr}"#)
                };
                ev.push(x("cuda_runtime", launch.api, 1, m + 10, 20, &args));
            }
        }
        let end = model_start + model_us + 10;
        corr += 1;
        ev.push(x(
            "cuda_runtime",
            "cudaStreamEndCapture",
            1,
            end,
            5,
            &format!(r#""correlation":{corr}"#),
        ));
        t = end + 1_000;
    }
    trace(&ev)
}

/// One decode step of a replay trace.
#[derive(Clone, Debug)]
pub struct Step {
    pub batch_size: u64,
    /// What the step's graph launch replays.
    pub replayed: Vec<Launch>,
    /// The eager `aten::argmax` kernel after it, µs.
    pub argmax_us: i64,
}

/// The op around each step's `cudaGraphLaunch`.
pub const REPLAY_OP: &str = "CudaGraphRunner::replay";

/// A replay trace of `steps`. Each step's kernels run back to back on stream 7.
pub fn replay_trace(steps: &[Step]) -> String {
    let mut ev = Vec::new();
    let mut corr = 1;
    let mut t = 1_000;
    for s in steps {
        let gpu_us: i64 = s.replayed.iter().map(|l| l.us).sum::<i64>() + s.argmax_us;
        let span = 200 + gpu_us + 100;
        ev.push(x(
            "user_annotation",
            &format!("step[DECODE bs={}]", s.batch_size),
            1,
            t,
            span,
            "",
        ));
        ev.push(x("cpu_op", REPLAY_OP, 1, t + 10, 40, ""));
        ev.push(x(
            "cuda_runtime",
            "cudaGraphLaunch",
            1,
            t + 15,
            20,
            &format!(r#""correlation":{corr}"#),
        ));
        let mut g = t + 100;
        for l in &s.replayed {
            let cat = if l.is_memcpy() {
                "gpu_memcpy"
            } else {
                "kernel"
            };
            ev.push(x(
                cat,
                l.gpu,
                7,
                g,
                l.us,
                &format!(r#""stream":7,"correlation":{corr}"#),
            ));
            g += l.us;
        }
        corr += 1;
        ev.push(x("cpu_op", "aten::argmax", 1, t + 60, 30, ""));
        ev.push(x(
            "cuda_runtime",
            "cudaLaunchKernel",
            1,
            t + 65,
            10,
            &format!(r#""correlation":{corr}"#),
        ));
        ev.push(x(
            "kernel",
            "argmax_kernel",
            7,
            g,
            s.argmax_us,
            &format!(r#""stream":7,"correlation":{corr}"#),
        ));
        corr += 1;
        t += span + 50;
    }
    trace(&ev)
}

/// A small decode graph (batch size 8): per layer a QKV GEMM, attention, a copy, an MLP GEMM.
pub fn graph_bs8() -> Graph {
    Graph {
        layers: 2,
        per_layer: vec![
            Launch {
                module: "Attention",
                op: "aten::mm",
                api: "cudaLaunchKernel",
                gpu: "gemm_qkv_bs8",
                us: 30,
            },
            Launch {
                module: "Attention",
                op: "flash::decode",
                api: "cudaLaunchKernel",
                gpu: "attn_decode_bs8",
                us: 50,
            },
            Launch {
                module: "MLP",
                op: "aten::copy_",
                api: "cudaMemcpyAsync",
                gpu: "Memcpy DtoD (Device -> Device)",
                us: 4,
            },
            Launch {
                module: "MLP",
                op: "aten::mm",
                api: "cudaLaunchKernel",
                gpu: "gemm_mlp_bs8",
                us: 40,
            },
        ],
    }
}

/// The batch-size-16 graph: other GEMM tiles, and split-KV attention (two kernels).
pub fn graph_bs16() -> Graph {
    Graph {
        layers: 2,
        per_layer: vec![
            Launch {
                module: "Attention",
                op: "aten::mm",
                api: "cudaLaunchKernel",
                gpu: "gemm_qkv_bs16",
                us: 60,
            },
            Launch {
                module: "Attention",
                op: "flash::decode",
                api: "cudaLaunchKernel",
                gpu: "attn_split_bs16",
                us: 70,
            },
            Launch {
                module: "Attention",
                op: "flash::decode",
                api: "cudaLaunchKernel",
                gpu: "attn_combine_bs16",
                us: 10,
            },
            Launch {
                module: "MLP",
                op: "aten::copy_",
                api: "cudaMemcpyAsync",
                gpu: "Memcpy DtoD (Device -> Device)",
                us: 6,
            },
            Launch {
                module: "MLP",
                op: "aten::mm",
                api: "cudaLaunchKernel",
                gpu: "gemm_mlp_bs16",
                us: 80,
            },
        ],
    }
}

/// A graph that no capture holds.
pub fn stray() -> Vec<Launch> {
    vec![Launch {
        module: "Other",
        op: "other",
        api: "cudaLaunchKernel",
        gpu: "uncaptured_kernel",
        us: 15,
    }]
}

/// Steps at batch sizes 8, 12 (the bs-16 graph), 4 (bs 8) and a stray graph.
pub fn decode_steps() -> Vec<Step> {
    vec![
        Step {
            batch_size: 8,
            replayed: graph_bs8().ops(),
            argmax_us: 5,
        },
        Step {
            batch_size: 12,
            replayed: graph_bs16().ops(),
            argmax_us: 5,
        },
        Step {
            batch_size: 4,
            replayed: graph_bs8().ops(),
            argmax_us: 5,
        },
        Step {
            batch_size: 8,
            replayed: stray(),
            argmax_us: 5,
        },
    ]
}
