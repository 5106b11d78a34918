//! `cargo run -p custom-env -- train --config experiments/custom-env/corridor.yaml`
//!
//! The whole `rl` command line, with `Corridor-v0` registered first.

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Err(e) = custom_env::register_corridor() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    rl_cli::main()
}
