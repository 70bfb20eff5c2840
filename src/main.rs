//! The `pgclipper` binary: parses arguments and runs; everything else lives in the library.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    // mysql_async keeps up to 128 packet buffers for reuse, each shrunk to this many bytes
    // (4 MiB by default): with the slices of long values, 30 MB of them stayed with the
    // driver. Set before any thread starts; an operator's own setting stands.
    if std::env::var_os("MYSQL_ASYNC_BUFFER_SIZE_CAP").is_none() {
        std::env::set_var("MYSQL_ASYNC_BUFFER_SIZE_CAP", "262144");
    }
    pgclipper::cli::run()
}
