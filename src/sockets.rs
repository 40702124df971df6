//! sockets: the listeners init holds for services, and what the loop does with them.
//!
//! `[socket]` (socket activation): init creates the sockets before the service starts and passes
//! them as fds 3.. with `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (the child's own pid).
//! init keeps its copies open for the service's whole life in the configuration, so a
//! connection that arrives while the service restarts waits in the backlog instead of being
//! refused. With `start = "on-demand"` the listeners are in the poll set while the service is
//! down: the first connection starts it, and the listeners leave the poll set while it runs.
//! `idle-timeout` then watches them with EPOLLONESHOT (at most one wake-up per window): a window
//! without a new connection stops the service.
//!
//! `[proxy]` (zinit's xinet): init listens, accepts, starts the service (on-demand), waits
//! until it is Running, connects to `backend` and copies bytes both ways (`proxy.rs`). With
//! `idle-timeout`, the service is stopped once it has had no connection for that long.
//!
//! The listening sockets passed to services are blocking (the open file description, and so
//! O_NONBLOCK, is shared with the service; init never accepts on them). The proxy's own are
//! non-blocking. All are CLOEXEC in init.

use std::borrow::Borrow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::proxy::{Conn, Phase, Side};
use crate::spawn::Plan;
use crate::spec::{Config, ListenAddr, ProxySpec, ServiceSpec, SocketSpec, StartMode};
use crate::supervisor::{Event, State, Supervisor};

/// After an activation, no other one for this long unless the service ran in between (a
/// service that fails at once must not be respawned in a tight loop by a waiting connection).
const HOLD_OFF: Duration = Duration::from_secs(1);
/// accept(2) said EMFILE/ENFILE: the proxy listener leaves the poll set for this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(250);
/// How long a proxied connection waits for the service to be Running and its backend to
/// accept (zinit's `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Backend refused: try again after this long, until `CONNECT_TIMEOUT`.
pub const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// What a registered fd is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// `[socket]` listener `index` of service `name` (watched only for activation and idleness).
    Listener { name: String, index: usize },
    /// `[proxy]` listener `index` of service `name`.
    Proxy { name: String, index: usize },
    /// One side of proxied connection `id`.
    Conn { id: u64, side: Side },
}

/// What init wants to hear about an fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
    /// Disable after one event (EPOLLONESHOT); `modify` re-arms.
    pub oneshot: bool,
}

impl Interest {
    pub const READ: Interest = Interest { read: true, write: false, oneshot: false };
}

/// What epoll said about an fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    pub read: bool,
    pub write: bool,
    /// EPOLLHUP: the peer is gone for both directions (or both are shut).
    pub hup: bool,
    /// EPOLLERR: a pending socket error.
    pub err: bool,
}

/// The poll set, as this module sees it.
pub trait Registry {
    fn add(&mut self, fd: BorrowedFd<'_>, tag: Tag, interest: Interest);
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest);
    fn remove(&mut self, fd: BorrowedFd<'_>);
}

/// The sockets of one service.
struct Entry {
    name: String,
    socket: Option<Box<SocketSpec>>,
    proxy: Option<Box<ProxySpec>>,
    on_demand: bool,
    idle: Duration,
    /// `[socket]` listeners, in `listen` order; Err: why it could not be created.
    fds: Result<Vec<OwnedFd>, String>,
    names: Vec<String>,
    /// How the `[socket]` listeners are in the poll set.
    watch: Watch,
    /// idle-timeout of an activated service: the current window's end, and whether a
    /// connection arrived in it.
    window: Option<(Instant, bool)>,
    /// `[proxy]` listeners.
    proxy_fds: Vec<OwnedFd>,
    proxy_watched: bool,
    /// EMFILE: no accept before this.
    accept_pause: Option<Instant>,
    /// Open proxied connections (any phase).
    conns: u32,
    /// No connection since this instant (proxy idle-timeout).
    idle_since: Option<Instant>,
    /// Last activation, and whether the service has been seen running since.
    activated: Option<(Instant, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Off,
    /// Level-triggered, waiting for the first connection.
    Activate,
    /// EPOLLONESHOT, measuring idleness.
    Idle,
}

/// Every service's sockets and the proxied connections.
#[derive(Default)]
pub struct Sockets {
    entries: Table<String, Entry>,
    conns: Table<u64, Conn>,
    next_id: u64,
}

/// Where `[proxy]` connections of `service` go.
fn backend_of(entries: &Table<String, Entry>, service: &str) -> Option<ListenAddr> {
    entries.get(service).and_then(|e| e.proxy.as_ref()).map(|p| p.backend.clone())
}

impl Sockets {
    /// Creates the listeners of every service that has `[socket]` or `[proxy]`. A listener that
    /// cannot be created is logged and that service fails to start, with the reason.
    pub fn new(config: &Config) -> Sockets {
        let mut s = Sockets::default();
        for spec in &config.services {
            if let Some(e) = Entry::open(spec) {
                s.entries.insert(spec.name.clone(), e);
            }
        }
        s
    }

    /// After a reload: services whose `[socket]`/`[proxy]` did not change keep their sockets
    /// (and their backlog); others are closed and created anew.
    pub fn update(&mut self, config: &Config, reg: &mut dyn Registry) {
        let mut old = std::mem::take(&mut self.entries);
        for spec in &config.services {
            let keep = old
                .get(&spec.name)
                .is_some_and(|e| e.socket == spec.socket && e.proxy == spec.proxy && e.fds.is_ok());
            let entry = match old.remove(&spec.name) {
                Some(mut e) if keep => {
                    e.on_demand = spec.start == StartMode::OnDemand;
                    e.idle = spec.idle_timeout;
                    Some(e)
                }
                Some(mut e) => {
                    // Closed first: the new one may bind the same address.
                    e.unwatch_all(reg);
                    drop(e);
                    Entry::open(spec)
                }
                None => Entry::open(spec),
            };
            if let Some(e) = entry {
                self.entries.insert(spec.name.clone(), e);
            }
        }
        for e in old.values_mut() {
            e.unwatch_all(reg);
        }
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !self.entries.contains_key(&c.service))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.close(id, reg, "its service was removed");
        }
    }

    /// Before spawning `spec`: its `[socket]` listeners become fds 3.. with `LISTEN_FDS`,
    /// `LISTEN_FDNAMES` and `LISTEN_PID`. An error fails the start.
    pub fn prepare(
        &self,
        spec: &ServiceSpec,
        plan: &mut Plan,
        extra: &mut Vec<OwnedFd>,
    ) -> Result<(), String> {
        let Some(entry) = self.entries.get(&spec.name) else { return Ok(()) };
        if entry.socket.is_none() {
            return Ok(());
        }
        let fds = entry.fds.as_ref().map_err(Clone::clone)?;
        for fd in fds {
            extra.push(fd.try_clone().map_err(|e| format!("cannot pass its socket: {e}"))?);
        }
        plan.set_listen_fds(fds.len())?;
        plan.set_env("LISTEN_FDNAMES", std::ffi::OsStr::new(&entry.names.join(":")))
    }

    /// An event on one of this module's fds.
    pub fn on_event(
        &mut self,
        tag: Tag,
        ready: Ready,
        sup: &mut Supervisor,
        reg: &mut dyn Registry,
        now: Instant,
    ) {
        match tag {
            Tag::Listener { name, .. } => {
                let Some(e) = self.entries.get_mut(&name) else { return };
                match e.watch {
                    Watch::Activate => {
                        e.set_watch(Watch::Off, reg);
                        activate(&name, e, sup, now);
                    }
                    Watch::Idle => {
                        // EPOLLONESHOT disabled it; re-armed when the window ends.
                        if let Some((_, seen)) = e.window.as_mut() {
                            *seen = true;
                        }
                    }
                    Watch::Off => {}
                }
            }
            Tag::Proxy { name, index } => self.accept(&name, index, sup, reg, now),
            Tag::Conn { id, side } => {
                let Some(conn) = self.conns.get_mut(&id) else { return };
                match conn.on_ready(side, ready, reg, now) {
                    Ok(true) => {}
                    Ok(false) => self.close(id, reg, ""),
                    Err(why) => self.close(id, reg, &why),
                }
            }
        }
    }

    /// After every batch of events: puts listeners in or out of the poll set as the services'
    /// states require, moves waiting connections on, and applies idle timeouts.
    pub fn observe(&mut self, sup: &mut Supervisor, reg: &mut dyn Registry, now: Instant) {
        let down = sup.is_shutting_down();
        for (name, e) in self.entries.iter_mut() {
            let Some(svc) = sup.find(name) else { continue };
            let state = sup.status(svc).state;
            if let Some((_, ran)) = e.activated.as_mut()
                && matches!(state, State::Starting | State::Running | State::Stopping)
            {
                *ran = true;
            }
            let idle_stop = e.observe_socket(state, down, reg, now) || e.observe_proxy_idle(state, now);
            if idle_stop && !down {
                log::info!("{name}: idle for {}, stopping", crate::service::fmt_duration(e.idle));
                sup.handle(Event::Stop { svc }, now);
                e.window = None;
                e.idle_since = None;
            }
            let want = !down
                && e.conns < e.proxy.as_ref().map_or(0, |p| p.max_connections)
                && e.accept_pause.is_none_or(|t| now >= t);
            if want {
                e.accept_pause = None;
            }
            e.set_proxy_watch(want, reg);
        }
        // Waiting connections.
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else { continue };
            let state = sup.find(&conn.service).map(|s| sup.status(s).state);
            let result = match conn.phase {
                Phase::Open => continue,
                _ if now >= conn.deadline => {
                    Err(format!("{} not reachable within {}s", conn.service, CONNECT_TIMEOUT.as_secs()))
                }
                _ if down => Err("shutting down".to_string()),
                Phase::Waiting => match state {
                    Some(State::Running) => match backend_of(&self.entries, &conn.service) {
                        Some(b) => conn.connect(&b, reg, now),
                        None => Err("no backend".to_string()),
                    },
                    Some(State::Inactive | State::Exited | State::Failed) => {
                        // Not (or no longer) on its way: ask again (held off after a failure).
                        if let Some(e) = self.entries.get_mut(&conn.service) {
                            activate(&conn.service, e, sup, now);
                        }
                        Ok(true)
                    }
                    Some(_) => Ok(true),
                    None => Err("its service was removed".to_string()),
                },
                Phase::Retry(at) if now >= at => match backend_of(&self.entries, &conn.service) {
                    Some(b) => conn.connect(&b, reg, now),
                    None => Err("no backend".to_string()),
                },
                Phase::Retry(_) | Phase::Connecting => Ok(true),
            };
            match result {
                Ok(true) => {}
                Ok(false) => self.close(id, reg, ""),
                Err(why) => self.close(id, reg, &why),
            }
        }
    }

    /// The earliest instant `observe` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let entries = self.entries.values().flat_map(|e| {
            let idle =
                e.idle_since.filter(|_| e.on_demand && e.conns == 0 && !e.idle.is_zero()).map(|t| t + e.idle);
            let hold = e.activated.map(|(t, _)| t + HOLD_OFF);
            [e.window.map(|(t, _)| t), idle, e.accept_pause, hold]
        });
        let conns = self.conns.values().filter_map(|c| match c.phase {
            Phase::Open => None,
            Phase::Retry(at) => Some(at.min(c.deadline)),
            Phase::Waiting | Phase::Connecting => Some(c.deadline),
        });
        // Deadlines already handled by `observe` (e.g. an idle stop refused during a shutdown)
        // must not make the loop spin.
        let now = Instant::now();
        entries.flatten().chain(conns).filter(|t| *t > now).min()
    }

    /// Number of open proxied connections of a service (for `status`).
    pub fn connections(&self, name: &str) -> u32 {
        self.entries.get(name).map_or(0, |e| e.conns)
    }

    fn accept(
        &mut self,
        name: &str,
        index: usize,
        sup: &mut Supervisor,
        reg: &mut dyn Registry,
        now: Instant,
    ) {
        let Some(e) = self.entries.get_mut(name) else { return };
        let max = e.proxy.as_ref().map_or(0, |p| p.max_connections);
        let mut accepted = Vec::new();
        while e.conns < max {
            let Some(fd) = e.proxy_fds.get(index) else { return };
            match rustix::net::accept_with(fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(client) => {
                    e.conns += 1;
                    e.idle_since = None;
                    accepted.push(client);
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                // Out of fds: leave the connections in the backlog for a while (never spin).
                Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                    log::warn!("{name}: proxy: accept: out of file descriptors; pausing");
                    e.accept_pause = Some(now + ACCEPT_PAUSE);
                    e.set_proxy_watch(false, reg);
                    break;
                }
                // The connection died in the backlog (ECONNABORTED and the like).
                Err(err) => log::debug!("{name}: proxy: accept: {err}"),
            }
        }
        if e.conns >= max {
            e.set_proxy_watch(false, reg);
        }
        if accepted.is_empty() {
            return;
        }
        let running = sup.find(name).is_some_and(|s| sup.status(s).state == State::Running);
        if !running {
            activate(name, e, sup, now);
        }
        let backend = e.proxy.as_ref().map(|p| p.backend.clone());
        for client in accepted {
            let id = self.next_id;
            self.next_id += 1;
            let mut conn = Conn::new(id, name, client, now + CONNECT_TIMEOUT);
            let result = match (&backend, running) {
                (Some(b), true) => conn.connect(b, reg, now),
                _ => Ok(true),
            };
            self.conns.insert(id, conn);
            match result {
                Ok(true) => {}
                Ok(false) => self.close(id, reg, ""),
                Err(why) => self.close(id, reg, &why),
            }
        }
    }

    fn close(&mut self, id: u64, reg: &mut dyn Registry, why: &str) {
        let Some(conn) = self.conns.remove(&id) else { return };
        if !why.is_empty() {
            log::warn!("{}: proxied connection closed: {why}", conn.service);
        }
        if let Some(e) = self.entries.get_mut(&conn.service) {
            e.conns = e.conns.saturating_sub(1);
            if e.conns == 0 {
                e.idle_since = Some(Instant::now());
            }
        }
        conn.close(reg);
    }
}

/// No activation within `HOLD_OFF` of the last one if the service has not run since, or has
/// failed again: a crash loop with a connection waiting restarts at most once a second.
fn held(activated: Option<(Instant, bool)>, state: State, now: Instant) -> bool {
    activated.is_some_and(|(t, ran)| now < t + HOLD_OFF && (!ran || state == State::Failed))
}

/// Asks the supervisor to start an on-demand service for a connection, unless it is on its
/// way already or was just started and has not run since (`HOLD_OFF`).
fn activate(name: &str, e: &mut Entry, sup: &mut Supervisor, now: Instant) {
    if !e.on_demand {
        return;
    }
    let Some(svc) = sup.find(name) else { return };
    let state = sup.status(svc).state;
    if !matches!(state, State::Inactive | State::Exited | State::Failed) {
        return;
    }
    if held(e.activated, state, now) {
        return;
    }
    log::info!("{name}: connection waiting, starting it");
    e.activated = Some((now, false));
    sup.handle(Event::Start { svc }, now);
}

impl Entry {
    fn open(spec: &ServiceSpec) -> Option<Entry> {
        if spec.socket.is_none() && spec.proxy.is_none() {
            return None;
        }
        let name = &spec.name;
        let fds = match &spec.socket {
            Some(s) => s
                .listen
                .iter()
                .map(|a| listen(a, s.backlog, s.mode, s.owner.as_ref().map(|c| (c.uid, c.gid)), false))
                .collect::<Result<Vec<_>, _>>(),
            None => Ok(Vec::new()),
        };
        if let Err(e) = &fds {
            log::error!("{name}: {e}");
        }
        let names = match &spec.socket {
            Some(s) if s.names.len() == s.listen.len() => s.names.clone(),
            Some(s) => vec![name.clone(); s.listen.len()],
            None => Vec::new(),
        };
        let proxy_fds = match &spec.proxy {
            Some(p) => p
                .listen
                .iter()
                .filter_map(|a| match listen(a, DEFAULT_PROXY_BACKLOG, None, None, true) {
                    Ok(fd) => Some(fd),
                    Err(e) => {
                        log::error!("{name}: proxy: {e}");
                        None
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Some(Entry {
            name: name.clone(),
            socket: spec.socket.clone(),
            proxy: spec.proxy.clone(),
            on_demand: spec.start == StartMode::OnDemand,
            idle: spec.idle_timeout,
            fds,
            names,
            watch: Watch::Off,
            window: None,
            proxy_fds,
            proxy_watched: false,
            accept_pause: None,
            conns: 0,
            idle_since: Some(Instant::now()),
            activated: None,
        })
    }

    /// `[socket]` listeners: activation while down, idleness while running. True when the
    /// idle timeout has passed.
    fn observe_socket(&mut self, state: State, down: bool, reg: &mut dyn Registry, now: Instant) -> bool {
        if self.socket.is_none() || !self.on_demand || self.fds.is_err() {
            return false;
        }
        let held = held(self.activated, state, now);
        let idle = !self.idle.is_zero();
        let want = match state {
            _ if down => Watch::Off,
            State::Inactive | State::Exited | State::Failed if !held => Watch::Activate,
            State::Running if idle => Watch::Idle,
            _ => Watch::Off,
        };
        if want != Watch::Idle {
            self.window = None;
        }
        if want != self.watch {
            self.set_watch(want, reg);
            if want == Watch::Idle {
                self.window = Some((now + self.idle, false));
            }
            return false;
        }
        match self.window {
            Some((end, seen)) if now >= end => {
                if seen {
                    // A connection came in this window: re-arm and watch the next one.
                    self.set_watch(Watch::Idle, reg);
                    self.window = Some((now + self.idle, false));
                    false
                } else {
                    true
                }
            }
            _ => false,
        }
    }

    /// `[proxy]`: true when the service has had no connection for `idle-timeout`.
    fn observe_proxy_idle(&mut self, state: State, now: Instant) -> bool {
        if self.proxy.is_none() || !self.on_demand || self.idle.is_zero() || self.conns > 0 {
            return false;
        }
        if !matches!(state, State::Starting | State::Running) {
            self.idle_since = Some(now);
            return false;
        }
        self.idle_since.is_some_and(|t| now >= t + self.idle)
    }

    fn set_watch(&mut self, want: Watch, reg: &mut dyn Registry) {
        let Ok(fds) = &self.fds else { return };
        let interest = match want {
            Watch::Off => None,
            Watch::Activate => Some(Interest::READ),
            Watch::Idle => Some(Interest { read: true, write: false, oneshot: true }),
        };
        for (index, fd) in fds.iter().enumerate() {
            match (self.watch, interest) {
                (Watch::Off, Some(i)) => {
                    reg.add(fd.as_fd(), Tag::Listener { name: self.name.clone(), index }, i)
                }
                (_, Some(i)) => reg.modify(fd.as_fd(), i),
                (Watch::Off, None) => {}
                (_, None) => reg.remove(fd.as_fd()),
            }
        }
        self.watch = want;
    }

    fn set_proxy_watch(&mut self, want: bool, reg: &mut dyn Registry) {
        if want == self.proxy_watched {
            return;
        }
        for (index, fd) in self.proxy_fds.iter().enumerate() {
            if want {
                reg.add(fd.as_fd(), Tag::Proxy { name: self.name.clone(), index }, Interest::READ);
            } else {
                reg.remove(fd.as_fd());
            }
        }
        self.proxy_watched = want;
    }

    fn unwatch_all(&mut self, reg: &mut dyn Registry) {
        self.set_watch(Watch::Off, reg);
        self.set_proxy_watch(false, reg);
    }
}

/// A map kept in a Vec: lookups are linear over a few services or a few hundred connections,
/// and it is far less code than a BTreeMap per key and value type (the binary's size budget).
struct Table<K, V>(Vec<(K, V)>);

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table(Vec::new())
    }
}

impl<K: PartialEq, V> Table<K, V> {
    fn get<Q: PartialEq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.0.iter().find(|(x, _)| x.borrow() == k).map(|(_, v)| v)
    }
    fn get_mut<Q: PartialEq + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.0.iter_mut().find(|(x, _)| x.borrow() == k).map(|(_, v)| v)
    }
    fn contains_key<Q: PartialEq + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.get(k).is_some()
    }
    fn insert(&mut self, k: K, v: V) {
        match self.get_mut(&k) {
            Some(slot) => *slot = v,
            None => self.0.push((k, v)),
        }
    }
    fn remove<Q: PartialEq + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.0.iter().position(|(x, _)| x.borrow() == k)?;
        Some(self.0.swap_remove(i).1)
    }
    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }
    fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }
    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
    fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

/// Backlog of the proxy's own listeners.
const DEFAULT_PROXY_BACKLOG: u32 = 1024;

/// A listening socket (or a bound datagram socket) at `addr`, CLOEXEC. Unix sockets: a stale
/// socket file is replaced, the parent directory created, `mode` (default 0666) and `owner`
/// applied. `[::]` gets IPV6_V6ONLY, so it can sit beside `0.0.0.0` on the same port.
pub fn listen(
    addr: &ListenAddr,
    backlog: u32,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    nonblocking: bool,
) -> Result<OwnedFd, String> {
    let shown = show(addr);
    let at = |e: Errno| format!("cannot listen on {shown}: {}", crate::sys::strerror(e.raw_os_error()));
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    match addr {
        ListenAddr::Tcp(a) | ListenAddr::Udp(a) => {
            let family = if a.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
            let stream = matches!(addr, ListenAddr::Tcp(_));
            let kind = if stream { SocketType::STREAM } else { SocketType::DGRAM };
            let fd = rustix::net::socket_with(family, kind, flags, None).map_err(at)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(at)?;
            if a.is_ipv6() {
                rustix::net::sockopt::set_ipv6_v6only(&fd, true).map_err(at)?;
            }
            rustix::net::bind(&fd, a).map_err(at)?;
            if stream {
                rustix::net::listen(&fd, backlog).map_err(at)?;
            }
            Ok(fd)
        }
        ListenAddr::Unix(path) => {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_socket() {
                    return Err(format!("cannot listen on {shown}: it exists and is not a socket"));
                }
                std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale {shown}: {e}"))?;
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // One level (e.g. /run/web); EEXIST is fine.
                let _ = rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(0o755));
            }
            let ua = SocketAddrUnix::new(path.as_path()).map_err(at)?;
            let fd =
                rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None).map_err(at)?;
            let mode = mode.unwrap_or(0o666);
            // Created with the final mode: no window where others could connect.
            let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(!mode & 0o777));
            let bound = rustix::net::bind(&fd, &ua);
            rustix::process::umask(old);
            bound.map_err(at)?;
            rustix::fs::chmod(path.as_path(), rustix::fs::Mode::from_raw_mode(mode)).map_err(at)?;
            if let Some((uid, gid)) = owner {
                let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
                rustix::fs::chown(path.as_path(), Some(u), Some(g)).map_err(at)?;
            }
            rustix::net::listen(&fd, backlog).map_err(at)?;
            Ok(fd)
        }
    }
}

/// A non-blocking connect to `addr`: the socket, and whether it is connected already (false:
/// in progress, wait for writability).
pub fn connect(addr: &ListenAddr) -> Result<(OwnedFd, bool), Errno> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let (fd, result) = match addr {
        ListenAddr::Tcp(a) | ListenAddr::Udp(a) => {
            let family = if a.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
            let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
            let r = rustix::net::connect(&fd, a);
            (fd, r)
        }
        ListenAddr::Unix(path) => {
            let ua = SocketAddrUnix::new(path.as_path())?;
            let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
            let r = rustix::net::connect(&fd, &ua);
            (fd, r)
        }
    };
    match result {
        Ok(()) => Ok((fd, true)),
        Err(Errno::INPROGRESS | Errno::INTR) => Ok((fd, false)),
        // A unix listener with a full backlog.
        Err(Errno::AGAIN) => Err(Errno::CONNREFUSED),
        Err(e) => Err(e),
    }
}

/// `tcp:127.0.0.1:80`, `unix:/run/x.sock`: as written in the file.
pub fn show(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(a) => format!("tcp:{a}"),
        ListenAddr::Udp(a) => format!("udp:{a}"),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}
