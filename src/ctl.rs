//! ctl: the command-line client (`init status`, `init logs -f web`, ...). It connects to the
//! control socket, sends `HELLO` and the request, and prints the reply for people (aligned
//! columns) or for scripts (`--json`, written by hand). Documented in `docs/cli.md`.
//!
//! Exit codes: 0 done (for `health`: healthy), 1 init answered with an error (or unhealthy),
//! 2 usage error, 3 init cannot be reached (not running, socket refused, permission denied),
//! 4 timed out (no reply in time, or `wait` reached its timeout).

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{self, DepKind, Health, Line, Request, ServiceView};
use crate::supervisor::State;

/// The words that make `init` a client instead of a supervisor.
pub const VERBS: &[&str] = &[
    "status",
    "list",
    "ls",
    "start",
    "stop",
    "restart",
    "kill",
    "logs",
    "log",
    "why",
    "tree",
    "reload",
    "add",
    "remove",
    "start-all",
    "stop-all",
    "shutdown",
    "poweroff",
    "reboot",
    "wait",
    "events",
    "health",
];

pub const USAGE: &str = "\
usage: init [--socket PATH] [--json] [--timeout D] COMMAND [ARGS]

commands (talk to the running init over its control socket):
  status [NAME]             every service (or one, in detail)
  list                      names, states and pids
  start|stop|restart NAME...
  kill NAME [SIGNAL]        signal the service's process group (default TERM)
  logs [NAME] [-f] [-n N]   buffered output (all services without NAME); -f follows
  why NAME                  why NAME is not running: which dependency, which failure
  tree                      dependency tree
  reload                    re-read the config dirs (invalid: nothing changes)
  add FILE                  copy FILE into the config dir and start it
  remove NAME               stop NAME and delete its file
  start-all | stop-all
  shutdown | poweroff | reboot
  wait NAME STATE [--timeout D]   until NAME is STATE (Running, Exited, Failed, Inactive, ...)
  events                    stream of state changes
  health [NAME] [--ready]   exit 0 only when healthy (Docker HEALTHCHECK, k8s probes)
options:
  --socket PATH             control socket (default $INIT_SOCKET, $ZINIT_SOCKET, /run/init.sock)
  --json                    machine-readable output
  --timeout D               give up waiting for a reply after D (default 10s)
exit codes: 0 ok, 1 error or unhealthy, 2 usage, 3 init not reachable, 4 timed out
";

/// Default time to wait for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `wait --timeout`.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// True when `args` (without `argv[0]`) ask for a client command: the first word that is not a
/// client option is a verb. `init -- status` stays tini mode.
pub fn is_client(args: &[OsString]) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--socket") | Some("--timeout") => {
                it.next();
            }
            Some("--json") => {}
            Some(a) if a.starts_with("--socket=") || a.starts_with("--timeout=") => {}
            Some(w) => return VERBS.contains(&w),
            None => return false,
        }
    }
    false
}

/// One client invocation, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub socket: Option<PathBuf>,
    pub json: bool,
    pub timeout: Duration,
    /// One request per name for `start a b`; otherwise one.
    pub requests: Vec<Request>,
}

/// Parses a client command line (without `argv[0]`).
pub fn parse(args: Vec<OsString>) -> Result<Invocation, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut socket = None;
    let mut json = false;
    let mut timeout: Option<Duration> = None;
    let mut follow = false;
    let mut lines: Option<usize> = None;
    let mut ready = false;
    let mut signal: Option<String> = None;
    let mut words: Vec<String> = Vec::new();
    let duration = |v: OsString, what: &str| -> Result<Duration, String> {
        let s = v.to_string_lossy();
        parse_duration(&s).ok_or_else(|| format!("{what}: not a duration: {s:?}"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("socket") => socket = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?)),
            Long("json") => json = true,
            Long("timeout") => timeout = Some(duration(p.value().map_err(|e| e.to_string())?, "--timeout")?),
            Short('f') | Long("follow") => follow = true,
            Short('n') | Long("lines") => {
                let v = p.value().map_err(|e| e.to_string())?;
                let v = v.to_string_lossy();
                lines = Some(v.parse().map_err(|_| format!("-n: not a number of lines: {v:?}"))?);
            }
            Long("ready") => ready = true,
            Short('s') | Long("signal") => {
                signal = Some(p.value().map_err(|e| e.to_string())?.to_string_lossy().into_owned());
            }
            Value(v) => {
                words.push(v.into_string().map_err(|v| format!("not UTF-8: {:?}", v.to_string_lossy()))?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let (verb, args) = words.split_first().ok_or("no command given")?;
    let args: Vec<String> = args.to_vec();
    let arity = |min: usize, max: usize| -> Result<(), String> {
        if args.len() < min {
            Err(format!("{verb}: missing argument"))
        } else if args.len() > max {
            Err(format!("{verb}: unexpected argument {:?}", args.get(max).cloned().unwrap_or_default()))
        } else {
            Ok(())
        }
    };
    let first = || args.first().cloned().unwrap_or_default();
    let only = |flag: bool, name: &str, verbs: &[&str]| -> Result<(), String> {
        if flag && !verbs.contains(&verb.as_str()) {
            Err(format!("{verb}: {name} is not an option here"))
        } else {
            Ok(())
        }
    };
    only(follow, "-f", &["logs", "log"])?;
    only(lines.is_some(), "-n", &["logs", "log"])?;
    only(ready, "--ready", &["health"])?;
    only(signal.is_some(), "-s", &["kill"])?;
    let mut timeout_for_reply = timeout.unwrap_or(REPLY_TIMEOUT);
    let requests = match verb.as_str() {
        "status" => {
            arity(0, 1)?;
            vec![Request::Status { name: args.first().cloned() }]
        }
        "list" | "ls" => {
            arity(0, 0)?;
            vec![Request::List]
        }
        "start" | "stop" | "restart" => {
            arity(1, usize::MAX)?;
            args.iter()
                .map(|n| {
                    let name = n.clone();
                    match verb.as_str() {
                        "start" => Request::Start { name },
                        "stop" => Request::Stop { name },
                        _ => Request::Restart { name },
                    }
                })
                .collect()
        }
        "kill" => {
            arity(1, 2)?;
            let sig = args.get(1).cloned().or(signal).unwrap_or_else(|| "TERM".to_string());
            vec![Request::Kill { name: first(), signal: sig }]
        }
        "logs" | "log" => {
            arity(0, 1)?;
            vec![Request::Logs { name: args.first().cloned(), lines, follow }]
        }
        "why" => {
            arity(1, 1)?;
            vec![Request::Why { name: first() }]
        }
        "add" => {
            arity(1, 1)?;
            let path = std::fs::canonicalize(first()).map_err(|e| format!("add: {}: {e}", first()))?;
            let path =
                path.into_os_string().into_string().map_err(|_| "add: the path is not UTF-8".to_string())?;
            vec![Request::Add { path }]
        }
        "remove" => {
            arity(1, 1)?;
            vec![Request::Remove { name: first() }]
        }
        v if let Some(req) = Request::without_arguments(v) => {
            arity(0, 0)?;
            vec![req]
        }
        "wait" => {
            arity(2, 2)?;
            let s = args.get(1).cloned().unwrap_or_default();
            let state = proto::parse_state(&s).ok_or_else(|| {
                format!("wait: not a state: {s:?} (Inactive, Blocked, Starting, Running, Stopping, Exited, Failed)")
            })?;
            let wait = timeout.unwrap_or(WAIT_TIMEOUT);
            timeout_for_reply = wait.saturating_add(REPLY_TIMEOUT);
            let timeout_ms = u64::try_from(wait.as_millis()).unwrap_or(proto::MAX_WAIT_MS);
            vec![Request::Wait { name: first(), state, timeout_ms }]
        }
        "health" => {
            arity(0, 1)?;
            vec![Request::Health { name: args.first().cloned(), ready }]
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Invocation { socket, json, timeout: timeout_for_reply, requests })
}

/// Runs a client command line (without `argv[0]`) and returns the exit code.
pub fn run(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> i32 {
    let mut t = Term { out: &mut std::io::stdout(), err: &mut std::io::stderr() };
    run_with(args, env, &mut t)
}

/// Where the client writes: stdout and stderr, or buffers in tests.
pub struct Term<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Term<'_> {
    /// False when stdout is closed (EPIPE, `| head`): the command then ends quietly.
    fn out(&mut self, bytes: &[u8]) -> bool {
        self.out.write_all(bytes).and_then(|()| self.out.flush()).is_ok()
    }

    fn err(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
    }
}

/// `run`, writing to `t`.
pub fn run_with(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>, t: &mut Term<'_>) -> i32 {
    if args.iter().any(|a| a == OsStr::new("--help") || a == OsStr::new("-h")) {
        t.out(USAGE.as_bytes());
        return 0;
    }
    let inv = match parse(args) {
        Ok(i) => i,
        Err(e) => {
            t.err(&format!("init: {e}\ntry `init --help`\n"));
            return 2;
        }
    };
    let euid = rustix::process::geteuid().as_raw();
    let path = crate::control::socket_path(inv.socket.as_deref(), env, euid);
    match execute(&inv, &path, t) {
        Ok(code) => code,
        Err(e) => {
            if inv.json {
                t.out(format!("{{\"ok\":false,\"error\":{}}}\n", json_str(&e.message)).as_bytes());
            }
            t.err(&format!("init: {}\n", e.message));
            e.exit
        }
    }
}

/// A failure of the client itself: what to say and which exit code.
struct Fail {
    message: String,
    exit: i32,
}

fn unreachable(message: String) -> Fail {
    Fail { message, exit: 3 }
}

/// A connection with a line reader.
struct Conn {
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Conn {
    fn open(path: &Path, timeout: Duration) -> Result<Conn, Fail> {
        let s = connect(path, timeout)?;
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        Ok(Conn { reader: BufReader::new(s), timeout })
    }

    fn send(&mut self, lines: &str) -> Result<(), Fail> {
        match self.reader.get_mut().write_all(lines.as_bytes()) {
            Ok(()) => Ok(()),
            // init refused us (ERR 403, 503) and closed before our request went out: what it
            // said is the answer, not the EPIPE.
            Err(e) => Err(self.refusal().unwrap_or_else(|| self.io_fail(e))),
        }
    }

    /// An `ERR <code> <message>` init sent before closing, if any.
    fn refusal(&mut self) -> Option<Fail> {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut self.reader, &mut text);
        let text = String::from_utf8_lossy(&text);
        let err = text.lines().find(|l| l.starts_with("ERR "))?;
        let mut words = err.splitn(3, ' ').skip(1);
        let code = words.next().unwrap_or("");
        let message = words.next().unwrap_or("");
        Some(unreachable(format!("init refused the connection: {message} ({code})")))
    }

    /// Reads one reply line; `None` at end of stream.
    fn line(&mut self) -> Result<Option<Line>, Fail> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => Ok(None),
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                proto::parse_line(&buf)
                    .map(Some)
                    .map_err(|e| Fail { message: format!("bad reply: {e}"), exit: 1 })
            }
            Err(e) => Err(self.io_fail(e)),
        }
    }

    /// No more timeout: for streams, which may be quiet for hours.
    fn forever(&mut self) {
        let _ = self.reader.get_ref().set_read_timeout(None);
    }

    fn io_fail(&self, e: std::io::Error) -> Fail {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail {
                message: format!(
                    "no reply from init within {} (--timeout to wait longer)",
                    show(self.timeout)
                ),
                exit: 4,
            },
            _ => unreachable(format!("connection to init lost: {e}")),
        }
    }
}

/// Connects within `timeout`. A blocking connect(2) to a unix socket whose backlog is full waits
/// forever (a hung init), so the socket is non-blocking and EAGAIN is retried until the deadline.
fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, Fail> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let shown = path.display();
    let other = |e: Errno| unreachable(format!("cannot connect to {shown}: {e}"));
    let addr = SocketAddrUnix::new(path).map_err(other)?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(other)?;
    let start = std::time::Instant::now();
    loop {
        match rustix::net::connect(&sock, &addr) {
            Ok(()) => break,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if start.elapsed() < timeout => {
                // The backlog is full: init is alive but busy (or hung). Try again shortly.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Errno::AGAIN) => {
                return Err(Fail {
                    message: format!("init did not accept the connection within {}", show(timeout)),
                    exit: 4,
                });
            }
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                return Err(unreachable(format!("init is not running (no control socket at {shown})")));
            }
            Err(Errno::CONNREFUSED) => {
                return Err(unreachable(format!(
                    "init is not running ({shown} refuses connections: a stale socket)"
                )));
            }
            Err(Errno::ACCESS) | Err(Errno::PERM) => {
                return Err(unreachable(format!(
                    "permission denied: {shown} (the control socket is for root and init's own user)"
                )));
            }
            Err(e) => return Err(other(e)),
        }
    }
    rustix::io::ioctl_fionbio(&sock, false).map_err(other)?;
    Ok(UnixStream::from(sock))
}

/// A reply: its data lines, then OK or ERR.
struct Reply {
    lines: Vec<Line>,
    /// None: OK; Some((code, message)): ERR.
    err: Option<(u16, String)>,
}

fn read_reply(conn: &mut Conn) -> Result<Reply, Fail> {
    let mut lines = Vec::new();
    loop {
        match conn.line()? {
            None => {
                return Err(unreachable("init closed the connection before replying".into()));
            }
            Some(Line::Ok) => return Ok(Reply { lines, err: None }),
            Some(Line::Err { code, message }) => {
                return Ok(Reply { lines, err: Some((code, message)) });
            }
            Some(l) => lines.push(l),
        }
    }
}

fn execute(inv: &Invocation, path: &Path, t: &mut Term<'_>) -> Result<i32, Fail> {
    let mut conn = Conn::open(path, inv.timeout)?;
    let mut hello = format!("{}\n", Request::Hello { version: proto::VERSION }.encode());
    for r in &inv.requests {
        hello.push_str(&r.encode());
        hello.push('\n');
    }
    conn.send(&hello)?;
    let greeting = read_reply(&mut conn)?;
    if let Some((code, message)) = greeting.err {
        return Err(unreachable(format!("init refused the connection: {message} ({code})")));
    }
    let mut code = 0;
    for req in &inv.requests {
        let c = match req {
            Request::Logs { follow: true, name, .. } => stream(&mut conn, inv.json, name.is_none(), t)?,
            Request::Events => stream(&mut conn, inv.json, true, t)?,
            _ => {
                let reply = read_reply(&mut conn)?;
                render(req, reply, inv.json, t)
            }
        };
        code = code.max(c);
    }
    Ok(code)
}

/// Prints a streaming reply (`logs -f`, `events`) until init closes it.
fn stream(conn: &mut Conn, json: bool, prefix: bool, t: &mut Term<'_>) -> Result<i32, Fail> {
    loop {
        let line = conn.line()?;
        let text = match line {
            None => return Ok(0),
            Some(Line::Stream(_)) => {
                conn.forever();
                continue;
            }
            Some(Line::Err { code, message }) => {
                return Ok(render_err(code, &message, &[], json, t));
            }
            Some(Line::Log { name, line }) => log_line(&name, &line, prefix, json),
            Some(Line::Skip(n)) if json => format!("{{\"skipped\":{n}}}\n").into_bytes(),
            Some(Line::Skip(n)) => {
                format!("[ankh: {n} lines skipped: this reader was too slow]\n").into_bytes()
            }
            Some(Line::Event(s)) if json => format!("{}\n", service_json(&s, false)).into_bytes(),
            Some(Line::Event(s)) => event_line(&s).into_bytes(),
            Some(_) => continue,
        };
        if !t.out(&text) {
            return Ok(0); // stdout closed (`| head`): done
        }
    }
}

fn log_line(name: &str, line: &[u8], prefix: bool, json: bool) -> Vec<u8> {
    if json {
        let l = String::from_utf8_lossy(line);
        return format!("{{\"service\":{},\"line\":{}}}\n", json_str(name), json_str(&l)).into_bytes();
    }
    let mut v = Vec::with_capacity(name.len() + line.len() + 3);
    if prefix {
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(b": ");
    }
    v.extend_from_slice(line);
    v.push(b'\n');
    v
}

fn event_line(s: &ServiceView) -> String {
    let mut l = format!("{} {}", s.name, proto::state_name(s.state));
    if let Some(pid) = s.pid {
        l.push_str(&format!(" pid {pid}"));
    }
    if s.health == Health::Unhealthy {
        l.push_str(" unhealthy");
    }
    if let Some(r) = &s.reason {
        l.push_str(&format!(" ({r})"));
    }
    l.push('\n');
    l
}

/// Prints a complete reply; returns the exit code.
fn render(req: &Request, reply: Reply, json: bool, t: &mut Term<'_>) -> i32 {
    let diags: Vec<String> = reply
        .lines
        .iter()
        .filter_map(|l| if let Line::Diag(d) = l { Some(d.clone()) } else { None })
        .collect();
    if let Some((code, message)) = reply.err {
        if matches!(req, Request::Health { .. }) && code == proto::ErrCode::Unavailable as u16 {
            // An unhealthy verdict is an answer, not a failure of the command: stdout, exit 1.
            let text = if json {
                format!(
                    "{{\"healthy\":false,\"message\":{},\"details\":{}}}\n",
                    json_str(&message),
                    json_list(&diags)
                )
            } else {
                format!("{message}\n")
            };
            t.out(text.as_bytes());
            return 1;
        }
        return render_err(code, &message, &diags, json, t);
    }
    let services: Vec<ServiceView> = collect_services(&reply.lines);
    let msgs: Vec<String> = reply
        .lines
        .iter()
        .filter_map(|l| if let Line::Msg(m) = l { Some(m.clone()) } else { None })
        .collect();
    let text = match req {
        Request::List if json => json_services(&services, false),
        Request::List => table(
            &["NAME", "STATE", "PID"],
            services
                .iter()
                .map(|s| vec![s.name.clone(), proto::state_name(s.state).to_string(), pid(s)])
                .collect(),
        ),
        Request::Status { name: None } if json => json_services(&services, false),
        Request::Status { name: None } => table(
            &["NAME", "STATE", "PID", "RESTARTS", "HEALTH", "REASON"],
            services
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        proto::state_name(s.state).to_string(),
                        pid(s),
                        s.restarts.to_string(),
                        s.health.name().to_string(),
                        s.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        Request::Status { name: Some(_) } => match services.first() {
            Some(s) if json => format!("{}\n", service_json(s, true)),
            Some(s) => status_block(s),
            None => String::new(),
        },
        Request::Why { name } => why(name, &services, json),
        Request::Tree if json => json_services(&services, true),
        Request::Tree => tree(&services),
        Request::Logs { name, .. } => {
            let mut v = Vec::new();
            for l in &reply.lines {
                if let Line::Log { name: n, line } = l {
                    v.extend(log_line(n, line, name.is_none(), json));
                }
            }
            t.out(&v);
            return 0;
        }
        Request::Wait { .. } => match services.first() {
            Some(s) if json => format!("{}\n", service_json(s, false)),
            Some(s) => event_line(s),
            None => String::new(),
        },
        Request::Health { .. } if json => {
            format!("{{\"healthy\":true,\"message\":{}}}\n", json_str(&msgs.join("; ")))
        }
        _ if json => format!("{{\"ok\":true,\"messages\":{}}}\n", json_list(&msgs)),
        _ => msgs.iter().map(|m| format!("{m}\n")).collect(),
    };
    t.out(text.as_bytes());
    0
}

fn render_err(code: u16, message: &str, diags: &[String], json: bool, t: &mut Term<'_>) -> i32 {
    if json {
        t.out(
            format!(
                "{{\"ok\":false,\"code\":{code},\"error\":{},\"details\":{}}}\n",
                json_str(message),
                json_list(diags)
            )
            .as_bytes(),
        );
    }
    let mut e = String::new();
    for d in diags {
        e.push_str(&format!("{d}\n"));
    }
    e.push_str(&format!("init: {message}\n"));
    t.err(&e);
    match code {
        408 => 4,
        403 | 505 => 3,
        _ => 1,
    }
}

/// `SVC` lines with the `DEP` lines that follow each.
fn collect_services(lines: &[Line]) -> Vec<ServiceView> {
    let mut v: Vec<ServiceView> = Vec::new();
    for l in lines {
        match l {
            Line::Svc(s) => v.push(s.clone()),
            Line::Dep { kind, name } => {
                if let Some(last) = v.last_mut() {
                    last.deps.push((*kind, name.clone()));
                }
            }
            _ => {}
        }
    }
    v
}

fn pid(s: &ServiceView) -> String {
    s.pid.map_or_else(|| "-".to_string(), |p| p.to_string())
}

/// Columns padded to the widest cell; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows.iter()) {
        let n = r.len();
        for (i, (cell, w)) in r.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// `250ms`, `10s`, `2m`, `1h`, `1m30s` or a bare number of seconds; None when malformed or
/// longer than 100 days.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n)).filter(|d| *d <= crate::spec::MAX_DURATION);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == ' ').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(Duration::from_millis(n.checked_mul(ms)?))?;
        rest = tail.trim_start();
    }
    Some(total).filter(|d| !s.is_empty() && *d <= crate::spec::MAX_DURATION)
}

fn show(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 && s < 10 {
        format!("{}ms", d.as_millis())
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else {
        format!("{}d{:02}h", s / 86400, (s / 3600) % 24)
    }
}

fn status_block(s: &ServiceView) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("name", s.name.clone()),
        ("kind", if s.target { "target" } else { "service" }.to_string()),
        ("state", proto::state_name(s.state).to_string()),
        ("pid", pid(s)),
    ];
    if let Some(ms) = s.since_ms {
        rows.push(("since", format!("{} ago", show(Duration::from_millis(ms)))));
    }
    rows.push(("restarts", s.restarts.to_string()));
    rows.push(("health", s.health.name().to_string()));
    rows.push(("autostart", if s.autostart { "yes" } else { "no" }.to_string()));
    if let Some(r) = &s.reason {
        rows.push(("reason", r.clone()));
    }
    for kind in [DepKind::Requires, DepKind::StartAfter, DepKind::After, DepKind::Wants, DepKind::Conflicts] {
        let names: Vec<&str> = s.deps.iter().filter(|(k, _)| *k == kind).map(|(_, n)| n.as_str()).collect();
        if !names.is_empty() {
            rows.push((kind.name(), names.join(", ")));
        }
    }
    rows.iter().map(|(k, v)| format!("{:<12}{v}\n", format!("{k}:"))).collect()
}

/// `why NAME`: the service's state and reason, then each dependency and its state.
fn why(name: &str, services: &[ServiceView], json: bool) -> String {
    let Some(s) = services.iter().find(|s| s.name == name) else {
        return String::new();
    };
    let state_of = |n: &str| services.iter().find(|x| x.name == n);
    if json {
        let deps: Vec<String> = s
            .deps
            .iter()
            .map(|(k, n)| {
                let st = state_of(n).map_or("null".to_string(), |d| json_str(proto::state_name(d.state)));
                format!("{{\"kind\":{},\"name\":{},\"state\":{st}}}", json_str(k.name()), json_str(n))
            })
            .collect();
        return format!("{{\"service\":{},\"deps\":[{}]}}\n", service_json(s, false), deps.join(","));
    }
    let mut out = format!("{} is {}", s.name, proto::state_name(s.state));
    if let Some(p) = s.pid {
        out.push_str(&format!(" (pid {p})"));
    }
    match &s.reason {
        Some(r) => out.push_str(&format!(": {r}\n")),
        None if matches!(s.state, State::Running | State::Exited | State::Starting) => {
            out.push_str(": not blocked\n")
        }
        None => out.push('\n'),
    }
    let rows: Vec<Vec<String>> = s
        .deps
        .iter()
        .map(|(k, n)| {
            let st = match state_of(n) {
                Some(d) => {
                    let mut t = proto::state_name(d.state).to_string();
                    if let Some(r) = &d.reason {
                        t.push_str(&format!(" ({r})"));
                    }
                    t
                }
                None => "not loaded".to_string(),
            };
            vec![format!("  {}", k.name()), n.clone(), st]
        })
        .collect();
    if !rows.is_empty() {
        let t = table(&["", "", ""], rows);
        // Drop the empty header line.
        out.push_str(t.split_once('\n').map_or("", |(_, rest)| rest));
    }
    out
}

/// The dependency tree: each service nobody depends on, with its dependencies below it.
fn tree(services: &[ServiceView]) -> String {
    let ordering = |k: &DepKind| !matches!(k, DepKind::Conflicts);
    let depended: std::collections::HashSet<&str> = services
        .iter()
        .flat_map(|s| s.deps.iter().filter(|(k, _)| ordering(k)).map(|(_, n)| n.as_str()))
        .collect();
    let mut roots: Vec<&ServiceView> =
        services.iter().filter(|s| !depended.contains(s.name.as_str())).collect();
    if roots.is_empty() {
        roots = services.iter().collect();
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut shown = std::collections::HashSet::new();
    for r in roots {
        walk(r, services, String::new(), String::new(), &mut shown, &mut rows);
    }
    let width = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    rows.iter().map(|(l, st)| format!("{l}{}  {st}\n", " ".repeat(width - l.chars().count()))).collect()
}

fn walk<'a>(
    s: &'a ServiceView,
    all: &'a [ServiceView],
    label: String,
    indent: String,
    shown: &mut std::collections::HashSet<&'a str>,
    rows: &mut Vec<(String, String)>,
) {
    let mut state = proto::state_name(s.state).to_string();
    let seen = !shown.insert(s.name.as_str());
    let deps: Vec<&(DepKind, String)> =
        s.deps.iter().filter(|(k, _)| !matches!(k, DepKind::Conflicts)).collect();
    if seen && !deps.is_empty() {
        state.push_str(" (see above)");
    }
    rows.push((format!("{label}{}", s.name), state));
    if seen {
        return;
    }
    let n = deps.len();
    for (i, (kind, name)) in deps.into_iter().enumerate() {
        let last = i + 1 == n;
        let branch = if last { "└─ " } else { "├─ " };
        let label = format!("{indent}{branch}{} ", kind.name());
        let next_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        match all.iter().find(|x| &x.name == name) {
            Some(d) => walk(d, all, label, next_indent, shown, rows),
            None => rows.push((format!("{label}{name}"), "not loaded".to_string())),
        }
    }
}

// --- hand-written JSON ---

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(","))
}

fn service_json(s: &ServiceView, deps: bool) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".to_string());
    let mut o = format!(
        "{{\"name\":{},\"kind\":{},\"state\":{},\"pid\":{},\"restarts\":{},\"autostart\":{},\"health\":{},\"since_ms\":{},\"reason\":{}",
        json_str(&s.name),
        json_str(if s.target { "target" } else { "service" }),
        json_str(proto::state_name(s.state)),
        opt(s.pid.map(|p| p.to_string())),
        s.restarts,
        s.autostart,
        match s.health {
            Health::Unknown => "null".to_string(),
            h => json_str(h.name()),
        },
        opt(s.since_ms.map(|m| m.to_string())),
        opt(s.reason.as_deref().map(json_str)),
    );
    if deps {
        let d: Vec<String> = s
            .deps
            .iter()
            .map(|(k, n)| format!("{{\"kind\":{},\"name\":{}}}", json_str(k.name()), json_str(n)))
            .collect();
        o.push_str(&format!(",\"deps\":[{}]", d.join(",")));
    }
    o.push('}');
    o
}

fn json_services(services: &[ServiceView], deps: bool) -> String {
    let items: Vec<String> = services.iter().map(|s| service_json(s, deps)).collect();
    format!("[{}]\n", items.join(",\n"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn client_words_are_recognised() {
        assert!(is_client(&args(&["status"])));
        assert!(is_client(&args(&["--socket", "/x", "--json", "logs", "-f"])));
        assert!(!is_client(&args(&["--", "status"])));
        assert!(!is_client(&args(&["--config", "dir"])));
        assert!(!is_client(&args(&["myapp"])));
        assert!(!is_client(&args(&[])));
    }

    #[test]
    fn verbs_parse_into_requests() {
        let p = |a: &[&str]| parse(args(a)).unwrap().requests;
        assert_eq!(p(&["status"]), vec![Request::Status { name: None }]);
        assert_eq!(
            p(&["logs", "web", "-f", "-n", "5"]),
            vec![Request::Logs { name: Some("web".into()), lines: Some(5), follow: true }]
        );
        assert_eq!(p(&["kill", "web"]), vec![Request::Kill { name: "web".into(), signal: "TERM".into() }]);
        assert_eq!(
            p(&["kill", "web", "HUP"]),
            vec![Request::Kill { name: "web".into(), signal: "HUP".into() }]
        );
        assert_eq!(
            p(&["kill", "-s", "9", "web"]),
            vec![Request::Kill { name: "web".into(), signal: "9".into() }]
        );
        assert_eq!(p(&["restart", "a", "b"]).len(), 2);
        assert_eq!(p(&["health", "--ready"]), vec![Request::Health { name: None, ready: true }]);
        let w = parse(args(&["wait", "web", "running", "--timeout", "2s"])).unwrap();
        assert_eq!(
            w.requests,
            vec![Request::Wait { name: "web".into(), state: State::Running, timeout_ms: 2000 }]
        );
        assert_eq!(w.timeout, Duration::from_secs(12));
    }

    #[test]
    fn usage_errors() {
        for a in [
            &["start"][..],
            &["status", "a", "b"],
            &["logs", "-n", "x"],
            &["wait", "web", "Dancing"],
            &["list", "-f"],
            &["frobnicate"],
            &["status", "--bogus"],
            &["add", "/nonexistent/file.toml"],
        ] {
            assert!(parse(args(a)).is_err(), "{a:?}");
        }
    }

    fn svc(name: &str, state: State, deps: &[(DepKind, &str)]) -> ServiceView {
        let mut s = ServiceView::new(name, state);
        s.deps = deps.iter().map(|(k, n)| (*k, n.to_string())).collect();
        s
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("101d"), None);
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "STATE"],
            vec![vec!["a-long-name".into(), "Running".into()], vec!["b".into(), "X".into()]],
        );
        assert_eq!(t, "NAME         STATE\na-long-name  Running\nb            X\n");
    }

    #[test]
    fn tree_shows_dependencies_under_their_dependents() {
        let all = vec![
            svc("db", State::Running, &[(DepKind::Requires, "disk")]),
            svc("disk", State::Exited, &[]),
            svc("web", State::Blocked, &[(DepKind::Requires, "db"), (DepKind::After, "disk")]),
        ];
        let t = tree(&all);
        let want = "\
web                  Blocked
├─ requires db       Running
│  └─ requires disk  Exited
└─ after disk        Exited
";
        assert_eq!(t, want);
    }

    #[test]
    fn why_names_the_blocking_dependency() {
        let mut web = svc("web", State::Blocked, &[(DepKind::Requires, "db")]);
        web.reason = Some("waiting for db".into());
        let mut db = svc("db", State::Failed, &[]);
        db.reason = Some("exit 3".into());
        let text = why("web", &[web, db], false);
        assert_eq!(text, "web is Blocked: waiting for db\n  requires  db  Failed (exit 3)\n");
    }

    #[test]
    fn json_is_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        let s = ServiceView::new("w", State::Running);
        assert_eq!(
            service_json(&s, false),
            "{\"name\":\"w\",\"kind\":\"service\",\"state\":\"Running\",\"pid\":null,\"restarts\":0,\"autostart\":true,\"health\":null,\"since_ms\":null,\"reason\":null}"
        );
    }
}
