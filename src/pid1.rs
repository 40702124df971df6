//! pid1: the duties of PID 1 on a real system (design §6): mount what the kernel did not, open the
//! console, set the hostname and PATH, bring up `lo`; at the end, sync, unmount or remount
//! read-only what it can, and `reboot(2)`. Nothing here runs unless init is PID 1 in system mode,
//! and `reboot(2)` itself is guarded again in `sys`.

use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

/// What the end of a system run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reboot,
    Halt,
}

impl PowerAction {
    pub fn verb(self) -> &'static str {
        match self {
            PowerAction::PowerOff => "powering off",
            PowerAction::Reboot => "rebooting",
            PowerAction::Halt => "halting",
        }
    }
}

/// (source, target, fstype, flags, data): mounted in order when `target` is not a mount point yet.
const MOUNTS: &[(&str, &str, &str, u32, &str)] = &[
    ("proc", "/proc", "proc", NOSUID | NODEV | NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID | NODEV | NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", NOSUID, "mode=0755"),
    ("devpts", "/dev/pts", "devpts", NOSUID | NOEXEC, "gid=5,mode=0620,ptmxmode=0666"),
    ("tmpfs", "/dev/shm", "tmpfs", NOSUID | NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", NOSUID | NODEV, "mode=0755"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", NOSUID | NODEV | NOEXEC, ""),
];
const NOSUID: u32 = 1 << 0;
const NODEV: u32 = 1 << 1;
const NOEXEC: u32 = 1 << 2;

/// Start-up duties; every failure is logged and skipped (a missing /sys must not stop init).
pub fn setup() {
    for &(source, target, fstype, flags, data) in MOUNTS {
        mount_if_needed(source, target, fstype, flags, data);
    }
    open_console();
    set_hostname();
    if std::env::var_os("PATH").is_none() {
        set_default_path();
    }
    if let Err(e) = crate::sys::loopback_up() {
        log::debug!("cannot bring up lo: {e}");
    }
}

fn mount_if_needed(source: &str, target: &str, fstype: &str, flags: u32, data: &str) {
    if is_mount_point(target) {
        return;
    }
    if let Err(e) = rustix::fs::mkdir(target, Mode::from_raw_mode(0o755))
        && e != rustix::io::Errno::EXIST
    {
        log::warn!("cannot create {target}: {e}");
        return;
    }
    let mut f = MountFlags::empty();
    if flags & NOSUID != 0 {
        f |= MountFlags::NOSUID;
    }
    if flags & NODEV != 0 {
        f |= MountFlags::NODEV;
    }
    if flags & NOEXEC != 0 {
        f |= MountFlags::NOEXEC;
    }
    let data = std::ffi::CString::new(data).ok().filter(|d| !d.is_empty());
    match rustix::mount::mount(source, target, fstype, f, data.as_deref()) {
        Ok(()) => log::debug!("mounted {fstype} on {target}"),
        Err(e) => log::warn!("cannot mount {fstype} on {target}: {e}"),
    }
}

/// A mount point has another device than its parent (or is `/`).
fn is_mount_point(path: &str) -> bool {
    let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
    match (rustix::fs::stat(path), rustix::fs::stat(parent)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}

/// stdin/stdout/stderr on /dev/console, non-blocking (a serial console drains ~11 KB/s: a full
/// console must drop init's and services' lines, never stall the loop).
fn open_console() {
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK;
    match rustix::fs::open("/dev/console", flags, Mode::empty()) {
        Ok(fd) => {
            for target in 0..3 {
                let _ = crate::sys::dup2_raw(&fd, target);
            }
        }
        Err(e) => log::warn!("cannot open /dev/console: {e}"),
    }
}

fn set_hostname() {
    let Ok(name) = std::fs::read_to_string("/etc/hostname") else { return };
    let name = name.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    if let Some(name) = name
        && let Err(e) = rustix::system::sethostname(name.as_bytes())
    {
        log::warn!("cannot set the hostname to {name:?}: {e}");
    }
}

fn set_default_path() {
    crate::sys::setenv_single_threaded(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
}

/// The end of a system run: sync, unmount what can be unmounted (remount the rest read-only), then
/// `reboot(2)`. Never returns.
pub fn power(action: PowerAction) -> ! {
    log::info!("{}", action.verb());
    rustix::fs::sync();
    unmount_all();
    rustix::fs::sync();
    loop {
        let res = match action {
            PowerAction::PowerOff => crate::sys::reboot_power_off(),
            PowerAction::Reboot => crate::sys::reboot_restart(),
            PowerAction::Halt => crate::sys::reboot_halt(),
        };
        if let Err(e) = res {
            log::error!("reboot(2): {e}");
        }
        // PID 1 must never return: the kernel would panic.
        crate::sys::pause();
    }
}

/// Unmounts every mount in /proc/self/mounts, deepest first; what stays busy is remounted read-only.
fn unmount_all() {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else { return };
    let mut targets: Vec<String> =
        text.lines().filter_map(|l| l.split_whitespace().nth(1)).map(|t| t.replace("\\040", " ")).collect();
    targets.reverse();
    for t in targets {
        if matches!(t.as_str(), "/" | "/proc" | "/sys" | "/dev") {
            continue;
        }
        if rustix::mount::unmount(t.as_str(), UnmountFlags::empty()).is_err() {
            let _ = rustix::mount::mount_remount(t.as_str(), MountFlags::RDONLY, "");
        }
    }
    let _ = rustix::mount::mount_remount("/", MountFlags::RDONLY, "");
}
