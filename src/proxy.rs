//! proxy: one proxied connection (zinit's xinet) copied inside the poll loop.
//!
//! Each direction has one bounded buffer (`BUF` bytes). A side is read only while the buffer
//! toward the other side has room, so a slow reader slows the writer down through TCP's own
//! flow control (back-pressure) and init's memory per connection is fixed. When one side sends
//! EOF, what is buffered is flushed and the other side gets `shutdown(SHUT_WR)` (half-close);
//! the connection ends when both directions are done, or at the first socket error (a reset, a
//! peer gone: both sides are closed). Every socket error is a value, never a panic.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, Shutdown};

use crate::sockets::{self, Interest, Ready, Registry, Tag};
use crate::spec::ListenAddr;

/// Bytes buffered per direction.
const BUF: usize = 64 * 1024;
/// Reads and writes per side per wake-up, so one busy connection cannot starve the loop.
const ROUNDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; the service is not Running yet.
    Waiting,
    /// connect(2) to the backend in progress.
    Connecting,
    /// The backend refused; connect again at this instant.
    Retry(Instant),
    /// Bytes flow.
    Open,
}

/// One direction: bytes read from one side, not yet written to the other.
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { data: Vec::new(), start: 0, end: 0 }
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
    fn has_room(&self) -> bool {
        self.data.len() < BUF || self.end < self.data.len() || self.start > 0
    }

    /// Reads from `fd` into the free space: Ok(0) is EOF.
    fn fill(&mut self, fd: &OwnedFd) -> Result<usize, Errno> {
        if self.data.len() < BUF {
            self.data.resize(BUF, 0);
        }
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = self.data.get_mut(self.end..).unwrap_or(&mut []);
        let n = rustix::net::recv(fd, room, RecvFlags::DONTWAIT).map(|(n, _)| n)?;
        self.end += n;
        Ok(n)
    }

    /// Writes what is buffered to `fd`.
    fn drain(&mut self, fd: &OwnedFd) -> Result<usize, Errno> {
        let pending = self.data.get(self.start..self.end).unwrap_or(&[]);
        let n = rustix::net::send(fd, pending, SendFlags::NOSIGNAL | SendFlags::DONTWAIT)?;
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(n)
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// One end of the connection and what is known about it.
struct End {
    fd: Option<OwnedFd>,
    /// EOF (or the peer is gone): nothing more to read.
    eof: bool,
    /// SHUT_WR sent (or the peer is gone): nothing more to write.
    shut: bool,
    /// What the poll set has for it (None: not registered).
    registered: Option<Interest>,
}

impl End {
    fn new(fd: Option<OwnedFd>) -> End {
        End { fd, eof: false, shut: false, registered: None }
    }
}

/// A proxied connection.
pub struct Conn {
    id: u64,
    pub service: String,
    pub phase: Phase,
    /// Waiting and connecting end here.
    pub deadline: Instant,
    client: End,
    backend: End,
    /// Client to backend.
    up: Buf,
    /// Backend to client.
    down: Buf,
}

impl Conn {
    pub fn new(id: u64, service: &str, client: OwnedFd, deadline: Instant) -> Conn {
        Conn {
            id,
            service: service.to_string(),
            phase: Phase::Waiting,
            deadline,
            client: End::new(Some(client)),
            backend: End::new(None),
            up: Buf::new(),
            down: Buf::new(),
        }
    }

    /// Starts connecting to the backend. Ok(false): the connection is finished.
    pub fn connect(
        &mut self,
        backend: &ListenAddr,
        reg: &mut dyn Registry,
        now: Instant,
    ) -> Result<bool, String> {
        self.drop_backend(reg);
        match sockets::connect(backend) {
            Ok((fd, connected)) => {
                self.backend = End::new(Some(fd));
                if connected {
                    self.open(reg)
                } else {
                    self.phase = Phase::Connecting;
                    self.sync(reg);
                    Ok(true)
                }
            }
            Err(e) => self.refused(backend_error(e), now),
        }
    }

    /// Readiness of one side.
    pub fn on_ready(
        &mut self,
        side: Side,
        ready: Ready,
        reg: &mut dyn Registry,
        now: Instant,
    ) -> Result<bool, String> {
        if self.phase == Phase::Connecting {
            if side != Side::Backend {
                return Ok(true);
            }
            let result = match self.backend.fd.as_ref().map(rustix::net::sockopt::socket_error) {
                Some(Ok(Ok(()))) if !ready.hup => Ok(()),
                Some(Ok(Err(e))) => Err(e),
                Some(Err(e)) => Err(e),
                _ => Err(Errno::CONNREFUSED),
            };
            return match result {
                Ok(()) => self.open(reg),
                Err(e) => {
                    self.drop_backend(reg);
                    self.refused(backend_error(e), now)
                }
            };
        }
        if ready.err {
            let fd = match side {
                Side::Client => self.client.fd.as_ref(),
                Side::Backend => self.backend.fd.as_ref(),
            };
            let e = fd.and_then(|f| rustix::net::sockopt::socket_error(f).ok()).and_then(Result::err);
            let e = e.unwrap_or(Errno::IO);
            return Err(format!("{}: {}", side_name(side), crate::sys::strerror(e.raw_os_error())));
        }
        self.pump(reg)
    }

    /// Closes both sides (removing them from the poll set first).
    pub fn close(mut self, reg: &mut dyn Registry) {
        for end in [&mut self.client, &mut self.backend] {
            if let (Some(fd), Some(_)) = (&end.fd, end.registered) {
                reg.remove(fd.as_fd());
            }
            end.registered = None;
            end.fd = None;
        }
    }

    fn refused(&mut self, why: String, now: Instant) -> Result<bool, String> {
        if now + sockets::CONNECT_RETRY >= self.deadline {
            return Err(why);
        }
        log::debug!("{}: {why}; retrying", self.service);
        self.phase = Phase::Retry(now + sockets::CONNECT_RETRY);
        Ok(true)
    }

    fn open(&mut self, reg: &mut dyn Registry) -> Result<bool, String> {
        self.phase = Phase::Open;
        self.pump(reg)
    }

    /// Moves what can move, then registers the interest that follows. Ok(false) when both
    /// directions are done.
    fn pump(&mut self, reg: &mut dyn Registry) -> Result<bool, String> {
        let (Some(c), Some(b)) = (self.client.fd.as_ref(), self.backend.fd.as_ref()) else {
            return Err("no backend".to_string());
        };
        for _ in 0..ROUNDS {
            let mut moved = false;
            moved |= copy(c, &mut self.client.eof, &mut self.up, b, &mut self.backend.shut)
                .map_err(|e| format!("client to backend: {e}"))?;
            moved |= copy(b, &mut self.backend.eof, &mut self.down, c, &mut self.client.shut)
                .map_err(|e| format!("backend to client: {e}"))?;
            if !moved {
                break;
            }
        }
        if self.client.eof && self.client.shut && self.backend.eof && self.backend.shut {
            return Ok(false);
        }
        self.sync(reg);
        Ok(true)
    }

    /// Registers each side with the interest its buffers call for.
    fn sync(&mut self, reg: &mut dyn Registry) {
        let id = self.id;
        let open = self.phase == Phase::Open;
        let want_client = open.then(|| Interest {
            read: !self.client.eof && self.up.has_room(),
            write: !self.down.is_empty() && !self.client.shut,
            oneshot: false,
        });
        let want_backend = match self.phase {
            Phase::Connecting => Some(Interest { read: false, write: true, oneshot: false }),
            Phase::Open => Some(Interest {
                read: !self.backend.eof && self.down.has_room(),
                write: !self.up.is_empty() && !self.backend.shut,
                oneshot: false,
            }),
            _ => None,
        };
        for (end, want, side) in
            [(&mut self.client, want_client, Side::Client), (&mut self.backend, want_backend, Side::Backend)]
        {
            // A side with nothing left to do leaves the poll set (its HUP would wake us forever).
            let want = want.filter(|i| i.read || i.write);
            let Some(fd) = end.fd.as_ref() else { continue };
            match (end.registered, want) {
                (None, Some(i)) => reg.add(fd.as_fd(), Tag::Conn { id, side }, i),
                (Some(old), Some(i)) if old != i => reg.modify(fd.as_fd(), i),
                (Some(_), None) => reg.remove(fd.as_fd()),
                _ => {}
            }
            end.registered = want;
        }
    }

    fn drop_backend(&mut self, reg: &mut dyn Registry) {
        if let (Some(fd), Some(_)) = (&self.backend.fd, self.backend.registered) {
            reg.remove(fd.as_fd());
        }
        self.backend = End::new(None);
    }
}

/// One direction: `from` → `buf` → `to`. Returns whether anything moved.
fn copy(
    from_fd: &OwnedFd,
    eof: &mut bool,
    buf: &mut Buf,
    to_fd: &OwnedFd,
    shut: &mut bool,
) -> Result<bool, String> {
    let mut moved = false;
    if !*eof && buf.has_room() {
        match buf.fill(from_fd) {
            Ok(0) => {
                *eof = true;
                moved = true;
            }
            Ok(_) => moved = true,
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => return Err(format!("read: {}", crate::sys::strerror(e.raw_os_error()))),
        }
    }
    if *shut {
        // Nobody will ever read it.
        buf.clear();
    } else if !buf.is_empty() {
        match buf.drain(to_fd) {
            Ok(n) => moved |= n > 0,
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => return Err(format!("write: {}", crate::sys::strerror(e.raw_os_error()))),
        }
    }
    if *eof && buf.is_empty() && !*shut {
        // Half-close: the other side sees EOF; it may still answer.
        match rustix::net::shutdown(to_fd, Shutdown::Write) {
            Ok(()) | Err(Errno::NOTCONN) => {}
            Err(e) => return Err(format!("shutdown: {e}")),
        }
        *shut = true;
        moved = true;
    }
    Ok(moved)
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Backend => "backend",
    }
}

fn backend_error(e: Errno) -> String {
    format!("backend: {}", crate::sys::strerror(e.raw_os_error()))
}
