//! The language model as the evaluator sees it: a tokenizer that encodes and decodes
//! ([`TextCodec`]), and [`LmTaskModel`], which implements `bench_tasks::TaskModel` (option
//! log-likelihoods in batches, greedy generation with stop tokens) for a [`CausalLm`].

use backbone::{CausalLm, GenerateConfig, TextTokenizer};
use bench_tasks::Encoded;
use bench_tasks::format::{ByteTokenizer, Formatter, TokenCounter};
use bench_tasks::{EvalReport, OptionScore, Record, Suite, Task, TaskModel};

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
            TextCodec::Hf(t) => t
                .encode(text)
                .unwrap_or_else(|e| panic!("tokenizer failed on {text:?}: {e}")),
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
            TextCodec::Bytes => chat
                .template
                .stop_strings()
                .iter()
                .filter(|s| s.len() == 1)
                .map(|s| s.as_bytes()[0] as u32)
                .collect(),
            TextCodec::Hf(t) => {
                let mut v: Vec<u32> = chat
                    .template
                    .stop_strings()
                    .iter()
                    .filter_map(|s| t.token_id(s))
                    .collect();
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

/// The model as evaluation runs it: without autodiff bookkeeping (`valid()`), and with
/// `merge_adapter` its active LoRA adapters folded into a copy of each base weight
/// (`W + s·A·B`), so that each projection is one product instead of three. `model` itself is
/// not changed: the copy's merged weights are new tensors.
pub fn inference_model(model: &CausalLm, merge_adapter: bool) -> CausalLm {
    let mut m = burn::module::Module::valid(model);
    if merge_adapter {
        lora::merge_adapters(&mut m);
    }
    m
}

/// Scores `records` of `task` with its metric (`bench_tasks::evaluate`), with the settings'
/// generation length and evaluation batch size. `model` is evaluated as is: pass
/// [`inference_model`]'s.
pub fn evaluate_records(
    model: &CausalLm,
    formatter: &Formatter<TextCodec>,
    stop_ids: &[u32],
    settings: &TrainSettings,
    task: &Task,
    records: &[Record],
) -> EvalReport {
    let mut lm = LmTaskModel::new(model, formatter, stop_ids, settings);
    bench_tasks::evaluate(task, records, &mut lm, settings.eval_batch_size)
}

/// What [`evaluate_row`] gives: a report per set, in the sets' order, the seconds of the
/// generative sets together, and the tokens run (as [`LmTaskModel`] counts them).
pub struct RowReport {
    /// One report per set.
    pub reports: Vec<EvalReport>,
    /// Seconds of the generative sets' shared passes.
    pub generative_seconds: f64,
    /// Tokens through the model (prompts, options, generated steps).
    pub tokens: u64,
}

/// The sets a row of the accuracy matrix scores: every task of `suite` on its first
/// `eval_limit` test records, then every probe on its first `probe_eval_limit` (default:
/// `eval_limit`).
pub fn eval_sets<'s>(suite: &'s Suite, settings: &TrainSettings) -> Vec<(&'s Task, &'s [Record])> {
    let limit = settings.eval_limit.unwrap_or(usize::MAX);
    let probe_limit = settings.probe_eval_limit.unwrap_or(limit);
    let first = |t: &'s Task, n: usize| (t, &t.test[..t.test.len().min(n)]);
    suite
        .tasks
        .iter()
        .map(|t| first(t, limit))
        .chain(suite.probes.iter().map(|t| first(t, probe_limit)))
        .collect()
}

/// One row of the accuracy matrix: every `(task, records)` set scored with its metric, with the
/// settings' generation length and evaluation batch size. Sets that rank options are scored one
/// at a time; the generative ones together (`bench_tasks::evaluate_generative`), so that one
/// decoding pass, whose cost is reading the weights, serves the records of several tasks.
/// `done(i, seconds)` is called as set `i` is scored, with its own seconds when it was scored
/// alone (`None` for the generative sets, which share their passes).
pub fn evaluate_row(
    model: &CausalLm,
    formatter: &Formatter<TextCodec>,
    stop_ids: &[u32],
    settings: &TrainSettings,
    sets: &[(&Task, &[Record])],
    mut done: impl FnMut(usize, Option<f64>),
) -> RowReport {
    let mut lm = LmTaskModel::new(model, formatter, stop_ids, settings);
    let mut reports: Vec<Option<EvalReport>> = vec![None; sets.len()];
    let generative: Vec<usize> = (0..sets.len())
        .filter(|&i| !sets[i].0.metric.is_ranking())
        .collect();
    for (i, (task, records)) in sets.iter().enumerate() {
        if !generative.contains(&i) {
            let t = std::time::Instant::now();
            reports[i] = Some(bench_tasks::evaluate(
                task,
                records,
                &mut lm,
                settings.eval_batch_size,
            ));
            done(i, Some(t.elapsed().as_secs_f64()));
        }
    }
    let t = std::time::Instant::now();
    let gen_sets: Vec<(&Task, &[Record])> = generative.iter().map(|&i| sets[i]).collect();
    let gen_reports =
        bench_tasks::evaluate_generative(&gen_sets, &mut lm, settings.eval_batch_size);
    let generative_seconds = t.elapsed().as_secs_f64();
    for (&i, r) in generative.iter().zip(gen_reports) {
        reports[i] = Some(r);
        done(i, None);
    }
    RowReport {
        reports: reports
            .into_iter()
            .map(|r| r.expect("every set is scored"))
            .collect(),
        generative_seconds,
        tokens: lm.tokens,
    }
}

/// A model, its formatter and its generation settings: what `bench_tasks::evaluate` needs.
pub struct LmTaskModel<'a> {
    /// The network (evaluated as is: pass [`inference_model`]'s).
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

impl<'a> LmTaskModel<'a> {
    /// With the settings' generation length, counters at zero.
    pub fn new(
        model: &'a CausalLm,
        formatter: &'a Formatter<TextCodec>,
        stop_ids: &[u32],
        settings: &TrainSettings,
    ) -> Self {
        Self {
            model,
            formatter,
            max_new_tokens: settings.max_new_tokens,
            stop_ids: stop_ids.to_vec(),
            forwards: 0,
            tokens: 0,
        }
    }
}

impl TaskModel for LmTaskModel<'_> {
    fn generate(&mut self, task: &Task, batch: &[&Record]) -> Vec<String> {
        let mixed: Vec<(&Task, &Record)> = batch.iter().map(|r| (task, *r)).collect();
        self.generate_mixed(&mixed)
    }

    fn generate_mixed(&mut self, batch: &[(&Task, &Record)]) -> Vec<String> {
        // The records' prompts, each formatted by its own task, decode together (left-padded,
        // one KV cache); a record whose prompt cannot fit gets an empty answer, scored as a miss.
        let prompts: Vec<Option<Vec<u32>>> = batch
            .iter()
            .map(|(task, r)| {
                self.formatter
                    .encode_prompt(task.system.as_deref(), r, self.max_new_tokens)
                    .ok()
            })
            .collect();
        let fitting: Vec<Vec<u32>> = prompts.iter().flatten().cloned().collect();
        let cfg = GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            stop_ids: self.stop_ids.clone(),
            ..Default::default()
        };
        let generated = backbone::generate_greedy_batch(self.model, &fitting, &cfg);
        let steps = generated.iter().map(Vec::len).max().unwrap_or(0);
        let mut generated = generated.into_iter();
        self.forwards += steps as u64;
        self.tokens +=
            fitting.iter().map(|p| p.len() as u64).sum::<u64>() + (steps * fitting.len()) as u64;
        let chat = &self.formatter.config().chat;
        prompts
            .iter()
            .map(|p| match p {
                Some(_) => {
                    let new = generated.next().unwrap_or_default();
                    chat.template
                        .cut_at_stop(&self.formatter.tokenizer().decode(&new))
                        .to_string()
                }
                None => String::new(),
            })
            .collect()
    }

    fn score_options(
        &mut self,
        task: &Task,
        batch: &[(&Record, &[String])],
    ) -> Vec<Vec<OptionScore>> {
        // Every record's prompt is encoded once and its options continue it; the records whose
        // options all share their prompt run together (`continuation_logprobs_batch`: one
        // batch of prompts, one of continuations). When truncation makes a record's options'
        // prompts differ (a long option cuts more of the prompt), each option is scored alone.
        let miss = OptionScore {
            logprob: f64::NEG_INFINITY,
            n_tokens: 0,
        };
        let encoded: Vec<Vec<Option<Encoded>>> = batch
            .iter()
            .map(|(r, options)| {
                options
                    .iter()
                    .map(|o| {
                        self.formatter
                            .encode_target(task.system.as_deref(), r, o)
                            .ok()
                    })
                    .collect()
            })
            .collect();
        let shared_prompt = |enc: &[Option<Encoded>]| -> Option<Vec<u32>> {
            let prompt = enc.iter().flatten().next()?.prompt_ids();
            enc.iter()
                .flatten()
                .all(|e| e.prompt_ids() == prompt)
                .then(|| prompt.to_vec())
        };
        let mut out: Vec<Vec<OptionScore>> =
            encoded.iter().map(|enc| vec![miss; enc.len()]).collect();
        let mut shared: Vec<(usize, Vec<u32>, Vec<Vec<u32>>)> = Vec::new();
        for (i, enc) in encoded.iter().enumerate() {
            match shared_prompt(enc) {
                Some(prompt) => {
                    let conts = enc
                        .iter()
                        .map(|e| e.as_ref().map_or(vec![], |e| e.answer_ids().to_vec()))
                        .collect();
                    shared.push((i, prompt, conts));
                }
                None => {
                    for (o, e) in enc.iter().enumerate() {
                        if let Some(e) = e {
                            self.forwards += 1;
                            self.tokens += e.input_ids.len() as u64;
                            let (lp, n) = backbone::continuation_logprobs(
                                self.model,
                                e.prompt_ids(),
                                &[e.answer_ids().to_vec()],
                            )[0];
                            out[i][o] = OptionScore {
                                logprob: lp,
                                n_tokens: n,
                            };
                        }
                    }
                }
            }
        }
        if !shared.is_empty() {
            self.forwards += 2;
            self.tokens += shared
                .iter()
                .map(|(_, p, c)| (p.len() + c.iter().map(Vec::len).sum::<usize>()) as u64)
                .sum::<u64>();
            let items: Vec<(&[u32], &[Vec<u32>])> = shared
                .iter()
                .map(|(_, p, c)| (p.as_slice(), c.as_slice()))
                .collect();
            let scores = backbone::continuation_logprobs_batch(self.model, &items);
            for ((i, ..), record_scores) in shared.iter().zip(scores) {
                for (o, (lp, n)) in record_scores.into_iter().enumerate() {
                    if encoded[*i][o].is_some() {
                        out[*i][o] = OptionScore {
                            logprob: lp,
                            n_tokens: n,
                        };
                    }
                }
            }
        }
        out
    }
}

/// Right-padded batch of encoded sequences with their answer masks, as the objectives take it.
pub fn sft_batch(encoded: &[&bench_tasks::Encoded]) -> finetune::SftBatch {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = encoded
        .iter()
        .map(|e| (e.prompt_ids().to_vec(), e.answer_ids().to_vec()))
        .collect();
    finetune::SftBatch::from_pairs(&pairs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};
    use lora::LoraTargets;

    #[test]
    fn a_merged_inference_model_computes_the_same_logits_and_leaves_the_model_alone() {
        let device = burn::tensor::Device::flex();
        let mut model = backbone::random::random_model(
            &backbone::random::tiny_byte_llama_config(),
            3,
            0.5,
            &device,
        );
        lora::add_adapter(&mut model, "a", &lora::LoraConfig::default(), &device);
        // A trained adapter: B is no longer zero.
        model.for_each_linear_mut(&mut |_, l| {
            if let Some(ad) = l.adapter_mut("a") {
                let b = Tensor::<2>::random(ad.b.shape(), Distribution::Normal(0.0, 0.5), &device);
                ad.b = ad.b.clone().map(|_| b);
            }
        });
        let batch = backbone::TokenBatch::padded(
            &[b"hello there".map(u32::from).to_vec(), vec![104, 105]],
            0,
            false,
        );
        let logits = |m: &CausalLm| {
            m.forward(&batch, None)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        let through_factors = logits(&inference_model(&model, false));
        let base = lora::with_adapters_disabled(&mut model, |m| logits(m));
        assert!(
            base.iter()
                .zip(&through_factors)
                .any(|(a, b)| (a - b).abs() > 1e-2),
            "the adapter changes the function"
        );
        let merged_model = inference_model(&model, true);
        let mut merged_layers = 0;
        merged_model.for_each_linear(&mut |_, l| merged_layers += usize::from(l.merged));
        assert!(merged_layers > 0);
        let merged = logits(&merged_model);
        let scale = through_factors.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (a, b) in through_factors.iter().zip(&merged) {
            assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
        // The model the copy came from still runs through its factors, with its own weights.
        model.for_each_linear(&mut |_, l| assert!(!l.merged));
        assert_eq!(logits(&model), through_factors);
    }
}
