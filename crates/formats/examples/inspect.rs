//! Prints what the readers make of a model file: a GGUF's configuration and tensor count, a
//! safetensors file's tensors, a `config.json`'s resolved configuration, or a PEFT adapter
//! directory's rank and targets. Errors name the file and the place.
//!
//! ```sh
//! cargo run -p formats --example inspect -- crates/backbone/tests/fixtures/llama_tied/config.json
//! cargo run -p formats --example inspect -- model.gguf
//! ```

use std::path::Path;

fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: inspect FILE.gguf | FILE.safetensors | config.json | ADAPTER_DIR");
        std::process::exit(2);
    };
    if let Err(e) = inspect(Path::new(&arg)) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn inspect(path: &Path) -> Result<(), formats::FormatError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.is_dir() {
        let c = formats::peft::PeftConfig::from_dir(path)?;
        println!(
            "PEFT LoRA adapter: r {}, alpha {}, targets {}",
            c.r, c.lora_alpha, c.target_modules
        );
    } else if name.ends_with(".gguf") {
        let file = formats::gguf::GgufFile::open(path)?;
        let cfg = formats::gguf::config_from_metadata(&file).map_err(|e| e.in_file(path))?;
        println!("{} tensors; {cfg:#?}", file.tensors.len());
    } else if name.ends_with(".safetensors") {
        let bytes = std::fs::read(path).map_err(|e| formats::FormatError::io(path, e))?;
        let st = formats::safetensors::deserialize(&bytes)
            .map_err(|m| formats::FormatError::format(path, m))?;
        for (key, (dtype, shape)) in formats::safetensors::tensor_table(&st) {
            println!("{key}: {dtype:?} {shape:?}");
        }
    } else {
        println!("{:#?}", formats::config::ModelConfig::from_file(path)?);
    }
    Ok(())
}
