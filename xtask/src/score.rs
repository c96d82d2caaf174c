//! `cargo xtask score` and `cargo xtask generate`.
//!
//! `score` prints one JSON object:
//! `{"model": PATH, "tokens": [{"id": u32, "text": str, "logprob": f32|null}, ...],
//!   "total_logprob": f64, "scored_tokens": usize, "perplexity": f64}`;
//! the first token has no log-prob (nothing precedes it). `generate` prints the new text.

use std::path::PathBuf;

use anyhow::Context;
use backbone::{GenerateConfig, LoadedModel, TokenBatch};
use chat_template::ChatConfig;

/// Model selection shared by the commands that run a model.
#[derive(clap::Args)]
pub struct ModelSel {
    /// HF directory or .gguf file (default: the fetched SmolLM2-135M-Instruct).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Device: cpu, wgpu, vulkan or cuda (default: $BURN_DEVICE, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`)
    /// applied on top of the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl ModelSel {
    /// Loads the model on the chosen device.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let device = backbone::select_device(self.device.as_deref()).map_err(anyhow::Error::msg)?;
        let path = self
            .model
            .clone()
            .unwrap_or_else(crate::model::default_model_path);
        if !path.exists() {
            return Err(crate::UsageError(format!(
                "{}: no model here (run `cargo xtask model fetch` for the default one)",
                path.display()
            ))
            .into());
        }
        let mut lm = LoadedModel::load(&path, &device)?;
        if let Some(dir) = &self.adapter {
            lora::load_peft(&mut lm.model, dir, "adapter", &device)
                .with_context(|| format!("--adapter {}", dir.display()))?;
        }
        Ok(lm)
    }
}

/// Arguments of `cargo xtask score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    sel: ModelSel,
    /// Text to score (tokenised without special tokens).
    #[arg(long, conflicts_with = "ids")]
    text: Option<String>,
    /// Comma-separated token ids to score.
    #[arg(long)]
    ids: Option<String>,
}

/// Arguments of `cargo xtask generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    sel: ModelSel,
    /// The user prompt.
    #[arg(long)]
    prompt: String,
    /// Chat template (chat_ml, llama3, gemma, plain); default chosen from the model family.
    #[arg(long)]
    template: Option<String>,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 48)]
    max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `cargo xtask score`.
pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let lm = args.sel.load()?;
    let ids: Vec<u32> = match (&args.text, &args.ids) {
        (Some(t), _) => lm
            .tokenizer
            .as_ref()
            .context("this model has no tokenizer: pass --ids")?
            .encode(t)?,
        (None, Some(s)) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--ids: {x:?} is not a token id"))
            })
            .collect::<Result<_, _>>()?,
        (None, None) => anyhow::bail!("give --text or --ids"),
    };
    if let Some(&bad) = ids
        .iter()
        .find(|&&i| i as usize >= lm.model.config.vocab_size)
    {
        anyhow::bail!(
            "--ids: token {bad} is outside the vocabulary of {}",
            lm.model.config.vocab_size
        );
    }
    let lps = backbone::score::token_logprobs(&lm.model, &TokenBatch::single(&ids));
    let mut tokens = Vec::new();
    let mut total = 0f64;
    for (i, &id) in ids.iter().enumerate() {
        let lp = if i == 0 { None } else { lps[0][i - 1] };
        total += lp.unwrap_or(0.0) as f64;
        let text = lm.tokenizer.as_ref().and_then(|t| t.decode(&[id]).ok());
        tokens.push(serde_json::json!({"id": id, "text": text, "logprob": lp}));
    }
    let n = ids.len().saturating_sub(1);
    let out = serde_json::json!({
        "model": lm.path.display().to_string(),
        "tokens": tokens,
        "total_logprob": total,
        "scored_tokens": n,
        "perplexity": if n > 0 { (-total / n as f64).exp() } else { f64::NAN },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The chat template for a model family (SmolLM2 and Qwen: ChatML).
pub fn template_for(lm: &LoadedModel, name: Option<&str>) -> anyhow::Result<ChatConfig> {
    let name = name.unwrap_or(match lm.model.config.family {
        backbone::Family::Gemma2 => "gemma",
        backbone::Family::Qwen2 => "chat_ml",
        backbone::Family::Llama => {
            if lm
                .tokenizer
                .as_ref()
                .and_then(|t| t.token_id("<|im_start|>"))
                .is_some()
            {
                "chat_ml"
            } else {
                "llama3"
            }
        }
    });
    let t = chat_template::ChatTemplate::from_name(name)
        .with_context(|| format!("unknown chat template {name:?}"))?;
    Ok(ChatConfig::new(t))
}

/// Runs `cargo xtask generate`.
pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let lm = args.sel.load()?;
    let tok = lm
        .tokenizer
        .as_ref()
        .context("this model has no tokenizer")?;
    let chat = template_for(&lm, args.template.as_deref())?;
    let prompt = chat.format_prompt(None, &args.prompt);
    let ids = tok.encode(&prompt)?;
    let mut stop_ids: Vec<u32> = chat
        .template
        .stop_strings()
        .iter()
        .filter_map(|s| tok.token_id(s))
        .collect();
    stop_ids.extend(lm.model.config.eos_token_ids.iter().copied());
    stop_ids.extend(tok.eos_id);
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        stop_ids,
        seed: args.seed,
        ..Default::default()
    };
    let new = backbone::generate(&lm.model, &ids, &cfg);
    let text = tok.decode(&new)?;
    println!("{}", chat.template.cut_at_stop(&text));
    Ok(())
}
