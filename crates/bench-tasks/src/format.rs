//! From records to token ids: the chat template around the prompt, the answer as the only
//! training target, left truncation of the prompt, optional few-shot demonstrations.
//!
//! Layout of one training sequence (`|` marks the pieces, each encoded on its own):
//!
//! ```text
//! head | [shot₁ prompt \n shot₁ answer \n\n ...] prompt | tail | answer + end-of-turn
//! └──────────── prompt_len tokens, answer_mask = false ──────┘ └─ answer_mask = true ─┘
//! ```
//!
//! `head`/`tail` are the chat markup ([`chat_template::PromptParts`]) and are never cut. When the
//! sequence is longer than `max_len`, whole demonstrations are dropped first, then the user text
//! loses tokens from its left end. The answer is never cut: a record whose answer alone does not
//! fit is a [`FormatError::AnswerTooLong`] (filter such records, e.g. with the suite's
//! `max_answer_chars`).
//!
//! Pieces are encoded separately and concatenated; for byte-level BPE tokenizers this can differ
//! from encoding the whole string at the piece boundaries, which sit at special tokens or new
//! lines in every template, where merges do not cross anyway.

use chat_template::ChatConfig;
use serde::{Deserialize, Serialize};

use crate::task::Record;

/// Text to token ids, without adding special tokens (the chat template writes them as text).
pub trait TokenCounter {
    /// Token ids of `text`.
    fn encode(&self, text: &str) -> Vec<u32>;
}

impl TokenCounter for tokenizers::Tokenizer {
    /// Encodes without adding special tokens. Panics only if the tokenizer itself fails (a broken
    /// tokenizer file, not a data problem), with the tokenizer's message.
    fn encode(&self, text: &str) -> Vec<u32> {
        // `**self` is the inner `TokenizerImpl`, whose inherent `encode` takes `add_special_tokens`.
        match (**self).encode(text, false) {
            Ok(e) => e.get_ids().to_vec(),
            Err(e) => panic!("tokenizer failed on {text:?}: {e}"),
        }
    }
}

impl<T: TokenCounter + ?Sized> TokenCounter for &T {
    fn encode(&self, text: &str) -> Vec<u32> {
        (**self).encode(text)
    }
}

/// A byte-level tokenizer: token id = UTF-8 byte value (vocabulary of 256). For tests and the
/// tiny random models of the smoke suite.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// Vocabulary size.
    pub const VOCAB_SIZE: usize = 256;

    /// Bytes back to text (lossy for invalid UTF-8).
    pub fn decode(ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().map(|&i| i.min(255) as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl TokenCounter for ByteTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }
}

/// How records become token sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatConfig {
    /// Chat template and default system text. Default: ChatML, no system text.
    pub chat: ChatConfig,
    /// Maximum tokens of prompt plus answer. Default: 256.
    pub max_len: usize,
}

impl Default for FormatConfig {
    fn default() -> Self {
        Self {
            chat: ChatConfig::default(),
            max_len: 256,
        }
    }
}

/// Why a record cannot be formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The answer (with its end marker) and the chat markup alone exceed `max_len`.
    #[error(
        "answer needs {answer_tokens} tokens and the chat markup {markup_tokens}, more than max_len {max_len}"
    )]
    AnswerTooLong {
        /// Tokens of answer plus end-of-turn marker.
        answer_tokens: usize,
        /// Tokens of the template's head and tail.
        markup_tokens: usize,
        /// The limit.
        max_len: usize,
    },
}

/// A record that cannot be formatted, named by where it comes from (a task's split, a file), its
/// index there and the start of its prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}, record {index} (prompt {prompt:?}): {error}")]
pub struct RecordFormatError {
    /// Where the records come from: a file, or a task and split (``task `agnews` (train)``).
    pub origin: String,
    /// The record's 0-based index in that list.
    pub index: usize,
    /// The first 40 characters of the record's prompt (to find it in the data).
    pub prompt: String,
    /// Why it cannot be formatted.
    pub error: FormatError,
}

/// One formatted sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    /// Prompt tokens then answer tokens.
    pub input_ids: Vec<u32>,
    /// `true` at answer positions (the training targets): a causal LM predicts
    /// `input_ids[i + 1]` at position `i` and takes the loss where `answer_mask[i + 1]`.
    pub answer_mask: Vec<bool>,
    /// Number of prompt tokens (`answer_mask[..prompt_len]` is all false).
    pub prompt_len: usize,
    /// Tokens removed from the user text by truncation (dropped demonstrations not counted).
    pub truncated: usize,
    /// Demonstrations kept.
    pub shots: usize,
}

impl Encoded {
    /// The prompt tokens.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.input_ids[..self.prompt_len]
    }

    /// The answer tokens (with the end-of-turn marker).
    pub fn answer_ids(&self) -> &[u32] {
        &self.input_ids[self.prompt_len..]
    }
}

/// Formats records of one task for one tokenizer.
pub struct Formatter<T: TokenCounter> {
    config: FormatConfig,
    tokenizer: T,
    shots: Vec<Record>,
}

impl<T: TokenCounter> Formatter<T> {
    /// A formatter without demonstrations.
    pub fn new(config: FormatConfig, tokenizer: T) -> Self {
        Self {
            config,
            tokenizer,
            shots: Vec::new(),
        }
    }

    /// Adds few-shot demonstrations, put before every prompt in this order (take them from the
    /// task's train split, never from the test records).
    pub fn with_shots(mut self, shots: Vec<Record>) -> Self {
        self.shots = shots;
        self
    }

    /// The config.
    pub fn config(&self) -> &FormatConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &T {
        &self.tokenizer
    }

    /// The user text with the first `k` demonstrations.
    fn user_text(&self, record: &Record, k: usize) -> String {
        let mut s = String::new();
        for shot in &self.shots[..k] {
            s.push_str(&shot.prompt);
            s.push('\n');
            s.push_str(&shot.answer);
            s.push_str("\n\n");
        }
        s.push_str(&record.prompt);
        s
    }

    /// Prompt tokens that leave room for `reserve` tokens after them, and how many user tokens
    /// were cut and demonstrations kept.
    fn prompt_within(
        &self,
        system: Option<&str>,
        record: &Record,
        reserve: usize,
    ) -> Result<(Vec<u32>, usize, usize), FormatError> {
        let max = self.config.max_len;
        let chat = &self.config.chat;
        let parts = chat.prompt_parts(system, "");
        let head = self.tokenizer.encode(&parts.head);
        let tail = self.tokenizer.encode(&parts.tail);
        let markup = head.len() + tail.len();
        if markup + reserve > max {
            return Err(FormatError::AnswerTooLong {
                answer_tokens: reserve,
                markup_tokens: markup,
                max_len: max,
            });
        }
        let budget = max - markup - reserve;
        let mut k = self.shots.len();
        let (user, kept) = loop {
            let text = self.user_text(record, k);
            let text = chat.prompt_parts(system, &text).user;
            let ids = self.tokenizer.encode(&text);
            if ids.len() <= budget || k == 0 {
                break (ids, k);
            }
            k -= 1;
        };
        let cut = user.len().saturating_sub(budget);
        let mut ids = head;
        ids.extend_from_slice(&user[cut..]);
        ids.extend_from_slice(&tail);
        Ok((ids, cut, kept))
    }

    /// Formats a training (or teacher-forced scoring) sequence: prompt, then answer plus the
    /// end-of-turn marker as the only target. `system` overrides the config's default system text.
    pub fn encode(&self, system: Option<&str>, record: &Record) -> Result<Encoded, FormatError> {
        self.encode_target(system, record, &record.answer)
    }

    /// Like [`Formatter::encode`] with `target` in place of the record's answer: the sequence
    /// whose answer part is scored when ranking an option.
    pub fn encode_target(
        &self,
        system: Option<&str>,
        record: &Record,
        target: &str,
    ) -> Result<Encoded, FormatError> {
        let answer = self
            .tokenizer
            .encode(&self.config.chat.format_answer(target));
        let (mut input_ids, truncated, shots) = self.prompt_within(system, record, answer.len())?;
        let prompt_len = input_ids.len();
        input_ids.extend_from_slice(&answer);
        let mut answer_mask = vec![false; prompt_len];
        answer_mask.resize(input_ids.len(), true);
        Ok(Encoded {
            input_ids,
            answer_mask,
            prompt_len,
            truncated,
            shots,
        })
    }

    /// Prompt tokens for generation, leaving room for `max_new_tokens` generated tokens.
    pub fn encode_prompt(
        &self,
        system: Option<&str>,
        record: &Record,
        max_new_tokens: usize,
    ) -> Result<Vec<u32>, FormatError> {
        self.prompt_within(system, record, max_new_tokens)
            .map(|(ids, _, _)| ids)
    }

    /// [`Formatter::encode`] for every record of a list, in order; a record that cannot be
    /// formatted is a [`RecordFormatError`] naming `origin` (a file, or a task and split) and
    /// the record's index.
    pub fn encode_each(
        &self,
        system: Option<&str>,
        origin: &str,
        records: &[Record],
    ) -> Vec<Result<Encoded, RecordFormatError>> {
        records
            .iter()
            .enumerate()
            .map(|(index, r)| {
                self.encode(system, r).map_err(|error| RecordFormatError {
                    origin: origin.to_string(),
                    index,
                    prompt: r.prompt.chars().take(40).collect(),
                    error,
                })
            })
            .collect()
    }

    /// Whether a record can be formatted (its answer fits).
    pub fn fits(&self, system: Option<&str>, record: &Record) -> bool {
        self.encode(system, record).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_template::ChatTemplate;

    fn plain(max_len: usize) -> Formatter<ByteTokenizer> {
        Formatter::new(
            FormatConfig {
                chat: ChatConfig::new(ChatTemplate::Plain),
                max_len,
            },
            ByteTokenizer,
        )
    }

    #[test]
    fn answer_is_the_only_target() {
        let e = plain(64).encode(None, &Record::new("2+2=", "4")).unwrap();
        // Plain: "2+2=" + "\n", then "4" + "\n".
        assert_eq!(ByteTokenizer::decode(&e.input_ids), "2+2=\n4\n");
        assert_eq!(e.prompt_len, 5);
        assert_eq!(
            e.answer_mask,
            [false, false, false, false, false, true, true]
        );
        assert_eq!(ByteTokenizer::decode(e.answer_ids()), "4\n");
    }

    #[test]
    fn truncation_cuts_prompt_from_the_left_and_keeps_answer() {
        // "abcdefgh\n" + "XY\n" = 12 tokens; max 8 leaves 8 - 1 (tail) - 3 (answer) = 4 user
        // tokens: "efgh".
        let e = plain(8)
            .encode(None, &Record::new("abcdefgh", "XY"))
            .unwrap();
        assert_eq!(ByteTokenizer::decode(&e.input_ids), "efgh\nXY\n");
        assert_eq!(e.truncated, 4);
        assert_eq!(e.input_ids.len(), 8);
    }

    #[test]
    fn truncation_keeps_chat_markup() {
        let f = Formatter::new(
            FormatConfig {
                chat: ChatConfig::new(ChatTemplate::ChatMl),
                max_len: 80,
            },
            ByteTokenizer,
        );
        let e = f.encode(None, &Record::new("x".repeat(100), "y")).unwrap();
        let text = ByteTokenizer::decode(&e.input_ids);
        assert!(text.starts_with("<|im_start|>user\nxxx"), "{text}");
        assert!(
            text.ends_with("<|im_end|>\n<|im_start|>assistant\ny<|im_end|>"),
            "{text}"
        );
        // 50 bytes of markup, 11 of answer ("y<|im_end|>"), 19 of user text.
        assert_eq!(e.input_ids.len(), 80);
        assert_eq!(e.truncated, 100 - 19);
    }

    #[test]
    fn answer_longer_than_max_len_is_an_error_not_a_cut() {
        let r = Record::new("q", "a very long answer");
        let e = plain(10).encode(None, &r).unwrap_err();
        assert_eq!(
            e,
            FormatError::AnswerTooLong {
                answer_tokens: 19,
                markup_tokens: 1,
                max_len: 10
            }
        );
        assert!(!plain(10).fits(None, &r));
    }

    #[test]
    fn a_record_that_does_not_fit_is_named_by_origin_and_index() {
        let records = [
            Record::new("q0", "ok"),
            Record::new("q1", "a very long answer"),
        ];
        let out = plain(10).encode_each(None, "task `toy` (train)", &records);
        assert!(out[0].is_ok());
        assert_eq!(
            out[1].as_ref().unwrap_err().to_string(),
            "task `toy` (train), record 1 (prompt \"q1\"): answer needs 19 tokens and the chat \
             markup 1, more than max_len 10"
        );
    }

    #[test]
    fn few_shot_examples_precede_prompt_and_are_dropped_whole_first() {
        let shots = vec![Record::new("1+1=", "2"), Record::new("2+2=", "4")];
        let f = plain(64).with_shots(shots.clone());
        let e = f.encode(None, &Record::new("3+3=", "6")).unwrap();
        assert_eq!(
            ByteTokenizer::decode(&e.input_ids),
            "1+1=\n2\n\n2+2=\n4\n\n3+3=\n6\n"
        );
        assert_eq!(e.shots, 2);
        // Room for one demonstration only: "2+2=\n4\n\n3+3=\n" (13) + "6\n" (2) = 15.
        let f = plain(15).with_shots(shots);
        let e = f.encode(None, &Record::new("3+3=", "6")).unwrap();
        assert_eq!(ByteTokenizer::decode(&e.input_ids), "1+1=\n2\n\n3+3=\n6\n");
        assert_eq!((e.shots, e.truncated), (1, 0));
    }

    #[test]
    fn generation_prompt_leaves_room_for_new_tokens() {
        let ids = plain(8)
            .encode_prompt(None, &Record::new("abcdefgh", ""), 3)
            .unwrap();
        // budget = 8 - 1 (tail) - 3 (reserved) = 4 user tokens.
        assert_eq!(ByteTokenizer::decode(&ids), "efgh\n");
    }

    #[test]
    fn option_target_replaces_answer() {
        let e = plain(64)
            .encode_target(None, &Record::new("q", "A"), "B")
            .unwrap();
        assert_eq!(ByteTokenizer::decode(e.answer_ids()), "B\n");
    }

    /// A word-level HF tokenizer whose post-processor prepends `<s>` when special tokens are
    /// added, with `<|im_end|>` as an added special token.
    fn word_level() -> tokenizers::Tokenizer {
        let json = r#"{
          "version": "1.0", "truncation": null, "padding": null,
          "added_tokens": [{"id": 3, "content": "<|im_end|>", "single_word": false, "lstrip": false,
                            "rstrip": false, "normalized": false, "special": true}],
          "normalizer": null,
          "pre_tokenizer": {"type": "Whitespace"},
          "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [4], "tokens": ["<s>"]}}},
          "decoder": null,
          "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2, "<|im_end|>": 3, "<s>": 4},
                    "unk_token": "[UNK]"}
        }"#;
        json.parse().unwrap()
    }

    #[test]
    fn hf_tokenizer_splits_special_tokens_and_adds_none() {
        let tok = word_level();
        // No `<s>` from the post-processor; `<|im_end|>` written as text becomes its id.
        assert_eq!(
            TokenCounter::encode(&tok, "hello world<|im_end|>"),
            [1, 2, 3]
        );
        let f = Formatter::new(
            FormatConfig {
                chat: ChatConfig::new(ChatTemplate::Plain),
                max_len: 16,
            },
            &tok,
        );
        let e = f.encode(None, &Record::new("hello", "world")).unwrap();
        assert_eq!(e.input_ids, [1, 2]);
        assert_eq!(e.answer_mask, [false, true]);
    }

    #[test]
    fn system_text_goes_into_the_head() {
        let e = plain(64)
            .encode(Some("Sys"), &Record::new("q", "a"))
            .unwrap();
        assert_eq!(ByteTokenizer::decode(e.prompt_ids()), "Sys\n\nq\n");
    }
}
