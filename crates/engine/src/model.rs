//! The Llama-family forward pass on one tensor-parallel rank: RMSNorm, RoPE, grouped-query
//! attention over the paged KV cache, SwiGLU MLP, tied or untied LM head. Attention heads, MLP
//! columns and the vocabulary are split across ranks as SGLang's column/row-parallel linears
//! do; the two all-reduces per layer and the logits all-gather go through [`Collective`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::attention;
use crate::collective::Collective;
use crate::config::ModelConfig;
use crate::error::EngineError;
use crate::kernels;
use crate::matmul::{self, Matrix, WeightDtype};
use crate::observer::{OpEvent, OpKind};
use crate::weights::WeightSource;

/// One sequence's part of a batch.
#[derive(Debug, Clone)]
pub struct SeqInput {
    /// Tokens to compute this step (the extend part, or the one decode token).
    pub tokens: Vec<u32>,
    /// Position of `tokens[0]`; positions before it are already in the KV cache.
    pub start_pos: usize,
    /// KV slot of every position `0..start_pos + tokens.len()`.
    pub slots: Vec<u32>,
    /// Compute logits for the last token (final prefill chunk or decode).
    pub want_logits: bool,
}

/// A batch as every rank sees it.
#[derive(Debug, Clone, Default)]
pub struct ForwardBatch {
    pub seqs: Vec<SeqInput>,
    /// Time each op (profiling); off costs one branch per op.
    pub record_ops: bool,
    /// Logits for every token instead of each sequence's last (reference checks).
    pub all_logits: bool,
}

impl ForwardBatch {
    pub fn num_tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.tokens.len()).sum()
    }
}

/// How one rank's share of the model is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub tp_size: usize,
    pub tp_rank: usize,
}

impl Shard {
    pub fn check(cfg: &ModelConfig, tp_size: usize) -> Result<(), EngineError> {
        let bad = |what: String| Err(EngineError::Config(format!("--tp-size {tp_size}: {what}")));
        if !cfg.num_attention_heads.is_multiple_of(tp_size) {
            return bad(format!(
                "num_attention_heads ({}) is not divisible by the tensor-parallel size",
                cfg.num_attention_heads
            ));
        }
        let kv = cfg.num_key_value_heads;
        if !kv.is_multiple_of(tp_size) && !tp_size.is_multiple_of(kv) {
            return bad(format!(
                "num_key_value_heads ({kv}) neither divides nor is divisible by the tensor-parallel size"
            ));
        }
        if !cfg.intermediate_size.is_multiple_of(tp_size) {
            return bad(format!(
                "intermediate_size ({}) is not divisible by the tensor-parallel size",
                cfg.intermediate_size
            ));
        }
        Ok(())
    }

    fn split(&self, n: usize) -> Range<usize> {
        n * self.tp_rank / self.tp_size..n * (self.tp_rank + 1) / self.tp_size
    }

    pub fn q_heads(&self, cfg: &ModelConfig) -> Range<usize> {
        self.split(cfg.num_attention_heads)
    }

    /// Local KV heads; when there are fewer KV heads than ranks each rank holds a replica of
    /// the one its query heads read (as SGLang replicates them).
    pub fn kv_heads(&self, cfg: &ModelConfig) -> Range<usize> {
        let kv = cfg.num_key_value_heads;
        if kv >= self.tp_size {
            self.split(kv)
        } else {
            let h = self.tp_rank * kv / self.tp_size;
            h..h + 1
        }
    }

    pub fn intermediate(&self, cfg: &ModelConfig) -> Range<usize> {
        self.split(cfg.intermediate_size)
    }

    pub fn vocab(&self, cfg: &ModelConfig) -> Range<usize> {
        self.split(cfg.vocab_size)
    }
}

struct Layer {
    input_norm: Vec<f32>,
    post_norm: Vec<f32>,
    qkv: Matrix,
    qkv_bias: Option<Vec<f32>>,
    o: Matrix,
    o_bias: Option<Vec<f32>>,
    gate_up: Matrix,
    gate_up_bias: Option<Vec<f32>>,
    down: Matrix,
    down_bias: Option<Vec<f32>>,
}

/// The KV cache of one rank: per layer, `[slots, local kv heads, head_dim]` for K and for V.
struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// One rank's weights, KV cache and scratch.
pub struct RankModel {
    cfg: Arc<ModelConfig>,
    pub shard: Shard,
    n_q: usize,
    n_kv: usize,
    kv_head0: usize,
    q_head0: usize,
    inter: usize,
    vocab: Range<usize>,
    embed: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Matrix,
    inv_freq: Vec<f32>,
    kv: KvCache,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

fn timed<T>(
    ops: &mut Vec<OpEvent>,
    on: bool,
    kind: OpKind,
    layer: Option<u32>,
    dims: [usize; 3],
    f: impl FnOnce() -> T,
) -> T {
    if !on {
        return f();
    }
    let start = Instant::now();
    let r = f();
    ops.push(OpEvent {
        kind,
        layer,
        start,
        end: Instant::now(),
        dims,
    });
    r
}

impl RankModel {
    /// Load every rank's shard, reading each checkpoint tensor once.
    pub fn load_all(
        cfg: Arc<ModelConfig>,
        source: &WeightSource,
        tp_size: usize,
        kv_slots: usize,
        threads_per_rank: usize,
        dtype: WeightDtype,
    ) -> Result<Vec<RankModel>, EngineError> {
        Shard::check(&cfg, tp_size)?;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nq, nkv, inter) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.intermediate_size,
        );
        let shards: Vec<Shard> = (0..tp_size)
            .map(|tp_rank| Shard { tp_size, tp_rank })
            .collect();
        let embed = source.load("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let lm_full = if cfg.tie_word_embeddings {
            None
        } else {
            Some(source.load("lm_head.weight", &[cfg.vocab_size, h])?)
        };
        let norm = source.load("model.norm.weight", &[h])?;
        let inv_freq = kernels::rope_inv_freq(hd, cfg.rope_theta, cfg.rope_scaling.as_ref());
        let mut per_rank_layers: Vec<Vec<Layer>> = shards.iter().map(|_| Vec::new()).collect();
        for l in 0..cfg.num_hidden_layers {
            let p = |n: &str| format!("model.layers.{l}.{n}");
            let input_norm = source.load(&p("input_layernorm.weight"), &[h])?;
            let post_norm = source.load(&p("post_attention_layernorm.weight"), &[h])?;
            let q = source.load(&p("self_attn.q_proj.weight"), &[nq * hd, h])?;
            let k = source.load(&p("self_attn.k_proj.weight"), &[nkv * hd, h])?;
            let v = source.load(&p("self_attn.v_proj.weight"), &[nkv * hd, h])?;
            let o = source.load(&p("self_attn.o_proj.weight"), &[h, nq * hd])?;
            let gate = source.load(&p("mlp.gate_proj.weight"), &[inter, h])?;
            let up = source.load(&p("mlp.up_proj.weight"), &[inter, h])?;
            let down = source.load(&p("mlp.down_proj.weight"), &[h, inter])?;
            let qkv_bias = if cfg.qkv_bias {
                Some((
                    source.load(&p("self_attn.q_proj.bias"), &[nq * hd])?,
                    source.load(&p("self_attn.k_proj.bias"), &[nkv * hd])?,
                    source.load(&p("self_attn.v_proj.bias"), &[nkv * hd])?,
                ))
            } else {
                None
            };
            let o_bias = if cfg.o_bias {
                Some(source.load(&p("self_attn.o_proj.bias"), &[h])?)
            } else {
                None
            };
            let mlp_bias = if cfg.mlp_bias {
                Some((
                    source.load(&p("mlp.gate_proj.bias"), &[inter])?,
                    source.load(&p("mlp.up_proj.bias"), &[inter])?,
                    source.load(&p("mlp.down_proj.bias"), &[h])?,
                ))
            } else {
                None
            };
            for (shard, layers) in shards.iter().zip(per_rank_layers.iter_mut()) {
                let qh = shard.q_heads(&cfg);
                let kh = shard.kv_heads(&cfg);
                let ir = shard.intermediate(&cfg);
                let rows = |r: &Range<usize>| r.start * hd..r.end * hd;
                let qkv = Matrix::from_hf_row_blocks(
                    h,
                    &[(&q, rows(&qh)), (&k, rows(&kh)), (&v, rows(&kh))],
                    dtype,
                );
                let qkv_bias = qkv_bias
                    .as_ref()
                    .map(|(qb, kb, vb)| [&qb[rows(&qh)], &kb[rows(&kh)], &vb[rows(&kh)]].concat());
                let gate_up =
                    Matrix::from_hf_row_blocks(h, &[(&gate, ir.clone()), (&up, ir.clone())], dtype);
                let gate_up_bias = mlp_bias
                    .as_ref()
                    .map(|(gb, ub, _)| [&gb[ir.clone()], &ub[ir.clone()]].concat());
                layers.push(Layer {
                    input_norm: input_norm.clone(),
                    post_norm: post_norm.clone(),
                    qkv,
                    qkv_bias,
                    o: Matrix::from_hf_col_slice(&o, h, nq * hd, rows(&qh), dtype),
                    o_bias: o_bias.clone(),
                    gate_up,
                    gate_up_bias,
                    down: Matrix::from_hf_col_slice(&down, h, inter, ir.clone(), dtype),
                    down_bias: mlp_bias.as_ref().map(|(_, _, db)| db.clone()),
                });
            }
        }
        let lm_src: &[f32] = lm_full.as_deref().unwrap_or(&embed);
        let mut models = Vec::with_capacity(tp_size);
        for (shard, layers) in shards.into_iter().zip(per_rank_layers) {
            let kh = shard.kv_heads(&cfg);
            let qh = shard.q_heads(&cfg);
            let vocab = shard.vocab(&cfg);
            let lm_head = Matrix::from_hf_row_blocks(h, &[(lm_src, vocab.clone())], dtype);
            let n_kv = kh.len();
            let layer_floats = kv_slots * n_kv * hd;
            let kv = KvCache {
                // Zeroed allocations are mapped lazily, so an unused pool costs no memory.
                k: (0..cfg.num_hidden_layers)
                    .map(|_| vec![0.0; layer_floats])
                    .collect(),
                v: (0..cfg.num_hidden_layers)
                    .map(|_| vec![0.0; layer_floats])
                    .collect(),
            };
            let pool = if threads_per_rank > 1 {
                Some(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads_per_rank)
                        .thread_name(move |i| format!("loupe-tp{}-w{i}", shard.tp_rank))
                        .build()
                        .map_err(|e| EngineError::Config(format!("thread pool: {e}")))?,
                )
            } else {
                None
            };
            models.push(RankModel {
                n_q: qh.len(),
                n_kv,
                kv_head0: kh.start,
                q_head0: qh.start,
                inter: shard.intermediate(&cfg).len(),
                vocab,
                embed: embed.clone(),
                layers,
                norm: norm.clone(),
                lm_head,
                inv_freq: inv_freq.clone(),
                kv,
                threads: threads_per_rank,
                pool,
                cfg: cfg.clone(),
                shard,
            });
        }
        Ok(models)
    }

    /// Run `f` on this rank's compute threads.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Run the batch. Rank 0 returns the logits `[rows wanting logits, vocab]`.
    pub fn forward(
        &mut self,
        batch: &ForwardBatch,
        comm: &Collective,
        ops: &mut Vec<OpEvent>,
    ) -> Option<Vec<f32>> {
        match self.pool.take() {
            Some(pool) => {
                let out = pool.install(|| self.forward_inner(batch, comm, ops));
                self.pool = Some(pool);
                out
            }
            None => self.forward_inner(batch, comm, ops),
        }
    }

    fn forward_inner(
        &mut self,
        batch: &ForwardBatch,
        comm: &Collective,
        ops: &mut Vec<OpEvent>,
    ) -> Option<Vec<f32>> {
        let cfg = self.cfg.clone();
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let t = batch.num_tokens();
        let rec = batch.record_ops;
        let threads = self.threads;
        let rank = self.shard.tp_rank;
        let q_width = self.n_q * hd;
        let kv_width = self.n_kv * hd;
        let qkv_width = q_width + 2 * kv_width;

        // Per token: its sequence, its position and its KV slot.
        let mut tok_seq = Vec::with_capacity(t);
        let mut positions = Vec::with_capacity(t);
        let mut tok_slots = Vec::with_capacity(t);
        for (si, s) in batch.seqs.iter().enumerate() {
            for i in 0..s.tokens.len() {
                tok_seq.push(si);
                positions.push(s.start_pos + i);
                tok_slots.push(s.slots[s.start_pos + i]);
            }
        }

        let mut x = vec![0.0f32; t * h];
        timed(ops, rec, OpKind::Embedding, None, [t, h, 0], || {
            let mut row = 0;
            for s in &batch.seqs {
                for &tok in &s.tokens {
                    let tok = (tok as usize).min(cfg.vocab_size - 1);
                    x[row * h..(row + 1) * h].copy_from_slice(&self.embed[tok * h..(tok + 1) * h]);
                    row += 1;
                }
            }
        });
        let (cos, sin) = kernels::rope_tables(&self.inv_freq, positions.iter().copied());
        let half = hd / 2;

        let mut normed = vec![0.0f32; t * h];
        let mut qkv = vec![0.0f32; t * qkv_width];
        let mut attn = vec![0.0f32; t * q_width];
        let mut proj = vec![0.0f32; t * h];
        let mut gu = vec![0.0f32; t * 2 * self.inter];
        let mut act = vec![0.0f32; t * self.inter];
        let scale = 1.0 / (hd as f32).sqrt();
        let q_per_kv = cfg.num_attention_heads / cfg.num_key_value_heads;

        for (li, layer) in self.layers.iter().enumerate() {
            let l = Some(li as u32);
            timed(ops, rec, OpKind::InputNorm, l, [t, h, 0], || {
                kernels::rms_norm(&mut normed, &x, &layer.input_norm, cfg.rms_norm_eps)
            });
            timed(ops, rec, OpKind::QkvProj, l, [t, h, qkv_width], || {
                matmul::matmul(&mut qkv, &normed, t, &layer.qkv, threads);
                if let Some(b) = &layer.qkv_bias {
                    kernels::add_bias(&mut qkv, b);
                }
            });
            let (kc, vc) = (&mut self.kv.k[li], &mut self.kv.v[li]);
            timed(ops, rec, OpKind::Rope, l, [t, qkv_width, 0], || {
                for (ti, row) in qkv.chunks_exact_mut(qkv_width).enumerate() {
                    let (c, s) = (
                        &cos[ti * half..(ti + 1) * half],
                        &sin[ti * half..(ti + 1) * half],
                    );
                    let (q, kv) = row.split_at_mut(q_width);
                    for head in q.chunks_exact_mut(hd) {
                        kernels::rope_apply(head, c, s);
                    }
                    let (k, v) = kv.split_at_mut(kv_width);
                    for head in k.chunks_exact_mut(hd) {
                        kernels::rope_apply(head, c, s);
                    }
                    let slot = tok_slots[ti] as usize;
                    kc[slot * kv_width..(slot + 1) * kv_width].copy_from_slice(k);
                    vc[slot * kv_width..(slot + 1) * kv_width].copy_from_slice(v);
                }
            });
            let (kc, vc) = (&self.kv.k[li], &self.kv.v[li]);
            let heads = attention::Heads {
                head_dim: hd,
                n_q: self.n_q,
                kv_width,
                q_head0: self.q_head0,
                kv_head0: self.kv_head0,
                q_per_kv,
                scale,
            };
            timed(ops, rec, OpKind::Attention, l, [t, q_width, 0], || {
                let row_job = |(ti, out): (usize, &mut [f32]), scores: &mut Vec<f32>| {
                    let seq = &batch.seqs[tok_seq[ti]];
                    let q_row = &qkv[ti * qkv_width..ti * qkv_width + q_width];
                    attention::attend_row(
                        &heads,
                        q_row,
                        &seq.slots,
                        positions[ti] + 1,
                        kc,
                        vc,
                        out,
                        scores,
                    );
                };
                if threads > 1 {
                    attn.par_chunks_mut(q_width)
                        .enumerate()
                        .for_each_init(Vec::new, |scores, item| row_job(item, scores));
                } else {
                    let mut scores = Vec::new();
                    attn.chunks_mut(q_width)
                        .enumerate()
                        .for_each(|item| row_job(item, &mut scores));
                }
            });
            timed(ops, rec, OpKind::OProj, l, [t, q_width, h], || {
                matmul::matmul(&mut proj, &attn, t, &layer.o, threads)
            });
            if comm.size() > 1 {
                timed(ops, rec, OpKind::AllReduce, l, [t, h, 0], || {
                    comm.all_reduce(rank, &mut proj)
                });
            }
            if let Some(b) = &layer.o_bias {
                kernels::add_bias(&mut proj, b);
            }
            for (xv, pv) in x.iter_mut().zip(&proj) {
                *xv += pv;
            }
            timed(ops, rec, OpKind::PostAttentionNorm, l, [t, h, 0], || {
                kernels::rms_norm(&mut normed, &x, &layer.post_norm, cfg.rms_norm_eps)
            });
            timed(
                ops,
                rec,
                OpKind::GateUpProj,
                l,
                [t, h, 2 * self.inter],
                || {
                    matmul::matmul(&mut gu, &normed, t, &layer.gate_up, threads);
                    if let Some(b) = &layer.gate_up_bias {
                        kernels::add_bias(&mut gu, b);
                    }
                },
            );
            timed(ops, rec, OpKind::SiluAndMul, l, [t, self.inter, 0], || {
                kernels::silu_mul(&mut act, &gu, self.inter)
            });
            timed(ops, rec, OpKind::DownProj, l, [t, self.inter, h], || {
                matmul::matmul(&mut proj, &act, t, &layer.down, threads)
            });
            if comm.size() > 1 {
                timed(ops, rec, OpKind::AllReduce, l, [t, h, 0], || {
                    comm.all_reduce(rank, &mut proj)
                });
            }
            if let Some(b) = &layer.down_bias {
                kernels::add_bias(&mut proj, b);
            }
            for (xv, pv) in x.iter_mut().zip(&proj) {
                *xv += pv;
            }
        }

        // Logits for the last token of every sequence that asked for them.
        let rows: Vec<usize> = {
            let mut end = 0;
            let mut rows = Vec::new();
            for s in &batch.seqs {
                let start = end;
                end += s.tokens.len();
                if batch.all_logits {
                    rows.extend(start..end);
                } else if s.want_logits {
                    rows.push(end - 1);
                }
            }
            rows
        };
        let n = rows.len();
        if n == 0 {
            return None;
        }
        let mut last = vec![0.0f32; n * h];
        for (i, &r) in rows.iter().enumerate() {
            last[i * h..(i + 1) * h].copy_from_slice(&x[r * h..(r + 1) * h]);
        }
        let mut last_normed = vec![0.0f32; n * h];
        timed(ops, rec, OpKind::FinalNorm, None, [n, h, 0], || {
            kernels::rms_norm(&mut last_normed, &last, &self.norm, cfg.rms_norm_eps)
        });
        let v_local = self.vocab.len();
        let mut local = vec![0.0f32; n * v_local];
        timed(ops, rec, OpKind::LmHead, None, [n, h, v_local], || {
            matmul::matmul(&mut local, &last_normed, n, &self.lm_head, threads)
        });
        if comm.size() == 1 {
            return Some(local);
        }
        timed(
            ops,
            rec,
            OpKind::AllGather,
            None,
            [n, cfg.vocab_size, 0],
            || comm.gather_columns(rank, &local, n, cfg.vocab_size),
        )
    }
}
