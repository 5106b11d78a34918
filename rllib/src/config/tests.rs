//! Tests of config parsing, defaults, overrides and validation.

use super::*;

const BASE: &str = "env: CartPole-v1\nstop:\n  num_env_steps_sampled_lifetime: 10000\n";

fn parse(text: &str) -> Result<TrainConfig> {
    TrainConfig::parse(text, "ppo.yaml", &[])
}

#[test]
fn defaults_follow_cleanrl() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.train_batch_size(), 512);
    assert_eq!((c.lr, c.gamma, c.lambda, c.clip_param), (2.5e-4, 0.99, 0.95, 0.2));
    assert_eq!((c.num_epochs, c.minibatch_size, c.grad_clip), (4, 128, Some(0.5)));
    assert_eq!(c.planned_iterations(), Some(20));
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let err = parse(&format!("{BASE}lamda: 0.9\n")).unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml: line 4 column 1: unknown field `lamda`"), "{err}");
    assert!(err.contains("did you mean `lambda`?"), "{err}");
}

#[test]
fn wrong_type_names_line() {
    let err = parse(&format!("{BASE}lr: fast\n")).unwrap_err().to_string();
    assert!(err.contains("line 4 column 5") && err.contains("ppo.yaml:4:5"), "{err}");
}

#[test]
fn syntax_error_names_line() {
    let err = parse("env: [CartPole\n").unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml: line"), "{err}");
}

#[test]
fn out_of_range_values_name_line_and_key() {
    let err = parse(&format!("{BASE}lr: -0.1\n")).unwrap_err().to_string();
    assert_eq!(err, "ppo.yaml:4: lr: must be a positive number, got -0.1");
    let err = parse(&format!("{BASE}minibatch_size: 1024\n")).unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml:4: minibatch_size: 1024 is larger than the batch of 512"), "{err}");
    let err = parse(&format!("{BASE}evaluation:\n  duration: 0\n")).unwrap_err().to_string();
    assert_eq!(err, "ppo.yaml:5: evaluation.duration: must be at least 1 episode");
    let err = parse(&format!("{BASE}checkpoint:\n  num_to_keep: 0\n")).unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml:5: checkpoint.num_to_keep: must be at least 1"), "{err}");
}

#[test]
fn unknown_env_suggests_close_ids() {
    let err = parse(BASE.replace("CartPole-v1", "CartPole-v0").as_str()).unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml:1: env: unknown env id \"CartPole-v0\"; did you mean CartPole-v1"), "{err}");
}

#[test]
fn yaml_messages_speak_of_the_config_not_the_parser() {
    let err = parse("env: CartPole-v1\nlr: [0.1\nstop: {training_iteration: 1}\n").unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml: line 2 column 5: expected a single value"), "{err}");
    assert!(!err.contains("string scalar"), "{err}");
    let err = parse("env: CartPole-v1\nlr: 0.1\nlr: 0.2\nstop: {training_iteration: 1}\n").unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml: line 3 column 1: the key `lr` is given twice; keep one"), "{err}");
    assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
}

#[test]
fn env_config_errors_name_the_line_or_the_set_argument() {
    let text =
        "env: CartPole-v1\nenv_config:\n  sutton_barto_reward: true\n  gravity: 9.8\nstop: {training_iteration: 1}\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("ppo.yaml:4: env_config.gravity: CartPole-v1: unknown keyword argument \"gravity\""),
        "{err}"
    );
    let err = TrainConfig::parse(BASE, "x.yaml", &["env_config.gravity=9.8".into()]).unwrap_err().to_string();
    assert!(err.starts_with("--set env_config.gravity=9.8: env_config.gravity: CartPole-v1: unknown keyword"), "{err}");
}

#[test]
fn stop_condition_is_required() {
    let err = parse("env: CartPole-v1\nlr_schedule: constant\n").unwrap_err().to_string();
    assert!(err.contains("stop: needs at least one of"), "{err}");
}

#[test]
fn overrides_apply_and_validate() {
    let args = ["lr=1e-3".to_string(), "model.fcnet_hiddens=[32, 32]".into(), "env_config.g=9.81".into()];
    let c = TrainConfig::parse(&BASE.replace("CartPole-v1", "Pendulum-v1"), "x.yaml", &args).unwrap();
    assert_eq!(c.lr, 1e-3);
    assert_eq!(c.model.fcnet_hiddens, vec![32, 32]);
    assert_eq!(c.env_config["g"], 9.81);
    let err = TrainConfig::parse(BASE, "x.yaml", &["lamda=0.9".into()]).unwrap_err().to_string();
    assert_eq!(err, "--set lamda=0.9: unknown key \"lamda\"; did you mean lambda?");
    let err = TrainConfig::parse(BASE, "x.yaml", &["gamma=2".into()]).unwrap_err().to_string();
    assert_eq!(err, "--set gamma=2: gamma: must be within [0, 1], got 2");
    let err = TrainConfig::parse(BASE, "x.yaml", &["gamma".into()]).unwrap_err().to_string();
    assert_eq!(err, "--set gamma: expected key=value");
    let err = TrainConfig::parse(BASE, "x.yaml", &["num_epochs=many".into()]).unwrap_err().to_string();
    assert!(err.starts_with("--set num_epochs=many: invalid type"), "{err}");
}

/// Found by the config fuzz target: a product of counts that overflows was a panic.
#[test]
fn steps_per_iteration_that_overflow_are_refused() {
    let err = parse(&format!("{BASE}num_env_runners: 9223372036854775807\n")).unwrap_err().to_string();
    assert!(err.starts_with("ppo.yaml:4: num_env_runners: num_env_runners x num_envs_per_env_runner"), "{err}");
    let err = TrainConfig::parse(BASE, "x.yaml", &["rollout_fragment_length=18446744073709551615".into()])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--set rollout_fragment_length=18446744073709551615: rollout_fragment_length: "), "{err}");
}

/// Found by the config fuzz target: a dotted path through an env_config key that is not set
/// was a panic.
#[test]
fn a_path_through_an_unset_env_config_key_is_an_error() {
    let err = TrainConfig::parse(BASE, "x.yaml", &["env_config.a.b=1".into()]).unwrap_err().to_string();
    assert_eq!(err, "--set env_config.a.b=1: env_config.a is not a section");
}

#[test]
fn config_round_trips_through_yaml() {
    for text in [BASE, &format!("algorithm: DQN\n{BASE}"), SAC] {
        let c = parse(text).unwrap();
        let yaml = c.to_yaml().unwrap();
        assert_eq!(parse(&yaml).unwrap(), c, "{yaml}");
        assert_eq!(TrainConfig::parse_recorded(&yaml, "config.yaml").unwrap(), c);
    }
}

const SAC: &str = "algorithm: SAC\nenv: Pendulum-v1\nstop:\n  num_env_steps_sampled_lifetime: 10000\n";

#[test]
fn defaults_depend_on_the_algorithm() {
    let dqn = parse(&format!("algorithm: DQN\n{BASE}")).unwrap();
    assert_eq!((dqn.lr, dqn.adam_epsilon, dqn.grad_clip, dqn.batch_size, dqn.tau), (1e-4, 1e-8, Some(10.0), 32, 1.0));
    assert_eq!((dqn.train_freq, dqn.target_update_interval, dqn.num_env_runners), (4, 10_000, 1));
    assert_eq!(dqn.model.fcnet_activation, rl_policies::Activation::Relu);
    let sac = parse(SAC).unwrap();
    assert_eq!((sac.batch_size, sac.tau, sac.train_freq, sac.target_update_interval), (256, 0.005, 1, 1));
    assert_eq!(sac.model.fcnet_hiddens, [256, 256]);
    // A key the user sets keeps its value; inside `model`, key by key.
    let custom = parse(&format!("algorithm: DQN\n{BASE}batch_size: 7\nmodel: {{fcnet_hiddens: [8]}}\n")).unwrap();
    assert_eq!((custom.batch_size, custom.model.fcnet_hiddens.as_slice()), (7, &[8][..]));
    assert_eq!(custom.model.fcnet_activation, rl_policies::Activation::Relu);
    // PPO's are CleanRL's, as before.
    let ppo = parse(BASE).unwrap();
    assert_eq!((ppo.grad_clip, ppo.num_env_runners), (Some(0.5), 2));
    // An iteration of off-policy rounds: whole rounds up to min_sample_timesteps_per_iteration.
    assert_eq!(dqn.steps_per_iteration(), 1000);
    let odd = dqn.with_override("train_freq=7").unwrap();
    assert_eq!(odd.steps_per_iteration(), 1001);
    assert_eq!(odd.planned_iterations(), Some(10));
}

#[test]
fn keys_the_algorithm_does_not_read_are_refused_with_their_line() {
    let err = parse(&format!("algorithm: DQN\n{BASE}clip_param: 0.3\n")).unwrap_err().to_string();
    assert_eq!(err, "ppo.yaml:5: clip_param is a PPO setting; DQN does not read it");
    let err = parse(&format!("{BASE}buffer_size: 10\n")).unwrap_err().to_string();
    assert_eq!(err, "ppo.yaml:4: buffer_size is a DQN and SAC setting; PPO does not read it");
    let err = parse(&format!("{SAC}lr: 0.1\n")).unwrap_err().to_string();
    assert!(err.contains("lr is a PPO and DQN setting; SAC does not read it; SAC has one learning rate"), "{err}");
    let err = parse(&format!("{SAC}model: {{vf_share_layers: true}}\n")).unwrap_err().to_string();
    assert!(err.contains("model.vf_share_layers is a setting of PPO's actor-critic"), "{err}");
    let err = parse(SAC).unwrap().with_override("exploration_fraction=0.2").unwrap_err().to_string();
    assert_eq!(err, "--set exploration_fraction=0.2: exploration_fraction is not a setting of SAC");
    let err = parse(SAC).unwrap().with_override("algorithm=DQN").unwrap_err().to_string();
    assert!(err.contains("set it in the config file"), "{err}");
}

#[test]
fn off_policy_values_and_spaces_are_checked() {
    let dqn = format!("algorithm: DQN\n{BASE}");
    for (extra, expected) in [
        ("gradient_steps: 0\n", "gradient_steps: must be at least 1, or -1"),
        ("tau: 1.5\n", "tau: must be within (0, 1], got 1.5"),
        ("exploration_final_eps: 2\n", "exploration_final_eps: must be within [0, 1], got 2"),
        ("buffer_size: 0\n", "buffer_size: must be at least 1"),
        ("prioritized_replay: {beta: 2}\n", "prioritized_replay.beta: must be within [0, 1], got 2"),
    ] {
        let err = parse(&format!("{dqn}{extra}")).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra}: {err}");
    }
    let err = parse("algorithm: DQN\nenv: Pendulum-v1\nstop: {training_iteration: 1}\n").unwrap_err().to_string();
    assert!(err.contains("DQN needs Discrete actions and Pendulum-v1 has Box("), "{err}");
    let err = parse(&format!("algorithm: SAC\n{BASE}")).unwrap_err().to_string();
    assert!(err.contains("SAC needs Box actions and CartPole-v1 has Discrete(2)"), "{err}");
    let err = parse("algorithm: DQN\nenv: CartPole-v1\nstop: {time_total_s: 10}\n").unwrap_err().to_string();
    assert!(err.contains("exploration_fraction: the exploration schedule runs over the planned steps"), "{err}");
}
