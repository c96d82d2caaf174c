//! The language model as the evaluator sees it: a tokenizer that encodes and decodes
//! ([`TextCodec`]), and [`LmTaskModel`], which implements `bench_tasks::TaskModel` (option
//! log-likelihoods in batches, greedy generation with stop tokens) for a [`CausalLm`].

use backbone::{CausalLm, GenerateConfig, TextTokenizer};
use bench_tasks::Encoded;
use bench_tasks::format::{ByteTokenizer, Formatter, TokenCounter};
use bench_tasks::{EvalReport, OptionScore, Record, Task, TaskModel};

use crate::method::TrainSettings;

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

/// Scores `records` of `task` with its metric (`bench_tasks::evaluate`), with the settings'
/// generation length and evaluation batch size. `model` is evaluated as is: pass `.valid()`.
pub fn evaluate_records(
    model: &CausalLm,
    formatter: &Formatter<TextCodec>,
    stop_ids: &[u32],
    settings: &TrainSettings,
    task: &Task,
    records: &[Record],
) -> EvalReport {
    let mut lm = LmTaskModel { model, formatter, max_new_tokens: settings.max_new_tokens, stop_ids: stop_ids.to_vec(), forwards: 0, tokens: 0 };
    bench_tasks::evaluate(task, records, &mut lm, settings.eval_batch_size)
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
    /// Sequences and tokens run so far (for the cost accounting).
    pub forwards: u64,
    /// Tokens through the model so far.
    pub tokens: u64,
}

impl TaskModel for LmTaskModel<'_> {
    fn generate(&mut self, task: &Task, batch: &[&Record]) -> Vec<String> {
        // The records' prompts decode together (left-padded, one KV cache); a record whose
        // prompt cannot fit gets an empty answer, scored as a miss.
        let prompts: Vec<Option<Vec<u32>>> =
            batch.iter().map(|r| self.formatter.encode_prompt(task.system.as_deref(), r, self.max_new_tokens).ok()).collect();
        let fitting: Vec<Vec<u32>> = prompts.iter().flatten().cloned().collect();
        let cfg = GenerateConfig { max_new_tokens: self.max_new_tokens, stop_ids: self.stop_ids.clone(), ..Default::default() };
        let generated = backbone::generate_greedy_batch(self.model, &fitting, &cfg);
        let steps = generated.iter().map(Vec::len).max().unwrap_or(0);
        let mut generated = generated.into_iter();
        self.forwards += steps as u64;
        self.tokens += fitting.iter().map(|p| p.len() as u64).sum::<u64>() + (steps * fitting.len()) as u64;
        let chat = &self.formatter.config().chat;
        prompts
            .iter()
            .map(|p| match p {
                Some(_) => {
                    let new = generated.next().unwrap_or_default();
                    chat.template.cut_at_stop(&self.formatter.tokenizer().decode(&new)).to_string()
                }
                None => String::new(),
            })
            .collect()
    }

    fn score_options(&mut self, task: &Task, batch: &[(&Record, &[String])]) -> Vec<Vec<OptionScore>> {
        // Per record: the prompt is encoded once and every option continues it (one batch of
        // continuations over a shared KV cache). When truncation makes the options' prompts
        // differ (a long option cuts more of the prompt), each option is scored on its own.
        batch
            .iter()
            .map(|(r, options)| {
                let encoded: Vec<Option<Encoded>> =
                    options.iter().map(|o| self.formatter.encode_target(task.system.as_deref(), r, o).ok()).collect();
                let prompt = encoded.iter().flatten().next().map(|e| e.prompt_ids().to_vec());
                let shared = prompt.as_ref().is_some_and(|p| encoded.iter().flatten().all(|e| e.prompt_ids() == p.as_slice()));
                let miss = OptionScore { logprob: f64::NEG_INFINITY, n_tokens: 0 };
                if shared {
                    let prompt = prompt.expect("checked");
                    let conts: Vec<Vec<u32>> = encoded.iter().map(|e| e.as_ref().map_or(vec![], |e| e.answer_ids().to_vec())).collect();
                    self.forwards += 2;
                    self.tokens += (prompt.len() + conts.iter().map(Vec::len).sum::<usize>()) as u64;
                    backbone::continuation_logprobs(self.model, &prompt, &conts)
                        .into_iter()
                        .zip(&encoded)
                        .map(|((lp, n), e)| if e.is_some() { OptionScore { logprob: lp, n_tokens: n } } else { miss })
                        .collect()
                } else {
                    encoded
                        .iter()
                        .map(|e| match e {
                            Some(e) => {
                                self.forwards += 1;
                                self.tokens += e.input_ids.len() as u64;
                                let (lp, n) = backbone::continuation_logprobs(self.model, e.prompt_ids(), &[e.answer_ids().to_vec()])[0];
                                OptionScore { logprob: lp, n_tokens: n }
                            }
                            None => miss,
                        })
                        .collect()
                }
            })
            .collect()
    }
}

/// Right-padded batch of encoded sequences with their answer masks, as the objectives take it.
pub fn sft_batch(encoded: &[&bench_tasks::Encoded]) -> finetune::SftBatch {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = encoded.iter().map(|e| (e.prompt_ids().to_vec(), e.answer_ids().to_vec())).collect();
    finetune::SftBatch::from_pairs(&pairs, 0)
}
