//! Headless Chromium through Debian's chromedriver, for the browser tests and the map benchmark.
//! A fresh profile directory per session; chromedriver is killed when the guard drops.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

pub struct Chromedriver {
    child: Child,
    url: String,
    profiles: std::sync::Mutex<Vec<String>>,
}

impl Chromedriver {
    pub fn start() -> Result<Chromedriver, String> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_string());
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {bin} ({e}); Debian: apt-get install chromium chromium-driver"))?;
        let driver = Chromedriver { child, url: format!("http://127.0.0.1:{port}"), profiles: Default::default() };
        // chromedriver listens within tens of milliseconds; poll its port, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("chromedriver did not listen on port {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(driver)
    }

    /// A headless Chromium session with its own profile in `profile`.
    #[allow(dead_code)]
    pub async fn session(&self, profile: &Path, size: (u32, u32)) -> Result<Client, String> {
        self.session_with(profile, size, &[], false).await
    }

    /// The same with more command-line switches (`--blink-settings=preferredColorScheme=0` for a
    /// dark system theme, say), and with `exact` a viewport of exactly `w` x `h` CSS pixels
    /// (chromedriver's device metrics; a headless window is never narrower than 500 px and its
    /// viewport is shorter than the window).
    #[allow(dead_code)]
    pub async fn session_with(
        &self,
        profile: &Path,
        (w, h): (u32, u32),
        extra: &[&str],
        exact: bool,
    ) -> Result<Client, String> {
        self.profiles.lock().unwrap_or_else(|p| p.into_inner()).push(profile.display().to_string());
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--no-first-run".to_string(),
            "--hide-scrollbars".to_string(),
            format!("--window-size={w},{h}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut chrome = json!({ "args": args });
        let binary = std::env::var("CHROME")
            .ok()
            .or_else(|| Path::new("/usr/bin/chromium").exists().then(|| "/usr/bin/chromium".to_string()));
        if let Some(b) = binary {
            chrome["binary"] = json!(b);
        }
        if exact {
            chrome["mobileEmulation"] = json!({ "deviceMetrics": { "width": w, "height": h, "pixelRatio": 1.0, "touch": false, "mobile": false } });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".to_string(), chrome);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .map_err(|e| format!("starting a Chromium session: {e}"))?;
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .map_err(|e| e.to_string())?;
        Ok(client)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A session a failed test did not close leaves Chromium running without its driver:
        // end every process that uses one of our profiles.
        for p in self.profiles.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = Command::new("pkill")
                .args(["-f", "--"])
                .arg(format!("--user-data-dir={p}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
