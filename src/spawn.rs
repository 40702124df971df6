//! spawn: fork + child setup + execve, with exec failures reported through a CLOEXEC pipe.
//!
//! CONTRACT (the reactor is written against exactly this API; keep the signatures):
//!   Plan::for_service(spec, inherited_env, nofile_limit) -> Result<Plan, String>
//!       builds every CString before fork (PATH lookup of argv[0] in the *service's* PATH,
//!       environment per [environment], credentials); an error here is the service's failure.
//!   spawn(&plan, stdio: Stdio) -> Result<Child, String>
//!   Child { pid, status: OwnedFd }   status: read end, O_NONBLOCK|O_CLOEXEC
//!   read_exec_status(&fd) -> ExecStatus   never blocks

use std::os::fd::OwnedFd;

/// How the child's fds 0, 1, 2 are set up; `Fd` ones are dup2'd in the child.
pub enum Io {
    /// Keep init's own fd.
    Inherit,
    /// /dev/null, or a pipe end with no peer when /dev/null is missing.
    Null,
    Fd(OwnedFd),
}

pub struct Stdio {
    pub stdin: Io,
    pub stdout: Io,
    pub stderr: Io,
    /// Extra fds passed as 3, 4, ... (socket activation), in order.
    pub extra: Vec<OwnedFd>,
}

/// Process-group policy for the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// setsid(): services (own session and process group).
    Session,
    /// setpgid(0,0), and tcsetpgrp on fd 0 when it is a terminal (tini mode).
    Foreground,
}

/// Result of the exec-status pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// Nothing to read yet (the child has not exec'd or failed yet).
    Pending,
    /// EOF with no data: exec succeeded.
    Ok,
    /// The child wrote its failing stage and errno: "unable to exec /bin/x: No such file or directory".
    Failed { message: String, errno: i32 },
}

pub struct Child {
    pub pid: i32,
    pub status: OwnedFd,
}
