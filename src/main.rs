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
    no_transparent_huge_pages();
    pgclipper::cli::run()
}

/// Turns transparent huge pages off for this process. With the kernel's THP on `always`,
/// every fresh 2 MiB region mimalloc touches is faulted in and zeroed whole: on the scale 1
/// bench 8% of the tool's CPU was the kernel clearing such pages, and RSS 20 MiB higher
/// (perf-results/scale1-2026-12-02-thp.md). Faults after this call take 4 KiB pages; what is
/// mapped already stays as it is.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
