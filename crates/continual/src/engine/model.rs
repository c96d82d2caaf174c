//! The backbone of a run: loaded (or built at random for the smoke suite) with its prompt
//! formatter, then made trainable (a LoRA adapter on the frozen backbone, or every weight).

use backbone::CausalLm;
use bench_tasks::Suite;
use bench_tasks::format::{FormatConfig, Formatter};
use burn::tensor::Device;
use finetune::TrainMode;

use super::{ADAPTER, ModelSource};
use crate::EngineError;
use crate::lm::TextCodec;
use crate::method::{TrainModeName, TrainSettings};

/// The trainable model: a LoRA adapter (named [`ADAPTER`]) on the frozen backbone, or every
/// parameter.
pub(super) fn trainable(
    mut model: CausalLm,
    s: &TrainSettings,
    device: &Device,
) -> Result<CausalLm, EngineError> {
    let mode = match s.mode {
        TrainModeName::Lora => {
            lora::add_adapter(&mut model, ADAPTER, &s.lora, device);
            TrainMode::Lora {
                adapter: ADAPTER.into(),
            }
        }
        TrainModeName::Full => TrainMode::Full,
    };
    Ok(finetune::prepare_model(model, &mode)?)
}

/// The backbone with its prompt formatter (tokenizer, chat template, the suite's maximum
/// length) and the token ids that end a generation. A random model is seeded by `seed`.
pub(crate) fn load_backbone(
    source: &ModelSource,
    seed: u64,
    suite: &Suite,
    device: &Device,
) -> Result<(CausalLm, Formatter<TextCodec>, Vec<u32>), EngineError> {
    let (model, codec, chat) = match source {
        ModelSource::TinyRandom => {
            let m = backbone::random::random_model(
                &backbone::random::tiny_byte_llama_config(),
                seed,
                0.02,
                device,
            );
            (
                m,
                TextCodec::Bytes,
                chat_template::ChatConfig::new(chat_template::ChatTemplate::Plain),
            )
        }
        ModelSource::Path { path } => {
            let lm = backbone::LoadedModel::load(path, device)?;
            let tok = lm
                .tokenizer
                .ok_or_else(|| EngineError::config(path, "the model ships no tokenizer".into()))?;
            let chat = chat_for(&lm.model, &tok);
            (lm.model, TextCodec::Hf(Box::new(tok)), chat)
        }
    };
    let max_len = suite
        .max_len
        .unwrap_or(512)
        .min(model.config.max_position_embeddings);
    let formatter = Formatter::new(
        FormatConfig {
            chat: chat.clone(),
            max_len,
        },
        codec,
    );
    let stop_ids = formatter
        .tokenizer()
        .stop_ids(&chat, &model.config.eos_token_ids);
    Ok((model, formatter, stop_ids))
}

fn chat_for(model: &CausalLm, tok: &backbone::TextTokenizer) -> chat_template::ChatConfig {
    use chat_template::{ChatConfig, ChatTemplate};
    match model.config.family {
        backbone::config::Family::Gemma2 => ChatConfig::new(ChatTemplate::Gemma),
        backbone::config::Family::Qwen2 => ChatConfig::new(ChatTemplate::ChatMl),
        backbone::config::Family::Llama if tok.token_id("<|im_start|>").is_some() => {
            ChatConfig::new(ChatTemplate::ChatMl)
        }
        backbone::config::Family::Llama => ChatConfig::new(ChatTemplate::Llama3),
    }
}
