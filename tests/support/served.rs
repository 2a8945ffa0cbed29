//! `flowgate serve` as a child process, for the tests that run the binary (`tests/cli.rs`,
//! `tests/watch.rs`): started on a free port, its stderr read line by line, killed when dropped.
#![allow(dead_code)]

use std::process::Command;

/// A `flowgate serve` child on a free port, with what it writes to stderr read line by line on a
/// thread; killed when dropped, if it is still running.
pub struct Served {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Everything it wrote so far.
    pub stderr: String,
}

impl Served {
    /// Starts `flowgate serve ARGS...` and waits (bounded) for its login line.
    pub fn start(database_url: &str, args: &[&str], env_token: Option<&str>) -> Served {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowgate"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
            .args(args)
            .env_remove("FLOWGATE_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = env_token {
            cmd.env("FLOWGATE_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("run flowgate serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served { child, lines, stderr: String::new() };
        served.wait_for("log in", std::time::Duration::from_secs(60));
        served
    }

    /// Reads stderr until a line contains `needle`; panics with what it read after `within`.
    pub fn wait_for(&mut self, needle: &str, within: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(line) => {
                    self.stderr += &line;
                    self.stderr.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("serve wrote no line with {needle:?} ({e}):\n{}", self.stderr),
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; its status.
    pub fn terminate(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let killed = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it wrote up to its end.
                while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(1)) {
                    self.stderr += &line;
                    self.stderr.push('\n');
                }
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "still running after SIGTERM:\n{}", self.stderr);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The address it listens on, from its first line.
    pub fn addr(&self) -> std::net::SocketAddr {
        let line = self.stderr.lines().find(|l| l.contains("listening on http://")).expect("the listening line");
        // The host and port, whether the line is text or a JSON log event.
        line.split("http://").nth(1).unwrap().split('/').next().unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
