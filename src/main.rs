//! The `pgclipper` binary: parses arguments and runs; everything else lives in the library.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    pgclipper::cli::run()
}
