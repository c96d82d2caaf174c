//! Checks against the real SmolLM2-135M-Instruct (the default model). They run when the GGUF is
//! present (`cargo xtask model fetch`; CI fetches it) and print a notice otherwise. References
//! come from transformers loading the same GGUF (`tests/fixtures/make_fixtures.py`).

use std::path::{Path, PathBuf};

use backbone::{GenerateConfig, LoadedModel, TokenBatch};
use burn::tensor::Device;
use serde_json::Value;

fn model_path() -> Option<PathBuf> {
    let p = match std::env::var("CONTINUAL_LM_MODEL") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            let cache = std::env::var("CONTINUAL_LM_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    Path::new(&std::env::var("HOME").unwrap_or_default())
                        .join(".cache/continual-lm")
                });
            cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    p.is_file().then_some(p)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2")
        .join(name)
}

#[test]
fn smollm2_matches_the_reference_tokenizer_logits_perplexity_and_answers_paris() {
    let Some(path) = model_path() else {
        println!("SKIPPED: SmolLM2 GGUF not found (run `cargo xtask model fetch`)");
        return;
    };
    let device = Device::flex();
    let lm = LoadedModel::load(&path, &device).unwrap();
    let tok = lm.tokenizer.as_ref().expect("GGUF carries a tokenizer");

    // Token ids equal the reference tokenizer's for a fixed set of strings.
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tokenizer_ids.json")).unwrap())
            .unwrap();
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), want, "token ids of {text:?}");
        assert_eq!(
            tok.decode(&want).unwrap(),
            case["decoded"].as_str().unwrap(),
            "decoding {text:?}"
        );
    }

    // Logits at two positions of the paragraph's first 8 tokens equal transformers' (same
    // dequantised weights, both f32).
    let bytes = std::fs::read(fixture("logits.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let i64s = |n: &str| -> Vec<i64> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let ids: Vec<u32> = i64s("input_ids").iter().map(|&x| x as u32).collect();
    let positions = i64s("positions");
    let want: Vec<f32> = st
        .tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let logits: Vec<f32> = lm
        .model
        .forward(&TokenBatch::single(&ids), None)
        .try_into_vec_as::<f32>()
        .unwrap();
    let vocab = lm.model.config.vocab_size;
    let mut worst = 0f32;
    for (k, &p) in positions.iter().enumerate() {
        let got = &logits[p as usize * vocab..(p as usize + 1) * vocab];
        let want = &want[k * vocab..(k + 1) * vocab];
        worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    println!("SmolLM2: max |logit - transformers| = {worst:.2e}");
    assert!(
        worst < 2e-3,
        "SmolLM2 logits differ from transformers by {worst}"
    );

    // Perplexity of a Wikipedia-style paragraph: sane, and equal to the reference forward's.
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    let paragraph = reference["paragraph"].as_str().unwrap();
    let ids = tok.encode(paragraph).unwrap();
    let lps = backbone::score::token_logprobs(&lm.model, &TokenBatch::single(&ids));
    let nll: f64 = -lps[0].iter().map(|x| x.unwrap() as f64).sum::<f64>() / lps[0].len() as f64;
    let ppl = nll.exp();
    let want_ppl = reference["paragraph_perplexity"].as_f64().unwrap();
    println!("SmolLM2: paragraph perplexity {ppl:.3} (transformers {want_ppl:.3})");
    assert!((2.0..20.0).contains(&ppl), "perplexity {ppl} is not sane");
    assert!(
        (ppl - want_ppl).abs() < 0.01 * want_ppl,
        "perplexity {ppl} vs reference {want_ppl}"
    );

    // The greedy answer to the France question names Paris, token for token as transformers.
    let greedy = &reference["greedy"];
    let prompt: Vec<u32> = greedy["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let prompt_text = greedy["prompt"].as_str().unwrap();
    assert_eq!(tok.encode(prompt_text).unwrap(), prompt, "chat prompt ids");
    let cfg = GenerateConfig {
        max_new_tokens: 12,
        stop_ids: vec![2],
        ..Default::default()
    };
    let out = backbone::generate(&lm.model, &prompt, &cfg);
    let text = tok.decode(&out).unwrap();
    println!("SmolLM2 greedy answer: {text:?}");
    assert!(
        text.contains("Paris"),
        "answer {text:?} does not contain Paris"
    );
    let want_ids: Vec<u32> = greedy["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        out,
        want_ids[..out.len()],
        "greedy ids differ from transformers'"
    );
}
