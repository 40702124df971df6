//! sys: the only unsafe code. Thin wrappers over the system calls rustix lacks or does only per
//! thread, each named after its syscall with the man page in its doc line.
//!
//! Signal sets are the kernel's 64-bit `sigset` and signal calls are raw syscalls: musl's
//! `sigaddset`/`sigaction` refuse signals 32–34 (its internal ones), which are real-time signals
//! other programs send (glibc's SIGRTMIN is 34), and init must block, read and forward them.
//!
//! Functions marked "child-safe" neither allocate nor take locks, so the child may call them
//! between `fork` and `execve`.

use std::ffi::{CStr, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::supervisor::ExitStatus;

/// Highest signal number on Linux.
pub const NSIG: i32 = 64;

/// The last OS error, as the `Err` of an `io::Result` (no allocation: `Repr::Os`).
fn last_err<T>() -> io::Result<T> {
    Err(io::Error::last_os_error())
}

/// `-1` from a libc call becomes the errno.
fn check(ret: c_int) -> io::Result<c_int> {
    if ret == -1 { last_err() } else { Ok(ret) }
}

/// `-1` from `syscall(2)` becomes the errno.
fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { last_err() } else { Ok(ret) }
}

/// The errno of an `io::Error`, or EIO when it has none (never the case for errors from here).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The text of an errno, as strerror(3) gives it ("No such file or directory"), without the
/// " (os error N)" that `io::Error`'s Display appends.
pub fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

/// The symbolic name of an errno ("ENOENT"), for logs and the control protocol; `E<n>` if unknown.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ELIBBAD => "ELIBBAD",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

/// Exit code for a failed exec, as tini and the shell give it: 127 not found, 126 otherwise.
pub fn exit_code_for_exec_errno(errno: i32) -> i32 {
    if errno == libc::ENOENT { 127 } else { 126 }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// fork(2). `Ok(None)` in the child, `Ok(Some(pid))` in the parent. In the child only
/// child-safe functions may be called until `execve` or `exit_now`.
pub fn fork() -> io::Result<Option<i32>> {
    // SAFETY: fork has no memory-safety preconditions; the caller keeps to child-safe calls.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 { None } else { Some(pid) })
}

/// execve(2) with NULL-terminated pointer arrays prepared before fork. Returns only on failure.
/// Child-safe.
pub fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> io::Error {
    // The arrays must end with NULL or the kernel reads past them.
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return io::Error::from_raw_os_error(libc::EFAULT);
    }
    // SAFETY: both arrays are NULL-terminated and point at NUL-terminated strings that the
    // caller keeps alive (they were built before fork and outlive this call).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// _exit(2): leave at once, without atexit handlers or flushing (the child after fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// getpid(2).
pub fn getpid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

/// getuid(2).
pub fn getuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getuid() }
}

/// getgid(2).
pub fn getgid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getgid() }
}

/// getgroups(2): this process's supplementary groups.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: size 0 only asks for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0u32; usize::try_from(n).unwrap_or(0)];
    let cap = c_int::try_from(groups.len()).unwrap_or(0);
    // SAFETY: the buffer holds `cap` gid_t values.
    let n = check(unsafe { libc::getgroups(cap, groups.as_mut_ptr()) })?;
    groups.truncate(usize::try_from(n).unwrap_or(0));
    Ok(groups)
}

/// setgroups(2). Raw syscall: process-wide only in a single-threaded process (the child after
/// fork), which is the one place init changes credentials. Child-safe.
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length describe a valid gid_t slice.
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// setgid(2). Raw syscall, see `setgroups`. Child-safe.
pub fn setgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument.
    check_long(unsafe { libc::syscall(libc::SYS_setgid, gid) }).map(drop)
}

/// setuid(2). Raw syscall, see `setgroups`. Child-safe.
pub fn setuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument.
    check_long(unsafe { libc::syscall(libc::SYS_setuid, uid) }).map(drop)
}

/// setsid(2). Child-safe.
pub fn setsid() -> io::Result<i32> {
    // SAFETY: no preconditions.
    check(unsafe { libc::setsid() })
}

/// setpgid(2). Child-safe.
pub fn setpgid(pid: i32, pgid: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setpgid(pid, pgid) }).map(drop)
}

/// getpgid(2).
pub fn getpgid(pid: i32) -> io::Result<i32> {
    // SAFETY: plain integer argument.
    check(unsafe { libc::getpgid(pid) })
}

/// getsid(2).
pub fn getsid(pid: i32) -> io::Result<i32> {
    // SAFETY: plain integer argument.
    check(unsafe { libc::getsid(pid) })
}

/// isatty(3): is this fd a terminal. Child-safe.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: plain integer argument.
    unsafe { libc::isatty(fd) == 1 }
}

/// tcsetpgrp(3): make `pgid` the foreground process group of the terminal on `fd`. Child-safe.
pub fn tcsetpgrp(fd: RawFd, pgid: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::tcsetpgrp(fd, pgid) }).map(drop)
}

/// chdir(2). Child-safe.
pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// umask(2); returns the previous mask. Child-safe.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: plain integer argument.
    unsafe { libc::umask(mask) }
}

/// Resources for `getrlimit`/`setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Nofile,
    Nproc,
    Core,
    Memlock,
    Stack,
}

impl Resource {
    fn raw(self) -> c_int {
        // The libc constants differ in type between targets; they all fit in c_int.
        (match self {
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Stack => libc::RLIMIT_STACK,
        }) as c_int
    }
}

/// getrlimit(2): (soft, hard); `u64::MAX` is RLIM_INFINITY.
pub fn getrlimit(res: Resource) -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid out-pointer.
    check(unsafe { libc::getrlimit(res.raw() as _, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// setrlimit(2) (musl uses prlimit64: process-wide). Child-safe.
pub fn setrlimit(res: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `r` is a valid in-pointer.
    check(unsafe { libc::setrlimit(res.raw() as _, &r) }).map(drop)
}

/// prctl(2) PR_SET_CHILD_SUBREAPER: orphans of our descendants are reparented to us.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) }).map(drop)
}

/// prctl(2) PR_SET_PDEATHSIG: the signal this process gets when its parent dies (0 = none).
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    let sig = libc::c_ulong::try_from(sig).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig) }).map(drop)
}

/// kill(2), any signal number including real-time ones; `pid` < 0 is a process group.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// tgkill(2): a signal to one thread of a process (tests use it to signal their own thread).
pub fn tgkill(pid: i32, tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) }).map(drop)
}

/// gettid(2).
pub fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

fn decode_status(status: c_int) -> Option<ExitStatus> {
    if libc::WIFEXITED(status) {
        Some(ExitStatus::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(ExitStatus::Signal(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// waitpid(2) for `pid` (-1: any child), retrying EINTR. `Ok(None)` when nothing has exited
/// (`nohang`) or, for -1, when there are no children left (ECHILD).
pub fn waitpid(pid: i32, nohang: bool) -> io::Result<Option<(i32, ExitStatus)>> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) if pid == -1 => return Ok(None),
                _ => return Err(e),
            }
        }
        if ret == 0 {
            return Ok(None);
        }
        // Without WUNTRACED/WCONTINUED only exits and deaths are reported.
        if let Some(st) = decode_status(status) {
            return Ok(Some((ret, st)));
        }
    }
}

/// waitpid(2)(-1, WNOHANG): one exited child, or `None` when none is ready or none is left
/// (call until `None`). Other errors cannot happen for these arguments and also end the sweep.
pub fn reap_one() -> Option<(i32, ExitStatus)> {
    waitpid(-1, true).ok().flatten()
}

// ---------------------------------------------------------------------------------------------
// File descriptors

/// pipe2(2) with O_CLOEXEC: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for two fds.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let [r, w] = fds;
    // SAFETY: pipe2 just returned these two fds; we own them.
    Ok(unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) })
}

/// fcntl(2) F_SETFL O_NONBLOCK on `fd` (only ever on fds init created, never inherited ones).
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: integer arguments only.
    let fl = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

/// fcntl(2) F_DUPFD_CLOEXEC: a copy of `fd` at the lowest number >= `min`. Child-safe.
pub fn dup_above(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// dup2(2): `fd` also at `target`, without FD_CLOEXEC (when `fd != target`). Child-safe.
pub fn dup2(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments only; the caller owns the target number in the child.
    check(unsafe { libc::dup2(fd, target) }).map(drop)
}

/// fcntl(2) F_SETFD: clear FD_CLOEXEC so `fd` survives execve. Child-safe.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// fcntl(2) F_SETFD: set FD_CLOEXEC (for fds init inherited).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// close_range(2) of `first..=last`. Before Linux 5.9 (ENOSYS) it falls back to close(2) on
/// each number up to min(last, 1023): a bounded fallback only, since reading /proc/self/fd is
/// not possible after fork and a loop up to RLIMIT_NOFILE (Docker: 1,048,576) is far too slow.
/// init opens its own fds O_CLOEXEC, so the fallback is a second line of defence. Child-safe.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: integer arguments only; the caller owns every fd in the range.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    for fd in first..=last.min(1023) {
        // SAFETY: as above; EBADF for numbers not open is expected and ignored.
        unsafe { libc::close(fd as c_int) };
    }
    Ok(())
}

/// write(2) of the whole buffer in one call (a pipe write up to PIPE_BUF is atomic), retrying
/// EINTR. Child-safe.
pub fn write_all_once(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n.unsigned_abs());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// read(2), retrying EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n.unsigned_abs());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signals (kernel sigsets: bit N-1 is signal N)

/// A kernel signal set: bit `n-1` is signal `n`, for 1..=64.
pub type SigSet = u64;

/// The bit of signal `sig` in a `SigSet` (0 for numbers out of 1..=64).
pub fn sig_bit(sig: i32) -> SigSet {
    if (1..=NSIG).contains(&sig) { 1u64 << (sig - 1) } else { 0 }
}

const SIG_BLOCK: c_int = 0;
const SIG_UNBLOCK: c_int = 1;
const SIG_SETMASK: c_int = 2;

fn rt_sigprocmask(how: c_int, set: Option<SigSet>) -> io::Result<SigSet> {
    let mut old: SigSet = 0;
    let set_ptr = set.as_ref().map_or(std::ptr::null(), |s| s as *const SigSet);
    // SAFETY: pointers to 8-byte kernel sigsets (or NULL), size 8 as the kernel expects.
    check_long(unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, how, set_ptr, &mut old as *mut SigSet, 8usize)
    })?;
    Ok(old)
}

/// rt_sigprocmask(2) SIG_BLOCK; returns the previous mask. Child-safe.
pub fn sigprocmask_block(set: SigSet) -> io::Result<SigSet> {
    rt_sigprocmask(SIG_BLOCK, Some(set))
}

/// rt_sigprocmask(2) SIG_UNBLOCK; returns the previous mask. Child-safe.
pub fn sigprocmask_unblock(set: SigSet) -> io::Result<SigSet> {
    rt_sigprocmask(SIG_UNBLOCK, Some(set))
}

/// rt_sigprocmask(2) SIG_SETMASK; returns the previous mask. Child-safe.
pub fn sigprocmask_set(set: SigSet) -> io::Result<SigSet> {
    rt_sigprocmask(SIG_SETMASK, Some(set))
}

/// rt_sigprocmask(2) query: the current mask.
pub fn sigprocmask_get() -> io::Result<SigSet> {
    rt_sigprocmask(SIG_BLOCK, None)
}

/// Every signal that can be blocked: 1..=64 except SIGKILL and SIGSTOP.
pub fn full_sigset() -> SigSet {
    !(sig_bit(libc::SIGKILL) | sig_bit(libc::SIGSTOP))
}

/// The kernel's `struct sigaction` for x86_64 (rt_sigaction(2)), which differs from libc's.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: SigSet,
}

/// What a signal does on delivery; only the two values init ever installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Default,
    Ignore,
}

fn rt_sigaction(sig: i32, new: Option<Disposition>) -> io::Result<usize> {
    let act = new.map(|d| KernelSigaction {
        handler: match d {
            Disposition::Default => libc::SIG_DFL,
            Disposition::Ignore => libc::SIG_IGN,
        },
        flags: 0,
        restorer: 0,
        mask: 0,
    });
    let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    let act_ptr = act.as_ref().map_or(std::ptr::null(), |a| a as *const KernelSigaction);
    // SAFETY: valid pointers to kernel sigaction structs (or NULL), sigset size 8. SIG_DFL and
    // SIG_IGN need no restorer (SA_RESTORER is only needed for handlers that return).
    check_long(unsafe {
        libc::syscall(libc::SYS_rt_sigaction, sig, act_ptr, &mut old as *mut KernelSigaction, 8usize)
    })?;
    Ok(old.handler)
}

/// rt_sigaction(2): set `sig` to SIG_DFL or SIG_IGN. Child-safe.
pub fn set_disposition(sig: i32, d: Disposition) -> io::Result<()> {
    rt_sigaction(sig, Some(d)).map(drop)
}

/// rt_sigaction(2) query: the set of signals currently ignored (SIG_IGN).
pub fn ignored_signals() -> SigSet {
    let mut set = 0;
    for sig in 1..=NSIG {
        if sig != libc::SIGKILL
            && sig != libc::SIGSTOP
            && rt_sigaction(sig, None).is_ok_and(|h| h == libc::SIG_IGN)
        {
            set |= sig_bit(sig);
        }
    }
    set
}

/// rt_sigaction(2) on 1..=64 except KILL/STOP: every signal to SIG_DFL, except those in
/// `ignore`, which get SIG_IGN. Child-safe.
pub fn reset_dispositions(ignore: SigSet) -> io::Result<()> {
    for sig in 1..=NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let d = if ignore & sig_bit(sig) != 0 { Disposition::Ignore } else { Disposition::Default };
        set_disposition(sig, d)?;
    }
    Ok(())
}

/// One record from a signalfd (the fields of `struct signalfd_siginfo` init uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalfdInfo {
    pub signo: i32,
    /// Sender's pid (kill, sigqueue) or the child's pid (SIGCHLD).
    pub pid: i32,
    /// Exit status or signal for SIGCHLD.
    pub status: i32,
}

/// signalfd4(2) with SFD_NONBLOCK|SFD_CLOEXEC for the signals in `set` (block them first).
pub fn signalfd(set: SigSet) -> io::Result<OwnedFd> {
    let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
    // SAFETY: pointer to an 8-byte kernel sigset, size 8.
    let fd = check_long(unsafe {
        libc::syscall(libc::SYS_signalfd4, -1 as c_int, &set as *const SigSet, 8usize, flags)
    })?;
    let fd = c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new fd; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// read(2) of one `signalfd_siginfo` (128 bytes); `Ok(None)` when none is pending (EAGAIN).
pub fn signalfd_read(fd: &OwnedFd) -> io::Result<Option<SignalfdInfo>> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: pointer and size describe `info`.
        let n =
            unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(e),
            }
        }
        if n.unsigned_abs() != size {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        return Ok(Some(SignalfdInfo {
            signo: i32::try_from(info.ssi_signo).unwrap_or(0),
            pid: i32::try_from(info.ssi_pid).unwrap_or(0),
            status: info.ssi_status,
        }));
    }
}

// ---------------------------------------------------------------------------------------------
// Machine

/// What reboot(2) should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootCmd {
    PowerOff,
    Restart,
    Halt,
    /// Ctrl-Alt-Del sends SIGINT to pid 1 instead of rebooting (also the system-mode probe).
    CadOff,
}

/// reboot(2), guarded: refuses with EPERM without making the call unless this process is pid 1
/// (as root outside a PID namespace the call would power off the host).
pub fn reboot(cmd: RebootCmd) -> io::Result<()> {
    if getpid() != 1 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let raw = match cmd {
        RebootCmd::PowerOff => libc::RB_POWER_OFF,
        RebootCmd::Restart => libc::RB_AUTOBOOT,
        RebootCmd::Halt => libc::RB_HALT_SYSTEM,
        RebootCmd::CadOff => libc::RB_DISABLE_CAD,
    };
    // SAFETY: integer argument; guarded to pid 1 above.
    check(unsafe { libc::reboot(raw) }).map(drop)
}

/// sync(2).
pub fn sync() {
    // SAFETY: no preconditions.
    unsafe { libc::sync() }
}

/// What one `waitpid(-1, WNOHANG)` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Child(i32, ExitStatus),
    /// Children exist, none has exited.
    Nothing,
    /// ECHILD: no child is left at all.
    NoChildren,
}

/// waitpid(2)(-1, WNOHANG), telling "none ready" apart from "none left" (ECHILD).
pub fn reap_any() -> Reaped {
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a valid out-pointer.
        let ret = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if ret == -1 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Reaped::NoChildren,
                _ => return Reaped::Nothing,
            }
        }
        if ret == 0 {
            return Reaped::Nothing;
        }
        if let Some(st) = decode_status(status) {
            return Reaped::Child(ret, st);
        }
    }
}

/// write(2) of the whole buffer to a raw fd, retrying EINTR and short writes; any other error
/// (EPIPE, EAGAIN on a full non-blocking console) drops the rest. Never panics.
pub fn write_all(fd: RawFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        buf = buf.get(n.unsigned_abs()..).unwrap_or(&[]);
    }
}

/// fcntl(2) F_DUPFD_CLOEXEC: a close-on-exec copy of `fd` (init's stdout/stderr for a service).
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a new fd we own.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// dup2(2) of an fd onto a fixed number (the console onto 0, 1, 2).
pub fn dup2_raw(fd: &OwnedFd, target: RawFd) -> io::Result<()> {
    dup2(fd.as_raw_fd(), target)
}

/// open(2) of a log file: O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC, mode 0640, and only a regular
/// file not owned by another user (init runs as root: no symlink or device tricks).
pub fn open_log_file(path: &std::path::Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o640))?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    if st.st_uid != getuid() {
        return Err(io::Error::other("owned by another user"));
    }
    Ok(fd)
}

/// getsockopt(2) SO_PEERCRED: the peer's uid. (Not rustix's, whose `UCred` holds a non-zero pid:
/// a peer in another PID namespace has pid 0 and the call failed.)
pub fn peer_uid(fd: &impl std::os::fd::AsFd) -> io::Result<u32> {
    // SAFETY: zeroed ucred is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid out-pointers of the right size.
    check(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// reboot(2) CAD_OFF: Ctrl-Alt-Del becomes SIGINT; succeeds only as PID 1 of a real system.
pub fn reboot_cad_off() -> io::Result<()> {
    reboot(RebootCmd::CadOff)
}

/// reboot(2) POWER_OFF (pid 1 only).
pub fn reboot_power_off() -> io::Result<()> {
    reboot(RebootCmd::PowerOff)
}

/// reboot(2) AUTOBOOT (pid 1 only).
pub fn reboot_restart() -> io::Result<()> {
    reboot(RebootCmd::Restart)
}

/// reboot(2) HALT (pid 1 only).
pub fn reboot_halt() -> io::Result<()> {
    reboot(RebootCmd::Halt)
}

/// pause(2): sleep until a signal (the last resort of a PID 1 that must not return).
pub fn pause() {
    // SAFETY: no preconditions.
    unsafe {
        libc::pause();
    }
}

/// setrlimit(2): raise init's own RLIMIT_NOFILE soft limit to the hard limit; returns the
/// original (soft, hard) to restore in children.
pub fn raise_nofile() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::Nofile).ok()?;
    if soft < hard {
        let _ = setrlimit(Resource::Nofile, hard, hard);
    }
    Some((soft, hard))
}

/// setenv(3) for PID 1 before any thread or child exists (std's set_var is unsafe in 2024).
pub fn setenv_single_threaded(key: &str, value: &str) {
    // SAFETY: init has no other thread; nothing reads the environment concurrently.
    unsafe { std::env::set_var(key, value) }
}

/// ioctl(2) SIOCSIFFLAGS: bring `lo` up (IFF_UP|IFF_RUNNING), as a system's PID 1 does.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned below.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `s` is a fresh fd.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: zeroed ifreq is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0".iter()) {
        *d = *c as c_char;
    }
    // SAFETY: `req` is a valid ifreq for these requests.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: reading/writing the flags member of the union set by SIOCGIFFLAGS.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) })?;
    Ok(())
}

/// A `KEY=` environment entry whose value is filled in by the child after fork with its own
/// pid (`LISTEN_PID`), without allocating: the buffer is made before fork and only written in
/// the child's copy of memory.
pub struct PidEnv {
    raw: *mut [u8; 48],
    prefix_len: usize,
}

impl PidEnv {
    /// `prefix` is e.g. `b"LISTEN_PID="` (at most 32 bytes; longer is cut).
    pub fn new(prefix: &[u8]) -> PidEnv {
        let mut buf = Box::new([0u8; 48]);
        let prefix_len = prefix.len().min(32);
        for (d, s) in buf.iter_mut().zip(prefix.iter().take(prefix_len)) {
            *d = *s;
        }
        PidEnv { raw: Box::into_raw(buf), prefix_len }
    }

    /// The NUL-terminated entry, for an envp array.
    pub fn as_ptr(&self) -> *const c_char {
        self.raw.cast::<c_char>().cast_const()
    }

    /// Writes the decimal pid after the prefix, NUL-terminated. Child-safe.
    pub fn fill(&self, pid: i32) {
        let mut digits = [0u8; 12];
        let mut n = pid.unsigned_abs();
        let mut len = 0;
        loop {
            if let Some(d) = digits.get_mut(len) {
                *d = b'0' + (n % 10) as u8;
            }
            len += 1;
            n /= 10;
            if n == 0 || len >= digits.len() {
                break;
            }
        }
        // SAFETY: `raw` came from Box::into_raw and is freed only in Drop; no reference to the
        // buffer exists while we write (only the raw pointer in an envp array).
        let buf = unsafe { &mut *self.raw };
        let mut at = self.prefix_len;
        for i in (0..len).rev() {
            if let (Some(dst), Some(src)) = (buf.get_mut(at), digits.get(i)) {
                *dst = *src;
            }
            at += 1;
        }
        if let Some(dst) = buf.get_mut(at) {
            *dst = 0;
        }
    }
}

impl Drop for PidEnv {
    fn drop(&mut self) {
        // SAFETY: `raw` came from Box::into_raw and is dropped once.
        drop(unsafe { Box::from_raw(self.raw) });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strerror_has_no_os_error_suffix() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(errno_name(libc::EACCES), "EACCES");
        assert_eq!(errno_name(9999), "E9999");
    }

    #[test]
    fn exec_exit_codes_follow_tini() {
        assert_eq!(exit_code_for_exec_errno(libc::ENOENT), 127);
        assert_eq!(exit_code_for_exec_errno(libc::EACCES), 126);
        assert_eq!(exit_code_for_exec_errno(libc::ENOEXEC), 126);
    }

    #[test]
    fn reboot_refuses_unless_pid_1() {
        if getpid() != 1 {
            assert_eq!(reboot(RebootCmd::PowerOff).err().and_then(|e| e.raw_os_error()), Some(libc::EPERM));
        }
    }

    #[test]
    fn pid_env_fills_in_place() {
        let p = PidEnv::new(b"LISTEN_PID=");
        p.fill(123456);
        // SAFETY: the buffer is NUL-terminated after fill.
        let s = unsafe { CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "LISTEN_PID=123456");
        p.fill(7);
        let s = unsafe { CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_str().unwrap(), "LISTEN_PID=7");
    }

    #[test]
    fn sig_bits() {
        assert_eq!(sig_bit(1), 1);
        assert_eq!(sig_bit(64), 1 << 63);
        assert_eq!(sig_bit(0), 0);
        assert_eq!(sig_bit(65), 0);
        assert_eq!(full_sigset() & sig_bit(libc::SIGKILL), 0);
    }
}
