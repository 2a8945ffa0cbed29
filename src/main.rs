//! The `flowgate` binary: the command line in [`cli`] (argument parsing and printing only); the
//! work is in the library.

use std::process::ExitCode;

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_huge_pages();
    cli::main()
}

/// Turns transparent huge pages off for this process. With them, every fresh stretch of memory the
/// allocator touches is a 2 MiB page the kernel clears first: a profile of `flowgate ingest` put a
/// fifth of its samples in `clear_page_erms`, and its system time was a quarter of its CPU time.
/// Without them (measured interleaved, 6 runs each, 420k-line file, BENCHMARKS.md): ingest 12 %
/// faster (system time 0.29 -> 0.13 s, peak RSS 130 -> 70 MB), `generate` 5 %. Best effort: a
/// kernel that refuses leaves things as they were.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
