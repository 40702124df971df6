//! reactor: the one loop. It blocks in exactly one place, `epoll_wait`, on the signalfd, the
//! exec-status pipes and the log pipes, with the timeout set to the supervisor's nearest deadline
//! (no periodic tick: an idle init wakes zero times). It turns what the OS says into `Event`s for
//! the pure supervisor and carries out the `Action`s it returns. Reaping happens here and only
//! here: `waitpid(-1, WNOHANG)` until empty after every wake-up.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll;

use crate::logbuf::{Capture, Ring};
use crate::signals::{self, SignalFd};
use crate::spawn::{self, ExecStatus, Group, Io, Stdio};
use crate::spec::{Config, Output};
use crate::supervisor::{Action, Event, ExitStatus, Mode, Supervisor, Svc};
use crate::sys;

/// How `run` was asked to behave.
pub struct Options {
    pub mode: Mode,
    pub stop_timeout: Duration,
    /// `--config DIR -- CMD`: this service is CMD; its exit shuts everything down with its code.
    pub main: Option<Svc>,
    /// tini `-e`: these exit codes of the main command become 0.
    pub remap_exit: Vec<i32>,
    /// init's environment, passed to services per their `[environment]`.
    pub env: Vec<(OsString, OsString)>,
    /// init's own RLIMIT_NOFILE before it was raised, restored in children.
    pub nofile: Option<(u64, u64)>,
}

/// What an fd in the epoll set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The exec-status pipe of the child `pid` of service `svc`.
    Exec { svc: Svc, pid: i32 },
    /// The read end of a service's `log` pipe.
    Log { svc: Svc },
}

struct Entry {
    fd: OwnedFd,
    watch: Watch,
    generation: u32,
}

/// The loop's state: the supervisor plus every fd it watches.
pub struct Reactor {
    epoll: OwnedFd,
    signals: SignalFd,
    sup: Supervisor,
    opts: Options,
    /// Keyed by raw fd; the epoll token is `generation << 32 | fd` so a stale event for a closed
    /// and reused fd number is recognised and dropped.
    entries: HashMap<i32, Entry>,
    generation: u32,
    captures: HashMap<Svc, (Capture, Option<Ring>)>,
    /// One read buffer shared by every log pipe.
    buf: Vec<u8>,
    /// Set when a SIGCHLD (or anything) may have left children to reap.
    exit_code: Option<i32>,
}

const SIGNALS_FD_TOKEN: u64 = u64::MAX;

impl Reactor {
    pub fn new(config: Config, opts: Options) -> std::io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let signals = SignalFd::new()?;
        epoll::add(
            &epoll,
            signals.as_fd(),
            epoll::EventData::new_u64(SIGNALS_FD_TOKEN),
            epoll::EventFlags::IN,
        )?;
        let now = Instant::now();
        let mut sup = Supervisor::new(config, opts.mode, now);
        sup.set_stop_timeout(opts.stop_timeout);
        Ok(Reactor {
            epoll,
            signals,
            sup,
            opts,
            entries: HashMap::new(),
            generation: 0,
            captures: HashMap::new(),
            buf: vec![0u8; 64 * 1024],
            exit_code: None,
        })
    }

    /// Runs until the supervisor says `Exit`; returns the exit code.
    pub fn run(mut self) -> i32 {
        let now = Instant::now();
        self.sup.boot(now);
        self.act();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            if let Some(code) = self.exit_code {
                self.flush_captures();
                return code;
            }
            let timeout = self.sup.next_deadline().map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                // Round up to the next millisecond so the deadline has passed when we wake.
                let left = left.min(Duration::from_secs(i32::MAX as u64 / 1000));
                rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                }
            });
            events.clear();
            match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::error!("epoll_wait: {e}");
                }
            }
            let ready: Vec<u64> = events.iter().map(|e| e.data.u64()).collect();
            for token in ready {
                self.dispatch(token);
            }
            self.reap();
            self.sup.tick(Instant::now());
            self.act();
        }
    }

    fn dispatch(&mut self, token: u64) {
        if token == SIGNALS_FD_TOKEN {
            while let Some(info) = self.signals.read() {
                self.on_signal(info.signo);
            }
            return;
        }
        let fd = (token & 0xffff_ffff) as i32;
        let generation = (token >> 32) as u32;
        let Some(watch) = self.entries.get(&fd).filter(|e| e.generation == generation).map(|e| e.watch)
        else {
            return;
        };
        match watch {
            Watch::Exec { svc, pid } => self.read_exec(fd, svc, pid),
            Watch::Log { svc } => self.read_log(fd, svc),
        }
    }

    fn on_signal(&mut self, signo: i32) {
        let now = Instant::now();
        match signo {
            libc_sig::CHLD => {} // reap() runs after every wake-up
            libc_sig::TERM | libc_sig::INT | libc_sig::QUIT | libc_sig::PWR => {
                log::info!("{}: stopping every service", signals::signal_name(signo));
                self.sup.handle(Event::Shutdown { code: None }, now);
            }
            s if s == libc_sig::rtmin() + 3 || s == libc_sig::rtmin() + 4 => {
                log::info!("{}: stopping every service", signals::signal_name(signo));
                self.sup.handle(Event::Shutdown { code: None }, now);
            }
            libc_sig::HUP => log::warn!("SIGHUP: reload is not supported by this build yet"),
            libc_sig::USR1 | libc_sig::USR2 => self.dump_status(),
            other => self.forward(other),
        }
        self.act();
    }

    /// Sends `signo` to the group of every running service that lists it in `forward-signals`.
    fn forward(&mut self, signo: i32) {
        let config = self.sup.config();
        let mut targets = Vec::new();
        for (svc, spec) in config.services.iter().enumerate() {
            if spec.forward_signals.contains(&signo)
                && let Some(pid) = self.sup.status(svc).pid
            {
                targets.push(pid);
            }
        }
        for pid in targets {
            let _ = sys::kill(-pid, signo);
        }
    }

    fn dump_status(&self) {
        for (svc, spec) in self.sup.config().services.iter().enumerate() {
            let st = self.sup.status(svc);
            let pid = st.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
            let reason = st.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            log::info!("{}: {:?}{pid}{reason}", spec.name, st.state);
        }
    }

    /// Reaps every child that has exited. An unread exec-status pipe is drained first, so the
    /// reason is "unable to exec ..." rather than "exit 127".
    fn reap(&mut self) {
        loop {
            match sys::reap_any() {
                sys::Reaped::Child(pid, status) => {
                    let exec_fd = self
                        .entries
                        .iter()
                        .find(|(_, e)| matches!(e.watch, Watch::Exec { pid: p, .. } if p == pid))
                        .map(|(fd, e)| (*fd, e.watch));
                    if let Some((fd, Watch::Exec { svc, pid })) = exec_fd {
                        self.read_exec(fd, svc, pid);
                    }
                    let now = Instant::now();
                    if let Some(main) = self.opts.main
                        && self.sup.service_of_pid(pid) == Some(main)
                    {
                        let code = self.main_code(status);
                        self.sup.handle(Event::Exited { pid, status }, now);
                        self.sup.handle(Event::Shutdown { code: Some(code) }, now);
                    } else {
                        self.sup.handle(Event::Exited { pid, status }, now);
                    }
                }
                sys::Reaped::Nothing => break,
                sys::Reaped::NoChildren => {
                    self.sup.handle(Event::NoChildren, Instant::now());
                    break;
                }
            }
        }
    }

    fn main_code(&self, status: ExitStatus) -> i32 {
        let code = status.code();
        if self.opts.remap_exit.contains(&code) { 0 } else { code }
    }

    fn read_exec(&mut self, fd: i32, svc: Svc, _pid: i32) {
        let Some(entry) = self.entries.get(&fd) else { return };
        let status = spawn::read_exec_status(&entry.fd);
        let now = Instant::now();
        match status {
            ExecStatus::Pending => return,
            ExecStatus::Ok => self.sup.handle(Event::ExecOk { svc }, now),
            ExecStatus::Failed { message, .. } => {
                let name = self.service_name(svc);
                log::error!("{name}: {message}");
                self.sup.handle(Event::SpawnFailed { svc, error: message }, now);
            }
        }
        self.unwatch(fd);
    }

    fn read_log(&mut self, fd: i32, svc: Svc) {
        let name = self.service_name(svc);
        let ring_cap = self.sup.config().services.get(svc).map_or(16 * 1024, |s| s.log.buffer);
        let mut eof = false;
        loop {
            let Some(entry) = self.entries.get(&fd) else { return };
            match rustix::io::read(&entry.fd, &mut self.buf[..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let data = self.buf.get(..n).unwrap_or(&[]);
                    let (cap, ring) = self.captures.entry(svc).or_default();
                    let ring = ring.get_or_insert_with(|| Ring::new(ring_cap));
                    cap.feed(data, &mut |line| {
                        sys::write_all(1, &crate::logbuf::prefixed(&name, line));
                        ring.push(line);
                    });
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    log::warn!("{name}: reading its output: {e}");
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            if let Some((cap, ring)) = self.captures.get_mut(&svc) {
                cap.finish(&mut |line| {
                    sys::write_all(1, &crate::logbuf::prefixed(&name, line));
                    if let Some(r) = ring.as_mut() {
                        r.push(line);
                    }
                });
            }
            self.unwatch(fd);
        }
    }

    fn flush_captures(&mut self) {
        let fds: Vec<(i32, Svc)> = self
            .entries
            .iter()
            .filter_map(|(fd, e)| if let Watch::Log { svc } = e.watch { Some((*fd, svc)) } else { None })
            .collect();
        for (fd, svc) in fds {
            self.read_log(fd, svc);
        }
    }

    fn service_name(&self, svc: Svc) -> String {
        self.sup.config().services.get(svc).map_or_else(|| format!("#{svc}"), |s| s.name.clone())
    }

    fn watch(&mut self, fd: OwnedFd, watch: Watch) {
        use std::os::fd::AsRawFd;
        self.generation = self.generation.wrapping_add(1);
        let raw = fd.as_raw_fd();
        let token = (u64::from(self.generation) << 32) | u64::from(raw as u32);
        if let Err(e) = epoll::add(&self.epoll, &fd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)
        {
            log::error!("epoll_ctl(ADD): {e}");
            return;
        }
        self.entries.insert(raw, Entry { fd, watch, generation: self.generation });
    }

    /// EPOLL_CTL_DEL before close (the entry's fd closes when dropped).
    fn unwatch(&mut self, fd: i32) {
        if let Some(entry) = self.entries.remove(&fd) {
            let _ = epoll::delete(&self.epoll, &entry.fd);
        }
    }

    /// Carries out every pending action; spawning produces events, so loop until none are left.
    fn act(&mut self) {
        loop {
            let actions = self.sup.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                match a {
                    Action::Spawn(svc) => self.spawn(svc),
                    Action::SignalGroup { svc: _, pid, signal } => {
                        if sys::kill(-pid, signal).is_err() {
                            let _ = sys::kill(pid, signal);
                        }
                        let _ = sys::kill(-pid, libc_sig::CONT);
                    }
                    Action::SignalOrphans { signal } => {
                        // kill(-1) outside a PID namespace as root would hit the whole host.
                        if rustix::process::getpid().is_init() {
                            let _ = sys::kill(-1, signal);
                        }
                        // Reap now: with no orphan left, NoChildren ends the grace at once.
                        self.reap();
                    }
                    Action::Exit(code) => {
                        if self.exit_code.is_none() {
                            self.exit_code = Some(code);
                        }
                    }
                }
            }
        }
    }

    fn spawn(&mut self, svc: Svc) {
        let now = Instant::now();
        let Some(spec) = self.sup.config().services.get(svc).cloned() else { return };
        let plan = match spawn::Plan::for_service(&spec, &self.opts.env, self.opts.nofile) {
            Ok(p) => p,
            Err(error) => {
                log::error!("{}: {error}", spec.name);
                self.sup.handle(Event::SpawnFailed { svc, error }, now);
                return;
            }
        };
        let mut log_read: Option<OwnedFd> = None;
        let mut log_pipe = || -> Option<Io> {
            if log_read.is_none() {
                match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
                    Ok((r, w)) => {
                        let _ = sys::set_nonblocking(&r);
                        log_read = Some(r);
                        return Some(Io::Fd(w));
                    }
                    Err(e) => {
                        log::warn!("{}: pipe: {e}; its output goes to init's stdout", spec.name);
                        return None;
                    }
                }
            }
            None
        };
        let stdout = match output_io(&spec.name, &spec.stdout, 1) {
            Some(io) => io,
            None => log_pipe().unwrap_or(Io::Inherit),
        };
        let stderr = match (&spec.stderr, &spec.stdout) {
            (Output::Log, Output::Log) => match &stdout {
                Io::Fd(w) => w.try_clone().map(Io::Fd).unwrap_or(Io::Inherit),
                _ => Io::Inherit,
            },
            _ => match output_io(&spec.name, &spec.stderr, 2) {
                Some(io) => io,
                None => log_pipe().unwrap_or(Io::Inherit),
            },
        };
        let stdio = Stdio { stdin: Io::Null, stdout, stderr, extra: Vec::new() };
        match spawn::spawn(&plan, stdio, Group::Session) {
            Ok(child) => {
                log::debug!("{}: started, pid {}", spec.name, child.pid);
                self.sup.handle(Event::Spawned { svc, pid: child.pid }, now);
                self.watch(child.status, Watch::Exec { svc, pid: child.pid });
                if let Some(r) = log_read {
                    self.watch(r, Watch::Log { svc });
                }
            }
            Err(error) => {
                log::error!("{}: {error}", spec.name);
                self.sup.handle(Event::SpawnFailed { svc, error }, now);
            }
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

/// Signal numbers used by the loop.
mod libc_sig {
    pub const HUP: i32 = 1;
    pub const INT: i32 = 2;
    pub const QUIT: i32 = 3;
    pub const USR1: i32 = 10;
    pub const USR2: i32 = 12;
    pub const TERM: i32 = 15;
    pub const CHLD: i32 = 17;
    pub const CONT: i32 = 18;
    pub const PWR: i32 = 30;
    pub fn rtmin() -> i32 {
        crate::signals::SIGRTMIN
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
    let stdio = Stdio { stdin: Io::Inherit, stdout: Io::Inherit, stderr: Io::Inherit, extra: Vec::new() };
    let child = match spawn::spawn(&plan, stdio, Group::Foreground) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{name}: {e}");
            return 1;
        }
    };
    // The exec status arrives before (or with) the child's exit: read it blocking-free at reap.
    let mut exec_error: Option<(String, i32)> = None;
    let pid = child.pid;
    let own_pid = sys::getpid();
    loop {
        let mut fds = [rustix::event::PollFd::new(&signals, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => log::error!("poll: {e}"),
        }
        while let Some(info) = signals.read() {
            // A SIGPIPE from init's own write is not the child's business.
            if info.signo != libc_sig::CHLD && info.pid != own_pid {
                let target = if group { -pid } else { pid };
                let _ = sys::kill(target, info.signo);
            }
        }
        loop {
            match sys::reap_any() {
                sys::Reaped::Child(p, status) if p == pid => {
                    if let ExecStatus::Failed { message, errno } = spawn::read_exec_status(&child.status) {
                        exec_error = Some((message, errno));
                    }
                    if let Some((message, errno)) = &exec_error {
                        log::error!("{name}: {message}");
                        return sys::exit_code_for_exec_errno(*errno);
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
