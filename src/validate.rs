//! validate: a parsed TOML table (spans kept) → `ServiceSpec`, every error with its position.
//!
//! Walks toml's `DeTable` by hand instead of deriving serde: every error in a file is reported,
//! not only the first, and the schema costs a fraction of the binary size (design §2). Two
//! formats: native (Horust's keys plus ankh's, unknown keys are errors) and zinit 0.3 (unknown
//! keys are warnings, as zinit ignores them). Pure, apart from reading /etc/passwd and /etc/group
//! when a user or group is given by name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::{Diagnostic, LoadOptions, Severity};
use crate::graph::Edge;
use crate::spec::{
    Credentials, Endpoint, FailureStrategy, Format, Health, HttpEndpoint, Kind, ListenAddr, MAX_DURATION,
    MIN_BACKOFF, OnUnhealthy, Output, ProxySpec, Ready, RestartStrategy, Rlimit, ServiceSpec, SocketSpec,
    StartMode,
};

type Val<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

/// Largest ring buffer a service may ask for (`log-buffer`): capacities from user input are bounded.
pub const MAX_LOG_BUFFER: u64 = 64 << 20;
/// zinit's `buffer_lines` becomes a byte size at this many bytes per line.
pub const ZINIT_BYTES_PER_LINE: u64 = 128;

/// A reference to another service, kept with its position for cross-file messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepRef {
    pub edge: Edge,
    /// The key as written (`requires`, `dependencies.after`, `termination.die-if-failed`).
    pub key: String,
    /// Normalized name (no `.toml`).
    pub name: String,
    pub line: usize,
    pub col: usize,
}

/// Byte offset → 1-based line and column (column in chars).
pub struct Source<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Source<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, starts }
    }

    pub fn pos(&self, off: usize) -> (usize, usize) {
        let mut off = off.min(self.text.len());
        while !self.text.is_char_boundary(off) {
            off -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= off).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text.get(start..off).map_or(0, |s| s.chars().count());
        (line, col + 1)
    }
}

/// The lazily read user and group databases (`/etc/passwd`, `/etc/group`, or under `--root`).
pub struct UserDb {
    root: Option<PathBuf>,
    passwd: Option<Result<String, String>>,
    group: Option<Result<String, String>>,
}

/// One `name:x:id:...` line: (name, id, 4th field: gid for passwd, members for group).
fn db_lines(text: &str) -> impl Iterator<Item = (&str, u32, &str)> {
    text.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id = f.next()?.trim().parse().ok()?;
        Some((name, id, f.next().unwrap_or("")))
    })
}

impl UserDb {
    pub fn new(root: Option<&Path>) -> UserDb {
        UserDb { root: root.map(Path::to_path_buf), passwd: None, group: None }
    }

    fn file_name(&self, which: &str) -> PathBuf {
        match &self.root {
            Some(r) => r.join("etc").join(which),
            None => Path::new("/etc").join(which),
        }
    }

    fn text(&mut self, group: bool) -> Result<&str, String> {
        let name = self.file_name(if group { "group" } else { "passwd" });
        let slot = if group { &mut self.group } else { &mut self.passwd };
        let r = slot.get_or_insert_with(|| {
            std::fs::read(&name)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| format!("cannot read {}: {}", name.display(), io_reason(&e)))
        });
        r.as_deref().map_err(Clone::clone)
    }

    /// (uid, primary gid, name) of a user given by name or number.
    fn user(&mut self, who: &IdRef) -> Result<(u32, Option<u32>, Option<String>), String> {
        let file = self.file_name("passwd");
        match who {
            IdRef::Id(uid) => {
                let found = self.text(false).ok().and_then(|t| {
                    db_lines(t).find(|(_, id, _)| id == uid).map(|(n, _, g)| (g.parse().ok(), n.to_string()))
                });
                Ok(match found {
                    Some((gid, name)) => (*uid, gid, Some(name)),
                    None => (*uid, None, None),
                })
            }
            // root is uid 0 everywhere, also in an image with no /etc/passwd.
            IdRef::Name(n) if n == "root" && self.text(false).is_err() => Ok((0, Some(0), Some(n.clone()))),
            IdRef::Name(n) => {
                let t = self.text(false)?;
                db_lines(t)
                    .find(|(name, _, _)| name == n)
                    .map(|(_, uid, g)| (uid, g.parse().ok(), Some(n.clone())))
                    .ok_or_else(|| format!("no user \"{n}\" in {}", file.display()))
            }
        }
    }

    fn group_id(&mut self, g: &IdRef) -> Result<u32, String> {
        let file = self.file_name("group");
        match g {
            IdRef::Id(id) => Ok(*id),
            IdRef::Name(n) => {
                let t = self.text(true)?;
                db_lines(t)
                    .find(|(name, _, _)| name == n)
                    .map(|(_, id, _)| id)
                    .ok_or_else(|| format!("no group \"{n}\" in {}", file.display()))
            }
        }
    }

    /// Groups listing `user` as a member.
    fn member_of(&mut self, user: &str) -> Vec<u32> {
        match self.text(true) {
            Ok(t) => db_lines(t)
                .filter(|(_, _, members)| members.split(',').any(|m| m.trim() == user))
                .map(|(_, id, _)| id)
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

/// A user or group as written: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdRef {
    Name(String),
    Id(u32),
}

/// A table being walked, with the dotted prefix used in messages.
struct Tbl<'t, 'i> {
    t: &'t DeTable<'i>,
    name: String,
    span: Span,
}

impl<'t, 'i> Tbl<'t, 'i> {
    fn get(&self, k: &str) -> Option<&'t Val<'i>> {
        self.t.get(k)
    }
    fn key(&self, k: &str) -> String {
        if self.name.is_empty() { k.to_string() } else { format!("{}.{k}", self.name) }
    }
}

/// The walk over one file: where diagnostics go and what the options say.
pub struct Ctx<'a> {
    path: &'a Path,
    src: Source<'a>,
    pub diags: Vec<Diagnostic>,
    opts: &'a LoadOptions,
    users: &'a mut UserDb,
    native: bool,
    pub refs: Vec<DepRef>,
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => format!("integer {}", int_text(i)),
        DeValue::Float(f) => format!("float {}", f.as_str()),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(_) => "a date-time".to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

fn int_text(i: &toml::de::DeInteger<'_>) -> String {
    match i.radix() {
        16 => format!("0x{}", i.as_str()),
        8 => format!("0o{}", i.as_str()),
        2 => format!("0b{}", i.as_str()),
        _ => i.as_str().to_string(),
    }
}

fn int_value(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// Edit distance with adjacent transpositions (optimal string alignment), over chars. Short
/// strings only: keys and enum values.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let v = if i == 0 || j == 0 {
                i.max(j)
            } else {
                let (ca, cb) = (a.get(i - 1), b.get(j - 1));
                let get = |k: usize| d.get(k).copied().unwrap_or(usize::MAX - 1);
                let mut v = (get(at(i - 1, j)) + 1)
                    .min(get(at(i, j - 1)) + 1)
                    .min(get(at(i - 1, j - 1)) + usize::from(ca != cb));
                if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                    v = v.min(get(at(i - 2, j - 2)) + 1);
                }
                v
            };
            if let Some(c) = d.get_mut(at(i, j)) {
                *c = v;
            }
        }
    }
    d.get(at(a.len(), b.len())).copied().unwrap_or(usize::MAX)
}

/// The closest candidate, if it is close enough to be what was meant.
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |w: &str| w.to_ascii_lowercase().replace('_', "-");
    let word = norm(word);
    candidates
        .iter()
        .map(|c| (distance(&word, &norm(c)), *c))
        .filter(|&(d, c)| d <= (c.chars().count() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn hint(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("; did you mean \"{c}\"?"),
        None => String::new(),
    }
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a Path, text: &'a str, opts: &'a LoadOptions, users: &'a mut UserDb) -> Ctx<'a> {
        Ctx { path, src: Source::new(text), diags: Vec::new(), opts, users, native: true, refs: Vec::new() }
    }

    pub fn diag(&mut self, sev: Severity, span: Option<Span>, key: &str, message: String) {
        let (line, col) = span.map_or((0, 0), |s| self.src.pos(s.start));
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message,
            severity: sev,
        });
    }

    fn err(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        self.diag(Severity::Error, Some(span.clone()), key, message.into());
    }

    fn warn(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        self.diag(Severity::Warning, Some(span.clone()), key, message.into());
    }

    pub fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.severity == Severity::Error).count()
    }

    fn expected(&mut self, v: &Val<'_>, key: &str, what: &str) {
        let found = describe(v.get_ref());
        self.err(&v.span(), key, format!("expected {what}, found {found}"));
    }

    /// Report keys of `t` that are not in `known` (an error in native files, else a warning).
    fn unknown_keys(&mut self, t: &Tbl<'_, '_>, known: &[&str]) {
        for (k, v) in t.t.iter() {
            let name = k.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let what = if v.get_ref().is_table() { "table" } else { "key" };
            let h = hint(name, known);
            let key = t.key(name);
            if self.native {
                self.err(&k.span(), &key, format!("unknown {what}{h}"));
            } else {
                self.warn(&k.span(), &key, format!("unknown {what}, ignored{h}"));
            }
        }
    }

    fn table<'t, 'i>(&mut self, t: &Tbl<'t, 'i>, k: &str) -> Option<Tbl<'t, 'i>> {
        let v = t.get(k)?;
        match v.get_ref() {
            DeValue::Table(sub) => Some(Tbl { t: sub, name: t.key(k), span: v.span() }),
            _ => {
                self.expected(v, &t.key(k), "a table");
                None
            }
        }
    }

    /// `${VAR}`, `${VAR:-default}` and `$$` in native string values (Horust's templating, done
    /// after parsing so positions stay right). A bare `$VAR` is left for the shell.
    fn expand(&mut self, raw: &str, span: &Span, key: &str) -> Option<String> {
        if !self.native || !raw.contains('$') {
            return Some(raw.to_string());
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        let mut ok = true;
        while let Some(i) = rest.find('$') {
            out.push_str(rest.get(..i).unwrap_or(""));
            let after = rest.get(i + 1..).unwrap_or("");
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    self.err(span, key, "unterminated \"${\" (write \"$$\" for a literal \"$\")");
                    return None;
                };
                let inner = r.get(..end).unwrap_or("");
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let value = self.opts.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                match (valid, value, default) {
                    (false, _, _) => {
                        self.err(span, key, format!("invalid variable name in \"${{{inner}}}\""));
                        ok = false;
                    }
                    (true, Some(""), Some(d)) => out.push_str(d),
                    (true, Some(v), _) => out.push_str(v),
                    (true, None, Some(d)) => out.push_str(d),
                    (true, None, None) => {
                        self.err(
                            span,
                            key,
                            format!(
                                "undefined variable ${{{name}}} (use ${{{name}:-default}}, or \"$$\" for a literal \"$\")"
                            ),
                        );
                        ok = false;
                    }
                }
                rest = r.get(end + 1..).unwrap_or("");
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    fn string(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<(String, Span)> {
        let v = t.get(k)?;
        self.string_of(v, &t.key(k))
    }

    fn string_of(&mut self, v: &Val<'_>, key: &str) -> Option<(String, Span)> {
        match v.get_ref() {
            DeValue::String(s) => {
                let span = v.span();
                let s = self.expand(s, &span, key)?;
                Some((s, span))
            }
            _ => {
                self.expected(v, key, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<bool> {
        let v = t.get(k)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(v, &t.key(k), "true or false");
                None
            }
        }
    }

    fn int(&mut self, t: &Tbl<'_, '_>, k: &str, min: i64, max: i64) -> Option<i64> {
        let v = t.get(k)?;
        self.int_of(v, &t.key(k), min, max)
    }

    fn int_of(&mut self, v: &Val<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match int_value(i) {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    let text = int_text(i);
                    self.err(&v.span(), key, format!("{text} is out of range ({min} to {max})"));
                    None
                }
            },
            _ => {
                self.expected(v, key, "an integer");
                None
            }
        }
    }

    fn u32(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<u32> {
        self.int(t, k, 0, i64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok())
    }

    fn duration(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<Duration> {
        let v = t.get(k)?;
        let key = t.key(k);
        match v.get_ref() {
            DeValue::String(_) => {
                let (s, span) = self.string_of(v, &key)?;
                match parse_duration(&s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.err(&span, &key, e);
                        None
                    }
                }
            }
            DeValue::Integer(i) => {
                let n = int_text(i);
                self.err(
                    &v.span(),
                    &key,
                    format!(
                        "expected a duration with a unit such as \"{n}s\" or \"{n}ms\", found integer {n}"
                    ),
                );
                None
            }
            _ => {
                self.expected(v, &key, "a duration such as \"10s\"");
                None
            }
        }
    }

    /// zinit's `*_ms` integers.
    fn millis(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<Duration> {
        let max = i64::try_from(MAX_DURATION.as_millis()).unwrap_or(i64::MAX);
        let n = self.int(t, k, 0, max)?;
        Some(Duration::from_millis(u64::try_from(n).unwrap_or(0)))
    }

    fn size(&mut self, t: &Tbl<'_, '_>, k: &str, max: u64) -> Option<u64> {
        let v = t.get(k)?;
        let key = t.key(k);
        let n = match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(v, &key, 0, i64::MAX)?;
                u64::try_from(n).ok()?
            }
            DeValue::String(_) => {
                let (s, span) = self.string_of(v, &key)?;
                match parse_size(&s) {
                    Ok(n) => n,
                    Err(e) => {
                        self.err(&span, &key, e);
                        return None;
                    }
                }
            }
            _ => {
                self.expected(v, &key, "a size such as \"100 MB\" or an integer");
                return None;
            }
        };
        if n > max {
            self.err(&v.span(), &key, format!("{n} bytes is too large (at most {max})"));
            return None;
        }
        Some(n)
    }

    /// A list of strings; a single string is taken as a list of one.
    fn strings(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<Vec<(String, Span)>> {
        let v = t.get(k)?;
        let key = t.key(k);
        match v.get_ref() {
            DeValue::String(_) => self.string_of(v, &key).map(|s| vec![s]),
            DeValue::Array(items) => {
                Some(items.iter().filter_map(|item| self.string_of(item, &key)).collect())
            }
            _ => {
                self.expected(v, &key, "an array of strings");
                None
            }
        }
    }

    fn choice(&mut self, t: &Tbl<'_, '_>, k: &str, choices: &[&'static str]) -> Option<usize> {
        let v = t.get(k)?;
        let key = t.key(k);
        let (s, span) = self.string_of(v, &key)?;
        if let Some(i) = choices.iter().position(|c| *c == s) {
            return Some(i);
        }
        let h = hint(&s, choices);
        self.err(&span, &key, format!("expected one of {}, found {s:?}{h}", choices.join(", ")));
        None
    }

    fn signal(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<i32> {
        let v = t.get(k)?;
        self.signal_of(v, &t.key(k))
    }

    fn signal_of(&mut self, v: &Val<'_>, key: &str) -> Option<i32> {
        match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(v, key, 1, 64)?;
                i32::try_from(n).ok()
            }
            DeValue::String(_) => {
                let (s, span) = self.string_of(v, key)?;
                let n = signal_number(&s);
                if n.is_none() {
                    let upper = s.to_ascii_uppercase();
                    let h = hint(upper.trim_start_matches("SIG"), SIGNAL_NAMES_FOR_HINTS);
                    self.err(
                        &span,
                        key,
                        format!(
                            "unknown signal {s:?} (a name such as \"TERM\" or \"SIGTERM\", or a number){h}"
                        ),
                    );
                }
                n
            }
            _ => {
                self.expected(v, key, "a signal name such as \"TERM\"");
                None
            }
        }
    }

    /// A service name (from a `name` key or a reference): what the control socket can carry.
    fn check_name(&mut self, name: &str, span: Option<&Span>, key: &str) -> bool {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
        if !ok {
            let msg = format!(
                "invalid service name {name:?} (letters, digits, '-', '_', '.', '@', ':'; at most 128)"
            );
            self.diag(Severity::Error, span.cloned(), key, msg);
        }
        ok
    }

    fn deps(&mut self, t: &Tbl<'_, '_>, k: &str, edge: Edge) -> Vec<String> {
        let key = t.key(k);
        let mut out = Vec::new();
        for (name, span) in self.strings(t, k).unwrap_or_default() {
            let n = crate::graph::normalize(&name).to_string();
            if !self.check_name(&n, Some(&span), &key) {
                continue;
            }
            let (line, col) = self.src.pos(span.start);
            self.refs.push(DepRef { edge, key: key.clone(), name: n.clone(), line, col });
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    fn id_ref(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<(IdRef, Span)> {
        let v = t.get(k)?;
        let key = t.key(k);
        match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.int_of(v, &key, 0, i64::from(u32::MAX - 1))?;
                Some((IdRef::Id(u32::try_from(n).ok()?), v.span()))
            }
            DeValue::String(_) => {
                let (s, span) = self.string_of(v, &key)?;
                if s.is_empty() {
                    self.err(&span, &key, "empty name");
                    return None;
                }
                match s.parse::<u32>() {
                    Ok(n) => Some((IdRef::Id(n), span)),
                    Err(_) => Some((IdRef::Name(s), span)),
                }
            }
            _ => {
                self.expected(v, &key, "a name or a numeric id");
                None
            }
        }
    }

    /// Resolve `user` (and `group`) in `t` to credentials. A name not found is a warning in
    /// `--check` without `--root` (the host's /etc/passwd is not the image's), else an error.
    fn credentials(
        &mut self,
        t: &Tbl<'_, '_>,
        user_key: &str,
        group_key: Option<&str>,
    ) -> Option<Credentials> {
        let user = self.id_ref(t, user_key);
        let group = group_key.and_then(|g| self.id_ref(t, g).map(|r| (r, t.key(g))));
        if user.is_none() && group.is_none() {
            return None;
        }
        let sev =
            if self.opts.check && self.opts.root.is_none() { Severity::Warning } else { Severity::Error };
        let mut failed = false;
        let (uid, mut gid, name) = match &user {
            Some((u, span)) => match self.users.user(u) {
                Ok(x) => x,
                Err(e) => {
                    self.diag(sev, Some(span.clone()), &t.key(user_key), e);
                    failed = true;
                    (0, None, None)
                }
            },
            None => (rustix::process::getuid().as_raw(), None, None),
        };
        if let Some(((g, span), key)) = &group {
            match self.users.group_id(g) {
                Ok(id) => gid = Some(id),
                Err(e) => {
                    self.diag(sev, Some(span.clone()), key, e);
                    failed = true;
                }
            }
        }
        if failed {
            return None;
        }
        // A uid with no passwd entry and no group: its own number (not root's group 0).
        let gid = gid.unwrap_or(uid);
        let mut list = vec![gid];
        if let Some(n) = &name {
            for g in self.users.member_of(n) {
                if !list.contains(&g) {
                    list.push(g);
                }
            }
        }
        let c = Credentials { uid, gid, groups: list.into_boxed_slice() };
        Some(c)
    }

    fn mode(&mut self, t: &Tbl<'_, '_>, k: &str) -> Option<u32> {
        let v = t.get(k)?;
        let key = t.key(k);
        let n = match v.get_ref() {
            DeValue::Integer(i) if i.radix() == 8 => int_value(i),
            DeValue::Integer(_) => {
                self.err(&v.span(), &key, "write the mode in octal: \"022\" or 0o022");
                return None;
            }
            DeValue::String(_) => {
                let (s, _) = self.string_of(v, &key)?;
                let digits = s.trim_start_matches("0o");
                if digits.is_empty() { None } else { i64::from_str_radix(digits, 8).ok() }
            }
            _ => None,
        };
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n <= 0o7777 => Some(n),
            _ => {
                self.expected(v, &key, "an octal mode such as \"022\"");
                None
            }
        }
    }

    fn listen(&mut self, t: &Tbl<'_, '_>, k: &str) -> Vec<ListenAddr> {
        let key = t.key(k);
        let mut out = Vec::new();
        for (s, span) in self.strings(t, k).unwrap_or_default() {
            match parse_listen(&s) {
                Ok(a) => out.push(a),
                Err(e) => self.err(&span, &key, e),
            }
        }
        out
    }

    fn command_of(&mut self, v: &Val<'_>, key: &str) -> Option<Vec<String>> {
        let argv = match v.get_ref() {
            DeValue::String(_) => {
                let (s, span) = self.string_of(v, key)?;
                match shell_split(&s) {
                    Ok(a) => a,
                    Err(e) => {
                        self.err(&span, key, e);
                        return None;
                    }
                }
            }
            DeValue::Array(items) => {
                let n = items.len();
                let argv: Vec<String> =
                    items.iter().filter_map(|i| self.string_of(i, key).map(|(s, _)| s)).collect();
                if argv.len() != n {
                    return None;
                }
                argv
            }
            _ => {
                self.expected(v, key, "a string or an array of strings");
                return None;
            }
        };
        match argv.first() {
            None => {
                self.err(&v.span(), key, "empty command");
                None
            }
            Some(p) if p.is_empty() => {
                self.err(&v.span(), key, "empty program name");
                None
            }
            Some(_) => Some(argv),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value grammars: durations, sizes, signals, shell words, endpoints, listen addresses.

/// Horust's (humantime's) durations: `"250ms"`, `"10s"`, `"1m 30s"`, `"500millis"`, `"0"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (write e.g. \"10s\")".into());
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut nanos: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (num, after) = rest.split_at(digits);
        if num.is_empty() {
            return Err(format!("invalid duration {s:?} (write e.g. \"10s\", \"1m 30s\", \"250ms\")"));
        }
        let after = after.trim_start();
        let unit_len = after.len() - after.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("duration {s:?} needs a unit, e.g. \"{num}s\" or \"{num}ms\""));
        }
        let Some(per) = unit_nanos(unit) else {
            return Err(format!("unknown unit {unit:?} in duration {s:?} (ns, us, ms, s, m, h, d, w)"));
        };
        let n: u128 = num.parse().map_err(|_| format!("duration {s:?} is too long"))?;
        nanos = n
            .checked_mul(per)
            .and_then(|x| x.checked_add(nanos))
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        if nanos > MAX_DURATION.as_nanos() {
            return Err(format!("duration {s:?} is too long (at most 100 days)"));
        }
        rest = after.trim_start();
    }
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    const S: u128 = 1_000_000_000;
    Some(match unit {
        "nsec" | "ns" | "nanos" => 1,
        "usec" | "us" | "µs" | "micros" => 1_000,
        "millis" | "msec" | "ms" => 1_000_000,
        "seconds" | "second" | "sec" | "secs" | "s" => S,
        "minutes" | "minute" | "min" | "mins" | "m" => 60 * S,
        "hours" | "hour" | "hr" | "hrs" | "h" => 3600 * S,
        "days" | "day" | "d" => 86_400 * S,
        "weeks" | "week" | "w" => 7 * 86_400 * S,
        "months" | "month" | "M" => 2_630_016 * S,
        "years" | "year" | "y" => 31_557_600 * S,
        _ => return None,
    })
}

/// Sizes: `"100 MB"` (10⁶), `"100 MiB"` (2²⁰), `"1.5 GB"`, `"512"` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let num_len = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.').len();
    let (num, unit) = t.split_at(num_len);
    let unit = unit.trim();
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!("invalid size {s:?} (write e.g. \"100 MB\", \"16KiB\" or bytes)"));
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || frac.contains('.') || frac.len() > 9 {
        return Err(format!("invalid size {s:?} (write e.g. \"100 MB\", \"16KiB\" or bytes)"));
    }
    let too_big = || format!("size {s:?} is too large");
    let i: u128 = int.parse().map_err(|_| too_big())?;
    let f: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| too_big())? };
    let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
    let total =
        i.checked_mul(mult).and_then(|x| x.checked_add(f.checked_mul(mult)? / scale)).ok_or_else(too_big)?;
    u64::try_from(total).map_err(|_| too_big())
}

const SIGNAL_NAMES_FOR_HINTS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
    "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
    "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS", "RTMIN", "RTMAX",
];

/// `"TERM"`, `"SIGTERM"`, `"term"`, `"15"`, `"RTMIN+3"` → the signal number (one table for the
/// whole crate: `signals::parse_signal`).
pub fn signal_number(s: &str) -> Option<i32> {
    crate::signals::parse_signal(s)
}

/// Split a command line as a POSIX shell would split words: single and double quotes, backslash
/// escapes, no expansion, no globbing, no operators.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("trailing backslash".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `host:port` with host an IP literal (`[::1]` for IPv6) or `localhost`; no name lookup.
pub fn parse_endpoint(s: &str, default_port: Option<u16>) -> Result<Endpoint, String> {
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        let (h, after) =
            r.split_once(']').ok_or_else(|| format!("{s:?}: missing ']' after the IPv6 address"))?;
        let port = match after {
            "" => None,
            a => {
                Some(a.strip_prefix(':').ok_or_else(|| format!("{s:?}: expected ':' and a port after ']'"))?)
            }
        };
        (h, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("{s:?}: write IPv6 addresses in brackets, e.g. \"[::1]:8080\""));
            }
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{s:?}: invalid port {p:?} (1 to 65535)"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{s:?}: missing port (write host:port)")),
    };
    let addrs: Vec<SocketAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]
    } else {
        match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) if host.is_empty() => return Err(format!("{s:?}: missing host")),
            Err(_) => {
                return Err(format!(
                    "{s:?}: host {host:?} is not an IP address or localhost (names are not looked up: it would block init)"
                ));
            }
        }
    };
    Ok(Endpoint { addrs, host: host.to_string(), port })
}

/// `http://host[:port][/path]`; https is refused (no TLS in init).
pub fn parse_http(s: &str) -> Result<HttpEndpoint, String> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "{s:?}: https is not supported (init has no TLS); use http:// or a tcp-endpoint"
        ));
    }
    let rest = match (lower.starts_with("http://"), s.get(7..)) {
        (true, Some(r)) => r,
        _ => {
            return Err(format!("{s:?}: expected a URL such as \"http://127.0.0.1:8080/health\""));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("{s:?}: user info in URLs is not supported"));
    }
    let endpoint = parse_endpoint(authority, Some(80))?;
    Ok(HttpEndpoint { endpoint, path: path.to_string() })
}

/// `tcp:HOST:PORT`, `udp:HOST:PORT`, `unix:/path`, `/path`, or a bare `HOST:PORT` (tcp).
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    let first = |e: Endpoint| e.addrs.first().copied().ok_or_else(|| format!("{s:?}: no address"));
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() {
            return Err(format!("{s:?}: missing socket path"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(ListenAddr::Unix(PathBuf::from(s)));
    }
    if let Some(a) = s.strip_prefix("udp:") {
        return Ok(ListenAddr::Udp(first(parse_endpoint(a, None)?)?));
    }
    let a = s.strip_prefix("tcp:").unwrap_or(s);
    Ok(ListenAddr::Tcp(first(parse_endpoint(a, None)?)?))
}

// ---------------------------------------------------------------------------------------------
// The two schemas.

const NATIVE_TOP: &[&str] = &[
    "name",
    "command",
    "user",
    "group",
    "working-directory",
    "umask",
    "stdout",
    "stderr",
    "stdout-rotate-size",
    "stdout-rotate-keep",
    "stdout-should-append-timestamp-to-filename",
    "start-delay",
    "start-after",
    "shutdown-after",
    "signal-rewrite",
    "autostart",
    "oneshot",
    "requires",
    "after",
    "wants",
    "conflicts",
    "ready",
    "forward-signals",
    "log-buffer",
    "start",
    "start-timeout",
    "idle-timeout",
    "restart",
    "healthiness",
    "health",
    "failure",
    "termination",
    "environment",
    "resource-limit",
    "socket",
    "proxy",
];
const RESTART_KEYS: &[&str] = &["strategy", "backoff", "max-backoff", "attempts", "reset-after"];
const HEALTH_KEYS: &[&str] = &[
    "http-endpoint",
    "tcp-endpoint",
    "command",
    "file-path",
    "interval",
    "timeout",
    "start-period",
    "max-failed",
    "on-unhealthy",
];
const FAILURE_KEYS: &[&str] = &["successful-exit-code", "strategy"];
const TERMINATION_KEYS: &[&str] = &["signal", "wait", "die-if-failed"];
const ENV_KEYS: &[&str] = &["keep-env", "re-export", "additional"];
const LIMIT_KEYS: &[&str] =
    &["nofile", "nproc", "core", "memlock", "stack", "cpu", "memory", "pids-max", "required"];
const SOCKET_KEYS: &[&str] = &["listen", "mode", "owner", "backlog", "names"];
const PROXY_KEYS: &[&str] = &["listen", "backend", "max-connections"];

const RESTART_CHOICES: &[&str] = &["always", "on-failure", "never"];
const RESTART_VALUES: [RestartStrategy; 3] =
    [RestartStrategy::Always, RestartStrategy::OnFailure, RestartStrategy::Never];

/// Health-check defaults for native files: Horust probes every second with a 1 s timeout.
const NATIVE_INTERVAL: Duration = Duration::from_secs(1);
const NATIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Default `[proxy] max-connections`.
pub const DEFAULT_PROXY_CONNECTIONS: u32 = 256;
/// Default `[socket] backlog`.
pub const DEFAULT_BACKLOG: u32 = 128;

fn name_from_stem(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    crate::graph::normalize(&file).to_string()
}

/// Walk a parsed file: zinit 0.3 when it has a top-level `[service]` or `[target]` table, else native.
pub fn service(cx: &mut Ctx<'_>, root: &DeTable<'_>, root_span: Span) -> Option<ServiceSpec> {
    let top = Tbl { t: root, name: String::new(), span: root_span };
    let is_zinit = ["service", "target"].iter().any(|k| root.get(*k).is_some_and(|v| v.get_ref().is_table()));
    let before = cx.errors();
    let spec = if is_zinit {
        cx.native = false;
        zinit(cx, &top)
    } else {
        cx.native = true;
        native(cx, &top)
    };
    if cx.errors() > before { None } else { spec }
}

fn native(cx: &mut Ctx<'_>, top: &Tbl<'_, '_>) -> Option<ServiceSpec> {
    cx.unknown_keys(top, NATIVE_TOP);
    let mut s = ServiceSpec::new(&name_from_stem(cx.path), Vec::new());
    s.file = cx.path.to_path_buf();
    s.format = Format::Native;
    if let Some((n, span)) = cx.string(top, "name") {
        let n = crate::graph::normalize(&n).to_string();
        if cx.check_name(&n, Some(&span), "name") {
            s.name = n;
        }
    } else {
        let n = s.name.clone();
        cx.check_name(&n, None, "name");
    }
    let command = top.get("command").and_then(|v| cx.command_of(v, "command"));
    if let Some(v) = cx.string(top, "working-directory") {
        s.working_directory = Some(PathBuf::from(v.0));
    }
    s.user = cx.credentials(top, "user", Some("group"));
    s.umask = cx.mode(top, "umask");
    for k in ["stdout", "stderr"] {
        if let Some((v, span)) = cx.string(top, k) {
            let out = output(cx, &v, &span, k);
            if k == "stdout" {
                s.stdout = out;
            } else {
                s.stderr = out;
            }
        }
    }
    if let Some(n) = cx.size(top, "stdout-rotate-size", u64::MAX) {
        s.log.rotate_size = n;
    }
    if let Some(n) = cx.u32(top, "stdout-rotate-keep") {
        s.log.rotate_keep = n;
    }
    if let Some(b) = cx.boolean(top, "stdout-should-append-timestamp-to-filename") {
        s.log.append_timestamp = b;
    }
    if let Some(n) = cx.size(top, "log-buffer", MAX_LOG_BUFFER) {
        s.log.buffer = usize::try_from(n).unwrap_or(0);
    }
    if let Some(d) = cx.duration(top, "start-delay") {
        s.start_delay = d;
    }
    s.deps.requires = cx.deps(top, "requires", Edge::Requires);
    s.deps.start_after = cx.deps(top, "start-after", Edge::StartAfter);
    s.deps.after = cx.deps(top, "after", Edge::After);
    s.deps.wants = cx.deps(top, "wants", Edge::Wants);
    s.deps.conflicts = cx.deps(top, "conflicts", Edge::Conflicts);
    s.deps.shutdown_after = cx.deps(top, "shutdown-after", Edge::ShutdownAfter);
    if let Some(v) = top.get("signal-rewrite") {
        s.signal_rewrite = signal_rewrite(cx, v);
    }
    if let Some(b) = cx.boolean(top, "autostart") {
        s.autostart = b;
    }
    if let Some(b) = cx.boolean(top, "oneshot") {
        s.oneshot = b;
    }
    if let Some((r, span)) = cx.string(top, "ready") {
        match parse_ready(&r) {
            Ok(r) => s.ready = r,
            Err(e) => cx.err(&span, "ready", e),
        }
    }
    if let Some(v) = top.get("forward-signals") {
        match v.get_ref() {
            DeValue::Array(items) => {
                s.forward_signals = items.iter().filter_map(|i| cx.signal_of(i, "forward-signals")).collect();
            }
            _ => cx.expected(v, "forward-signals", "an array of signal names"),
        }
    }
    if let Some(i) = cx.choice(top, "start", &["auto", "on-demand"]) {
        s.start = if i == 0 { StartMode::Auto } else { StartMode::OnDemand };
    }
    if let Some(d) = cx.duration(top, "start-timeout") {
        s.start_timeout = d;
    }
    if let Some(d) = cx.duration(top, "idle-timeout") {
        s.idle_timeout = d;
    }

    if let Some(t) = cx.table(top, "restart") {
        native_restart(cx, &t, &mut s);
    }
    let health = match (cx.table(top, "healthiness"), cx.table(top, "health")) {
        (Some(_), Some(b)) => {
            cx.err(&b.span, "health", "[health] and [healthiness] are the same table; use one");
            None
        }
        (a, b) => a.or(b),
    };
    if let Some(t) = health {
        s.health = native_health(cx, &t).map(Box::new);
    }
    if let Some(t) = cx.table(top, "failure") {
        cx.unknown_keys(&t, FAILURE_KEYS);
        if let Some(v) = t.get("successful-exit-code") {
            let key = t.key("successful-exit-code");
            match v.get_ref() {
                DeValue::Array(items) => {
                    s.failure.successful_exit_codes = items
                        .iter()
                        .filter_map(|i| cx.int_of(i, &key, 0, 255))
                        .filter_map(|n| i32::try_from(n).ok())
                        .collect();
                }
                DeValue::Integer(_) => {
                    s.failure.successful_exit_codes =
                        cx.int_of(v, &key, 0, 255).and_then(|n| i32::try_from(n).ok()).into_iter().collect();
                }
                _ => cx.expected(v, &key, "an array of exit codes"),
            }
        }
        let choices = ["ignore", "kill-dependents", "shutdown"];
        if let Some(i) = cx.choice(&t, "strategy", &choices) {
            s.failure.strategy =
                [FailureStrategy::Ignore, FailureStrategy::KillDependents, FailureStrategy::Shutdown]
                    .get(i)
                    .copied()
                    .unwrap_or(FailureStrategy::Ignore);
        }
    }
    if let Some(t) = cx.table(top, "termination") {
        cx.unknown_keys(&t, TERMINATION_KEYS);
        if let Some(n) = cx.signal(&t, "signal") {
            s.termination.signal = n;
        }
        if let Some(d) = cx.duration(&t, "wait") {
            s.termination.wait = d;
        }
        s.deps.die_if_failed = cx.deps(&t, "die-if-failed", Edge::DieIfFailed);
    }
    if let Some(t) = cx.table(top, "environment") {
        cx.unknown_keys(&t, ENV_KEYS);
        if let Some(b) = cx.boolean(&t, "keep-env") {
            s.env.keep_env = b;
        }
        for (v, span) in cx.strings(&t, "re-export").unwrap_or_default() {
            if v.is_empty() || v.contains('=') || v.contains('\0') {
                cx.err(&span, &t.key("re-export"), format!("invalid variable name {v:?}"));
            } else {
                s.env.re_export.push(v);
            }
        }
        if let Some(a) = cx.table(&t, "additional") {
            s.env.additional = env_table(cx, &a);
        }
    }
    if let Some(t) = cx.table(top, "resource-limit") {
        native_limits(cx, &t, &mut s);
    }
    if let Some(t) = cx.table(top, "socket") {
        cx.unknown_keys(&t, SOCKET_KEYS);
        let listen = cx.listen(&t, "listen");
        if listen.is_empty() && t.get("listen").is_none() {
            cx.err(&t.span, "socket.listen", "missing (where to listen, e.g. \"tcp:0.0.0.0:80\")");
        }
        let listen_count = listen.len();
        s.socket = Some(Box::new(SocketSpec {
            listen,
            mode: cx.mode(&t, "mode"),
            owner: cx.credentials(&t, "owner", None),
            backlog: cx.u32(&t, "backlog").unwrap_or(DEFAULT_BACKLOG),
            names: fd_names(cx, &t, listen_count),
        }));
    }
    if let Some(t) = cx.table(top, "proxy") {
        cx.unknown_keys(&t, PROXY_KEYS);
        let listen = cx.listen(&t, "listen");
        let backend = match cx.string(&t, "backend") {
            Some((b, span)) => match parse_listen(&b) {
                Ok(a) => Some(a),
                Err(e) => {
                    cx.err(&span, "proxy.backend", e);
                    None
                }
            },
            None => {
                cx.err(&t.span, "proxy.backend", "missing (where to connect, e.g. \"unix:/run/db.sock\")");
                None
            }
        };
        if t.get("listen").is_none() {
            cx.err(&t.span, "proxy.listen", "missing (where to listen, e.g. \"tcp:0.0.0.0:5432\")");
        }
        let max = cx.u32(&t, "max-connections").unwrap_or(DEFAULT_PROXY_CONNECTIONS);
        if let Some(backend) = backend {
            s.proxy = Some(Box::new(ProxySpec { listen, backend, max_connections: max }));
        }
    }

    if s.start == StartMode::OnDemand
        && s.socket.is_none()
        && s.proxy.is_none()
        && let Some(v) = top.get("start")
    {
        cx.err(&v.span(), "start", "\"on-demand\" needs a [socket] or [proxy] table");
    }
    match command {
        Some(c) => s.command = c,
        None if top.get("command").is_some() => {}
        None => {
            let d = &s.deps;
            if d.requires.is_empty() && d.start_after.is_empty() && d.after.is_empty() && d.wants.is_empty() {
                cx.diag(Severity::Error, None, "command", "missing".into());
            } else {
                // Dependencies and no command: a target (design §4).
                s.kind = Kind::Target;
            }
        }
    }
    Some(s)
}

fn output(cx: &mut Ctx<'_>, v: &str, span: &Span, key: &str) -> Output {
    match v {
        "log" => Output::Log,
        "STDOUT" => Output::Stdout,
        "STDERR" => Output::Stderr,
        "null" | "/dev/null" => Output::Null,
        "" => {
            cx.err(span, key, "empty (log, STDOUT, STDERR, null or a file path)");
            Output::Log
        }
        p => {
            if !p.contains('/') {
                let h = hint(p, &["log", "STDOUT", "STDERR", "null"]);
                cx.warn(
                    span,
                    key,
                    format!("{p:?} is taken as a file relative to init's working directory{h}"),
                );
            }
            Output::File(PathBuf::from(p))
        }
    }
}

fn parse_ready(r: &str) -> Result<Ready, String> {
    Ok(match r {
        "auto" => Ready::Auto,
        "started" => Ready::Started,
        "healthy" => Ready::Healthy,
        "notify" => Ready::Notify,
        _ => match r.strip_prefix("fd:") {
            Some(n) => match n.parse::<i32>() {
                Ok(n) if (3..=1023).contains(&n) => Ready::Fd(n),
                _ => return Err(format!("{r:?}: the fd must be a number from 3 to 1023")),
            },
            None => {
                let choices = ["auto", "started", "healthy", "notify", "fd:N"];
                let h = hint(r, &choices);
                return Err(format!(
                    "expected one of auto, started, healthy, notify, \"fd:N\", found {r:?}{h}"
                ));
            }
        },
    })
}

/// Horust's `signal-rewrite`: `"TERM:INT, HUP:USR1"` (or `=`), or a table `{ TERM = "INT" }`.
fn signal_rewrite(cx: &mut Ctx<'_>, v: &Val<'_>) -> Vec<(i32, i32)> {
    let key = "signal-rewrite";
    let mut out = Vec::new();
    match v.get_ref() {
        DeValue::String(_) => {
            let Some((s, span)) = cx.string_of(v, key) else {
                return out;
            };
            for pair in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
                let parsed = pair
                    .split_once([':', '='])
                    .and_then(|(a, b)| Some((signal_number(a)?, signal_number(b)?)));
                match parsed {
                    Some(p) => out.push(p),
                    None => cx.err(
                        &span,
                        key,
                        format!("invalid pair {pair:?} (write \"FROM:TO\", e.g. \"TERM:INT\")"),
                    ),
                }
            }
        }
        DeValue::Table(t) => {
            for (k, val) in t.iter() {
                let from = signal_number(k.get_ref());
                if from.is_none() {
                    cx.err(&k.span(), key, format!("unknown signal {:?}", k.get_ref().as_ref()));
                }
                let to = cx.signal_of(val, key);
                if let (Some(a), Some(b)) = (from, to) {
                    out.push((a, b));
                }
            }
        }
        _ => cx.expected(v, key, "a string such as \"TERM:INT\" or a table"),
    }
    out
}

fn native_restart(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>, s: &mut ServiceSpec) {
    cx.unknown_keys(t, RESTART_KEYS);
    if let Some(i) = cx.choice(t, "strategy", RESTART_CHOICES) {
        s.restart.strategy = RESTART_VALUES.get(i).copied().unwrap_or(RestartStrategy::Never);
    }
    if let Some(d) = cx.duration(t, "backoff") {
        s.restart.backoff = d.max(MIN_BACKOFF);
    }
    match cx.duration(t, "max-backoff") {
        Some(d) if d < s.restart.backoff => {
            if let Some(v) = t.get("max-backoff") {
                cx.err(&v.span(), &t.key("max-backoff"), "must not be less than restart.backoff");
            }
        }
        Some(d) => s.restart.max_backoff = d,
        None => s.restart.max_backoff = s.restart.max_backoff.max(s.restart.backoff),
    }
    if let Some(n) = cx.u32(t, "attempts") {
        s.restart.attempts = n;
    }
    if let Some(d) = cx.duration(t, "reset-after") {
        s.restart.reset_after = d;
    }
}

fn native_health(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> Option<Health> {
    cx.unknown_keys(t, HEALTH_KEYS);
    let mut h = Health {
        http: None,
        tcp: None,
        command: None,
        file: None,
        interval: NATIVE_INTERVAL,
        timeout: NATIVE_TIMEOUT,
        start_period: Duration::ZERO,
        max_failed: 3,
        on_unhealthy: OnUnhealthy::Restart,
    };
    if let Some((u, span)) = cx.string(t, "http-endpoint") {
        match parse_http(&u) {
            Ok(e) => h.http = Some(e),
            Err(e) => cx.err(&span, &t.key("http-endpoint"), e),
        }
    }
    if let Some((u, span)) = cx.string(t, "tcp-endpoint") {
        match parse_endpoint(u.strip_prefix("tcp:").unwrap_or(&u), None) {
            Ok(e) => h.tcp = Some(e),
            Err(e) => cx.err(&span, &t.key("tcp-endpoint"), e),
        }
    }
    if let Some(v) = t.get("command") {
        h.command = cx.command_of(v, &t.key("command"));
    }
    if let Some((p, _)) = cx.string(t, "file-path") {
        h.file = Some(PathBuf::from(p));
    }
    health_timing(cx, t, &mut h, false);
    if let Some(n) = cx.int(t, "max-failed", 1, i64::from(u32::MAX)) {
        h.max_failed = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(i) = cx.choice(t, "on-unhealthy", &["restart", "stop", "ignore"]) {
        h.on_unhealthy = [OnUnhealthy::Restart, OnUnhealthy::Stop, OnUnhealthy::Ignore]
            .get(i)
            .copied()
            .unwrap_or(OnUnhealthy::Restart);
    }
    let any = h.http.is_some() || h.tcp.is_some() || h.command.is_some() || h.file.is_some();
    any.then_some(h)
}

/// interval / timeout / start-period, in native spelling or zinit's `_ms` integers.
fn health_timing(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>, h: &mut Health, zinit: bool) {
    let keys: [&str; 3] = if zinit {
        ["interval_ms", "timeout_ms", "start_period_ms"]
    } else {
        ["interval", "timeout", "start-period"]
    };
    let [ik, tk, sk] = keys;
    let get = |cx: &mut Ctx<'_>, k: &str| {
        if zinit { cx.millis(t, k) } else { cx.duration(t, k) }
    };
    for (k, slot) in [(ik, &mut h.interval), (tk, &mut h.timeout)] {
        if let Some(d) = get(cx, k) {
            if d.is_zero() {
                if let Some(v) = t.get(k) {
                    cx.err(&v.span(), &t.key(k), "must be greater than zero");
                }
            } else {
                *slot = d;
            }
        }
    }
    if let Some(d) = get(cx, sk) {
        h.start_period = d;
    }
}

fn env_table(cx: &mut Ctx<'_>, a: &Tbl<'_, '_>) -> Vec<(String, String)> {
    let mut entries: Vec<_> = a.t.iter().collect();
    // The map sorts keys; the environment keeps file order.
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k.get_ref().as_ref();
        let key = a.key(name);
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            cx.err(&k.span(), &key, "invalid variable name");
            continue;
        }
        let value = match v.get_ref() {
            DeValue::String(_) => cx.string_of(v, &key).map(|x| x.0),
            DeValue::Integer(i) => int_value(i).map(|n| n.to_string()),
            DeValue::Boolean(b) => Some(b.to_string()),
            DeValue::Float(f) => Some(f.as_str().to_string()),
            _ => {
                cx.expected(v, &key, "a string");
                None
            }
        };
        if let Some(value) = value {
            if value.contains('\0') {
                cx.err(&v.span(), &key, "contains a NUL byte");
            } else {
                out.push((name.to_string(), value));
            }
        }
    }
    out
}

fn native_limits(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>, s: &mut ServiceSpec) {
    cx.unknown_keys(t, LIMIT_KEYS);
    let rl = [
        ("nofile", Rlimit::Nofile),
        ("nproc", Rlimit::Nproc),
        ("core", Rlimit::Core),
        ("memlock", Rlimit::Memlock),
        ("stack", Rlimit::Stack),
    ];
    for (k, r) in rl {
        let Some(v) = t.get(k) else { continue };
        let n = match v.get_ref() {
            DeValue::String(x) if x.as_ref() == "unlimited" || x.as_ref() == "infinity" => Some(u64::MAX),
            _ => cx.size(t, k, u64::MAX),
        };
        if let Some(n) = n {
            s.limits.rlimits.push((r, n));
        }
    }
    if let Some(v) = t.get("cpu") {
        let key = t.key("cpu");
        let f = match v.get_ref() {
            // By hand: f64::from_str brings ~14 KB of tables.
            DeValue::Float(f) => parse_size(&format!("{}k", f.as_str().trim_start_matches('+')))
                .ok()
                .filter(|_| !f.as_str().contains(['e', 'E']))
                .map(|milli| milli as f64 / 1000.0),
            DeValue::Integer(i) => int_value(i).map(|n| n as f64),
            _ => None,
        };
        match f {
            Some(f) if f > 0.0 && f <= 4096.0 => s.limits.cpu = Some(f),
            _ => cx.expected(v, &key, "a number of cores greater than 0, such as 0.5"),
        }
    }
    s.limits.memory = cx.size(t, "memory", u64::MAX);
    if let Some(n) = cx.int(t, "pids-max", 1, i64::MAX) {
        s.limits.pids_max = u64::try_from(n).ok();
    }
    if let Some(b) = cx.boolean(t, "required") {
        s.limits.required = b;
    }
}

/// `[socket] names`: one `LISTEN_FDNAMES` entry per listener (sd_listen_fds_with_names(3): at
/// most 255 characters, no `:`).
fn fd_names(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>, listeners: usize) -> Vec<String> {
    let Some(names) = cx.strings(t, "names") else { return Vec::new() };
    let key = t.key("names");
    let mut out = Vec::new();
    for (n, span) in names {
        if n.is_empty() || n.len() > 255 || n.contains(':') || n.chars().any(char::is_control) {
            cx.err(&span, &key, format!("{n:?}: a name is 1 to 255 characters without ':'"));
        }
        out.push(n);
    }
    if out.len() != listeners
        && let Some(v) = t.get("names")
    {
        let msg = format!("{} names for {} listeners: give one per `listen` entry", out.len(), listeners);
        cx.err(&v.span(), &key, msg);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// zinit 0.3

const ZINIT_TOP: &[&str] = &["service", "target", "dependencies", "lifecycle", "health", "logging"];
const ZINIT_SERVICE: &[&str] = &[
    "name",
    "exec",
    "dir",
    "oneshot",
    "env",
    "status",
    "class",
    "critical",
    "ports",
    "kill_others",
    "process_filters",
];
const ZINIT_TARGET: &[&str] = &["name", "critical"];
const ZINIT_DEPS: &[&str] = &["requires", "after", "wants", "conflicts"];
const ZINIT_LIFECYCLE: &[&str] = &[
    "restart",
    "restart_delay_ms",
    "restart_delay_max_ms",
    "max_restarts",
    "stability_period_ms",
    "start_timeout_ms",
    "stop_timeout_ms",
    "stop_signal",
];
const ZINIT_HEALTH: &[&str] = &[
    "type",
    "target",
    "endpoint",
    "interval_ms",
    "timeout_ms",
    "retries",
    "start_period_ms",
    "expect_status",
];
const ZINIT_LOGGING: &[&str] = &["buffer_lines", "file", "forward"];

fn zinit(cx: &mut Ctx<'_>, top: &Tbl<'_, '_>) -> Option<ServiceSpec> {
    cx.unknown_keys(top, ZINIT_TOP);
    let svc = cx.table(top, "service");
    let target = cx.table(top, "target");
    let mut s = ServiceSpec::new(&name_from_stem(cx.path), Vec::new());
    s.file = cx.path.to_path_buf();
    s.format = Format::Zinit;
    // zinit's defaults (reference/zinit.md §1.3).
    s.restart.strategy = RestartStrategy::OnFailure;
    s.restart.backoff = Duration::from_secs(1);
    s.restart.max_backoff = Duration::from_secs(300);
    s.restart.attempts = 10;
    s.restart.reset_after = Duration::from_secs(30);
    s.termination.wait = Duration::from_secs(10);
    s.log.buffer = usize::try_from(1000 * ZINIT_BYTES_PER_LINE).unwrap_or(0);

    let head = match (&svc, &target) {
        (Some(_), Some(t)) => {
            cx.err(&t.span, "target", "a file has either [service] or [target], not both");
            return None;
        }
        (Some(t), None) => t,
        (None, Some(t)) => {
            s.kind = Kind::Target;
            s.restart.strategy = RestartStrategy::Never;
            t
        }
        (None, None) => return None,
    };
    match cx.string(head, "name") {
        Some((n, span)) if cx.check_name(&n, Some(&span), &head.key("name")) => s.name = n,
        Some(_) => {}
        None if head.get("name").is_none() => cx.err(&head.span, &head.key("name"), "missing"),
        None => {}
    }
    let _ = cx.boolean(head, "critical");
    if s.kind == Kind::Target {
        cx.unknown_keys(head, ZINIT_TARGET);
    } else {
        cx.unknown_keys(head, ZINIT_SERVICE);
        match cx.string(head, "exec") {
            Some((e, span)) if e.trim().is_empty() => cx.err(&span, "service.exec", "empty command"),
            Some((e, _)) => s.command = vec!["/bin/sh".into(), "-c".into(), e],
            None if head.get("exec").is_none() => cx.err(&head.span, "service.exec", "missing"),
            None => {}
        }
        if let Some((d, _)) = cx.string(head, "dir") {
            s.working_directory = Some(PathBuf::from(d));
        }
        if let Some(b) = cx.boolean(head, "oneshot") {
            s.oneshot = b;
        }
        if let Some(e) = cx.table(head, "env") {
            // zinit adds `env` to the server's own environment.
            s.env.keep_env = true;
            s.env.additional = env_table(cx, &e);
        }
        if let Some(i) = cx.choice(head, "status", &["start", "stop", "ignore"]) {
            s.autostart = i == 0;
        }
        let _ = cx.choice(head, "class", &["user", "system"]);
        for k in ["ports", "kill_others", "process_filters"] {
            if let Some(v) = head.get(k) {
                cx.warn(&v.span(), &head.key(k), "not supported by init, ignored");
            }
        }
    }
    if let Some(d) = cx.table(top, "dependencies") {
        cx.unknown_keys(&d, ZINIT_DEPS);
        s.deps.requires = cx.deps(&d, "requires", Edge::Requires);
        s.deps.after = cx.deps(&d, "after", Edge::After);
        s.deps.wants = cx.deps(&d, "wants", Edge::Wants);
        s.deps.conflicts = cx.deps(&d, "conflicts", Edge::Conflicts);
    }
    if s.kind == Kind::Target {
        for k in ["lifecycle", "health", "logging"] {
            if let Some(v) = top.get(k) {
                let span = top.t.get_key_value(k).map_or(v.span(), |(k, _)| k.span());
                cx.warn(&span, k, "ignored in a target");
            }
        }
        return Some(s);
    }
    let mut start_timeout = Duration::from_millis(30_000);
    if let Some(l) = cx.table(top, "lifecycle") {
        cx.unknown_keys(&l, ZINIT_LIFECYCLE);
        if let Some(i) = cx.choice(&l, "restart", RESTART_CHOICES) {
            s.restart.strategy = RESTART_VALUES.get(i).copied().unwrap_or(RestartStrategy::Never);
        }
        if let Some(d) = cx.millis(&l, "restart_delay_ms") {
            s.restart.backoff = d.max(MIN_BACKOFF);
        }
        if let Some(d) = cx.millis(&l, "restart_delay_max_ms") {
            s.restart.max_backoff = d;
        }
        if s.restart.max_backoff < s.restart.backoff {
            let span = l.get("restart_delay_max_ms").map_or(l.span.clone(), |v| v.span());
            cx.err(&span, &l.key("restart_delay_max_ms"), "must not be less than restart_delay_ms");
        }
        if let Some(n) = cx.u32(&l, "max_restarts") {
            s.restart.attempts = n;
        }
        if let Some(d) = cx.millis(&l, "stability_period_ms") {
            s.restart.reset_after = d;
        }
        if let Some(d) = cx.millis(&l, "start_timeout_ms") {
            start_timeout = d;
        }
        if let Some(d) = cx.millis(&l, "stop_timeout_ms") {
            s.termination.wait = d;
        }
        if let Some(n) = cx.signal(&l, "stop_signal") {
            s.termination.signal = n;
        }
    }
    if s.oneshot {
        // zinit never restarts a oneshot.
        s.restart.strategy = RestartStrategy::Never;
    }
    if let Some(h) = cx.table(top, "health") {
        s.health = zinit_health(cx, &h).map(Box::new);
        if let Some(h) = &s.health {
            // As zinit: the start timeout applies only with a health check, and is raised to
            // cover the probes it has to wait for.
            let probes = (h.interval + h.timeout).saturating_mul(h.max_failed);
            let floor = h.start_period.saturating_add(probes) + Duration::from_secs(5);
            s.start_timeout = start_timeout.max(floor).min(MAX_DURATION);
        }
    }
    if let Some(l) = cx.table(top, "logging") {
        cx.unknown_keys(&l, ZINIT_LOGGING);
        let max_lines = i64::try_from(MAX_LOG_BUFFER / ZINIT_BYTES_PER_LINE).unwrap_or(0);
        if let Some(n) = cx.int(&l, "buffer_lines", 1, max_lines) {
            let bytes = u64::try_from(n).unwrap_or(0) * ZINIT_BYTES_PER_LINE;
            s.log.buffer = usize::try_from(bytes).unwrap_or(0);
        }
        for k in ["file", "forward"] {
            if let Some(v) = l.get(k) {
                cx.warn(&v.span(), &l.key(k), "not supported (zinit ignores it too), ignored");
            }
        }
    }
    Some(s)
}

fn zinit_health(cx: &mut Ctx<'_>, t: &Tbl<'_, '_>) -> Option<Health> {
    cx.unknown_keys(t, ZINIT_HEALTH);
    let mut h = Health {
        http: None,
        tcp: None,
        command: None,
        file: None,
        interval: Duration::from_millis(10_000),
        timeout: Duration::from_millis(5_000),
        start_period: Duration::ZERO,
        max_failed: 3,
        on_unhealthy: OnUnhealthy::Restart,
    };
    let kind = cx.choice(t, "type", &["tcp", "http", "exec"]);
    if kind.is_none() && t.get("type").is_none() {
        cx.err(&t.span, &t.key("type"), "missing (tcp, http or exec)");
    }
    let target = match (cx.string(t, "target"), t.get("endpoint")) {
        (Some(x), _) => Some(x),
        (None, Some(_)) => {
            let x = cx.string(t, "endpoint");
            if let Some((_, span)) = &x {
                cx.warn(
                    span,
                    &t.key("endpoint"),
                    "zinit's key is \"target\"; \"endpoint\" is read as \"target\"",
                );
            }
            x
        }
        (None, None) => {
            cx.err(&t.span, &t.key("target"), "missing");
            None
        }
    };
    health_timing(cx, t, &mut h, true);
    if let Some(n) = cx.int(t, "retries", 1, i64::from(u32::MAX)) {
        h.max_failed = u32::try_from(n).unwrap_or(3);
    }
    if let Some(n) = cx.int(t, "expect_status", 100, 599)
        && !(200..300).contains(&n)
        && let Some(v) = t.get("expect_status")
    {
        cx.warn(&v.span(), &t.key("expect_status"), "init's http check passes on any 2xx status");
    }
    let (kind, (target, span)) = (kind?, target?);
    let key = t.key("target");
    match kind {
        0 => match parse_endpoint(target.strip_prefix("tcp:").unwrap_or(&target), None) {
            Ok(e) => h.tcp = Some(e),
            Err(e) => cx.err(&span, &key, e),
        },
        1 => match parse_http(&target) {
            Ok(e) => h.http = Some(e),
            Err(e) => cx.err(&span, &key, e),
        },
        _ => h.command = Some(vec!["/bin/sh".into(), "-c".into(), target]),
    }
    Some(h)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1m 30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("500millis"), Ok(ms(500)));
        assert_eq!(parse_duration("2 days"), Ok(ms(2 * 86_400_000)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("100d"), Ok(MAX_DURATION));
        assert!(parse_duration("100d 1ns").unwrap_err().contains("too long"));
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("3 fortnights").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100 MB"), Ok(100_000_000));
        assert_eq!(parse_size("100 MiB"), Ok(100 << 20));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("200 GiB"), Ok(200 << 30));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512 B"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1.2.3 MB").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("99999999999 TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn signals() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15", " TERM "] {
            assert_eq!(signal_number(s), Some(15), "{s}");
        }
        assert_eq!(signal_number("HUP"), Some(1));
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_number("WINCH"), Some(28));
        assert_eq!(signal_number("PWR"), Some(30));
        assert_eq!(signal_number("RTMIN"), Some(34));
        assert_eq!(signal_number("RTMIN+3"), Some(37));
        assert_eq!(signal_number("SIGRTMIN+4"), Some(38));
        assert_eq!(signal_number("RTMAX"), Some(64));
        assert_eq!(signal_number("RTMAX-1"), Some(63));
        assert_eq!(signal_number("RTMIN+31"), None);
        assert_eq!(signal_number("RTMINx"), None);
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_number("65"), None);
        assert_eq!(signal_number("TREM"), None);
        assert_eq!(signal_number(""), None);
    }

    #[test]
    fn shell_words() {
        let w = |s: &str| shell_split(s).unwrap();
        assert_eq!(w("/bin/echo a  b"), ["/bin/echo", "a", "b"]);
        assert_eq!(w("sh -c 'echo hello world'"), ["sh", "-c", "echo hello world"]);
        assert_eq!(w(r#"a "b \"c\" \$d \x" e"#), ["a", r#"b "c" $d \x"#, "e"]);
        assert_eq!(w(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(w("a '' \"\""), ["a", "", ""]);
        assert_eq!(w("echo $HOME *"), ["echo", "$HOME", "*"]);
        assert_eq!(w("a\\\nb"), ["ab"]);
        assert!(w("  ").is_empty());
        assert_eq!(shell_split("'a").unwrap_err(), "unterminated single quote");
        assert_eq!(shell_split("\"a").unwrap_err(), "unterminated double quote");
        assert_eq!(shell_split("a\\").unwrap_err(), "trailing backslash");
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("127.0.0.1:5432", None).unwrap();
        assert_eq!(e.addrs, vec!["127.0.0.1:5432".parse().unwrap()]);
        let e = parse_endpoint("[::1]:80", None).unwrap();
        assert_eq!(e.addrs, vec!["[::1]:80".parse().unwrap()]);
        assert_eq!(e.host, "::1");
        let e = parse_endpoint("localhost:8080", None).unwrap();
        assert_eq!(e.addrs, vec!["127.0.0.1:8080".parse().unwrap(), "[::1]:8080".parse().unwrap()]);
        assert!(parse_endpoint("::1:80", None).unwrap_err().contains("brackets"));
        assert!(parse_endpoint("db:80", None).unwrap_err().contains("not looked up"));
        assert!(parse_endpoint("1.2.3.4", None).unwrap_err().contains("missing port"));
        assert!(parse_endpoint("1.2.3.4:0", None).unwrap_err().contains("invalid port"));
        assert!(parse_endpoint("1.2.3.4:99999", None).is_err());
        assert!(parse_endpoint(":80", None).unwrap_err().contains("missing host"));
        assert!(parse_endpoint("[::1", None).is_err());
        assert!(parse_endpoint("[::1]x", None).is_err());

        let h = parse_http("http://localhost:8080/healthcheck").unwrap();
        assert_eq!(h.path, "/healthcheck");
        assert_eq!(h.endpoint.port, 8080);
        let h = parse_http("HTTP://[::1]").unwrap();
        assert_eq!((h.endpoint.port, h.path.as_str()), (80, "/"));
        let h = parse_http("http://10.0.0.1:9/a?b=c").unwrap();
        assert_eq!(h.path, "/a?b=c");
        assert!(parse_http("https://127.0.0.1/").unwrap_err().contains("TLS"));
        assert!(parse_http("ftp://127.0.0.1/").is_err());
        assert!(parse_http("http://u@127.0.0.1/").is_err());
        assert!(parse_http("http://example.com/").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("tcp:0.0.0.0:80"), Ok(ListenAddr::Tcp("0.0.0.0:80".parse().unwrap())));
        assert_eq!(parse_listen("tcp:[::]:80"), Ok(ListenAddr::Tcp("[::]:80".parse().unwrap())));
        assert_eq!(parse_listen("127.0.0.1:5432"), Ok(ListenAddr::Tcp("127.0.0.1:5432".parse().unwrap())));
        assert_eq!(parse_listen("udp:127.0.0.1:53"), Ok(ListenAddr::Udp("127.0.0.1:53".parse().unwrap())));
        assert_eq!(parse_listen("unix:/run/web.sock"), Ok(ListenAddr::Unix("/run/web.sock".into())));
        assert_eq!(parse_listen("/run/x"), Ok(ListenAddr::Unix("/run/x".into())));
        assert!(parse_listen("unix:").is_err());
        assert!(parse_listen("tcp:host:80").is_err());
    }

    #[test]
    fn ready_values() {
        assert_eq!(parse_ready("auto"), Ok(Ready::Auto));
        assert_eq!(parse_ready("started"), Ok(Ready::Started));
        assert_eq!(parse_ready("healthy"), Ok(Ready::Healthy));
        assert_eq!(parse_ready("notify"), Ok(Ready::Notify));
        assert_eq!(parse_ready("fd:3"), Ok(Ready::Fd(3)));
        assert!(parse_ready("fd:1").is_err());
        assert!(parse_ready("fd:x").is_err());
        assert!(parse_ready("notfy").unwrap_err().contains("did you mean \"notify\""));
    }

    #[test]
    fn hints() {
        assert_eq!(did_you_mean("comand", NATIVE_TOP), Some("command"));
        assert_eq!(did_you_mean("alway", RESTART_CHOICES), Some("always"));
        assert_eq!(did_you_mean("on_failure", RESTART_CHOICES), Some("on-failure"));
        assert_eq!(did_you_mean("Always", RESTART_CHOICES), Some("always"));
        assert_eq!(did_you_mean("TREM", SIGNAL_NAMES_FOR_HINTS), Some("TERM"));
        assert_eq!(did_you_mean("restart_delay", ZINIT_LIFECYCLE), Some("restart_delay_ms"));
        assert_eq!(did_you_mean("zzzzzz", NATIVE_TOP), None);
        assert_eq!(did_you_mean("", NATIVE_TOP), None);
    }

    #[test]
    fn positions_count_chars() {
        let s = Source::new("ab\nçé = 1\n\nx");
        assert_eq!(s.pos(0), (1, 1));
        assert_eq!(s.pos(3), (2, 1));
        assert_eq!(s.pos(7), (2, 3)); // after "çé" (4 bytes)
        assert_eq!(s.pos(4), (2, 1)); // inside 'ç': clamped back to its start
        assert_eq!(s.pos(12), (3, 1));
        assert_eq!(s.pos(13), (4, 1));
        assert_eq!(s.pos(999), (4, 2));
    }

    #[test]
    fn user_database_under_a_root() {
        let root = std::env::temp_dir().join(format!("ankh-userdb-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/srv:/bin/false\nbroken line\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nwww-data:x:34:\nlog:x:4:www,other\nssl:x:101: www \n",
        )
        .unwrap();
        let mut db = UserDb::new(Some(&root));
        assert_eq!(db.user(&IdRef::Name("www".into())), Ok((33, Some(34), Some("www".into()))));
        assert_eq!(db.user(&IdRef::Id(33)), Ok((33, Some(34), Some("www".into()))));
        assert_eq!(db.user(&IdRef::Id(1234)), Ok((1234, None, None)));
        let e = db.user(&IdRef::Name("nobody".into())).unwrap_err();
        assert_eq!(e, format!("no user \"nobody\" in {}/etc/passwd", root.display()));
        assert_eq!(db.group_id(&IdRef::Name("log".into())), Ok(4));
        assert!(db.group_id(&IdRef::Name("nope".into())).is_err());
        assert_eq!(db.member_of("www"), vec![4, 101]);
        std::fs::remove_dir_all(&root).unwrap();
        let mut db = UserDb::new(Some(&root));
        assert!(db.user(&IdRef::Name("www".into())).unwrap_err().starts_with("cannot read"));
        assert_eq!(db.user(&IdRef::Name("root".into())), Ok((0, Some(0), Some("root".into()))));
        // A number needs no database.
        assert_eq!(db.user(&IdRef::Id(5)), Ok((5, None, None)));
    }
}
