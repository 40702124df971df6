//! The command line: lexopt → `Command`. Pure (the environment is passed in), so it is tested
//! without a process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    SampleService,
    /// `--check PATH... [--root DIR]`
    Check {
        paths: Vec<PathBuf>,
        root: Option<PathBuf>,
    },
    /// Supervise (services, tini mode, or both).
    Run(Run),
}

/// Which mode the user forced; `Auto` detects (design §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    Auto,
    Container,
    System,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Config directories (or files); empty = none given.
    pub config: Vec<PathBuf>,
    /// `-- CMD ARGS...`: tini mode's main command.
    pub command: Vec<OsString>,
    pub socket: Option<PathBuf>,
    pub stop_timeout: Duration,
    pub log_level: Option<String>,
    /// `--log-timestamps`: stamp init's own lines (default: only as a system's PID 1).
    pub log_timestamps: bool,
    pub mode: ModeChoice,
    /// tini `-g`: signals go to the child's process group.
    pub group: bool,
    /// tini `-e CODE`: exit codes remapped to 0.
    pub remap_exit: Vec<i32>,
    /// tini `-p SIG`: parent-death signal.
    pub pdeathsig: Option<i32>,
    /// Words the parser did not understand and skipped (only when PID 1: kernel command line).
    pub ignored: Vec<String>,
}

impl Default for Run {
    fn default() -> Run {
        Run {
            config: Vec::new(),
            command: Vec::new(),
            socket: None,
            stop_timeout: Duration::from_secs(9),
            log_level: None,
            log_timestamps: false,
            mode: ModeChoice::Auto,
            group: false,
            remap_exit: Vec::new(),
            pdeathsig: None,
            ignored: Vec::new(),
        }
    }
}

pub const USAGE: &str = "\
usage: init [OPTIONS] [-- COMMAND [ARGS...]]
       init --check PATH... [--root DIR]
       init --sample-service | --help | --version

Supervises the services described by one TOML file each (Horust and zinit files load as they are),
or runs COMMAND as its only child (tini mode), or both.

options:
  -c, --config DIR        service directory or file (repeatable; default $INIT_CONFIG_DIR or /etc/init;
                          Horust's --services-path is accepted too)
      --socket PATH       control socket (default $INIT_SOCKET or /run/init.sock)
      --stop-timeout D    clip the whole shutdown to D (default 9s: under Docker's 10 s)
      --log-level LEVEL   error|warn|info|debug|trace (default $INIT_LOG_LEVEL or info)
      --log-timestamps    stamp init's own lines with the uptime (default: only as a system's PID 1)
      --container         behave as a container's PID 1 (also INIT_CONTAINER=1)
      --system            behave as a system's PID 1 (mounts, power off at the end)
      --check PATH...     validate service files and directories, start nothing
      --root DIR          with --check: read users and groups from DIR/etc/passwd and DIR/etc/group
      --sample-service    print an annotated service file with every key and its default
  -h, --help              this text
  -V, --version           version and commit
tini mode (accepted as tini spells them):
  -g                      send signals to COMMAND's process group
  -s, -w, -l              (accepted; init is a subreaper whenever it is not PID 1)
  -e CODE                 exit with 0 when COMMAND exits with CODE (repeatable)
  -p SIG                  parent-death signal (SIGKILL, SIGTERM, ...)
  -v                      (accepted; use --log-level)
";

/// A usage error: one line, the caller adds the usage hint and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `args` (without argv[0]). `env` gives the variables that stand in for flags.
/// `pid1`: stray words and `key=value` (a kernel command line) are skipped, never an error.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    pid1: bool,
) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    // As PID 1 a free word is a kernel command-line word unless `--` announced a command (the
    // kernel passes the words after its own `--` without one; a container writes `/init -- app`).
    let dashdash = args.iter().any(|a| a == "--");
    let mut p = lexopt::Parser::from_args(args);
    let mut run = Run::default();
    let mut check: Option<Vec<PathBuf>> = None;
    let mut root: Option<PathBuf> = None;
    // As PID 1 (kernel command line) an error skips the word; otherwise it is a usage error.
    macro_rules! tryv {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) if pid1 => {
                    run.ignored.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(UsageError(e.to_string())),
            }
        };
    }
    fn custom(msg: String) -> lexopt::Error {
        lexopt::Error::Custom(msg.into())
    }
    loop {
        let Some(arg) = tryv!(p.next()) else { break };
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("sample-service") => return Ok(Command::SampleService),
            Short('c') | Long("config") | Long("services-path") | Long("config-dir") => {
                run.config.push(tryv!(p.value()).into());
            }
            Long("check") => {
                let values: Vec<OsString> = tryv!(p.values()).collect();
                check.get_or_insert_with(Vec::new).extend(values.into_iter().map(PathBuf::from));
            }
            Long("root") => root = Some(tryv!(p.value()).into()),
            Long("socket") => run.socket = Some(tryv!(p.value()).into()),
            Long("stop-timeout") => {
                let v = tryv!(tryv!(p.value()).string());
                run.stop_timeout = tryv!(
                    parse_duration(&v)
                        .ok_or_else(|| custom(format!("--stop-timeout: not a duration: {v:?}")))
                );
            }
            Long("log-level") => run.log_level = Some(tryv!(tryv!(p.value()).string())),
            Long("log-timestamps") => run.log_timestamps = true,
            Long("container") => run.mode = ModeChoice::Container,
            Long("system") => run.mode = ModeChoice::System,
            Short('g') => run.group = true,
            // tini's -s (subreaper: always, when not PID 1), -v (verbosity: --log-level), -w
            // (warn on reaping zombies: debug log), -l (licence) are accepted and change nothing.
            Short('s') | Short('v') | Short('w') | Short('l') => {}
            Short('e') => {
                let v = tryv!(tryv!(p.value()).string());
                let code = v.parse::<i32>().ok().filter(|c| (0..=255).contains(c));
                run.remap_exit
                    .push(tryv!(code.ok_or_else(|| custom(format!("-e: not an exit code (0-255): {v:?}")))));
            }
            Short('p') => {
                let v = tryv!(tryv!(p.value()).string());
                let sig = crate::signals::parse_signal(&v);
                run.pdeathsig = Some(tryv!(sig.ok_or_else(|| custom(format!("-p: not a signal: {v:?}")))));
            }
            Value(v) if check.is_some() => check.get_or_insert_with(Vec::new).push(v.into()),
            Value(v) if pid1 && !dashdash => run.ignored.push(v.to_string_lossy().into_owned()),
            Value(v) => {
                // The first free word (after `--`, or without it) starts tini mode's command.
                run.command.push(v);
                run.command.extend(tryv!(p.raw_args()));
            }
            other => {
                let e = other.unexpected();
                tryv!(Err::<(), _>(e));
            }
        }
    }
    if let Some(paths) = check {
        if paths.is_empty() {
            return Err(UsageError("--check needs at least one file or directory".into()));
        }
        return Ok(Command::Check { paths, root });
    }
    if root.is_some() {
        return Err(UsageError("--root is only meaningful with --check".into()));
    }
    if run.config.is_empty()
        && run.command.is_empty()
        && let Some(dir) = env("INIT_CONFIG_DIR").or_else(|| env("ZINIT_CONFIG_DIR"))
    {
        run.config.push(dir.into());
    }
    if run.socket.is_none() {
        run.socket = env("INIT_SOCKET").or_else(|| env("ZINIT_SOCKET")).map(PathBuf::from);
    }
    if run.log_level.is_none() {
        run.log_level = env("INIT_LOG_LEVEL").or_else(|| env("ZINIT_LOG_LEVEL"));
    }
    // tini's environment: TINI_KILL_PROCESS_GROUP is its -g (TINI_SUBREAPER and TINI_VERBOSITY
    // need nothing: ankh is a subreaper whenever it is not PID 1).
    if env("TINI_KILL_PROCESS_GROUP").is_some_and(|v| !v.is_empty() && v != "0") {
        run.group = true;
    }
    if run.mode == ModeChoice::Auto
        && env("INIT_CONTAINER").or_else(|| env("ZINIT_CONTAINER")).is_some_and(|v| v != "0" && !v.is_empty())
    {
        run.mode = ModeChoice::Container;
    }
    Ok(Command::Run(run))
}

/// A duration as service files spell them (`validate::parse_duration`); None when malformed.
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::validate::parse_duration(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }
    fn no_env(_: &str) -> Option<String> {
        None
    }
    fn run(a: &[&str]) -> Run {
        match parse(args(a), &no_env, false) {
            Ok(Command::Run(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tini_mode_takes_everything_after_the_double_dash() {
        let r = run(&["-g", "-e", "143", "--", "app", "--flag", "-x"]);
        assert_eq!(r.command, args(&["app", "--flag", "-x"]));
        assert!(r.group);
        assert_eq!(r.remap_exit, vec![143]);
    }

    #[test]
    fn config_dirs_repeat_and_horust_spelling_works() {
        let r = run(&["--config", "a", "--services-path", "b", "-c", "c"]);
        assert_eq!(r.config, vec![PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c")]);
    }

    #[test]
    fn check_takes_many_paths_and_root() {
        let c = parse(args(&["--check", "a", "b.toml", "--root", "/img"]), &no_env, false).unwrap();
        assert_eq!(c, Command::Check { paths: vec!["a".into(), "b.toml".into()], root: Some("/img".into()) });
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let e = parse(args(&["--bogus"]), &no_env, false).unwrap_err();
        assert!(e.0.contains("--bogus"), "{e}");
    }

    #[test]
    fn kernel_command_line_words_are_skipped_as_pid1() {
        let c = parse(args(&["single", "--bogus", "quiet"]), &no_env, true).unwrap();
        let Command::Run(r) = c else { panic!() };
        assert!(r.command.is_empty());
        assert_eq!(r.ignored.len(), 3);
    }

    #[test]
    fn container_pid1_runs_the_command_after_double_dash() {
        let Command::Run(r) = parse(args(&["--", "app", "x"]), &no_env, true).unwrap() else { panic!() };
        assert_eq!(r.command, args(&["app", "x"]));
        assert!(r.ignored.is_empty());
    }

    #[test]
    fn tini_flags_and_environment_are_accepted() {
        let env = |k: &str| (k == "TINI_KILL_PROCESS_GROUP").then(|| "1".to_string());
        let Command::Run(r) = parse(args(&["-s", "-w", "-v", "--", "app"]), &env, false).unwrap() else {
            panic!()
        };
        assert!(r.group);
        assert_eq!(r.command, args(&["app"]));
    }

    #[test]
    fn environment_stands_in_for_flags() {
        let env = |k: &str| match k {
            "INIT_CONFIG_DIR" => Some("/srv/init".to_string()),
            "INIT_SOCKET" => Some("/tmp/s".to_string()),
            "INIT_CONTAINER" => Some("1".to_string()),
            _ => None,
        };
        let Command::Run(r) = parse(args(&[]), &env, false).unwrap() else { panic!() };
        assert_eq!(r.config, vec![PathBuf::from("/srv/init")]);
        assert_eq!(r.socket, Some(PathBuf::from("/tmp/s")));
        assert_eq!(r.mode, ModeChoice::Container);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500millis"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 parsecs"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("101d"), None);
    }
}
