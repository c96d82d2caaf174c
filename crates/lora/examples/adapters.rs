//! Named adapters on a model: add two, switch between them, switch all off, merge and unmerge,
//! and write one as a PEFT directory.
//!
//! ```sh
//! cargo run -p lora --example adapters                 # the tiny Qwen2 test fixture
//! cargo run -p lora --example adapters -- PATH.gguf    # or any backbone model
//! ```

use std::path::PathBuf;

use backbone::{LoadedModel, TokenBatch};
use burn::tensor::Device;
use lora::{LoraConfig, LoraSettings, Preset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_qwen2")
        });
    let device = Device::flex();
    let mut model = LoadedModel::load(&path, &device)?.model;
    let batch = TokenBatch::single(&[5, 17, 42, 9, 77]);
    let last = |m: &backbone::CausalLm| -> f32 {
        m.forward(&batch, None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0]
    };
    println!("base model: logit[0] = {:.5}", last(&model));

    // Two task adapters; a fresh adapter has B = 0, so it starts as the base model.
    let attn = LoraConfig::new(
        LoraSettings {
            rank: 8,
            alpha: 16.0,
            ..Default::default()
        },
        Preset::Attention,
    );
    let mlp = LoraConfig::new(
        LoraSettings {
            rank: 4,
            alpha: 4.0,
            use_rslora: true,
            ..Default::default()
        },
        Preset::Mlp,
    );
    println!(
        "task_a on {} layers",
        lora::add_adapter(&mut model, "task_a", &attn, &device)
    );
    println!(
        "task_b on {} layers",
        lora::add_adapter(&mut model, "task_b", &mlp, &device)
    );
    println!(
        "adapters: {:?}, task_a has {} values",
        lora::adapter_names(&model),
        lora::adapter_num_params(&model, "task_a")
    );

    // Pretend task_a was trained: give its B factors some values.
    lora::LoraTargets::for_each_linear_mut(&mut model, &mut |_, layer| {
        if let Some(ad) = layer.adapter_mut("task_a") {
            let b = ad.b.val().ones_like().mul_scalar(0.01);
            ad.b = ad.b.clone().map(|_| b);
        }
    });
    lora::set_active_adapter(&mut model, "task_a")?;
    println!("task_a active: logit[0] = {:.5}", last(&model));
    let off = lora::with_adapters_disabled(&mut model, |m| last(m));
    println!("adapters off (the KL reference, same weights): logit[0] = {off:.5}");
    lora::merge_adapters(&mut model);
    println!("task_a merged: logit[0] = {:.5}", last(&model));
    lora::unmerge_adapters(&mut model);

    let out = std::env::temp_dir().join("lora-example-task_a");
    lora::save_peft(&model, "task_a", &out, Some(&path.display().to_string()))?;
    println!(
        "wrote {} (load it with PeftModel.from_pretrained or `cargo xtask score --adapter`)",
        out.display()
    );
    Ok(())
}
