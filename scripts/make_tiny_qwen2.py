"""A tiny Qwen2 checkpoint with random weights and head_dim 64 (vLLM's CPU attention refuses
head_dim 16), with a byte-level BPE tokenizer trained on a few sentences: what
scripts/vllm_cpu_check.sh serves. Usage: python make_tiny_qwen2.py OUT_DIR"""
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

out = sys.argv[1]
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
corpus = ["the quick brown fox jumps over the lazy dog " * 4, "profiling an inference server " * 4]
bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
tok.save_pretrained(out)
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
                  eos_token_id=0, bos_token_id=0, tie_word_embeddings=True, torch_dtype="float32")
Qwen2ForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
print(out)
