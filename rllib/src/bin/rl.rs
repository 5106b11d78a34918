//! The `rl` binary: see `rl --help`.

fn main() -> std::process::ExitCode {
    rllib::cli::main()
}
