//! The language model as the evaluator sees it: a tokenizer that encodes and decodes
//! ([`TextCodec`]), and [`LmTaskModel`], which implements `bench_tasks::TaskModel` (option
//! log-likelihoods in batches, greedy generation with stop tokens) for a [`CausalLm`].

use backbone::{CausalLm, GenerateConfig, TextTokenizer, TokenBatch};
use bench_tasks::format::{ByteTokenizer, Formatter, TokenCounter};
use bench_tasks::{OptionScore, Record, Task, TaskModel};

/// Text ⇄ token ids: the model's own tokenizer, or bytes for the smoke suite's tiny model.
pub enum TextCodec {
    /// Byte-level (id = UTF-8 byte), vocabulary 256.
    Bytes,
    /// A Hugging Face or GGUF tokenizer.
    Hf(Box<TextTokenizer>),
}

impl TokenCounter for TextCodec {
    fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            TextCodec::Bytes => ByteTokenizer.encode(text),
            // The tokenizers crate fails only on a broken tokenizer, not on text.
            TextCodec::Hf(t) => t.encode(text).unwrap_or_else(|e| panic!("tokenizer failed on {text:?}: {e}")),
        }
    }
}

impl TextCodec {
    /// Text of ids (special tokens kept, so stop strings can be found in it).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            TextCodec::Bytes => ByteTokenizer::decode(ids),
            TextCodec::Hf(t) => t.decode(ids).unwrap_or_default(),
        }
    }

    /// Ids that end a generation: single-token stop strings of the template and the EOS ids.
    pub fn stop_ids(&self, chat: &chat_template::ChatConfig, model_eos: &[u32]) -> Vec<u32> {
        let mut ids: Vec<u32> = match self {
            TextCodec::Bytes => chat.template.stop_strings().iter().filter(|s| s.len() == 1).map(|s| s.as_bytes()[0] as u32).collect(),
            TextCodec::Hf(t) => {
                let mut v: Vec<u32> = chat.template.stop_strings().iter().filter_map(|s| t.token_id(s)).collect();
                v.extend(t.eos_id);
                v
            }
        };
        ids.extend_from_slice(model_eos);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// A model, its formatter and its generation settings: what `bench_tasks::evaluate` needs.
pub struct LmTaskModel<'a> {
    /// The network (evaluated as is: pass `model.valid()` to skip autodiff bookkeeping).
    pub model: &'a CausalLm,
    /// Prompt formatting (chat template, maximum length).
    pub formatter: &'a Formatter<TextCodec>,
    /// Greedy generation length.
    pub max_new_tokens: usize,
    /// Generation stops after any of these.
    pub stop_ids: Vec<u32>,
    /// Sequences per forward pass when scoring options.
    pub batch_size: usize,
    /// Sequences and tokens run so far (for the cost accounting).
    pub forwards: u64,
    /// Tokens through the model so far.
    pub tokens: u64,
}

impl TaskModel for LmTaskModel<'_> {
    fn generate(&mut self, task: &Task, batch: &[&Record]) -> Vec<String> {
        let chat = &self.formatter.config().chat;
        batch
            .iter()
            .map(|r| {
                let Ok(prompt) = self.formatter.encode_prompt(task.system.as_deref(), r, self.max_new_tokens) else {
                    return String::new(); // cannot fit: scored as a miss
                };
                let cfg = GenerateConfig { max_new_tokens: self.max_new_tokens, stop_ids: self.stop_ids.clone(), ..Default::default() };
                let new = backbone::generate(self.model, &prompt, &cfg);
                self.forwards += new.len() as u64;
                self.tokens += (prompt.len() + new.len()) as u64;
                let text = self.formatter.tokenizer().decode(&new);
                chat.template.cut_at_stop(&text).to_string()
            })
            .collect()
    }

    fn score_options(&mut self, task: &Task, batch: &[(&Record, &[String])]) -> Vec<Vec<OptionScore>> {
        // Every (record, option) pair becomes one teacher-forced sequence; the answer tokens'
        // log-probs are summed. Sequences run `batch_size` at a time, right-padded.
        let mut seqs: Vec<(usize, Vec<u32>, usize)> = Vec::new(); // (record, ids, prompt_len)
        let mut out: Vec<Vec<OptionScore>> = batch.iter().map(|(_, o)| vec![OptionScore { logprob: f64::NEG_INFINITY, n_tokens: 0 }; o.len()]).collect();
        let mut slots = Vec::new(); // (record, option)
        for (ri, (r, options)) in batch.iter().enumerate() {
            for (oi, o) in options.iter().enumerate() {
                if let Ok(e) = self.formatter.encode_target(task.system.as_deref(), r, o) {
                    seqs.push((ri, e.input_ids, e.prompt_len));
                    slots.push((ri, oi));
                }
            }
        }
        for (chunk, slot_chunk) in seqs.chunks(self.batch_size.max(1)).zip(slots.chunks(self.batch_size.max(1))) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, s, _)| s.clone()).collect();
            let tokens = TokenBatch::padded(&ids, 0, false);
            self.forwards += 1;
            self.tokens += ids.iter().map(Vec::len).sum::<usize>() as u64;
            let lps = backbone::score::token_logprobs(self.model, &tokens);
            for ((_, s, prompt_len), (&(ri, oi), lp)) in chunk.iter().zip(slot_chunk.iter().zip(&lps)) {
                // lp[t - 1] is log p(s[t] | s[<t]); the answer is s[prompt_len..].
                let answer: Vec<f32> = (*prompt_len..s.len()).filter_map(|t| lp[t - 1]).collect();
                out[ri][oi] = OptionScore { logprob: answer.iter().map(|&x| x as f64).sum(), n_tokens: answer.len() };
            }
        }
        out
    }
}

/// Right-padded batch of encoded sequences with their answer masks, as the objectives take it.
pub fn sft_batch(encoded: &[&bench_tasks::Encoded]) -> finetune::SftBatch {
    let seq = encoded.iter().map(|e| e.input_ids.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(encoded.len() * seq);
    let mut mask = Vec::with_capacity(encoded.len() * seq);
    let mut answer = Vec::with_capacity(encoded.len() * seq);
    for e in encoded {
        let pad = seq - e.input_ids.len();
        ids.extend_from_slice(&e.input_ids);
        ids.extend(std::iter::repeat_n(0, pad));
        mask.extend(std::iter::repeat_n(true, e.input_ids.len()));
        mask.extend(std::iter::repeat_n(false, pad));
        answer.extend_from_slice(&e.answer_mask);
        answer.extend(std::iter::repeat_n(false, pad));
    }
    finetune::SftBatch { tokens: TokenBatch { ids, mask, batch: encoded.len(), seq }, answer_mask: answer }
}
