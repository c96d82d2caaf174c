//! A method plugin in one file: an L2 pull towards the weights the run started from
//! (`weight · Σ (θ − θ₀)²`), registered as `kind = "l2_init"` and run through the smoke suite.
//!
//! Run with `cargo run -p continual --example l2_init_plugin`.

use continual::EngineError;
use continual::plugins::trainable::{ParamVec, for_each_trainable};
use continual::plugins::{
    LossContext, LossTerm, MethodPlugin, PassKind, PluginConfig, PluginInit, Spent,
};
use serde::{Deserialize, Serialize};

/// `[[plugins]] kind = "l2_init"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L2InitConfig {
    /// The term's weight.
    pub weight: f64,
}

impl Default for L2InitConfig {
    fn default() -> Self {
        Self { weight: 0.01 }
    }
}

#[typetag::serde(name = "l2_init")]
impl PluginConfig for L2InitConfig {
    fn init(&self, run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        // θ₀ comes from the model a run starts with, so a resumed run rebuilds it: no state to
        // checkpoint.
        Ok(Box::new(L2Init {
            weight: self.weight,
            start: ParamVec::values(run.model),
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(("weight".into(), format!("{} must be >= 0", self.weight)));
        }
        Ok(())
    }
}

/// The plugin.
pub struct L2Init {
    weight: f64,
    start: ParamVec,
}

impl MethodPlugin for L2Init {
    fn name(&self) -> &str {
        "l2_init"
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let mut i = 0;
        let mut total = None;
        for_each_trainable(ctx.model, |_, theta| {
            let d = (theta - self.start.0[i].clone()).square().sum();
            total = Some(match total.take() {
                None => d,
                Some(t) => t + d,
            });
            i += 1;
        });
        total
            .map(|value| LossTerm {
                name: "l2_init",
                value,
                weight: self.weight,
                extra: (PassKind::Plugin, Spent::default()),
            })
            .into_iter()
            .collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use continual::engine::{ModelSource, RunConfig};
    use std::path::Path;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let method = continual::MethodConfig::from_toml_str(
        "description = \"L2 towards the initial weights\"\n[[plugins]]\nkind = \"l2_init\"\nweight = 0.01\n",
        Path::new("l2-init.toml"),
    )?;
    let spec = bench_tasks::SuiteSpec::from_path(&root.join("experiments/suites/smoke.toml"))?;
    let suite = spec.load(&root, None)?;
    let settings = method.train_settings(spec.training.as_ref(), &spec.path)?;
    let out = std::env::temp_dir().join(format!("l2-init-{}", std::process::id()));
    let cfg = RunConfig {
        suite_spec: spec,
        suite,
        method,
        settings,
        seed: 0,
        model: ModelSource::TinyRandom,
        device_name: "cpu".into(),
        device: burn::tensor::Device::flex(),
        out_dir: out.clone(),
        index_path: None,
        resume: false,
        provenance: serde_json::json!({}),
        corpus: vec![],
    };
    let result = continual::engine::run(&cfg, &mut [])?;
    println!("AA = {}, log in {}", result.metrics["aa"], out.display());
    Ok(())
}
