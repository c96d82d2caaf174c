#!/usr/bin/env python3
"""PyTorch + PEFT reference numbers for `cargo xtask bench`.

Same model (the SmolLM2-135M-Instruct GGUF, dequantised to f32 by transformers), same batch of
random token ids, same LoRA (rank 8, alpha 16, q/k/v/o/gate/up/down), same thread count, AdamW.
Prints one JSON object on stdout.

    python3 xtask/bench/torch_peft_bench.py --model ~/.cache/continual-lm/SmolLM2-135M-Instruct.Q4_1.gguf \
        --batch 8 --seq 256 --steps 3 --threads 2

With --random-weights, --model is a directory holding a config.json and the model has that
architecture with random weights (throughput does not depend on the values). --device cuda runs
on the GPU (times taken after torch.cuda.synchronize; memory is the GPU's peak allocation).
"""
import argparse, json, os, resource, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sgemm", default="2048x2048x2048,2048x576x1536",
                    help="m x k x n sizes of the sgemm measurements, comma-separated (cargo xtask bench passes its own)")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    import transformers, peft
    from transformers import AutoConfig, AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model

    if a.random_weights:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.model), dtype=torch.float32)
    else:
        d, f = os.path.split(os.path.abspath(a.model))
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.to(a.device).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq), generator=g).to(a.device)
    tokens = a.batch * a.seq

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def timed(fn, n):
        for _ in range(a.warmup):
            fn()
        sync()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        return (time.perf_counter() - t) / n

    with torch.no_grad():
        fwd = timed(lambda: model(ids).logits.sum().item(), a.steps)

    # The machine's sgemm through PyTorch (MKL/oneDNN), at the sizes the Rust side measures.
    sgemm = []
    for m, k, n in (map(int, size.split("x")) for size in a.sgemm.split(",")):
        x, y = torch.randn(m, k, device=a.device), torch.randn(k, n, device=a.device)
        best = float("inf")
        for i in range(6):
            sync()
            t = time.perf_counter()
            torch.mm(x, y)
            sync()
            if i:
                best = min(best, time.perf_counter() - t)
        sgemm.append(2.0 * m * k * n / best)

    cfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    pm = get_peft_model(model, cfg)
    pm.train()
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4)

    def step():
        out = pm(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train = timed(step, a.steps)
    print(json.dumps({
        "impl": "pytorch+peft",
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "threads": torch.get_num_threads(), "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "forward_s": fwd, "forward_tokens_per_s": tokens / fwd,
        "lora_step_s": train, "lora_step_tokens_per_s": tokens / train,
        "sgemm_flop_per_s": sgemm,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "device": a.device, "random_weights": a.random_weights,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else None,
    }))

if __name__ == "__main__":
    main()
