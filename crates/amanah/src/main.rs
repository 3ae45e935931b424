//! `amanah`: the vault's one binary. Every subcommand is a thin shell over the vault.

mod bench;
mod checkpoint;
mod cli;
mod duration;
mod import;
mod keyfile;
mod maintenance;
mod rotate;
mod serving;
mod setup;
mod tenants;

fn main() -> std::process::ExitCode {
    cli::main()
}
