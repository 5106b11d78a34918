//! A real headless browser for the tests that check a page as users see it: Chromium (or Chrome)
//! loads a URL, runs its scripts for a stretch of virtual time, and prints the DOM it ends with.
//!
//! The tests that use it run only with `RL_BROWSER_TESTS=1` (CI sets it and installs Chromium);
//! then a missing browser fails them. Each load uses a fresh profile directory, is killed (its
//! whole process group, by id) past its time limit, and leaves nothing running.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that switches browser tests on.
pub const BROWSER_TESTS_ENV: &str = "RL_BROWSER_TESTS";

/// The program names tried, in order, on `PATH`.
const CANDIDATES: [&str; 4] = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/// A headless Chromium found on `PATH`.
pub struct Browser {
    program: PathBuf,
}

impl Browser {
    /// The browser for test `name`: `None` (and a line saying the test is skipped) unless
    /// `RL_BROWSER_TESTS=1`; then a browser must be on `PATH`, or the test fails.
    pub fn for_test(name: &str) -> Option<Browser> {
        if std::env::var(BROWSER_TESTS_ENV).as_deref() != Ok("1") {
            println!("{name}: skipped (set {BROWSER_TESTS_ENV}=1 to run it in a headless browser)");
            return None;
        }
        let found = Self::find();
        assert!(
            found.is_some(),
            "{BROWSER_TESTS_ENV}=1 but none of {CANDIDATES:?} is on PATH (Debian: apt-get install chromium)"
        );
        found
    }

    /// The first of `chromium`, `chromium-browser`, `google-chrome`, `google-chrome-stable`
    /// on `PATH`.
    pub fn find() -> Option<Browser> {
        let path = std::env::var_os("PATH")?;
        CANDIDATES.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| is_executable(p))
                .map(|program| Browser { program })
        })
    }

    /// Loads `url` in a new profile under `dir`, lets the page run for `virtual_ms` of virtual
    /// time (timers advance; the clock stands still while requests are pending), and returns
    /// the serialized DOM. Panics, with the browser's stderr, if it fails or takes longer than
    /// `limit` of real time (it is then killed).
    pub fn dump_dom(&self, url: &str, dir: &Path, virtual_ms: u32, limit: Duration) -> String {
        static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = dir.join(format!("browser-profile-{n}"));
        let stderr_path = dir.join(format!("browser-{n}.err"));
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "--headless",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--password-store=basic",
            "--use-mock-keychain",
        ]);
        // Chromium refuses to run as root with its sandbox on.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--no-sandbox");
        }
        cmd.arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={virtual_ms}"))
            .arg("--dump-dom")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            // Its own process group, so the renderer and helper processes die with it.
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let group = child.id() as libc::pid_t;
        let kill_group = || unsafe {
            libc::kill(-group, libc::SIGKILL);
        };
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Whatever of its group is left (helpers outliving the browser, or all of it on timeout).
        kill_group();
        let _ = child.wait();
        let dom = reader.join().unwrap();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&profile);
        match status {
            None => {
                panic!("{} did not finish loading {url} within {limit:?}; stderr:\n{stderr}", self.program.display())
            }
            Some(s) if !s.success() || dom.trim().is_empty() => {
                panic!("{} failed to load {url} ({s}); stderr:\n{stderr}", self.program.display())
            }
            Some(_) => dom,
        }
    }
}

/// The opening tags `<tag ...>` of `dom` whose `class` attribute lists `class`.
pub fn tags<'a>(dom: &'a str, tag: &str, class: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find(&open) {
        let from = &rest[start..];
        let end = from.find('>').map_or(from.len(), |e| e + 1);
        let element = &from[..end];
        if attr(element, "class").is_some_and(|c| c.split_whitespace().any(|c| c == class)) {
            found.push(element);
        }
        rest = &from[end..];
    }
    found
}

/// The value of attribute `name` in an opening tag as a serialized DOM writes it (`name="value"`,
/// entities kept as written).
pub fn attr(element: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let len = element[start..].find('"')?;
    Some(element[start..start + len].to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
