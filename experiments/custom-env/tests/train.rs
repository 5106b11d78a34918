//! Trains the custom env through its own binary, exactly as a user would.

use std::process::Command;

#[test]
fn trains_corridor_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("custom-env-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/corridor.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_custom-env"))
        .args(["train", "--config", config, "--output", dir.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The optimal policy walks right 3-4 cells: return 1 - 0.01 * (steps - 1) >= 0.97.
    let mean: f64 = stdout
        .split("episode_return_mean ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no evaluation in {stdout}"));
    assert!(mean >= 0.95, "{stdout}");
    let envs = Command::new(env!("CARGO_BIN_EXE_custom-env")).arg("envs").output().unwrap();
    assert!(String::from_utf8_lossy(&envs.stdout).contains("Corridor-v0"));
    std::fs::remove_dir_all(&dir).unwrap();
}
