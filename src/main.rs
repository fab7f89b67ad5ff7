//! The `reconcile` binary: parse arguments, run one command, map the outcome to an exit code.

fn main() {
    std::process::exit(reconcile::cli::main());
}
