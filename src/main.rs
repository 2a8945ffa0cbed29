//! The `flowgate` binary: the command line in [`cli`] (argument parsing and printing only); the
//! work is in the library.

use std::process::ExitCode;

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
