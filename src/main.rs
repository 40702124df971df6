//! `init`: a list of named steps, and the top-level error mapped to an exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use ankh::cli::{self, Command, ModeChoice, Run};
use ankh::supervisor::Mode;
use ankh::{config, control, ctl, logger, notify, pid1, reactor, signals, spec, sys};

fn main() -> ExitCode {
    let pid1 = rustix::process::getpid().is_init();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    // The client verbs (`init status`, `init logs -f`, `init notify`) are ordinary programs: they
    // keep default signal handling so Ctrl+C ends them.
    if !pid1 && args.first().is_some_and(|a| a == "notify") {
        return exit(notify::notify_main(args.into_iter().skip(1)));
    }
    if !pid1 && ctl::is_client(&args) {
        // `shutdown`, `poweroff`, `reboot` from inside the container (docker exec, a service):
        // the orphan sweep that ends the shutdown SIGTERMs this client too. It asked for it;
        // it should still exit 0 with init's answer, not 143.
        if args.iter().any(|a| a == "shutdown" || a == "poweroff" || a == "reboot") {
            let _ = sys::set_disposition(15, sys::Disposition::Ignore);
        }
        return exit(ctl::run(args, &env));
    }
    // Before anything else that supervises: no signal may arrive as an asynchronous handler, and
    // SIGCHLD must not be inherited as SIG_IGN (the kernel would auto-reap; codes would be lost).
    let inherited = signals::block_all().unwrap_or_default();
    let command = match cli::parse(args, &env, pid1) {
        Ok(c) => c,
        Err(e) => {
            sys::write_all(2, format!("init: {e}\n{}", "try `init --help`\n").as_bytes());
            return exit(2);
        }
    };
    match command {
        Command::Help => {
            sys::write_all(1, cli::USAGE.as_bytes());
            sys::write_all(1, b"\n");
            sys::write_all(1, ctl::USAGE.as_bytes());
            sys::write_all(1, b"\n  notify [--ready] [--status=TEXT] [--stopping]   (from a service) sd_notify through $NOTIFY_SOCKET\n");
            exit(0)
        }
        Command::Version => {
            let v = format!("init (ankh) {} {}\n", env!("CARGO_PKG_VERSION"), env!("ANKH_GIT"));
            sys::write_all(1, v.as_bytes());
            exit(0)
        }
        Command::SampleService => {
            sys::write_all(1, config::SAMPLE_SERVICE.as_bytes());
            exit(0)
        }
        Command::Check { paths, root } => {
            let mut out = Vec::new();
            let code = config::check(&paths, root.as_deref(), &mut out);
            sys::write_all(1, &out);
            exit(code)
        }
        Command::Run(run) => supervise(run, pid1, inherited),
    }
}

/// Supervise: detect the mode, load the services, run the loop, exit (or power off) at the end.
fn supervise(run: Run, pid1: bool, inherited: signals::Inherited) -> ExitCode {
    let level = run.log_level.as_deref().and_then(logger::parse_level).unwrap_or(log::LevelFilter::Info);
    logger::init(level, run.log_timestamps);
    for word in &run.ignored {
        log::warn!("ignored on the kernel command line: {word}");
    }
    let mode = detect_mode(run.mode, pid1);
    if mode == Mode::System {
        logger::set_timestamps(true);
    }
    if let Some(sig) = run.pdeathsig
        && let Err(e) = sys::set_parent_death_signal(sig)
    {
        log::warn!("-p: cannot set the parent-death signal: {e}");
    }
    if mode == Mode::System {
        pid1::setup();
    }
    if !pid1 && let Err(e) = sys::set_child_subreaper() {
        log::warn!("cannot become a child subreaper ({e}): orphans of services will not be reaped");
    }
    let nofile = sys::raise_nofile();

    if run.config.is_empty() && !run.command.is_empty() {
        let code = reactor::run_tini(run.command, run.group, &run.remap_exit, inherited);
        return finish(mode, reactor::Outcome { code, power: pid1::PowerAction::PowerOff });
    }

    let dirs =
        if run.config.is_empty() { vec![std::path::PathBuf::from("/etc/init")] } else { run.config.clone() };
    let opts = config::LoadOptions { check: false, root: None, env: std::env::vars().collect() };
    let loaded = config::load(&dirs, &opts);
    for d in &loaded.diagnostics {
        match d.severity {
            config::Severity::Error => log::error!("{d}"),
            config::Severity::Warning => log::warn!("{d}"),
        }
    }
    let mut config = loaded.config;
    let mut main = None;
    let mut extra = Vec::new();
    if !run.command.is_empty() {
        let name = add_main_command(&mut config, &run.command);
        extra.extend(config.index_of(&name).and_then(|i| config.services.get(i)).cloned());
        main = Some(name);
    }
    // As a system's PID 1 an empty set is no reason to stop: the loop waits for a signal
    // (Ctrl-Alt-Del, SIGTERM) and then powers off.
    if config.services.is_empty() && mode != Mode::System {
        log::error!("no service could be loaded from {}", show_dirs(&dirs));
        return finish(mode, reactor::Outcome { code: 3, power: pid1::PowerAction::PowerOff });
    }
    let opts = reactor::Options {
        mode,
        stop_timeout: run.stop_timeout,
        main,
        remap_exit: run.remap_exit,
        env: std::env::vars_os().collect(),
        nofile,
        socket: Some(control::socket_path(run.socket.as_deref(), &|k| std::env::var(k).ok(), sys::getuid())),
        config_dirs: dirs,
        extra,
    };
    let outcome = match reactor::Reactor::new(config, opts) {
        Ok(r) => r.run(),
        Err(e) => {
            log::error!("cannot set up the event loop: {e}");
            if mode == Mode::System {
                // Nothing was started. Returning would panic the kernel, and powering off would
                // hide the message: stay, so the console shows why.
                log::error!("init cannot supervise; waiting (the console shows the error above)");
                loop {
                    sys::pause();
                }
            }
            reactor::Outcome { code: 1, power: pid1::PowerAction::PowerOff }
        }
    };
    finish(mode, outcome)
}

/// `--config DIR -- CMD`: CMD becomes a service with init's own stdio.
fn add_main_command(config: &mut spec::Config, command: &[OsString]) -> String {
    let argv: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let base = argv.first().and_then(|a| a.rsplit('/').next()).unwrap_or("main").to_string();
    let mut name = base.clone();
    let mut n = 1;
    while config.index_of(&name).is_some() {
        n += 1;
        name = format!("{base}-{n}");
    }
    let mut s = spec::ServiceSpec::new(&name, argv);
    s.stdout = spec::Output::Stdout;
    s.stderr = spec::Output::Stderr;
    s.env.keep_env = true;
    config.services.push(s);
    config.services.sort_by(|a, b| a.name.cmp(&b.name));
    name
}

fn show_dirs(dirs: &[std::path::PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Design §6: PID 1 on a system only when reboot(CAD_OFF) succeeds (it fails in every container).
fn detect_mode(choice: ModeChoice, pid1: bool) -> Mode {
    match choice {
        ModeChoice::Container => Mode::Container,
        ModeChoice::System if pid1 => Mode::System,
        ModeChoice::System => {
            log::warn!("--system ignored: init is not pid 1");
            Mode::Standalone
        }
        ModeChoice::Auto if !pid1 => Mode::Standalone,
        ModeChoice::Auto => {
            if sys::reboot_cad_off().is_ok() {
                Mode::System
            } else {
                Mode::Container
            }
        }
    }
}

/// Container and standalone: exit with the code. System PID 1: never exit; power off.
fn finish(mode: Mode, outcome: reactor::Outcome) -> ExitCode {
    if mode == Mode::System {
        pid1::power(outcome.power);
    }
    exit(outcome.code)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}
