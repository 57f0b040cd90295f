//! Harness shared by the admin CLI tests (`cli_*.rs`): runs the real `otad` binary as an
//! admin would, against a real server started by `api_common::Server`, with its own config
//! directory (so a saved login never leaks between tests or from the developer's home) and
//! none of the `OTAD_*` variables of the environment. Every run is bounded in time.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one CLI run may take (the 50 MiB upload and 10,000-device import included).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables the CLI reads; cleared for every run unless a test sets them.
const OTAD_VARS: &[&str] = &[
    "OTAD_URL",
    "OTAD_TOKEN",
    "OTAD_CA",
    "OTAD_PARTNER",
    "OTAD_DATA_DIR",
    "OTAD_CLIENT_ID",
    "OTAD_CLIENT_SECRET",
    "OTAD_PASSWORD",
    "OTAD_DEVICE_TOKEN",
];

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "otad {}\nexit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts the exit code; returns self.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {}", self.context());
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// stdout as JSON (one document).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.context()))
    }

    /// Asserts a failure with `code` and a one-line message on stderr that contains every
    /// one of `needles`; no Rust debug output.
    #[track_caller]
    pub fn fails(&self, code: i32, needles: &[&str]) -> &Self {
        self.code(code);
        let msg = self.stderr.trim_end();
        assert_eq!(msg.lines().count(), 1, "not one line: {}", self.context());
        assert!(msg.starts_with("otad: "), "{}", self.context());
        for n in needles {
            assert!(msg.contains(n), "missing {n:?}: {}", self.context());
        }
        for bad in ["panicked", "RUST_BACKTRACE", "Error {", "Some(", "kind:"] {
            assert!(
                !msg.contains(bad),
                "debug dump in the message: {}",
                self.context()
            );
        }
        self
    }
}

/// A CLI user: their config directory, working directory and extra environment.
pub struct Cli {
    home: tempfile::TempDir,
    /// Passed as `--data-dir` (local-server discovery) when set.
    pub data_dir: Option<PathBuf>,
    pub envs: Vec<(String, String)>,
}

impl Cli {
    /// A user on the appliance host: finds the server through its data directory.
    pub fn local(data: &Path) -> Cli {
        let mut c = Cli::remote();
        c.data_dir = Some(data.to_path_buf());
        c
    }

    /// A user elsewhere: no data directory (an empty one, so no server is found there).
    pub fn remote() -> Cli {
        let home = tempfile::Builder::new()
            .prefix("otad-cli-test")
            .tempdir()
            .expect("temp dir");
        fs::create_dir_all(home.path().join("work")).expect("work dir");
        Cli {
            home,
            data_dir: None,
            envs: Vec::new(),
        }
    }

    /// The `$XDG_CONFIG_HOME` of this user.
    pub fn config_home(&self) -> PathBuf {
        self.home.path().join("config")
    }

    /// A scratch directory for files.
    pub fn dir(&self) -> PathBuf {
        self.home.path().join("work")
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None)
    }

    /// Runs `otad ARGS --json`, asserts success and returns the JSON document.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).ok().json()
    }

    /// Runs and asserts success; returns stdout.
    #[track_caller]
    pub fn text(&self, args: &[&str]) -> String {
        self.run(args).ok().stdout.clone()
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let out_path = self.home.path().join("stdout");
        let err_path = self.home.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_otad"));
        if let Some(d) = &self.data_dir {
            cmd.arg("--data-dir").arg(d);
        } else {
            cmd.arg("--data-dir")
                .arg(self.home.path().join("no-server-here"));
        }
        cmd.args(args)
            .current_dir(self.dir())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("HOME", self.home.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(fs::File::create(&out_path).expect("stdout file"))
            .stderr(fs::File::create(&err_path).expect("stderr file"));
        for v in OTAD_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn otad");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("otad {args:?} did not finish within {RUN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }
}

/// A string field of a JSON object (panics with the object when missing).
#[track_caller]
pub fn field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
        .to_string()
}

/// The items of a JSON array (panics when it is not one).
#[track_caller]
pub fn array(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {v}"))
        .clone()
}

/// Mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
