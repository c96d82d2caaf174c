//! The open registry: every built-in strategy is named by its `kind` from TOML, built with
//! the run's batch size and seed, checkpointed and restored under the same name.

use replay_buffer::{
    HookPoint, Replay, ReplayBufferConfig, ReplaySize, SampleRef, Signals, SlotLoss, Strategy,
    StrategyConfig, StrategyInit,
};

const RUN: StrategyInit = StrategyInit {
    size: ReplaySize {
        batch_size: 4,
        ratio: 0.5,
    },
    seed: 99,
    validation_records: 8,
};

fn drive(replay: &mut Replay<Box<dyn Strategy>>, from: u64, to: u64) -> Vec<String> {
    let mut out = Vec::new();
    for step in from..to {
        let passes = replay.wants(HookPoint::BeforeUpdate { step });
        let probe: Vec<SlotLoss> = passes
            .probe
            .iter()
            .flatten()
            .map(|&slot| SlotLoss { slot, loss: 2.0 })
            .collect();
        let d = replay.before_update(&Signals {
            step,
            probe_losses: &probe,
            ..Signals::at(step)
        });
        let losses: Vec<SlotLoss> = d
            .batches
            .iter()
            .flat_map(|b| b.slots.iter().map(|&slot| SlotLoss { slot, loss: 1.5 }))
            .collect();
        replay.after_update(&Signals {
            step,
            replay_losses: &losses,
            ..Default::default()
        });
        out.push(format!("{d:?}"));
    }
    out
}

#[test]
fn every_built_in_kind_loads_from_toml_and_restores_from_a_checkpoint() {
    for (kind, extra) in [
        ("none", ""),
        ("fixed_interval", "every = 2\n"),
        ("loss_driven", "probe_every = 3\n"),
        ("accuracy_supervised", "eval_examples = 8\n"),
        ("mssr", "variant = \"full\"\n"),
    ] {
        let config: Box<dyn StrategyConfig> =
            toml::from_str(&format!("kind = \"{kind}\"\n{extra}")).unwrap();
        config.check(&RUN).unwrap();
        let mut replay = Replay::new(ReplayBufferConfig::default().init(), config.init(&RUN));
        for t in 0..2u32 {
            replay.before_training_exp(t);
            for i in 0..10u32 {
                replay.offer(SampleRef::new(t, i), 1.0, u64::from(t * 10 + i), None);
            }
            let end = u64::from(t * 10 + 9);
            let passes = replay.wants(HookPoint::AfterTrainingExp { task: t, step: end });
            let probe: Vec<SlotLoss> = passes
                .probe
                .iter()
                .flatten()
                .map(|&slot| SlotLoss { slot, loss: 1.0 })
                .collect();
            replay.after_training_exp(
                t,
                &Signals {
                    step: end,
                    probe_losses: &probe,
                    ..Default::default()
                },
            );
        }
        replay.before_training_exp(2);
        let json = serde_json::to_string(&replay).unwrap();
        assert!(
            json.contains(&format!("\"kind\":\"{kind}\"")),
            "{kind}: {json}"
        );
        let mut back: Replay<Box<dyn Strategy>> = serde_json::from_str(&json).unwrap();
        // The batch size came from the run (4 × 0.5 = 2), and both continue identically.
        let a = drive(&mut replay, 20, 40);
        assert_eq!(a, drive(&mut back, 20, 40), "{kind}");
        if kind != "none" && kind != "accuracy_supervised" {
            assert!(
                a.iter().any(|d| d.contains("slots: [")),
                "{kind} never replayed"
            );
        }
    }
}

#[test]
fn a_misspelt_kind_or_an_impossible_setting_is_named() {
    let err = toml::from_str::<Box<dyn StrategyConfig>>("kind = \"msrr\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("msrr"), "{err}");
    let c: Box<dyn StrategyConfig> =
        toml::from_str("kind = \"fixed_interval\"\nevery = 0\n").unwrap();
    let e = c.check(&RUN).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("every", "= 0 must be at least 1")
    );
    let c: Box<dyn StrategyConfig> =
        toml::from_str("kind = \"accuracy_supervised\"\neval_examples = 9\n").unwrap();
    assert_eq!(c.check(&RUN).unwrap_err().field, "eval_examples");
}
