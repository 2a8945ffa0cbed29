//! The `flowgate` binary as tests run it: arguments in, exit code and both outputs back.

use std::process::Command;

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn flowgate(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate")).args(args).output().expect("run flowgate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}
