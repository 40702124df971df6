//! proto: the control protocol's grammar, pure (no fds). Requests are parsed here for the server
//! and encoded here for the client; reply lines likewise. Specified in `docs/protocol.md`.
//!
//! A request is one line of words separated by single spaces; a word is escaped with `escape` so it
//! never holds a space or a newline. A reply is zero or more data lines, each starting with a tag,
//! ending with `OK` or `ERR <code> <message>`; `logs -f` and `events` stream after a `STREAM` line.
//! The first request on a connection is `HELLO <version>`.
//!
//! Tags and error codes are never reused for another meaning: a client ignores tags and `key=value`
//! fields it does not know, so both can be added without a new protocol version.

use crate::supervisor::State;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request line the server accepts (newline excluded).
pub const MAX_REQUEST: usize = 4096;

/// Longest `wait` the server holds (a bound, so `now + timeout` cannot overflow).
pub const MAX_WAIT_MS: u64 = 24 * 3600 * 1000;

/// Reply tags (first word of a reply line). Never reuse one for another meaning.
pub mod tag {
    pub const HELLO: &str = "HELLO";
    pub const OK: &str = "OK";
    pub const ERR: &str = "ERR";
    pub const SVC: &str = "SVC";
    pub const DEP: &str = "DEP";
    pub const LOG: &str = "LOG";
    pub const SKIP: &str = "SKIP";
    pub const EVENT: &str = "EVENT";
    pub const MSG: &str = "MSG";
    pub const DIAG: &str = "DIAG";
    pub const STREAM: &str = "STREAM";
}

/// `ERR` codes. Stable: documented in `docs/protocol.md`; never renumbered or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    /// Malformed request: unknown verb, wrong arguments, not UTF-8.
    BadRequest = 400,
    /// The peer's uid is neither root nor init's own.
    Forbidden = 403,
    /// No such service.
    NotFound = 404,
    /// `wait` timed out, or the client was idle too long.
    Timeout = 408,
    /// The request conflicts with the current state (e.g. `add` of an existing name).
    Conflict = 409,
    /// A request line longer than `MAX_REQUEST`.
    TooLarge = 413,
    /// The configuration (for `reload`, `add`) is invalid; `DIAG` lines say why.
    Invalid = 422,
    /// Something failed inside init (I/O error writing a file, ...).
    Internal = 500,
    /// Not supported by this init or in this mode.
    Unsupported = 501,
    /// Cannot serve now: too many clients, shutting down, or (for `health`) not healthy.
    Unavailable = 503,
    /// The client's protocol version is not spoken here.
    Version = 505,
}

impl ErrCode {
    pub fn from_u16(n: u16) -> Option<ErrCode> {
        Some(match n {
            400 => ErrCode::BadRequest,
            403 => ErrCode::Forbidden,
            404 => ErrCode::NotFound,
            408 => ErrCode::Timeout,
            409 => ErrCode::Conflict,
            413 => ErrCode::TooLarge,
            422 => ErrCode::Invalid,
            500 => ErrCode::Internal,
            501 => ErrCode::Unsupported,
            503 => ErrCode::Unavailable,
            505 => ErrCode::Version,
            _ => return None,
        })
    }
}

/// Why a request failed: becomes `DIAG` lines then `ERR <code> <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrCode,
    pub message: String,
    /// Details, one per line (config errors as `file:line:col: message`).
    pub details: Vec<String>,
}

impl Failure {
    pub fn new(code: ErrCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), details: Vec::new() }
    }
}

/// The canonical name of a state, as printed and as written in `wait NAME STATE`.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Inactive => "Inactive",
        State::Blocked => "Blocked",
        State::Starting => "Starting",
        State::Running => "Running",
        State::Stopping => "Stopping",
        State::Exited => "Exited",
        State::Failed => "Failed",
    }
}

/// A state name, any case (`running`, `Running`).
pub fn parse_state(s: &str) -> Option<State> {
    const ALL: [State; 7] = [
        State::Inactive,
        State::Blocked,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Exited,
        State::Failed,
    ];
    ALL.into_iter().find(|st| state_name(*st).eq_ignore_ascii_case(s))
}

/// One request. `None` for an optional name is written `-` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello {
        version: u32,
    },
    Status {
        name: Option<String>,
    },
    List,
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    /// `signal` as the user wrote it (`TERM`, `SIGHUP`, `9`); init parses it.
    Kill {
        name: String,
        signal: String,
    },
    /// `lines`: None = everything buffered.
    Logs {
        name: Option<String>,
        lines: Option<usize>,
        follow: bool,
    },
    Why {
        name: String,
    },
    Tree,
    Reload,
    /// An absolute path to a service file, read by init.
    Add {
        path: String,
    },
    Remove {
        name: String,
    },
    StartAll,
    StopAll,
    Shutdown,
    Poweroff,
    Reboot,
    Wait {
        name: String,
        state: State,
        timeout_ms: u64,
    },
    Events,
    Health {
        name: Option<String>,
        ready: bool,
    },
}

impl Request {
    /// The requests that take no argument, by verb (the wire and the CLI spell them alike).
    pub fn without_arguments(verb: &str) -> Option<Request> {
        Some(match verb {
            "tree" => Request::Tree,
            "reload" => Request::Reload,
            "start-all" => Request::StartAll,
            "stop-all" => Request::StopAll,
            "shutdown" => Request::Shutdown,
            "poweroff" => Request::Poweroff,
            "reboot" => Request::Reboot,
            "events" => Request::Events,
            _ => return None,
        })
    }
}

/// Escapes one word: `\\`, `\s` (space), `\t`, `\n`, `\r`, and `\xHH` for other control bytes and
/// a leading `-` (so a name `-` is not "absent"). The empty string is `\e`.
pub fn escape(s: &str) -> String {
    if s.is_empty() {
        return "\\e".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' => out.push_str("\\s"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '-' if i == 0 => out.push_str("\\x2d"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// The inverse of `escape`. None when a backslash sequence is malformed.
pub fn unescape(s: &str) -> Option<String> {
    if s == "\\e" {
        return Some(String::new());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            's' => out.push(' '),
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'x' => {
                let hi = chars.next()?.to_digit(16)?;
                let lo = chars.next()?.to_digit(16)?;
                out.push(char::from_u32(hi * 16 + lo)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn opt_word(name: &Option<String>) -> String {
    match name {
        Some(n) => escape(n),
        None => "-".to_string(),
    }
}

impl Request {
    /// The request line, without its newline.
    pub fn encode(&self) -> String {
        match self {
            Request::Hello { version } => format!("HELLO {version}"),
            Request::Status { name } => match name {
                Some(n) => format!("status {}", escape(n)),
                None => "status".to_string(),
            },
            Request::List => "list".to_string(),
            Request::Start { name } => format!("start {}", escape(name)),
            Request::Stop { name } => format!("stop {}", escape(name)),
            Request::Restart { name } => format!("restart {}", escape(name)),
            Request::Kill { name, signal } => format!("kill {} {}", escape(name), escape(signal)),
            Request::Logs { name, lines, follow } => {
                let lines = lines.map_or_else(|| "all".to_string(), |n| n.to_string());
                let mode = if *follow { "follow" } else { "once" };
                format!("logs {} {lines} {mode}", opt_word(name))
            }
            Request::Why { name } => format!("why {}", escape(name)),
            Request::Tree => "tree".to_string(),
            Request::Reload => "reload".to_string(),
            Request::Add { path } => format!("add {}", escape(path)),
            Request::Remove { name } => format!("remove {}", escape(name)),
            Request::StartAll => "start-all".to_string(),
            Request::StopAll => "stop-all".to_string(),
            Request::Shutdown => "shutdown".to_string(),
            Request::Poweroff => "poweroff".to_string(),
            Request::Reboot => "reboot".to_string(),
            Request::Wait { name, state, timeout_ms } => {
                format!("wait {} {} {timeout_ms}", escape(name), state_name(*state))
            }
            Request::Events => "events".to_string(),
            Request::Health { name, ready } => {
                format!("health {}{}", opt_word(name), if *ready { " ready" } else { "" })
            }
        }
    }

    /// The verb, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "HELLO",
            Request::Status { .. } => "status",
            Request::List => "list",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::Restart { .. } => "restart",
            Request::Kill { .. } => "kill",
            Request::Logs { .. } => "logs",
            Request::Why { .. } => "why",
            Request::Tree => "tree",
            Request::Reload => "reload",
            Request::Add { .. } => "add",
            Request::Remove { .. } => "remove",
            Request::StartAll => "start-all",
            Request::StopAll => "stop-all",
            Request::Shutdown => "shutdown",
            Request::Poweroff => "poweroff",
            Request::Reboot => "reboot",
            Request::Wait { .. } => "wait",
            Request::Events => "events",
            Request::Health { .. } => "health",
        }
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(ErrCode::BadRequest, msg)
}

/// Parses one request line (without its newline; a trailing `\r` is tolerated).
pub fn parse_request(line: &[u8]) -> Result<Request, Failure> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| bad("request is not UTF-8"))?;
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let verb = words.next().ok_or_else(|| bad("empty request"))?;
    let args: Vec<&str> = words.collect();
    let arity = |min: usize, max: usize| -> Result<(), Failure> {
        if args.len() < min || args.len() > max {
            let want = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            Err(bad(format!("{verb}: expected {want} argument(s), got {}", args.len())))
        } else {
            Ok(())
        }
    };
    let word = |i: usize| -> Result<String, Failure> {
        let w = args.get(i).ok_or_else(|| bad(format!("{verb}: missing argument")))?;
        unescape(w).ok_or_else(|| bad(format!("{verb}: bad escape in {w:?}")))
    };
    let name_at = |i: usize| -> Result<String, Failure> {
        let n = word(i)?;
        if n.is_empty() { Err(bad(format!("{verb}: empty service name"))) } else { Ok(n) }
    };
    let opt_name = |i: usize| -> Result<Option<String>, Failure> {
        match args.get(i) {
            None | Some(&"-") => Ok(None),
            Some(_) => name_at(i).map(Some),
        }
    };
    let req = match verb {
        "HELLO" => {
            arity(1, 1)?;
            let v = word(0)?;
            let version = v.parse().map_err(|_| bad(format!("HELLO: not a version: {v:?}")))?;
            Request::Hello { version }
        }
        "status" => {
            arity(0, 1)?;
            Request::Status { name: opt_name(0)? }
        }
        "list" => {
            arity(0, 0)?;
            Request::List
        }
        "start" | "stop" | "restart" | "why" | "remove" => {
            arity(1, 1)?;
            let name = name_at(0)?;
            match verb {
                "start" => Request::Start { name },
                "stop" => Request::Stop { name },
                "restart" => Request::Restart { name },
                "why" => Request::Why { name },
                _ => Request::Remove { name },
            }
        }
        "kill" => {
            arity(2, 2)?;
            Request::Kill { name: name_at(0)?, signal: word(1)? }
        }
        "logs" => {
            arity(3, 3)?;
            let name = opt_name(0)?;
            let n = word(1)?;
            let lines = match n.as_str() {
                "all" => None,
                n => Some(n.parse().map_err(|_| bad(format!("logs: not a line count: {n:?}")))?),
            };
            let follow = match word(2)?.as_str() {
                "follow" => true,
                "once" => false,
                other => return Err(bad(format!("logs: expected follow or once, got {other:?}"))),
            };
            Request::Logs { name, lines, follow }
        }
        v if let Some(req) = Request::without_arguments(v) => {
            arity(0, 0)?;
            req
        }
        "add" => {
            arity(1, 1)?;
            let path = word(0)?;
            if !path.starts_with('/') {
                return Err(bad("add: the path must be absolute"));
            }
            Request::Add { path }
        }
        "wait" => {
            arity(3, 3)?;
            let name = name_at(0)?;
            let s = word(1)?;
            let state = parse_state(&s).ok_or_else(|| bad(format!("wait: not a state: {s:?}")))?;
            let t = word(2)?;
            let timeout_ms: u64 = t.parse().map_err(|_| bad(format!("wait: not a timeout in ms: {t:?}")))?;
            Request::Wait { name, state, timeout_ms: timeout_ms.min(MAX_WAIT_MS) }
        }
        "health" => {
            arity(0, 2)?;
            let name = opt_name(0)?;
            let ready = match args.get(1) {
                None => false,
                Some(&"ready") => true,
                Some(other) => return Err(bad(format!("health: expected ready, got {other:?}"))),
            };
            Request::Health { name, ready }
        }
        other => return Err(bad(format!("unknown request {:?}", other))),
    };
    Ok(req)
}

/// How one service depends on another (as shown by `why` and `tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Requires,
    StartAfter,
    After,
    Wants,
    Conflicts,
}

impl DepKind {
    pub fn name(self) -> &'static str {
        match self {
            DepKind::Requires => "requires",
            DepKind::StartAfter => "start-after",
            DepKind::After => "after",
            DepKind::Wants => "wants",
            DepKind::Conflicts => "conflicts",
        }
    }

    pub fn parse(s: &str) -> Option<DepKind> {
        [DepKind::Requires, DepKind::StartAfter, DepKind::After, DepKind::Wants, DepKind::Conflicts]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// Health as the probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No health check configured (or none has run yet).
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "-",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What the control plane shows about one service. The reactor builds these from the
/// supervisor's `status()` and the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub reason: Option<String>,
    pub restarts: u32,
    pub autostart: bool,
    /// A target (dependencies only, no process).
    pub target: bool,
    pub health: Health,
    /// Milliseconds since it entered its current state, when known.
    pub since_ms: Option<u64>,
    pub deps: Vec<(DepKind, String)>,
}

impl ServiceView {
    pub fn new(name: &str, state: State) -> ServiceView {
        ServiceView {
            name: name.to_string(),
            state,
            pid: None,
            reason: None,
            restarts: 0,
            autostart: true,
            target: false,
            health: Health::Unknown,
            since_ms: None,
            deps: Vec::new(),
        }
    }
}

/// `TAG key=value ...` for a service (`SVC` or `EVENT`), with its newline.
pub fn encode_service(tag: &str, s: &ServiceView) -> String {
    let mut out = format!("{tag} name={} state={}", escape(&s.name), state_name(s.state));
    if let Some(pid) = s.pid {
        out.push_str(&format!(" pid={pid}"));
    }
    out.push_str(&format!(
        " restarts={} autostart={} kind={} health={}",
        s.restarts,
        u8::from(s.autostart),
        if s.target { "target" } else { "service" },
        s.health.name()
    ));
    if let Some(ms) = s.since_ms {
        out.push_str(&format!(" since={ms}"));
    }
    if let Some(r) = &s.reason {
        out.push_str(&format!(" reason={}", escape(r)));
    }
    out.push('\n');
    out
}

/// `DEP kind=requires name=db` lines for a service's dependencies (they follow its `SVC` line).
pub fn encode_deps(s: &ServiceView) -> String {
    let mut out = String::new();
    for (kind, name) in &s.deps {
        out.push_str(&format!("DEP kind={} name={}\n", kind.name(), escape(name)));
    }
    out
}

/// `LOG <name> <raw bytes>\n`: the line's bytes are sent as they are (they hold no newline).
pub fn encode_log(name: &str, line: &[u8]) -> Vec<u8> {
    let name = escape(name);
    let mut out = Vec::with_capacity(name.len() + line.len() + 6);
    out.extend_from_slice(b"LOG ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend(line.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    out.push(b'\n');
    out
}

/// `ERR <code> <message>\n`, the message on one line.
pub fn encode_err(code: ErrCode, message: &str) -> String {
    format!("ERR {} {}\n", code as u16, one_line(message))
}

/// A text line for `MSG`/`DIAG`: newlines become spaces.
pub fn encode_text(tag: &str, text: &str) -> String {
    format!("{tag} {}\n", one_line(text))
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A reply line as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Hello {
        version: u32,
        server: String,
    },
    Ok,
    Err {
        code: u16,
        message: String,
    },
    Svc(ServiceView),
    Event(ServiceView),
    Dep {
        kind: DepKind,
        name: String,
    },
    Log {
        name: String,
        line: Vec<u8>,
    },
    Skip(u64),
    Msg(String),
    Diag(String),
    Stream(String),
    /// A tag this client does not know: ignored (newer servers may add some).
    Unknown(String),
}

/// Parses one reply line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Line, String> {
    let (tag, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (line.get(..i).unwrap_or(&[]), line.get(i + 1..).unwrap_or(&[])),
        None => (line, &[][..]),
    };
    let tag = std::str::from_utf8(tag).map_err(|_| "reply tag is not UTF-8".to_string())?;
    if tag == tag::LOG {
        let (name, raw) = match rest.iter().position(|&b| b == b' ') {
            Some(i) => (rest.get(..i).unwrap_or(&[]), rest.get(i + 1..).unwrap_or(&[])),
            None => (rest, &[][..]),
        };
        let name = std::str::from_utf8(name).ok().and_then(unescape).ok_or("bad LOG name")?;
        return Ok(Line::Log { name, line: raw.to_vec() });
    }
    let rest = String::from_utf8_lossy(rest);
    let rest = rest.as_ref();
    Ok(match tag {
        "OK" => Line::Ok,
        "ERR" => {
            let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = code.parse().map_err(|_| format!("bad ERR code {code:?}"))?;
            Line::Err { code, message: msg.to_string() }
        }
        "HELLO" => {
            let (v, server) = rest.split_once(' ').unwrap_or((rest, ""));
            let version = v.parse().map_err(|_| format!("bad HELLO version {v:?}"))?;
            Line::Hello { version, server: server.to_string() }
        }
        "SVC" => Line::Svc(parse_service(rest)?),
        "EVENT" => Line::Event(parse_service(rest)?),
        "DEP" => {
            let mut kind = None;
            let mut name = None;
            for (k, v) in fields(rest)? {
                match k {
                    "kind" => kind = DepKind::parse(&v),
                    "name" => name = Some(v),
                    _ => {}
                }
            }
            Line::Dep { kind: kind.ok_or("DEP without kind")?, name: name.ok_or("DEP without name")? }
        }
        "SKIP" => Line::Skip(rest.trim().parse().map_err(|_| format!("bad SKIP count {rest:?}"))?),
        "MSG" => Line::Msg(rest.to_string()),
        "DIAG" => Line::Diag(rest.to_string()),
        "STREAM" => Line::Stream(rest.to_string()),
        other => Line::Unknown(other.to_string()),
    })
}

fn fields(rest: &str) -> Result<Vec<(&str, String)>, String> {
    let mut out = Vec::new();
    for w in rest.split(' ').filter(|w| !w.is_empty()) {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("field without '=': {w:?}"))?;
        out.push((k, unescape(v).ok_or_else(|| format!("bad escape in {w:?}"))?));
    }
    Ok(out)
}

fn parse_service(rest: &str) -> Result<ServiceView, String> {
    let mut name = None;
    let mut state = None;
    let mut s = ServiceView::new("", State::Inactive);
    for (k, v) in fields(rest)? {
        match k {
            "name" => name = Some(v),
            "state" => state = parse_state(&v),
            "pid" => s.pid = v.parse().ok(),
            "restarts" => s.restarts = v.parse().unwrap_or(0),
            "autostart" => s.autostart = v == "1",
            "kind" => s.target = v == "target",
            "health" => {
                s.health = match v.as_str() {
                    "healthy" => Health::Healthy,
                    "unhealthy" => Health::Unhealthy,
                    _ => Health::Unknown,
                }
            }
            "since" => s.since_ms = v.parse().ok(),
            "reason" => s.reason = Some(v),
            _ => {} // a newer server's field
        }
    }
    s.name = name.ok_or("service line without name")?;
    s.state = state.ok_or("service line without a known state")?;
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn roundtrip(r: Request) {
        let line = r.encode();
        assert!(!line.contains('\n'));
        assert_eq!(parse_request(line.as_bytes()), Ok(r), "{line}");
    }

    #[test]
    fn every_request_roundtrips() {
        let n = || "web 1".to_string();
        for r in [
            Request::Hello { version: 1 },
            Request::Status { name: None },
            Request::Status { name: Some(n()) },
            Request::List,
            Request::Start { name: n() },
            Request::Stop { name: "-".into() },
            Request::Restart { name: "a\\b".into() },
            Request::Kill { name: n(), signal: "SIGHUP".into() },
            Request::Logs { name: None, lines: None, follow: true },
            Request::Logs { name: Some(n()), lines: Some(5), follow: false },
            Request::Why { name: n() },
            Request::Tree,
            Request::Reload,
            Request::Add { path: "/tmp/x y.toml".into() },
            Request::Remove { name: n() },
            Request::StartAll,
            Request::StopAll,
            Request::Shutdown,
            Request::Poweroff,
            Request::Reboot,
            Request::Wait { name: n(), state: State::Running, timeout_ms: 1500 },
            Request::Events,
            Request::Health { name: None, ready: true },
            Request::Health { name: Some(n()), ready: false },
        ] {
            roundtrip(r);
        }
    }

    #[test]
    fn escape_roundtrips_awkward_strings() {
        for s in ["", "-", "a b", "tab\there", "x\ny", "\\", "\\e", "é ü", "\x01\x7f", "-x", "a=b"] {
            let e = escape(s);
            assert!(!e.contains([' ', '\n', '\r', '\t']), "{e:?}");
            assert_eq!(unescape(&e).as_deref(), Some(s), "{e:?}");
        }
        assert_eq!(unescape("\\q"), None);
        assert_eq!(unescape("\\x4"), None);
        assert_eq!(unescape("abc\\"), None);
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        for line in [
            &b""[..],
            b"   ",
            b"bogus",
            b"start",
            b"start a b",
            b"logs - x once",
            b"logs - 5 maybe",
            b"wait web Dancing 100",
            b"wait web Running soon",
            b"HELLO one",
            b"add relative.toml",
            b"start \xff\xfe",
            b"start a\\",
            b"health - now",
        ] {
            let e = parse_request(line).unwrap_err();
            assert_eq!(e.code, ErrCode::BadRequest, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn crlf_and_extra_spaces_are_tolerated() {
        assert_eq!(parse_request(b"start  web\r"), Ok(Request::Start { name: "web".into() }));
        assert_eq!(parse_request(b"wait web running 10"), parse_request(b"wait web Running 10"));
    }

    #[test]
    fn wait_timeout_is_bounded() {
        let r = parse_request(b"wait web Running 99999999999999999").unwrap();
        assert_eq!(r, Request::Wait { name: "web".into(), state: State::Running, timeout_ms: MAX_WAIT_MS });
    }

    #[test]
    fn service_lines_roundtrip() {
        let mut s = ServiceView::new("my web", State::Failed);
        s.pid = Some(42);
        s.reason = Some("gave up after 3 attempts: exit 1".into());
        s.restarts = 3;
        s.autostart = false;
        s.target = true;
        s.health = Health::Unhealthy;
        s.since_ms = Some(1234);
        let line = encode_service("SVC", &s);
        let line = line.strip_suffix('\n').unwrap();
        let mut want = s.clone();
        want.deps.clear();
        assert_eq!(parse_line(line.as_bytes()), Ok(Line::Svc(want)));
        s.deps = vec![(DepKind::Requires, "db".into()), (DepKind::After, "log ger".into())];
        let deps: Vec<_> = encode_deps(&s).lines().map(|l| parse_line(l.as_bytes()).unwrap()).collect();
        assert_eq!(
            deps,
            vec![
                Line::Dep { kind: DepKind::Requires, name: "db".into() },
                Line::Dep { kind: DepKind::After, name: "log ger".into() }
            ]
        );
    }

    #[test]
    fn unknown_fields_and_tags_are_ignored() {
        let l = parse_line(b"SVC name=a state=Running colour=blue").unwrap();
        assert!(matches!(l, Line::Svc(ref s) if s.name == "a" && s.state == State::Running));
        assert_eq!(parse_line(b"FUTURE x y").unwrap(), Line::Unknown("FUTURE".into()));
    }

    #[test]
    fn log_lines_carry_raw_bytes() {
        let enc = encode_log("web", b"\xff\xfe raw\ttext");
        let enc = enc.strip_suffix(b"\n").unwrap();
        assert_eq!(
            parse_line(enc),
            Ok(Line::Log { name: "web".into(), line: b"\xff\xfe raw\ttext".to_vec() })
        );
    }

    #[test]
    fn err_lines() {
        let e = encode_err(ErrCode::NotFound, "no service\nnamed x");
        assert_eq!(e, "ERR 404 no service named x\n");
        assert_eq!(
            parse_line(e.trim_end().as_bytes()),
            Ok(Line::Err { code: 404, message: "no service named x".into() })
        );
        assert_eq!(ErrCode::from_u16(404), Some(ErrCode::NotFound));
    }
}
