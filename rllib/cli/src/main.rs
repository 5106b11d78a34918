//! The `rl` binary: see `rl --help`.

fn main() -> std::process::ExitCode {
    rl_cli::main()
}
