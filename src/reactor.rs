//! reactor: the one loop. It blocks in exactly one place, `epoll_wait`, on the signalfd, the
//! exec-status pipes, the log pipes, health-probe sockets, notify sockets, readiness pipes and the
//! control socket and its clients, with the timeout set to the nearest deadline (no periodic
//! tick: an idle init with no health checks wakes zero times). It turns what the OS says into
//! `Event`s for the pure supervisor and carries out the `Action`s it returns. Reaping happens
//! here and only here: `waitpid(-1, WNOHANG)` until empty after every wake-up.
//!
//! Per-service state kept here (log rings, health monitors, notify sockets) is keyed by service
//! *name*, since `Svc` indices change when the configuration is reloaded.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use crate::control::{self, FdChange, Host, Server};
use crate::logbuf::{Capture, FileSink, Ring};
use crate::notify::{self, Notification, NotifySocket, PipeState, ReadyPipe};
use crate::pid1::PowerAction;
use crate::probe::{self, Interest, Monitor, Registry};
use crate::proto::{self, ErrCode, Failure, Request};
use crate::signals::{self, SignalFd};
use crate::sockets::{self, Sockets};
use crate::spawn::{self, ExecStatus, Group, Io, Stdio};
use crate::spec::{Config, Output, Ready, ServiceSpec};
use crate::supervisor::{Action, Event, ExitStatus, Mode, State, Supervisor, Svc};
use crate::{cgroup, config, health, sys};

/// How `run` was asked to behave.
pub struct Options {
    pub mode: Mode,
    pub stop_timeout: Duration,
    /// `--config DIR -- CMD`: the name of the service that is CMD; its exit shuts everything
    /// down with its code.
    pub main: Option<String>,
    /// tini `-e`: these exit codes of the main command become 0.
    pub remap_exit: Vec<i32>,
    /// init's environment, passed to services per their `[environment]`.
    pub env: Vec<(OsString, OsString)>,
    /// init's own RLIMIT_NOFILE before it was raised, restored in children.
    pub nofile: Option<(u64, u64)>,
    /// The control socket; None disables it.
    pub socket: Option<PathBuf>,
    /// Where `reload` reads the services from (and `add` copies files to: the first one).
    pub config_dirs: Vec<PathBuf>,
    /// Services that come from the command line (`-- CMD`), kept across reloads.
    pub extra: Vec<ServiceSpec>,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    /// System mode: what to do with the machine (set by the signal or command that asked).
    pub power: PowerAction,
}

/// What an fd in the epoll set is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watch {
    /// The exec-status pipe of the child `pid` of service `name`.
    Exec {
        name: String,
        pid: i32,
    },
    /// The read end of a service's `log` pipe.
    Log {
        name: String,
    },
    /// The read end of a pipe whose bytes go to a rotated file (`stream` 1 or 2).
    LogFile {
        name: String,
        stream: u8,
    },
    /// The socket of a health probe in flight (owned by the probe).
    Probe {
        name: String,
    },
    /// A service's sd_notify socket (owned by `notify`).
    Notify {
        name: String,
    },
    /// A service's `fd:N` readiness pipe (owned by `ready_pipes`).
    ReadyFd {
        name: String,
    },
    ControlListener,
    ControlClient(control::ClientId),
    /// A `[socket]`/`[proxy]` listener or a proxied connection (owned by `sockets`).
    Socket(sockets::Tag),
}

const SIGNALS_TOKEN: u64 = u64::MAX;
/// Size of the shared read buffer for service output (a pipe holds 64 KiB: a full one takes
/// four reads, which keeps init's resident memory small).
const READ_BUF: usize = 16 * 1024;

/// The epoll set and what each registered fd is.
struct Poller {
    epoll: OwnedFd,
    /// raw fd → (generation, what it is). The token is `generation << 32 | fd`, so an event for a
    /// closed and reused fd number is recognised and dropped.
    tokens: HashMap<i32, (u32, Watch)>,
    generation: u32,
}

impl Poller {
    fn add(&mut self, fd: BorrowedFd<'_>, watch: Watch, flags: epoll::EventFlags) {
        self.generation = self.generation.wrapping_add(1);
        let raw = fd.as_raw_fd();
        let token = (u64::from(self.generation) << 32) | u64::from(raw as u32);
        match epoll::add(&self.epoll, fd, epoll::EventData::new_u64(token), flags) {
            Ok(()) => {
                self.tokens.insert(raw, (self.generation, watch));
            }
            Err(e) => log::error!("epoll_ctl(ADD, {watch:?}): {e}"),
        }
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, flags: epoll::EventFlags) {
        let raw = fd.as_raw_fd();
        if let Some((generation, _)) = self.tokens.get(&raw) {
            let token = (u64::from(*generation) << 32) | u64::from(raw as u32);
            let _ = epoll::modify(&self.epoll, fd, epoll::EventData::new_u64(token), flags);
        }
    }

    /// EPOLL_CTL_DEL; call before the fd is closed.
    fn remove(&mut self, fd: BorrowedFd<'_>) {
        if self.tokens.remove(&fd.as_raw_fd()).is_some() {
            let _ = epoll::delete(&self.epoll, fd);
        }
    }

    fn lookup(&self, token: u64) -> Option<Watch> {
        let fd = (token & 0xffff_ffff) as i32;
        let generation = (token >> 32) as u32;
        self.tokens.get(&fd).filter(|(g, _)| *g == generation).map(|(_, w)| w.clone())
    }
}

fn interest_flags(i: Interest) -> epoll::EventFlags {
    match i {
        Interest::Read => epoll::EventFlags::IN,
        Interest::Write => epoll::EventFlags::OUT,
    }
}

/// The probes' view of the poller: their fds are tagged with the service's name.
struct ProbeRegistry<'a> {
    poller: &'a mut Poller,
    name: &'a str,
}

impl Registry for ProbeRegistry<'_> {
    fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest) {
        self.poller.add(fd, Watch::Probe { name: self.name.to_string() }, interest_flags(interest));
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) {
        self.poller.modify(fd, interest_flags(interest));
    }
    fn remove(&mut self, fd: BorrowedFd<'_>) {
        self.poller.remove(fd);
    }
}

/// The sockets' view of the poller.
struct SocketRegistry<'a> {
    poller: &'a mut Poller,
}

fn socket_flags(i: sockets::Interest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if i.read {
        f |= epoll::EventFlags::IN;
    }
    if i.write {
        f |= epoll::EventFlags::OUT;
    }
    if i.oneshot {
        f |= epoll::EventFlags::ONESHOT;
    }
    f
}

impl sockets::Registry for SocketRegistry<'_> {
    fn add(&mut self, fd: BorrowedFd<'_>, tag: sockets::Tag, interest: sockets::Interest) {
        self.poller.add(fd, Watch::Socket(tag), socket_flags(interest));
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: sockets::Interest) {
        self.poller.modify(fd, socket_flags(interest));
    }
    fn remove(&mut self, fd: BorrowedFd<'_>) {
        self.poller.remove(fd);
    }
}

/// Output of one service: line assembly and the ring for `init logs`.
#[derive(Default)]
struct Logs {
    capture: Capture,
    /// Allocated on the first byte (a silent service costs nothing).
    ring: Option<Ring>,
}

/// The loop's state: the supervisor plus every fd it watches.
pub struct Reactor {
    poller: Poller,
    signals: SignalFd,
    sup: Supervisor,
    opts: Options,
    /// Fds the reactor owns (exec-status and log pipes), by raw fd.
    owned: HashMap<i32, OwnedFd>,
    logs: HashMap<String, Logs>,
    /// Rotated file targets, by (service, stream); kept across restarts.
    sinks: HashMap<(String, u8), FileSink>,
    monitors: HashMap<String, Monitor>,
    notify: HashMap<String, NotifySocket>,
    /// `STATUS=` text from sd_notify, shown by `status`.
    notify_status: HashMap<String, String>,
    ready_pipes: HashMap<String, ReadyPipe>,
    server: Option<Server>,
    /// One read buffer shared by every log pipe; allocated on the first output (16 KiB).
    buf: Vec<u8>,
    /// What each service was when last logged, to log changes once.
    seen: HashMap<String, (State, Option<String>)>,
    power: PowerAction,
    outcome: Option<Outcome>,
    own_pid: i32,
    /// `[socket]` and `[proxy]` listeners, proxied connections.
    sockets: Sockets,
    cgroups: cgroup::Cgroups,
}

impl Reactor {
    pub fn new(config: Config, opts: Options) -> std::io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let signals = SignalFd::new()?;
        epoll::add(&epoll, signals.as_fd(), epoll::EventData::new_u64(SIGNALS_TOKEN), epoll::EventFlags::IN)?;
        let now = Instant::now();
        let monitors = monitors_for(&config, now);
        let sockets = Sockets::new(&config);
        let cgroups = cgroup::Cgroups::new(opts.mode == Mode::System);
        let mut sup = Supervisor::new(config, opts.mode, now);
        sup.set_stop_timeout(opts.stop_timeout);
        let mut poller = Poller { epoll, tokens: HashMap::new(), generation: 0 };
        let server = opts.socket.as_deref().and_then(|path| match Server::bind(path) {
            Ok(s) => {
                poller.add(s.listener_fd(), Watch::ControlListener, epoll::EventFlags::IN);
                log::debug!("control socket {}", path.display());
                Some(s)
            }
            Err(e) => {
                log::warn!("control socket disabled: {e}");
                None
            }
        });
        Ok(Reactor {
            poller,
            signals,
            sup,
            opts,
            owned: HashMap::new(),
            logs: HashMap::new(),
            sinks: HashMap::new(),
            monitors,
            notify: HashMap::new(),
            notify_status: HashMap::new(),
            ready_pipes: HashMap::new(),
            server,
            buf: Vec::new(),
            seen: HashMap::new(),
            power: PowerAction::PowerOff,
            outcome: None,
            own_pid: sys::getpid(),
            sockets,
            cgroups,
        })
    }

    /// Runs until the supervisor says `Exit`.
    pub fn run(mut self) -> Outcome {
        // Children inherited from before exec (a PID 1 that replaced another) are reaped here.
        self.reap();
        self.sup.boot(Instant::now());
        self.act();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            if let Some(outcome) = self.outcome {
                self.drain_logs();
                return outcome;
            }
            let timeout = self.next_deadline().map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                let left = left.min(Duration::from_secs(i32::MAX as u64 / 1000));
                rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                }
            });
            events.clear();
            match epoll::wait(
                &self.poller.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => log::error!("epoll_wait: {e}"),
            }
            let ready: Vec<(u64, epoll::EventFlags)> =
                events.iter().map(|e| (e.data.u64(), e.flags)).collect();
            for (token, flags) in ready {
                self.dispatch(token, flags);
            }
            self.reap();
            self.timers();
            self.act();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let monitors = self.monitors.values().filter_map(Monitor::next_deadline);
        let server = self.server.as_ref().and_then(Server::next_deadline);
        let sockets = self.sockets.next_deadline();
        self.sup.next_deadline().into_iter().chain(monitors).chain(server).chain(sockets).min()
    }

    /// Expired deadlines: the supervisor's, the probes' (those due within the slack share this
    /// wake-up), the control clients'.
    fn timers(&mut self) {
        let now = Instant::now();
        self.sup.tick(now);
        let due: Vec<String> = self
            .monitors
            .iter()
            .filter(|(_, m)| m.next_deadline().is_some_and(|d| d <= now + health::MAX_SLACK))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.probe_timer(&name, now);
        }
        if let Some(mut server) = self.server.take() {
            server.tick(&mut self.host(), now);
            self.server = Some(server);
            self.apply_fd_changes();
        }
    }

    fn dispatch(&mut self, token: u64, flags: epoll::EventFlags) {
        if token == SIGNALS_TOKEN {
            while let Some(info) = self.signals.read() {
                // A SIGPIPE raised by init's own write to a closed pipe is nobody's business.
                if info.signo == sig::PIPE && info.pid == self.own_pid {
                    continue;
                }
                self.on_signal(info.signo);
            }
            return;
        }
        let Some(watch) = self.poller.lookup(token) else { return };
        let now = Instant::now();
        match watch {
            Watch::Exec { name, pid } => self.read_exec(token_fd(token), &name, pid),
            Watch::Log { name } => self.read_log(token_fd(token), &name),
            Watch::LogFile { name, stream } => self.read_log_file(token_fd(token), &name, stream),
            Watch::Probe { name } => {
                let event = match self.monitors.get_mut(&name) {
                    Some(m) => m.on_event(now, &mut ProbeRegistry { poller: &mut self.poller, name: &name }),
                    None => None,
                };
                if let Some(ev) = event {
                    self.health_event(&name, ev);
                }
            }
            Watch::Notify { name } => self.read_notify(&name),
            Watch::ReadyFd { name } => self.read_ready_pipe(&name),
            Watch::ControlListener => {
                if let Some(s) = self.server.as_mut() {
                    s.accept(now);
                }
                self.apply_fd_changes();
            }
            Watch::Socket(tag) => {
                let ready = sockets::Ready {
                    read: flags.contains(epoll::EventFlags::IN),
                    write: flags.contains(epoll::EventFlags::OUT),
                    hup: flags.contains(epoll::EventFlags::HUP),
                    err: flags.contains(epoll::EventFlags::ERR),
                };
                let reg = &mut SocketRegistry { poller: &mut self.poller };
                self.sockets.on_event(tag, ready, &mut self.sup, reg, now);
            }
            Watch::ControlClient(id) => {
                if let Some(mut server) = self.server.take() {
                    server.on_io(id, &mut self.host(), now);
                    self.server = Some(server);
                }
                self.apply_fd_changes();
            }
        }
    }

    fn on_signal(&mut self, signo: i32) {
        let now = Instant::now();
        let rt = signals::SIGRTMIN;
        let system = self.opts.mode == Mode::System;
        let stop = |power: Option<PowerAction>, me: &mut Reactor| {
            if let Some(p) = power {
                me.power = p;
            }
            log::info!("{}: stopping every service", signals::signal_name(signo));
            me.sup.handle(Event::Shutdown { code: None }, now);
        };
        match signo {
            sig::CHLD => {} // reap() runs after every wake-up
            sig::HUP => self.reload(),
            // System PID 1 (design §5 table): INT (Ctrl-Alt-Del) reboots, USR1 and RTMIN+3
            // halt, TERM, USR2, PWR and RTMIN+4 power off.
            sig::INT if system => stop(Some(PowerAction::Reboot), self),
            sig::USR1 if system => stop(Some(PowerAction::Halt), self),
            s if system && s == rt + 3 => stop(Some(PowerAction::Halt), self),
            sig::TERM | sig::USR2 | sig::PWR if system => stop(Some(PowerAction::PowerOff), self),
            s if system && s == rt + 4 => stop(Some(PowerAction::PowerOff), self),
            _ if system => log::debug!("{} ignored", signals::signal_name(signo)),
            // Containers and standalone.
            sig::TERM | sig::INT | sig::QUIT | sig::PWR => stop(None, self),
            s if s == rt + 3 || s == rt + 4 => stop(None, self),
            sig::USR1 | sig::USR2 => self.dump_status(),
            other => self.forward(other),
        }
        self.act();
    }

    /// Sends `signo` to the group of every running service that lists it in `forward-signals`
    /// (after its `signal-rewrite`).
    fn forward(&mut self, signo: i32) {
        let mut targets = Vec::new();
        for (svc, spec) in self.sup.config().services.iter().enumerate() {
            if spec.forward_signals.contains(&signo)
                && let Some(pid) = self.sup.status(svc).pid
            {
                let to = spec.signal_rewrite.iter().find(|(f, _)| *f == signo).map_or(signo, |(_, t)| *t);
                targets.push((pid, to));
            }
        }
        for (pid, to) in targets {
            let _ = sys::kill(-pid, to);
        }
    }

    /// SIGUSR1/SIGUSR2 in a container: one line per service, `NAME: State pid N (reason)`.
    fn dump_status(&self) {
        for svc in 0..self.sup.len() {
            let st = self.sup.status(svc);
            let pid = st.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
            let reason = st.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            log::info!("{}: {:?}{pid}{reason}", self.sup.name(svc), st.state);
        }
    }

    /// Reaps every child that has exited. An unread exec-status pipe is drained first, so the
    /// reason is "unable to exec ..." rather than "exit 127".
    fn reap(&mut self) {
        loop {
            match sys::reap_any() {
                sys::Reaped::Child(pid, status) => self.on_exit(pid, status),
                sys::Reaped::Nothing => break,
                sys::Reaped::NoChildren => {
                    // As PID 1, processes that are not our children (`docker exec`, `nsenter`)
                    // get the orphans' grace too: "no child left" says nothing about them.
                    if self.sup.waiting_for_orphans() && !others_in_namespace(self.own_pid) {
                        self.sup.handle(Event::NoChildren, Instant::now());
                    }
                    break;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: ExitStatus) {
        let now = Instant::now();
        // A health probe's command?
        if let Some(name) = self.monitors.iter().find(|(_, m)| m.owns_pid(pid)).map(|(n, _)| n.clone()) {
            let event = match self.monitors.get_mut(&name) {
                Some(m) => {
                    m.on_exit(now, status, &mut ProbeRegistry { poller: &mut self.poller, name: &name })
                }
                None => None,
            };
            if let Some(ev) = event {
                self.health_event(&name, ev);
            }
            return;
        }
        let exec_fd = self.poller.tokens.iter().find_map(|(fd, (_, w))| match w {
            Watch::Exec { name, pid: p } if *p == pid => Some((*fd, name.clone())),
            _ => None,
        });
        if let Some((fd, name)) = exec_fd {
            self.read_exec(fd, &name, pid);
        }
        let Some(svc) = self.sup.service_of_pid(pid) else {
            log::trace!("reaped orphan {pid}");
            return;
        };
        let name = self.sup.name(svc).to_string();
        self.stop_probing(&name);
        // What the main process left behind in its cgroup goes with it.
        self.cgroups.kill(&name);
        self.sup.handle(Event::Exited { pid, status }, now);
        if self.opts.main.as_deref() == Some(name.as_str()) {
            let code = status.code();
            let code = if self.opts.remap_exit.contains(&code) { 0 } else { code };
            self.sup.handle(Event::Shutdown { code: Some(code) }, now);
        }
    }

    fn read_exec(&mut self, fd: i32, name: &str, _pid: i32) {
        let Some(owned) = self.owned.get(&fd) else { return };
        let status = spawn::read_exec_status(owned);
        let now = Instant::now();
        match status {
            ExecStatus::Pending => return,
            ExecStatus::Ok => {
                if let Some(svc) = self.sup.find(name) {
                    self.sup.handle(Event::ExecOk { svc }, now);
                }
            }
            ExecStatus::Failed { message, .. } => {
                log::error!("{name}: {message}");
                if let Some(svc) = self.sup.find(name) {
                    self.sup.handle(Event::SpawnFailed { svc, error: message }, now);
                }
            }
        }
        self.close_owned(fd);
    }

    fn read_log(&mut self, fd: i32, name: &str) {
        let cap = self
            .sup
            .find(name)
            .and_then(|s| self.sup.config().services.get(s))
            .map_or(16 * 1024, |s| s.log.buffer);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut eof = false;
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_BUF];
        }
        loop {
            let Some(owned) = self.owned.get(&fd) else { return };
            match rustix::io::read(owned, &mut self.buf[..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let data = self.buf.get(..n).unwrap_or(&[]);
                    let logs = self.logs.entry(name.to_string()).or_default();
                    logs.capture.feed(data, &mut |l| lines.push(l.to_vec()));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    log::warn!("{name}: reading its output: {e}");
                    eof = true;
                    break;
                }
            }
            // Bound the work per wake-up: a flooding service must not starve the others.
            if lines.len() > 4096 {
                break;
            }
        }
        if eof {
            if let Some(logs) = self.logs.get_mut(name) {
                logs.capture.finish(&mut |l| lines.push(l.to_vec()));
            }
            self.close_owned(fd);
        }
        if lines.is_empty() {
            return;
        }
        let now = Instant::now();
        let logs = self.logs.entry(name.to_string()).or_default();
        let ring = logs.ring.get_or_insert_with(|| Ring::new(cap));
        let mut out = Vec::new();
        for l in &lines {
            out.extend_from_slice(&crate::logbuf::prefixed(name, l));
            ring.push(l);
        }
        sys::write_all(1, &out);
        if let Some(server) = self.server.as_mut()
            && server.wants_logs()
        {
            for l in &lines {
                server.push_log(name, l, now);
            }
            self.apply_fd_changes();
        }
    }

    /// Bytes for a rotated file target: copied as they come (no line assembly).
    fn read_log_file(&mut self, fd: i32, name: &str, stream: u8) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_BUF];
        }
        loop {
            let Some(owned) = self.owned.get(&fd) else { return };
            match rustix::io::read(owned, &mut self.buf[..]) {
                Ok(0) => break,
                Ok(n) => {
                    let data = self.buf.get(..n).unwrap_or(&[]);
                    if let Some(sink) = self.sinks.get_mut(&(name.to_string(), stream)) {
                        sink.write(name, data);
                    }
                    continue;
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(e) => {
                    log::warn!("{name}: reading its output: {e}");
                    break;
                }
            }
        }
        self.close_owned(fd);
    }

    /// At exit: what is still in the pipes goes out before init does.
    fn drain_logs(&mut self) {
        let fds: Vec<(i32, String)> = self
            .poller
            .tokens
            .iter()
            .filter_map(
                |(fd, (_, w))| if let Watch::Log { name } = w { Some((*fd, name.clone())) } else { None },
            )
            .collect();
        for (fd, name) in fds {
            self.read_log(fd, &name);
        }
    }

    fn read_notify(&mut self, name: &str) {
        let Some(sock) = self.notify.get(name) else { return };
        let now = Instant::now();
        for n in sock.receive() {
            match n {
                Notification::Ready => {
                    if let Some(svc) = self.sup.find(name) {
                        log::debug!("{name}: READY=1");
                        self.sup.handle(Event::Ready { svc }, now);
                    }
                }
                Notification::Status(text) => {
                    log::debug!("{name}: STATUS={text}");
                    self.notify_status.insert(name.to_string(), text);
                }
                Notification::Stopping => log::info!("{name}: stopping (STOPPING=1)"),
                Notification::Reloading => log::info!("{name}: reloading (RELOADING=1)"),
                Notification::MainPid(pid) => log::warn!("{name}: {}", notify::mainpid_rejected(pid)),
                Notification::Rejected(why) => log::warn!("{name}: notify: {why}"),
            }
        }
    }

    fn read_ready_pipe(&mut self, name: &str) {
        let Some(pipe) = self.ready_pipes.get_mut(name) else { return };
        match pipe.on_readable() {
            PipeState::Pending => {}
            PipeState::Ready => {
                self.drop_ready_pipe(name);
                if let Some(svc) = self.sup.find(name) {
                    self.sup.handle(Event::Ready { svc }, Instant::now());
                }
            }
            PipeState::Closed => {
                log::warn!("{name}: closed its readiness fd without writing a newline");
                self.drop_ready_pipe(name);
            }
        }
    }

    fn drop_ready_pipe(&mut self, name: &str) {
        if let Some(pipe) = self.ready_pipes.remove(name) {
            self.poller.remove(pipe.as_fd());
        }
    }

    fn probe_timer(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.sup.find(name) else { return };
        let Some(spec) = self.sup.config().services.get(svc).cloned() else { return };
        let env = &self.opts.env;
        let nofile = self.opts.nofile;
        let mut spawner = |argv: &[String], stdio: Stdio| -> Result<i32, String> {
            let mut s = spec.clone();
            s.command = argv.to_vec();
            let plan = spawn::Plan::for_service(&s, env, nofile)?;
            spawn::spawn(&plan, stdio, Group::Session).map(|c| c.pid)
        };
        let event = match self.monitors.get_mut(name) {
            Some(m) => m.on_timer(now, &mut ProbeRegistry { poller: &mut self.poller, name }, &mut spawner),
            None => None,
        };
        if let Some(ev) = event {
            self.health_event(name, ev);
        }
    }

    fn health_event(&mut self, name: &str, ev: health::HealthEvent) {
        let Some(svc) = self.sup.find(name) else { return };
        let ready = self.sup.config().services.get(svc).map_or(Ready::Started, ServiceSpec::effective_ready);
        match &ev {
            health::HealthEvent::Ready => log::debug!("{name}: healthy"),
            health::HealthEvent::Unhealthy { reason } => log::warn!("{name}: unhealthy: {reason}"),
            health::HealthEvent::Recovered => log::info!("{name}: healthy again"),
        }
        if let Some(event) = health::supervisor_event(svc, ready, ev) {
            self.sup.handle(event, Instant::now());
        }
    }

    fn stop_probing(&mut self, name: &str) {
        if let Some(m) = self.monitors.get_mut(name) {
            let _ = m.on_stop(&mut ProbeRegistry { poller: &mut self.poller, name });
        }
    }

    fn close_owned(&mut self, fd: i32) {
        if let Some(owned) = self.owned.remove(&fd) {
            self.poller.remove(owned.as_fd());
        }
    }

    fn own(&mut self, fd: OwnedFd, watch: Watch) {
        self.poller.add(fd.as_fd(), watch, epoll::EventFlags::IN);
        self.owned.insert(fd.as_raw_fd(), fd);
    }

    /// Carries out every pending action; spawning produces events, so loop until none are left.
    fn act(&mut self) {
        let reg = &mut SocketRegistry { poller: &mut self.poller };
        self.sockets.observe(&mut self.sup, reg, Instant::now());
        loop {
            let actions = self.sup.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Spawn(svc) => self.spawn(svc),
                    Action::SignalGroup { svc, pid, signal } => {
                        if let Some(name) = self.sup.config().services.get(svc).map(|s| s.name.clone()) {
                            self.stop_probing(&name);
                        }
                        // Until the child has run setsid() its group does not exist: signal the pid.
                        if sys::kill(-pid, signal).is_err() {
                            let _ = sys::kill(pid, signal);
                        }
                        let _ = sys::kill(-pid, sig::CONT);
                        if signal == sig::KILL
                            && let Some(name) = self.sup.config().services.get(svc).map(|s| s.name.clone())
                        {
                            self.cgroups.kill(&name);
                        }
                    }
                    Action::SignalOrphans { signal } => {
                        // kill(-1) outside a PID namespace as root would hit the whole host.
                        if sys::getpid() == 1 {
                            let _ = sys::kill(-1, signal);
                        }
                        // Reap now: with no orphan left, NoChildren ends the grace at once.
                        self.reap();
                    }
                    Action::Exit(code) => {
                        if self.outcome.is_none() {
                            self.outcome = Some(Outcome { code, power: self.power });
                        }
                    }
                }
            }
        }
        self.log_changes();
        if let Some(mut server) = self.server.take() {
            server.observe(&mut self.host(), Instant::now());
            self.server = Some(server);
            self.apply_fd_changes();
        }
    }

    /// One log line per state change that an operator cares about.
    fn log_changes(&mut self) {
        for svc in 0..self.sup.len() {
            let st = self.sup.status(svc);
            let name = self.sup.name(svc);
            let now = (st.state, st.reason.clone());
            let before = self.seen.get(name);
            if before == Some(&now) {
                continue;
            }
            let was = before.map(|(s, _)| *s);
            let reason = st.reason.as_deref().unwrap_or("");
            match st.state {
                State::Running => match st.pid {
                    Some(pid) => log::info!("{name}: running (pid {pid})"),
                    None => log::info!("{name}: running"),
                },
                State::Exited => log::info!("{name}: exited{}", opt(reason)),
                State::Failed => log::warn!("{name}: failed{}", opt(reason)),
                State::Blocked => log::info!("{name}: blocked{}", opt(reason)),
                State::Inactive if was.is_some_and(|w| w != State::Inactive) => {
                    log::info!("{name}: stopped{}", opt(reason))
                }
                State::Stopping => log::debug!("{name}: stopping"),
                State::Starting => log::debug!("{name}: starting"),
                State::Inactive => {}
            }
            self.seen.insert(name.to_string(), now);
        }
    }

    fn spawn(&mut self, svc: Svc) {
        let now = Instant::now();
        let Some(spec) = self.sup.config().services.get(svc).cloned() else { return };
        let name = spec.name.clone();
        let fail = |me: &mut Reactor, error: String| {
            log::error!("{name}: {error}");
            me.sup.handle(Event::SpawnFailed { svc, error }, now);
        };
        let mut plan = match spawn::Plan::for_service(&spec, &self.opts.env, self.opts.nofile) {
            Ok(p) => p,
            Err(error) => return fail(self, error),
        };
        if let Some(h) = &spec.health
            && let Err(e) = probe::prepare(h)
        {
            log::warn!("{name}: {e}");
        }
        let mut extra: Vec<OwnedFd> = Vec::new();
        if let Err(e) = self.sockets.prepare(&spec, &mut plan, &mut extra) {
            return fail(self, e);
        }
        match self.cgroups.prepare(&spec) {
            Ok(Some(procs)) => plan.set_cgroup(procs),
            Ok(None) => {}
            Err(e) => return fail(self, e),
        }
        match spec.ready {
            Ready::Notify => {
                if !self.notify.contains_key(&name) {
                    let uid = spec.user.map_or_else(sys::getuid, |c| c.uid);
                    match NotifySocket::bind(&name, uid) {
                        Ok(sock) => {
                            self.poller.add(
                                sock.as_fd(),
                                Watch::Notify { name: name.clone() },
                                epoll::EventFlags::IN,
                            );
                            self.notify.insert(name.clone(), sock);
                        }
                        Err(e) => return fail(self, e),
                    }
                }
                if let Some(sock) = self.notify.get(&name) {
                    sock.discard_pending();
                    if let Err(e) = plan.set_env("NOTIFY_SOCKET", std::ffi::OsStr::new(sock.env_value())) {
                        return fail(self, e);
                    }
                }
            }
            Ready::Fd(n) => {
                self.drop_ready_pipe(&name);
                match ReadyPipe::new() {
                    Ok((pipe, w)) => {
                        if let Err(e) = notify::place_fd(&mut extra, n, w) {
                            return fail(self, e);
                        }
                        self.poller.add(
                            pipe.as_fd(),
                            Watch::ReadyFd { name: name.clone() },
                            epoll::EventFlags::IN,
                        );
                        self.ready_pipes.insert(name.clone(), pipe);
                    }
                    Err(e) => return fail(self, e),
                }
            }
            Ready::Auto | Ready::Started | Ready::Healthy => {}
        }
        let mut log_read: Option<OwnedFd> = None;
        let mut file_reads: Vec<(OwnedFd, u8)> = Vec::new();
        let mut rotated = |stream: u8, out: &Output| -> Option<Io> {
            let Output::File(path) = out else { return None };
            if spec.log.rotate_size == 0 {
                return None;
            }
            let mut path = path.clone();
            if spec.log.append_timestamp {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                path = PathBuf::from(format!("{}.{secs}", path.display()));
            }
            let key = (name.clone(), stream);
            if self.sinks.get(&key).is_none_or(|s| s.path() != path) {
                self.sinks.insert(key, FileSink::new(path, spec.log.rotate_size, spec.log.rotate_keep));
            }
            let mut read = None;
            let io = log_pipe(&name, &mut read);
            file_reads.extend(read.map(|r| (r, stream)));
            Some(io)
        };
        let rotated_out = rotated(1, &spec.stdout);
        let rotated_err = rotated(2, &spec.stderr);
        let stdout = match rotated_out.or_else(|| output_io(&name, &spec.stdout, 1)) {
            Some(io) => io,
            None => log_pipe(&name, &mut log_read),
        };
        let stderr = match (&spec.stderr, &stdout) {
            // Both into one pipe: their lines keep their order.
            (Output::Log, Io::Fd(w)) if spec.stdout == Output::Log => {
                w.try_clone().map(Io::Fd).unwrap_or(Io::Inherit)
            }
            _ => match rotated_err.or_else(|| output_io(&name, &spec.stderr, 2)) {
                Some(io) => io,
                None => log_pipe(&name, &mut log_read),
            },
        };
        let stdio = Stdio { stdin: Io::Null, stdout, stderr, extra };
        match spawn::spawn(&plan, stdio, Group::Session) {
            Ok(child) => {
                log::debug!("{name}: started, pid {}", child.pid);
                self.sup.handle(Event::Spawned { svc, pid: child.pid }, now);
                self.own(child.status, Watch::Exec { name: name.clone(), pid: child.pid });
                if let Some(r) = log_read {
                    self.own(r, Watch::Log { name: name.clone() });
                }
                for (r, stream) in file_reads {
                    self.own(r, Watch::LogFile { name: name.clone(), stream });
                }
                if let Some(m) = self.monitors.get_mut(&name) {
                    m.on_start(now, &mut ProbeRegistry { poller: &mut self.poller, name: &name });
                }
            }
            Err(error) => {
                self.drop_ready_pipe(&name);
                fail(self, error)
            }
        }
    }

    fn apply_fd_changes(&mut self) {
        let Some(server) = self.server.as_mut() else { return };
        for change in server.take_fd_changes() {
            match change {
                FdChange::Add { client, interest } => {
                    if let Some(fd) = server.client_fd(client) {
                        self.poller.add(fd, Watch::ControlClient(client), client_flags(interest));
                    }
                }
                FdChange::Modify { client, interest } => {
                    if let Some(fd) = server.client_fd(client) {
                        self.poller.modify(fd, client_flags(interest));
                    }
                }
                FdChange::Remove { fd, .. } => self.poller.remove(fd.as_fd()),
                FdChange::Listener { watch } => {
                    let flags = if watch { epoll::EventFlags::IN } else { epoll::EventFlags::empty() };
                    self.poller.modify(server.listener_fd(), flags);
                }
            }
        }
    }

    fn host(&mut self) -> ReactorHost<'_> {
        ReactorHost { r: self }
    }

    /// SIGHUP or `init reload`: re-read the config dirs; an invalid set is rejected whole.
    fn reload(&mut self) {
        match self.reload_config() {
            Ok(lines) => {
                for l in lines {
                    log::info!("reload: {l}");
                }
            }
            Err(f) => {
                log::error!("reload: {}", f.message);
                for d in f.details {
                    log::error!("{d}");
                }
            }
        }
    }

    fn reload_config(&mut self) -> Result<Vec<String>, Failure> {
        if self.sup.is_shutting_down() {
            return Err(Failure::new(ErrCode::Unavailable, "shutting down: reload refused"));
        }
        let dirs = self.opts.config_dirs.clone();
        let opts = config::LoadOptions { check: false, root: None, env: std::env::vars().collect() };
        let loaded = config::load(&dirs, &opts);
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == config::Severity::Error)
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            let mut f = Failure::new(
                ErrCode::Invalid,
                format!("{} error(s): the running set is unchanged", errors.len()),
            );
            f.details = errors;
            return Err(f);
        }
        let mut config = loaded.config;
        for extra in &self.opts.extra {
            if config.index_of(&extra.name).is_none() {
                config.services.push(extra.clone());
            }
        }
        config.services.sort_by(|a, b| a.name.cmp(&b.name));
        let now = Instant::now();
        let mut new_monitors = monitors_for(&config, now);
        let summary = self.sup.reload(config, now);
        // Unchanged [socket]/[proxy] tables keep their sockets, and the connections waiting in them.
        self.sockets.update(self.sup.config(), &mut SocketRegistry { poller: &mut self.poller });
        // Per-service state follows the names: removed ones lose theirs, changed ones get the
        // new health check (it starts probing at the next spawn).
        for name in summary.removed.iter().chain(&summary.changed) {
            self.stop_probing(name);
            self.monitors.remove(name);
            if let Some(sock) = self.notify.remove(name) {
                self.poller.remove(sock.as_fd());
            }
            self.drop_ready_pipe(name);
        }
        for name in &summary.removed {
            self.notify_status.remove(name);
            self.sinks.retain(|(n, _), _| n != name);
        }
        for name in summary.added.iter().chain(&summary.changed) {
            if let Some(m) = new_monitors.remove(name) {
                self.monitors.insert(name.clone(), m);
            }
        }
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        Ok(vec![format!(
            "added {}; changed {}; removed {}; {} unchanged",
            list(&summary.added),
            list(&summary.changed),
            list(&summary.removed),
            summary.unchanged
        )])
    }

    /// `init add FILE`: the file is validated, copied into the first config directory, and the
    /// configuration reloaded. An existing name is an error (409), never a replacement.
    fn add_file(&mut self, path: &str) -> Result<Vec<String>, Failure> {
        let src = std::path::Path::new(path);
        let text = std::fs::read_to_string(src)
            .map_err(|e| Failure::new(ErrCode::BadRequest, format!("cannot read {path}: {e}")))?;
        let opts = config::LoadOptions { check: false, root: None, env: std::env::vars().collect() };
        let (spec, diags) = config::parse_service(src, &text, &opts);
        let errors: Vec<String> =
            diags.iter().filter(|d| d.severity == config::Severity::Error).map(ToString::to_string).collect();
        let Some(spec) = spec.filter(|_| errors.is_empty()) else {
            let mut f = Failure::new(ErrCode::Invalid, format!("{path} is not a valid service file"));
            f.details = errors;
            return Err(f);
        };
        if self.sup.find(&spec.name).is_some() {
            return Err(Failure::new(
                ErrCode::Conflict,
                format!("a service named {:?} exists already", spec.name),
            ));
        }
        let dir =
            self.opts.config_dirs.first().filter(|d| d.is_dir()).ok_or_else(|| {
                Failure::new(ErrCode::Unsupported, "no config directory to add the file to")
            })?;
        let file = src
            .file_name()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| format!("{}.toml", spec.name).into());
        let dest = dir.join(file);
        if dest.exists() {
            return Err(Failure::new(ErrCode::Conflict, format!("{} exists already", dest.display())));
        }
        std::fs::write(&dest, &text)
            .map_err(|e| Failure::new(ErrCode::Internal, format!("cannot write {}: {e}", dest.display())))?;
        match self.reload_config() {
            Ok(mut lines) => {
                lines.insert(0, format!("added {} as {}", spec.name, dest.display()));
                Ok(lines)
            }
            Err(f) => {
                // The new file broke the set (e.g. a cycle with the others): take it back.
                let _ = std::fs::remove_file(&dest);
                Err(f)
            }
        }
    }

    /// `init remove NAME`: stops the service and deletes its file.
    fn remove_service(&mut self, name: &str) -> Result<Vec<String>, Failure> {
        let svc = self
            .sup
            .find(name)
            .ok_or_else(|| Failure::new(ErrCode::NotFound, format!("no service named {name:?}")))?;
        let file = self.sup.config().services.get(svc).map(|s| s.file.clone()).unwrap_or_default();
        if file.as_os_str().is_empty() {
            return Err(Failure::new(
                ErrCode::Conflict,
                format!("{name} has no file (the command line's service)"),
            ));
        }
        let text = std::fs::read(&file).ok();
        std::fs::remove_file(&file)
            .map_err(|e| Failure::new(ErrCode::Internal, format!("cannot delete {}: {e}", file.display())))?;
        match self.reload_config() {
            Ok(mut lines) => {
                lines.insert(0, format!("removed {name} ({} deleted)", file.display()));
                Ok(lines)
            }
            Err(f) => {
                // The set without it is invalid (something requires it): put the file back.
                if let Some(t) = text {
                    let _ = std::fs::write(&file, t);
                }
                Err(f)
            }
        }
    }
}

/// As PID 1: does /proc list a process besides init? (Without /proc: assume none.)
fn others_in_namespace(own_pid: i32) -> bool {
    if own_pid != 1 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .any(|pid| pid != own_pid)
}

fn client_flags(i: control::Interest) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if i.read {
        f |= epoll::EventFlags::IN;
    }
    if i.write {
        f |= epoll::EventFlags::OUT;
    }
    f
}

fn token_fd(token: u64) -> i32 {
    (token & 0xffff_ffff) as i32
}

fn opt(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

fn monitors_for(config: &Config, now: Instant) -> HashMap<String, Monitor> {
    config
        .services
        .iter()
        .filter_map(|s| s.health.as_ref().and_then(|h| Monitor::new(h, now)).map(|m| (s.name.clone(), m)))
        .collect()
}

/// A `log` pipe for the child: the read end (non-blocking, CLOEXEC) stays with init.
fn log_pipe(name: &str, read: &mut Option<OwnedFd>) -> Io {
    match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok((r, w)) => {
            let _ = sys::set_nonblocking(&r);
            *read = Some(r);
            Io::Fd(w)
        }
        Err(e) => {
            log::warn!("{name}: pipe: {e}; its output goes to init's stdout");
            Io::Inherit
        }
    }
}

/// The child's fd for a non-`log` output; None means "use a log pipe".
fn output_io(name: &str, out: &Output, own: i32) -> Option<Io> {
    match out {
        Output::Log => None,
        Output::Stdout if own == 1 => Some(Io::Inherit),
        Output::Stderr if own == 2 => Some(Io::Inherit),
        Output::Stdout => Some(sys::dup_cloexec(1).map(Io::Fd).unwrap_or(Io::Inherit)),
        Output::Stderr => Some(sys::dup_cloexec(2).map(Io::Fd).unwrap_or(Io::Inherit)),
        Output::Null => Some(Io::Null),
        Output::File(path) => match sys::open_log_file(path) {
            Ok(fd) => Some(Io::Fd(fd)),
            Err(e) => {
                log::error!("{name}: cannot open {}: {e}; its output is dropped", path.display());
                Some(Io::Null)
            }
        },
    }
}

/// The control socket's view of the reactor.
struct ReactorHost<'a> {
    r: &'a mut Reactor,
}

impl ReactorHost<'_> {
    fn svc(&self, name: &str) -> Result<Svc, Failure> {
        self.r
            .sup
            .find(name)
            .ok_or_else(|| Failure::new(ErrCode::NotFound, format!("no service named {name:?}")))
    }
}

impl Host for ReactorHost<'_> {
    fn services(&self) -> Vec<proto::ServiceView> {
        let sup = &self.r.sup;
        let mut out: Vec<proto::ServiceView> = sup
            .config()
            .services
            .iter()
            .enumerate()
            .map(|(svc, spec)| {
                let mut v = control::service_view(spec, &sup.status(svc));
                if let Some(m) = self.r.monitors.get(&spec.name) {
                    let h = m.status();
                    v.health = if h.unhealthy {
                        proto::Health::Unhealthy
                    } else if h.ready {
                        proto::Health::Healthy
                    } else {
                        proto::Health::Unknown
                    };
                }
                if v.reason.is_none() {
                    v.reason = self.r.notify_status.get(&spec.name).cloned();
                }
                if v.reason.is_none() && v.pid.is_some() {
                    v.reason = self.r.cgroups.usage(&spec.name).map(|u| u.describe());
                }
                v
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn command(&mut self, req: &Request) -> Result<Vec<String>, Failure> {
        let now = Instant::now();
        let system = self.r.opts.mode == Mode::System;
        match req {
            Request::Start { name } => {
                let svc = self.svc(name)?;
                self.r.sup.handle(Event::Start { svc }, now);
                Ok(vec![format!("starting {name}")])
            }
            Request::Stop { name } => {
                let svc = self.svc(name)?;
                self.r.sup.handle(Event::Stop { svc }, now);
                Ok(vec![format!("stopping {name}")])
            }
            Request::Restart { name } => {
                let svc = self.svc(name)?;
                self.r.sup.handle(Event::Restart { svc }, now);
                Ok(vec![format!("restarting {name}")])
            }
            Request::Kill { name, signal } => {
                let svc = self.svc(name)?;
                let sig = signals::parse_signal(signal)
                    .ok_or_else(|| Failure::new(ErrCode::BadRequest, format!("not a signal: {signal:?}")))?;
                let pid = self
                    .r
                    .sup
                    .status(svc)
                    .pid
                    .ok_or_else(|| Failure::new(ErrCode::Conflict, format!("{name} has no process")))?;
                if sys::kill(-pid, sig).is_err() {
                    sys::kill(pid, sig).map_err(|e| Failure::new(ErrCode::Internal, format!("kill: {e}")))?;
                }
                Ok(vec![format!("sent {} to {name}", signals::signal_name(sig))])
            }
            Request::StartAll | Request::StopAll => {
                let start = matches!(req, Request::StartAll);
                for svc in 0..self.r.sup.len() {
                    let event = if start { Event::Start { svc } } else { Event::Stop { svc } };
                    self.r.sup.handle(event, now);
                }
                Ok(vec![format!(
                    "{} {} services",
                    if start { "starting" } else { "stopping" },
                    self.r.sup.len()
                )])
            }
            Request::Shutdown => {
                self.r.sup.handle(Event::Shutdown { code: None }, now);
                Ok(vec!["shutting down".into()])
            }
            Request::Poweroff | Request::Reboot => {
                let reboot = matches!(req, Request::Reboot);
                if system {
                    self.r.power = if reboot { PowerAction::Reboot } else { PowerAction::PowerOff };
                    self.r.sup.handle(Event::Shutdown { code: None }, now);
                } else {
                    // A container cannot power anything off: a shutdown with code 0 (design §5).
                    self.r.sup.handle(Event::Shutdown { code: Some(0) }, now);
                }
                Ok(vec![if reboot { "rebooting".into() } else { "powering off".into() }])
            }
            Request::Reload => self.r.reload_config(),
            Request::Add { path } => self.r.add_file(path),
            Request::Remove { name } => self.r.remove_service(name),
            other => Err(Failure::new(ErrCode::BadRequest, format!("unexpected request {}", other.verb()))),
        }
    }

    fn logs(&self, name: Option<&str>, lines: Option<usize>, line: &mut dyn FnMut(&str, &[u8])) {
        let mut names: Vec<&String> =
            self.r.logs.keys().filter(|n| name.is_none_or(|x| x == n.as_str())).collect();
        names.sort();
        for n in names {
            let Some(ring) = self.r.logs.get(n).and_then(|l| l.ring.as_ref()) else { continue };
            let all = ring.lines();
            let skip = lines.map_or(0, |k| all.len().saturating_sub(k));
            for l in all.iter().skip(skip) {
                line(n, l);
            }
        }
    }

    fn shutting_down(&self) -> bool {
        self.r.sup.is_shutting_down()
    }
}

/// tini mode (`init -- CMD`): one child with init's own stdio, every signal forwarded to it (or
/// its process group with `-g`), zombies reaped, and init exits with the child's code (128+N when
/// killed by signal N; 127/126 when exec fails). SIGTSTP/SIGTTIN/SIGTTOU are forwarded like the
/// rest: init blocks them, so it is never stopped itself.
pub fn run_tini(argv: Vec<OsString>, group: bool, remap_exit: &[i32], inherited: signals::Inherited) -> i32 {
    let signals = match SignalFd::new() {
        Ok(s) => s,
        Err(e) => {
            log::error!("signalfd: {e}");
            return 1;
        }
    };
    let name = argv.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut plan = match spawn::Plan::for_argv(argv, &env) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}");
            return 127;
        }
    };
    plan.restore_signals(inherited);
    let child = match spawn::spawn(&plan, Stdio::inherit(), Group::Foreground) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{name}: {e}");
            return 1;
        }
    };
    let pid = child.pid;
    let own_pid = sys::getpid();
    loop {
        let mut fds = [rustix::event::PollFd::new(&signals, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => log::error!("poll: {e}"),
        }
        while let Some(info) = signals.read() {
            if info.signo == sig::CHLD || (info.signo == sig::PIPE && info.pid == own_pid) {
                continue;
            }
            let target = if group { -pid } else { pid };
            let _ = sys::kill(target, info.signo);
        }
        loop {
            match sys::reap_any() {
                sys::Reaped::Child(p, status) if p == pid => {
                    if let ExecStatus::Failed { message, errno } = spawn::read_exec_status(&child.status) {
                        log::error!("{name}: {message}");
                        return sys::exit_code_for_exec_errno(errno);
                    }
                    let code = status.code();
                    return if remap_exit.contains(&code) { 0 } else { code };
                }
                sys::Reaped::Child(..) => continue, // an orphan: reaped and forgotten
                sys::Reaped::Nothing | sys::Reaped::NoChildren => break,
            }
        }
    }
}

/// Signal numbers used by the loop (Linux, x86_64).
mod sig {
    pub const HUP: i32 = 1;
    pub const INT: i32 = 2;
    pub const QUIT: i32 = 3;
    pub const USR1: i32 = 10;
    pub const USR2: i32 = 12;
    pub const PIPE: i32 = 13;
    pub const TERM: i32 = 15;
    pub const CHLD: i32 = 17;
    pub const CONT: i32 = 18;
    pub const KILL: i32 = 9;
    pub const PWR: i32 = 30;
}
