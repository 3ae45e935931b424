//! `amanah`: the vault's one binary. Every subcommand is a thin shell over the vault.

mod cli;
mod maintenance;

fn main() -> std::process::ExitCode {
    cli::main()
}
