//! Values and gradients of every objective against PyTorch (`crates/lora/tests/fixtures/
//! make_fixtures.py`): the PEFT fixture adapter is θ, the same model with it switched off is
//! the reference.

mod common;

use backbone::CausalLm;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use common::*;
use finetune::{KlDirection, KlTokens, ObjectiveConfig, Reference, SftBatch, TrainMode};

fn setup() -> (
    CausalLm,
    std::collections::HashMap<String, Host>,
    SftBatch,
    backbone::TokenBatch,
) {
    let device = Device::flex().autodiff();
    let model = tiny_with_adapter(&device, "a");
    let model = finetune::prepare_model(
        model,
        &TrainMode::Lora {
            adapter: "a".into(),
        },
    )
    .unwrap();
    let fx = read(&fixtures().join("objectives.safetensors"));
    let tokens = token_batch(&fx, "sft");
    let answer_mask = fx["sft.answer_mask"].i64.iter().map(|&m| m != 0).collect();
    let sft = SftBatch {
        tokens,
        answer_mask,
    };
    let ntp = token_batch(&fx, "ntp");
    (model, fx, sft, ntp)
}

/// Compares the loss value and d loss / d(A, B) of every adapted layer with the fixture.
fn check(
    name: &str,
    model: &CausalLm,
    loss: Tensor<1>,
    fx: &std::collections::HashMap<String, Host>,
) {
    let value: f32 = loss.clone().into_scalar();
    let want = fx[&format!("{name}.loss")].f32[0];
    assert!(
        (value - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{name}: loss {value} vs {want}"
    );
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut worst = 0f32;
    let mut count = 0;
    lora::LoraTargets::for_each_linear(model, &mut |path, layer| {
        let Some(ad) = layer.adapter("a") else { return };
        for (which, id, ours_is_in_r) in [("lora_A", ad.a.id, true), ("lora_B", ad.b.id, false)] {
            let want = &fx[&format!("{name}.grad.{path}.{which}")];
            let g: Tensor<2> = grads
                .get(id)
                .unwrap_or_else(|| panic!("{name}: no gradient for {path}.{which}"));
            // ours: A [in, r], B [r, out]; PEFT: A [r, in], B [out, r] — transposes both ways.
            let _ = ours_is_in_r;
            let g: Vec<f32> = g
                .transpose()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap();
            assert_eq!(g.len(), want.f32.len());
            let scale = want.f32.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3);
            for (x, y) in g.iter().zip(&want.f32) {
                worst = worst.max((x - y).abs() / scale);
            }
            count += 1;
        }
    });
    assert_eq!(count, 28, "{name}: 14 adapted layers × (A, B)");
    println!(
        "{name}: loss {value:.6} (torch {want:.6}), worst gradient error relative to max |grad| = {worst:.2e}"
    );
    assert!(worst < 1e-4, "{name}: gradient error {worst}");
}

#[test]
fn sft_loss_value_per_sample_and_gradients_match_pytorch() {
    let (model, fx, sft, _) = setup();
    let out = finetune::sft_loss(&model, &sft);
    let per: Vec<f32> = out.per_sample.clone().into_data().try_to_vec().unwrap();
    for (p, w) in per.iter().zip(&fx["sft.per_sample"].f32) {
        assert!((p - w).abs() < 1e-5, "per-sample {p} vs {w}");
    }
    assert_eq!(out.tokens_per_sample, vec![7, 3]);
    check("sft", &model, out.mean, &fx);
}

#[test]
fn kl_forward_reverse_and_all_tokens_match_pytorch() {
    for (name, dir, tokens) in [
        ("kl_fwd", KlDirection::Forward, KlTokens::Answer),
        ("kl_rev", KlDirection::Reverse, KlTokens::Answer),
        ("kl_all", KlDirection::Forward, KlTokens::All),
    ] {
        let (mut model, fx, sft, _) = setup();
        let cfg = ObjectiveConfig {
            sft_weight: 0.0,
            kl_weight: 1.0,
            kl_direction: dir,
            kl_tokens: tokens,
            ..Default::default()
        };
        let parts = finetune::objective(&mut model, Reference::AdaptersOff, &sft, None, &cfg);
        check(name, &model, parts.kl.unwrap(), &fx);
    }
}

#[test]
fn ntp_loss_matches_pytorch() {
    let (model, fx, _, ntp) = setup();
    check("ntp", &model, finetune::ntp_loss(&model, &ntp), &fx);
}

#[test]
fn weighted_sum_matches_pytorch_and_adapters_are_back_on_after_it() {
    let (mut model, fx, sft, ntp) = setup();
    let cfg = ObjectiveConfig {
        sft_weight: 1.0,
        kl_weight: 0.5,
        ntp_weight: 0.3,
        ..Default::default()
    };
    let parts = finetune::objective(&mut model, Reference::AdaptersOff, &sft, Some(&ntp), &cfg);
    let mut on = true;
    lora::LoraTargets::for_each_linear(&model, &mut |_, l| {
        on &= l.adapters.is_empty() || l.active_adapter().is_some()
    });
    assert!(on, "the reference pass must switch the adapters back on");
    check("total", &model, parts.total, &fx);
}
