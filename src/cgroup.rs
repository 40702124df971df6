//! cgroup: one cgroup v2 per service under init's own, with `[resource-limit]` cpu, memory and
//! pids-max written to it, and a stop that leaves nothing behind (`cgroup.kill`).
//!
//! Set up once, on the first service spawned: find the cgroup2 mount (/proc/self/mountinfo) and
//! init's cgroup (/proc/self/cgroup, `0::/path`). init manages that cgroup only when it owns it:
//! as the system's PID 1, or when it is the only process in it (PID 1 of a container, a systemd
//! unit with `Delegate=yes`). Then it moves itself (and whatever else is there) into the leaf
//! `init.scope` — cgroup v2 allows no process in a cgroup that has controllers enabled for its
//! children — and enables the controllers the cgroup offers (`cgroup.controllers`) in
//! `cgroup.subtree_control`. Each service gets `<init's cgroup>/<name>`; the child writes "0"
//! (itself) to its `cgroup.procs` before exec, through an fd opened before fork.
//!
//! Where that is impossible (no cgroup2, a v1 or hybrid host, a shared cgroup, a missing
//! controller), a service with limits gets one warning and runs without them, as Horust does;
//! `required = true` refuses to start it instead. Never silently ignored.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::sorted;
use crate::spec::{Limits, ServiceSpec};

/// Controllers init enables for its services, and the `[resource-limit]` key each one serves.
const CONTROLLERS: [(&str, &str); 3] = [("cpu", "cpu"), ("memory", "memory"), ("pids", "pids-max")];
/// `cpu.max` period in µs (Horust's: quota = cpu × 100 000 per 100 000).
const CPU_PERIOD: u64 = 100_000;

/// init's cgroup, once set up; or why there is none.
pub struct Cgroups {
    state: Option<Result<Tree, String>>,
    /// init runs as the system's PID 1 (it owns the root cgroup).
    system: bool,
    /// Services already warned about (one warning per service); sorted (a Vec is far less code
    /// than a HashSet: the binary's size budget).
    warned: Vec<String>,
}

struct Tree {
    /// init's cgroup directory (parent of `init.scope` and the services' cgroups).
    dir: PathBuf,
    /// Controllers enabled for the services.
    enabled: Vec<String>,
}

/// Memory and CPU a service's cgroup has used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub memory: Option<u64>,
    pub cpu_usec: Option<u64>,
}

impl Cgroups {
    /// Nothing is touched until the first `prepare`.
    pub fn new(system: bool) -> Cgroups {
        Cgroups { state: None, system, warned: Vec::new() }
    }

    fn tree(&mut self) -> Result<&Tree, &str> {
        let system = self.system;
        let state = self.state.get_or_insert_with(|| {
            let t = setup(system);
            match &t {
                Ok(t) => log::debug!("cgroup v2 at {} with {}", t.dir.display(), t.enabled.join(" ")),
                Err(e) => log::debug!("cgroup v2 not used: {e}"),
            }
            t
        });
        match state {
            Ok(t) => Ok(t),
            Err(e) => Err(e.as_str()),
        }
    }

    /// Before spawning `spec`: its cgroup with the limits written, and the fd of its
    /// `cgroup.procs` for the child to join (None: no cgroup). An error refuses the start
    /// (`required = true` and the limits cannot be applied).
    pub fn prepare(&mut self, spec: &ServiceSpec) -> Result<Option<OwnedFd>, String> {
        let wanted = wanted_controllers(&spec.limits);
        let name = spec.name.clone();
        let result = match self.tree() {
            Err(why) => Err(why.to_string()),
            Ok(tree) => {
                let missing: Vec<&str> = CONTROLLERS
                    .iter()
                    .filter(|(c, key)| wanted.contains(key) && !tree.enabled.iter().any(|e| e == c))
                    .map(|(c, _)| *c)
                    .collect();
                if missing.is_empty() {
                    service_cgroup(&tree.dir, spec)
                } else {
                    Err(format!(
                        "init's cgroup {} offers no {} controller",
                        tree.dir.display(),
                        missing.join("/")
                    ))
                }
            }
        };
        match result {
            Ok(fd) => Ok(fd),
            Err(why) if wanted.is_empty() => {
                log::debug!("{name}: no cgroup: {why}");
                Ok(None)
            }
            Err(why) => {
                let keys = wanted.join(", ");
                if spec.limits.required {
                    return Err(format!(
                        "not started: [resource-limit] {keys} cannot be applied and required = true: {why}"
                    ));
                }
                if sorted::insert(&mut self.warned, name.clone()) {
                    log::warn!(
                        "{name}: [resource-limit] {keys} not applied: {why}; it runs without them \
                         (required = true refuses to start it instead)"
                    );
                }
                Ok(None)
            }
        }
    }

    /// Kills every process left in the service's cgroup (after its main process exited, or
    /// with the stop's SIGKILL), then removes the cgroup when it is empty.
    pub fn kill(&self, name: &str) {
        let Some(Ok(tree)) = &self.state else { return };
        let dir = tree.dir.join(name);
        if !dir.is_dir() {
            return;
        }
        // Linux 5.14: one write kills the whole cgroup, forks in flight included.
        if fs::write(dir.join("cgroup.kill"), "1").is_err() {
            // Older kernels: freeze, so nothing forks while we list, kill each, thaw.
            let frozen = fs::write(dir.join("cgroup.freeze"), "1").is_ok();
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = crate::sys::kill(pid, 9);
                }
            }
            if frozen {
                let _ = fs::write(dir.join("cgroup.freeze"), "0");
            }
        }
        // EBUSY while the killed processes are still exiting; the next spawn reuses it anyway.
        let _ = rustix::fs::rmdir(&dir);
    }

    /// Memory and CPU used by a service's cgroup (`memory.current`, `cpu.stat` usage_usec).
    pub fn usage(&self, name: &str) -> Option<Usage> {
        let Some(Ok(tree)) = &self.state else { return None };
        let dir = tree.dir.join(name);
        let memory = read_u64(&dir.join("memory.current"));
        let cpu_usec = fs::read_to_string(dir.join("cpu.stat")).ok().and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("usage_usec ").and_then(|v| v.trim().parse().ok()))
        });
        (memory.is_some() || cpu_usec.is_some()).then_some(Usage { memory, cpu_usec })
    }
}

impl Usage {
    /// "memory 12.5 MiB, cpu 1.25s" for `status`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("memory {}.{} MiB", m >> 20, ((m & 0xfffff) * 10) >> 20));
        }
        if let Some(c) = self.cpu_usec {
            parts.push(format!("cpu {}.{:02}s", c / 1_000_000, (c % 1_000_000) / 10_000));
        }
        parts.join(", ")
    }
}

/// The `[resource-limit]` keys that need a cgroup.
fn wanted_controllers(l: &Limits) -> Vec<&'static str> {
    let mut v = Vec::new();
    if l.cpu.is_some() {
        v.push("cpu");
    }
    if l.memory.is_some() {
        v.push("memory");
    }
    if l.pids_max.is_some() {
        v.push("pids-max");
    }
    v
}

/// `cpu.max` for a share of cores: "quota period".
pub fn cpu_max(cores: f64) -> String {
    // `as` saturates; + 0.5 rounds (validation keeps cores in (0, 4096]).
    let quota = ((cores * CPU_PERIOD as f64 + 0.5) as u64).max(1000);
    format!("{quota} {CPU_PERIOD}")
}

fn service_cgroup(root: &Path, spec: &ServiceSpec) -> Result<Option<OwnedFd>, String> {
    let dir = root.join(&spec.name);
    mkdir(&dir)?;
    let l = &spec.limits;
    let writes = [
        ("cpu.max", l.cpu.map(cpu_max)),
        ("memory.max", l.memory.map(|m| m.to_string())),
        ("pids.max", l.pids_max.map(|p| p.to_string())),
    ];
    for (file, value) in writes {
        if let Some(v) = value {
            fs::write(dir.join(file), &v)
                .map_err(|e| format!("cannot write {v} to {}/{file}: {e}", dir.display()))?;
        }
    }
    let procs = dir.join("cgroup.procs");
    rustix::fs::open(
        &procs,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map(Some)
    .map_err(|e| format!("cannot open {}: {e}", procs.display()))
}

/// mkdir(2); an existing directory is fine.
fn mkdir(dir: &Path) -> Result<(), String> {
    match rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(format!("cannot create {}: {}", dir.display(), crate::sys::strerror(e.raw_os_error()))),
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok())
}

/// Finds init's cgroup, takes it over (init.scope), enables the controllers.
fn setup(system: bool) -> Result<Tree, String> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let (mount, mount_root, ro) = cgroup2_mount(&mountinfo)
        .ok_or_else(|| "no cgroup2 file system is mounted (cgroup v1 host?)".to_string())?;
    if ro {
        return Err(format!("the cgroup2 mount {} is read-only", mount.display()));
    }
    let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = own_cgroup(&own).ok_or_else(|| "init is in no cgroup v2 (cgroup v1 host)".to_string())?;
    let rel = path.strip_prefix(&mount_root).unwrap_or(&path).trim_matches('/').to_string();
    let dir = if rel.is_empty() { mount } else { mount.join(rel) };
    let offered = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let offered: Vec<&str> = offered.split_whitespace().collect();
    if !CONTROLLERS.iter().any(|(c, _)| offered.contains(c)) {
        return Err(format!(
            "init's cgroup {} offers none of the cpu, memory and pids controllers (a cgroup v1 or hybrid host?)",
            dir.display()
        ));
    }
    let me = crate::sys::getpid();
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let others = procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()).any(|p| p != me);
    if others && !system {
        return Err(format!(
            "init's cgroup {} is shared with other processes (run init as PID 1 or in a delegated cgroup)",
            dir.display()
        ));
    }
    let scope = dir.join("init.scope");
    mkdir(&scope)?;
    // Everything that can move goes into the leaf (kernel threads in the root cannot; the root
    // cgroup is exempt from the no-internal-processes rule anyway).
    for pid in procs.lines().map(str::trim).filter(|p| !p.is_empty() && *p != "0") {
        let _ = fs::write(scope.join("cgroup.procs"), pid);
    }
    fs::write(scope.join("cgroup.procs"), me.to_string())
        .map_err(|e| format!("cannot move init into {}: {e}", scope.display()))?;
    for (c, _) in CONTROLLERS {
        if offered.contains(&c) {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
    let enabled: Vec<String> = fs::read_to_string(dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    Ok(Tree { dir, enabled })
}

/// The first cgroup2 mount in mountinfo(5): (mount point, root of the mount, read-only).
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String, bool)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        let root = f.get(3)?;
        let point = f.get(4)?;
        let ro = f.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro"));
        // mountinfo escapes spaces as \040: such a mount point is simply not found (warned).
        Some((PathBuf::from(point), (*root).to_string(), ro))
    })
}

/// init's cgroup v2 path from /proc/self/cgroup (the `0::/path` line).
fn own_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(|p| p.trim_end().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(mi), Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".into(), false)));
        let ro = "41 31 0:38 /x /sys/fs/cg ro,relatime shared:1 - cgroup2 cgroup2 ro\n";
        assert_eq!(cgroup2_mount(ro), Some((PathBuf::from("/sys/fs/cg"), "/x".into(), true)));
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn own_cgroup_is_the_v2_line() {
        assert_eq!(
            own_cgroup("4:memory:/a\n0::/user.slice/x.scope\n").as_deref(),
            Some("/user.slice/x.scope")
        );
        assert_eq!(own_cgroup("4:memory:/a\n"), None);
    }

    #[test]
    fn cpu_max_is_a_share_of_one_period() {
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_max(2.0), "200000 100000");
        assert_eq!(cpu_max(0.001), "1000 100000");
    }

    #[test]
    fn usage_is_readable() {
        let u = Usage { memory: Some(12 * 1024 * 1024 + 512 * 1024), cpu_usec: Some(1_250_000) };
        assert_eq!(u.describe(), "memory 12.5 MiB, cpu 1.25s");
    }
}
