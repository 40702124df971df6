//! config: finding, reading and parsing service files, and the checks across files (duplicate
//! names, missing dependencies, cycles). `validate` turns one parsed file into a `ServiceSpec`;
//! this module owns the I/O around it, the diagnostics and `init --check`.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::graph::{Graph, normalize};
use crate::spec::{Config, Kind, ServiceSpec};
use crate::validate::{self, Ctx, DepRef, UserDb, io_reason};

/// Largest service file read (design: capacities from input are bounded).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One message about one file: `web.toml:12:9: restart.strategy: expected ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the message is about the whole file.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Dotted key (`restart.strategy`), or empty.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--check`: a user or group name not found is a warning unless `root` is set.
    pub check: bool,
    /// `--root DIR`: read DIR/etc/passwd and DIR/etc/group.
    pub root: Option<PathBuf>,
    /// For `${VAR}` expansion in native files.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The services that passed, sorted by name.
    pub config: Config,
    /// Every error and warning, grouped by file, in position order.
    pub diagnostics: Vec<Diagnostic>,
    /// Number of `Severity::Error` diagnostics.
    pub errors: usize,
    /// Number of targets in `config`.
    pub targets: usize,
}

/// One file after parsing: its spec (None when refused) and the references it makes.
struct Parsed {
    path: PathBuf,
    /// The name the file claims (its spec's name, or its stem when it did not parse).
    name: String,
    spec: Option<ServiceSpec>,
    refs: Vec<DepRef>,
}

fn diag(path: &Path, key: &str, message: String) -> Diagnostic {
    Diagnostic {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        key: key.to_string(),
        message,
        severity: Severity::Error,
    }
}

/// Parse and validate one file's text. No I/O, except /etc/passwd and /etc/group when the file
/// names a user or group.
pub fn parse_service(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
) -> (Option<ServiceSpec>, Vec<Diagnostic>) {
    let mut users = UserDb::new(opts.root.as_deref());
    let p = parse_text(path, text, opts, &mut users);
    (p.0, p.1)
}

fn parse_text(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
    users: &mut UserDb,
) -> (Option<ServiceSpec>, Vec<Diagnostic>, Vec<DepRef>) {
    let mut cx = Ctx::new(path, text, opts, users);
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut seen = BTreeSet::new();
        for e in errors {
            let span = e.span();
            if seen.insert(span.as_ref().map(|s| s.start)) {
                let msg = format!("TOML syntax: {}", e.message().trim_end());
                cx.diag(Severity::Error, span, "", msg);
            }
        }
        let mut d = cx.diags;
        d.sort_by_key(|d| (d.line, d.col));
        return (None, d, Vec::new());
    }
    let span = root.span();
    let spec = validate::service(&mut cx, root.get_ref(), span);
    let refs = std::mem::take(&mut cx.refs);
    let mut d = cx.diags;
    d.sort_by_key(|d| (d.line, d.col));
    (spec, d, refs)
}

/// The files to read: each path itself, or a directory's `*.toml` entries (sorted, not recursive).
fn collect(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                diags.push(diag(p, "", io_reason(&e)));
                continue;
            }
        };
        if !meta.is_dir() {
            files.push(p.clone());
            continue;
        }
        let entries = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) => {
                diags.push(diag(
                    p,
                    "",
                    format!("cannot read directory: {}", io_reason(&e)),
                ));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|f| f.extension().is_some_and(|x| x == "toml"))
            .collect();
        found.sort();
        if found.is_empty() {
            diags.push(diag(
                p,
                "",
                "no service files (*.toml) in this directory".into(),
            ));
        }
        files.extend(found);
    }
    files
}

/// Read one file: a regular file, at most 1 MiB, UTF-8. Errors name the file.
fn read(path: &Path) -> Result<String, Diagnostic> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let dangling =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let msg = if dangling {
                let to = std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                format!("dangling symbolic link (to {to:?})")
            } else {
                format!("cannot read: {}", io_reason(&e))
            };
            return Err(diag(path, "", msg));
        }
    };
    if !meta.is_file() {
        return Err(diag(path, "", "not a regular file".into()));
    }
    if meta.len() > MAX_FILE_SIZE {
        let msg = format!("file is larger than 1 MiB ({} bytes)", meta.len());
        return Err(diag(path, "", msg));
    }
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(diag(path, "", format!("cannot read: {}", io_reason(&e))));
    }
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(diag(path, "", "file is larger than 1 MiB".into()));
    }
    String::from_utf8(bytes).map_err(|e| {
        let ok = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let prefix = bytes
            .get(..ok)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("");
        let (line, col) = validate::Source::new(prefix).pos(prefix.len());
        let byte = bytes.get(ok).copied().unwrap_or(0);
        Diagnostic {
            line,
            col,
            ..diag(path, "", format!("not valid UTF-8 (byte 0x{byte:02x})"))
        }
    })
}

/// Load service files and directories. A bad file refuses only its own service; so does a
/// missing `requires`/`start-after`/`die-if-failed` target, a cycle, or a duplicate name.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Loaded {
    let mut diags = Vec::new();
    let mut users = UserDb::new(opts.root.as_deref());
    let mut parsed = Vec::new();
    for path in collect(paths, &mut diags) {
        let stem = path
            .file_name()
            .map(|f| normalize(&f.to_string_lossy()).to_string())
            .unwrap_or_default();
        let text = match read(&path) {
            Ok(t) => t,
            Err(d) => {
                diags.push(d);
                parsed.push(Parsed {
                    path,
                    name: stem,
                    spec: None,
                    refs: Vec::new(),
                });
                continue;
            }
        };
        let (spec, d, refs) = parse_text(&path, &text, opts, &mut users);
        diags.extend(d);
        let name = spec.as_ref().map_or(stem, |s| s.name.clone());
        parsed.push(Parsed {
            path,
            name,
            spec,
            refs,
        });
    }
    let services = cross_check(parsed, &mut diags);
    // Group by file, keeping each file's position order; file-level messages lead.
    diags.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then(a.line.cmp(&b.line))
            .then(a.col.cmp(&b.col))
    });
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let targets = services.iter().filter(|s| s.kind == Kind::Target).count();
    Loaded {
        config: Config { services },
        diagnostics: diags,
        errors,
        targets,
    }
}

/// Duplicate names, missing references, cycles. Refusing a service can make its dependents'
/// references missing, so repeat until nothing more is refused.
fn cross_check(parsed: Vec<Parsed>, diags: &mut Vec<Diagnostic>) -> Vec<ServiceSpec> {
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut live: Vec<(ServiceSpec, Vec<DepRef>)> = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let others: Vec<String> = parsed
            .iter()
            .enumerate()
            .filter(|(j, q)| *j != i && q.name == p.name)
            .map(|(_, q)| q.path.display().to_string())
            .collect();
        if !others.is_empty() {
            let msg = format!(
                "service \"{}\" is also defined in {}",
                p.name,
                others.join(", ")
            );
            diags.push(diag(&p.path, "name", msg));
            refused.insert(p.name.clone());
        } else if p.spec.is_none() {
            refused.insert(p.name.clone());
        }
    }
    for p in parsed {
        if let Some(s) = p.spec
            && !refused.contains(&s.name)
        {
            live.push((s, p.refs));
        }
    }
    live.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut warned = BTreeSet::new();
    loop {
        let config = Config {
            services: live.iter().map(|(s, _)| s.clone()).collect(),
        };
        let graph = Graph::build(&config);
        let mut refuse: BTreeSet<usize> = BTreeSet::new();
        for m in &graph.missing {
            let Some((s, refs)) = live.get(m.from) else {
                continue;
            };
            let r = refs
                .iter()
                .find(|r| r.edge == m.edge && r.name == normalize(&m.name));
            let (line, col, key) = r.map_or((0, 0, m.edge.key().to_string()), |r| {
                (r.line, r.col, r.key.clone())
            });
            let (severity, message) = if m.edge.missing_is_error() {
                refuse.insert(m.from);
                let msg = if refused.contains(normalize(&m.name)) {
                    format!(
                        "service \"{}\" has errors and is not loaded",
                        normalize(&m.name)
                    )
                } else {
                    format!("no service named \"{}\"", m.name)
                };
                (Severity::Error, msg)
            } else {
                if !warned.insert((s.name.clone(), m.edge, m.name.clone())) {
                    continue;
                }
                (
                    Severity::Warning,
                    format!("no service named \"{}\"; ignored", m.name),
                )
            };
            diags.push(Diagnostic {
                path: s.file.clone(),
                line,
                col,
                key,
                message,
                severity,
            });
        }
        for cycle in graph.cycles() {
            let names: Vec<&str> = cycle
                .iter()
                .filter_map(|&i| live.get(i).map(|(s, _)| s.name.as_str()))
                .collect();
            let (Some(&first), Some(second)) = (cycle.first(), names.get(1)) else {
                continue;
            };
            let Some((s, refs)) = live.get(first) else {
                continue;
            };
            let r = refs
                .iter()
                .find(|r| r.edge.orders_start() && r.name == *second);
            let (line, col, key) =
                r.map_or((0, 0, String::new()), |r| (r.line, r.col, r.key.clone()));
            diags.push(Diagnostic {
                path: s.file.clone(),
                line,
                col,
                key,
                message: format!("cycle: {}", names.join(" -> ")),
                severity: Severity::Error,
            });
            refuse.extend(cycle.iter().copied());
        }
        if refuse.is_empty() {
            break;
        }
        let mut i = 0;
        live.retain(|(s, _)| {
            let keep = !refuse.contains(&i);
            if !keep {
                refused.insert(s.name.clone());
            }
            i += 1;
            keep
        });
    }
    live.into_iter().map(|(s, _)| s).collect()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `init --check PATH...`: every diagnostic, then a one-line summary; 0 when there is no error.
pub fn check(paths: &[PathBuf], root: Option<&Path>, out: &mut dyn std::io::Write) -> i32 {
    let opts = LoadOptions {
        check: true,
        root: root.map(Path::to_path_buf),
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let loaded = load(paths, &opts);
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    let warnings = loaded.diagnostics.len() - loaded.errors;
    let warn = if warnings > 0 {
        format!(", {}", plural(warnings, "warning"))
    } else {
        String::new()
    };
    if loaded.errors == 0 {
        let services = loaded.config.services.len() - loaded.targets;
        let _ = writeln!(
            out,
            "ok: {}, {}{warn}",
            plural(services, "service"),
            plural(loaded.targets, "target")
        );
        0
    } else {
        let files: BTreeSet<&Path> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.path.as_path())
            .collect();
        let _ = writeln!(
            out,
            "error: {} in {}{warn}",
            plural(loaded.errors, "error"),
            plural(files.len(), "file")
        );
        1
    }
}

/// `init --sample-service`: every key with its default. Passes `--check` (tested).
pub const SAMPLE_SERVICE: &str = r#"# A service file for init (ankh). The name is the file stem (web.toml is "web").
# Every key is shown with its default; only `command` is required. Keys with no default are
# commented out. Horust service files load unchanged; see docs/config.md for every key.

command = "/bin/echo hello"      # a string split like a shell (quotes, no expansion), or an array
# name = "web"                   # default: the file stem
# user = "www"                   # name (from /etc/passwd) or uid; default: init's user
# group = "www"                  # default: the user's group
# working-directory = "/srv/web" # default: init's working directory
# umask = "022"                  # default: inherited from init
start-delay = "0s"               # before every start
autostart = true                 # false: started by `init start` or a dependent
oneshot = false                  # runs to completion; ready when it exits successfully
requires = []                    # start these first, wait until ready; stop with them
start-after = []                 # wait until these are ready or finished (Horust)
after = []                       # order only, when both are being started
wants = []                       # start these too
conflicts = []                   # starting one stops the other
shutdown-after = []              # on shutdown, stop this one after these (Horust)
ready = "auto"                   # auto | started | healthy | notify | "fd:3"
start = "auto"                   # auto | on-demand (needs [socket] or [proxy])
start-timeout = "0s"             # 0 = none
idle-timeout = "0s"              # on-demand only: stop after this long idle; 0 = never
stdout = "log"                   # log | STDOUT | STDERR | null | /path/to/file
stderr = "log"
stdout-rotate-size = "0"         # rotate file output at this size; 0 = never
stdout-rotate-keep = 5           # rotated files kept
stdout-should-append-timestamp-to-filename = false
log-buffer = "16KiB"             # ring kept for `init logs`
forward-signals = []             # e.g. ["WINCH", "USR1"]
# signal-rewrite = "TERM:INT"    # forwarded signal FROM:TO pairs

[restart]
strategy = "never"               # always | on-failure | never
backoff = "0s"                   # first delay (at least 100ms), doubling per consecutive failure
max-backoff = "60s"
attempts = 0                     # consecutive failed runs before giving up; 0 = never give up
reset-after = "60s"              # a run this long resets the count and the delay

[healthiness]                    # checks run only when one of the four is set
# http-endpoint = "http://127.0.0.1:8080/healthz"   # healthy on 2xx
# tcp-endpoint = "127.0.0.1:5432"                   # healthy when connect succeeds
# command = "/usr/bin/check"                        # healthy on exit 0
# file-path = "/run/web.up"                         # healthy while it exists
interval = "1s"
timeout = "1s"
start-period = "0s"              # failures this soon after start don't count
max-failed = 3                   # consecutive failures before unhealthy
on-unhealthy = "restart"         # restart | stop | ignore

[failure]
successful-exit-code = [0]
strategy = "ignore"              # ignore | kill-dependents | shutdown

[termination]
signal = "TERM"
wait = "5s"                      # then SIGKILL to the process group
die-if-failed = []

[environment]
keep-env = false                 # start from init's environment instead of an empty one
re-export = []                   # copy these from init's environment
additional = {}                  # e.g. { RUST_LOG = "info" }

[resource-limit]
# nofile = 65536                 # rlimits: nofile, nproc, core, memlock, stack ("unlimited" ok)
# cpu = 0.5                      # cgroup v2: cores, memory ("512 MiB"), pids-max
# memory = "512 MiB"
# pids-max = 100
required = false                 # true: refuse to start when cgroup limits cannot be applied

# [socket]                       # socket activation: fds 3.., LISTEN_FDS
# listen = ["tcp:127.0.0.1:8080", "unix:/run/web.sock"]
# mode = "0660"                  # unix sockets
# owner = "www"
# backlog = 128

# [proxy]                        # init accepts and copies bytes to the backend (zinit's xinet)
# listen = "tcp:0.0.0.0:5432"
# backend = "unix:/run/postgres.sock"
# max-connections = 256
"#;
