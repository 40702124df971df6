//! `init --check` and `load` through the library: the seed examples pass unchanged, and every bad
//! input gets its exact message (golden tests), never a panic.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ankh::config::{self, LoadOptions, SAMPLE_SERVICE, Severity};
use ankh::spec::Kind;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

/// Run `check` on paths; returns (exit code, output).
fn check(paths: &[PathBuf], root: Option<&Path>) -> (i32, String) {
    let mut out = Vec::new();
    let code = config::check(paths, root, &mut out);
    (code, String::from_utf8(out).unwrap())
}

/// A scratch directory, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("ankh-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn file(&self, name: &str, body: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// `check` on these paths (the whole directory when empty), with the directory prefix
    /// removed from the output.
    fn check(&self, paths: &[&str], root: Option<&Path>) -> (i32, String) {
        let paths: Vec<PathBuf> = if paths.is_empty() {
            vec![self.0.clone()]
        } else {
            paths.iter().map(|p| self.path(p)).collect()
        };
        let (code, out) = check(&paths, root);
        (code, out.replace(&format!("{}/", self.0.display()), ""))
    }
    fn load(&self) -> config::Loaded {
        let opts = LoadOptions { check: false, root: None, env: Vec::new() };
        config::load(std::slice::from_ref(&self.0), &opts)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn golden(name: &str, body: &str, want: &str) {
    let t = Tmp::new(name);
    t.file(&format!("{name}.toml"), body);
    let (code, out) = t.check(&[], None);
    assert_eq!(out, want, "\n--- got:\n{out}--- want:\n{want}");
    let summary = want.lines().last().unwrap_or("");
    assert_eq!(code, i32::from(summary.starts_with("error: ")));
}

// ---- the seeds ---------------------------------------------------------------------------

#[test]
fn horust_readme_examples_pass() {
    let (code, out) = check(&[data("horust")], None);
    assert_eq!(out, "ok: 5 services, 0 targets\n");
    assert_eq!(code, 0);
}

#[test]
fn zinit_readme_examples_pass() {
    let dir = data("zinit");
    let (code, out) = check(std::slice::from_ref(&dir), None);
    let out = out.replace(&format!("{}/", dir.display()), "");
    assert_eq!(
        out,
        "my-app.toml:12:10: warning: dependencies.wants: no service named \"metrics\"; ignored\n\
         my-app.toml:13:14: warning: dependencies.conflicts: no service named \"legacy-app\"; ignored\n\
         my-app.toml:26:12: warning: health.endpoint: zinit's key is \"target\"; \"endpoint\" is read as \"target\"\n\
         ok: 5 services, 1 target, 3 warnings\n"
    );
    assert_eq!(code, 0);
}

#[test]
fn sample_service_passes_check() {
    let t = Tmp::new("sample");
    t.file("sample.toml", SAMPLE_SERVICE);
    assert_eq!(t.check(&[], None), (0, "ok: 1 service, 0 targets\n".into()));
}

// ---- golden messages for bad input ---------------------------------------------------------

#[test]
fn empty_file() {
    golden("empty", "", "empty.toml: command: missing\nerror: 1 error in 1 file\n");
}

#[test]
fn enum_typo_with_hint() {
    golden(
        "typo",
        "command = \"/bin/true\"\n[restart]\nstrategy = \"alway\"\n",
        "typo.toml:3:12: restart.strategy: expected one of always, on-failure, never, found \"alway\"; did you mean \"always\"?\n\
         error: 1 error in 1 file\n",
    );
}

#[test]
fn toml_syntax_errors() {
    golden(
        "syntax",
        "command = \"/bin/true\"\nstart-delay = \n[restart\nx=1\n",
        "syntax.toml:2:15: TOML syntax: string values must be quoted, expected literal string\n\
         syntax.toml:3:9: TOML syntax: unclosed table, expected `]`\n\
         error: 2 errors in 1 file\n",
    );
}

#[test]
fn wrong_types_every_one() {
    golden(
        "types",
        "command = 5\nautostart = \"yes\"\nstart-delay = 10\nrequires = [1]\n[restart]\nattempts = -1\nbackoff = \"5 parsecs\"\n",
        "types.toml:1:11: command: expected a string or an array of strings, found integer 5\n\
         types.toml:2:13: autostart: expected true or false, found \"yes\"\n\
         types.toml:3:15: start-delay: expected a duration with a unit such as \"10s\" or \"10ms\", found integer 10\n\
         types.toml:4:13: requires: expected a string, found integer 1\n\
         types.toml:6:12: restart.attempts: -1 is out of range (0 to 4294967295)\n\
         types.toml:7:11: restart.backoff: unknown unit \"parsecs\" in duration \"5 parsecs\" (ns, us, ms, s, m, h, d, w)\n\
         error: 6 errors in 1 file\n",
    );
}

#[test]
fn unknown_tables_and_keys() {
    golden(
        "unknown",
        "comand = \"/bin/true\"\n[restrat]\nstrategy = \"never\"\n[termination]\nsignl = \"TERM\"\n",
        "unknown.toml: command: missing\n\
         unknown.toml:1:1: comand: unknown key; did you mean \"command\"?\n\
         unknown.toml:2:2: restrat: unknown table; did you mean \"restart\"?\n\
         unknown.toml:5:1: termination.signl: unknown key; did you mean \"signal\"?\n\
         error: 4 errors in 1 file\n",
    );
}

#[test]
fn endpoints_without_tls_or_dns() {
    golden(
        "endpoints",
        "command = \"/bin/true\"\n[healthiness]\nhttp-endpoint = \"https://127.0.0.1/\"\ntcp-endpoint = \"db.local:5432\"\n",
        "endpoints.toml:3:17: healthiness.http-endpoint: \"https://127.0.0.1/\": https is not supported (init has no TLS); use http:// or a tcp-endpoint\n\
         endpoints.toml:4:16: healthiness.tcp-endpoint: \"db.local:5432\": host \"db.local\" is not an IP address or localhost (names are not looked up: it would block init)\n\
         error: 2 errors in 1 file\n",
    );
}

#[test]
fn undefined_variable() {
    golden(
        "env",
        "command = \"/bin/echo ${NOPE_ANKH_TEST} ${NOPE_ANKH_TEST:-x} $$HOME $HOME\"\n",
        "env.toml:1:11: command: undefined variable ${NOPE_ANKH_TEST} (use ${NOPE_ANKH_TEST:-default}, or \"$$\" for a literal \"$\")\n\
         error: 1 error in 1 file\n",
    );
}

#[test]
fn signal_and_duration_bounds() {
    golden(
        "signal",
        "command = \"/bin/true\"\n[termination]\nsignal = \"TREM\"\nwait = \"200 days\"\n",
        "signal.toml:3:10: termination.signal: unknown signal \"TREM\" (a name such as \"TERM\" or \"SIGTERM\", or a number); did you mean \"TERM\"?\n\
         signal.toml:4:8: termination.wait: duration \"200 days\" is too long (at most 100 days)\n\
         error: 2 errors in 1 file\n",
    );
}

#[test]
fn zinit_unknown_key_is_a_warning_bad_value_an_error() {
    golden(
        "zinit",
        "[service]\nname = \"z\"\nexec = \"true\"\nbogus = 1\n[lifecycle]\nrestart = \"on_failure\"\n",
        "zinit.toml:4:1: warning: service.bogus: unknown key, ignored\n\
         zinit.toml:6:11: lifecycle.restart: expected one of always, on-failure, never, found \"on_failure\"; did you mean \"on-failure\"?\n\
         error: 1 error in 1 file, 1 warning\n",
    );
}

#[test]
fn unterminated_quote_in_command() {
    golden(
        "quote",
        "command = \"/bin/sh -c 'echo\"\n",
        "quote.toml:1:11: command: unterminated single quote\nerror: 1 error in 1 file\n",
    );
}

#[test]
fn non_utf8_bytes() {
    golden_bytes(
        "utf8",
        b"command = \"/bin/true\"\nx = \"\xc3\xa9\xff\"\n",
        "utf8.toml:2:7: not valid UTF-8 (byte 0xff)\nerror: 1 error in 1 file\n",
    );
}

#[track_caller]
fn golden_bytes(name: &str, body: &[u8], want: &str) {
    let t = Tmp::new(name);
    t.file(&format!("{name}.toml"), body);
    let (code, out) = t.check(&[], None);
    assert_eq!(out, want);
    assert_eq!(code, 1);
}

#[test]
fn file_over_one_mib() {
    let mut body = b"command = \"/bin/true\"\n".to_vec();
    body.resize((1 << 20) + 1, b'\n');
    golden_bytes(
        "big",
        &body,
        "big.toml: file is larger than 1 MiB (1048577 bytes)\nerror: 1 error in 1 file\n",
    );
}

#[test]
fn dangling_symlink() {
    let t = Tmp::new("dangling");
    std::os::unix::fs::symlink("/nonexistent/ankh/web.toml", t.path("web.toml")).unwrap();
    assert_eq!(
        t.check(&[], None),
        (
            1,
            "web.toml: dangling symbolic link (to \"/nonexistent/ankh/web.toml\")\nerror: 1 error in 1 file\n"
                .into()
        )
    );
}

#[test]
fn unreadable_file() {
    let t = Tmp::new("unreadable");
    let p = t.file("web.toml", "command = \"/bin/true\"\n");
    // A directory named *.toml cannot be read as a file, whoever we are.
    std::fs::create_dir(t.path("dir.toml")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (code, out) = t.check(&[], None);
    assert_eq!(code, 1);
    if rustix::process::geteuid().is_root() {
        // root reads mode 000 files; only the directory is unreadable.
        assert_eq!(out, "dir.toml: not a regular file\nerror: 1 error in 1 file\n");
    } else {
        assert_eq!(
            out,
            "dir.toml: not a regular file\nweb.toml: cannot read: Permission denied\nerror: 2 errors in 2 files\n"
        );
    }
}

#[test]
fn missing_path() {
    let t = Tmp::new("missing");
    assert_eq!(
        t.check(&["nope"], None),
        (1, "nope: No such file or directory\nerror: 1 error in 1 file\n".into())
    );
}

#[test]
fn empty_directory() {
    let t = Tmp::new("emptydir");
    let (code, out) = check(std::slice::from_ref(&t.0), None);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!("{}: no service files (*.toml) in this directory\nerror: 1 error in 1 file\n", t.0.display())
    );
}

#[test]
fn non_toml_entries_are_ignored() {
    let t = Tmp::new("nontoml");
    t.file("web.toml", "command = \"/bin/true\"\n");
    t.file("README.md", "not toml at all [[[");
    t.file("web.toml.bak", "garbage = ");
    t.file("sub/x.toml", "garbage = ");
    assert_eq!(t.check(&[], None), (0, "ok: 1 service, 0 targets\n".into()));
}

#[test]
fn duplicate_names_across_check_paths() {
    let t = Tmp::new("dup");
    t.file("a/web.toml", "command = \"/bin/true\"\n");
    t.file("b/web.toml", "command = \"/bin/false\"\n");
    t.file("b/other.toml", "name = \"web\"\ncommand = \"/bin/false\"\n");
    assert_eq!(
        t.check(&["a", "b"], None),
        (
            1,
            "a/web.toml: name: service \"web\" is also defined in b/other.toml, b/web.toml\n\
             b/other.toml: name: service \"web\" is also defined in a/web.toml, b/web.toml\n\
             b/web.toml: name: service \"web\" is also defined in a/web.toml, b/other.toml\n\
             error: 3 errors in 3 files\n"
                .into()
        )
    );
}

#[test]
fn cycle_is_an_error_with_its_path() {
    let t = Tmp::new("cycle");
    t.file("a.toml", "command = \"/bin/true\"\nrequires = [\"b\"]\n");
    t.file("b.toml", "command = \"/bin/true\"\nstart-after = [\"c.toml\"]\n");
    t.file("c.toml", "command = \"/bin/true\"\nafter = [\"a\"]\n");
    t.file("d.toml", "command = \"/bin/true\"\nrequires = [\"d\"]\n");
    t.file("ok.toml", "command = \"/bin/true\"\n");
    assert_eq!(
        t.check(&[], None),
        (
            1,
            "a.toml:2:13: requires: cycle: a -> b -> c -> a\n\
             d.toml:2:13: requires: cycle: d -> d\n\
             error: 2 errors in 2 files\n"
                .into()
        )
    );
    let l = t.load();
    let names: Vec<&str> = l.config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
}

#[test]
fn missing_references() {
    let t = Tmp::new("refs");
    t.file(
        "web.toml",
        "command = \"/bin/true\"\nrequires = [\"db\"]\nwants = [\"metrics\"]\nafter = [\"log\"]\nconflicts = [\"old\"]\n",
    );
    t.file(
        "job.toml",
        "command = \"/bin/true\"\nstart-after = [\"migrate.toml\"]\n[termination]\ndie-if-failed = [\"x\"]\n",
    );
    t.file("ok.toml", "command = \"/bin/true\"\nwants = [\"web\"]\n");
    assert_eq!(
        t.check(&[], None),
        (
            1,
            "job.toml:2:16: start-after: no service named \"migrate\"\n\
             job.toml:4:18: termination.die-if-failed: no service named \"x\"\n\
             ok.toml:2:10: warning: wants: service \"web\" has errors and is not loaded; ignored\n\
             web.toml:2:13: requires: no service named \"db\"\n\
             web.toml:3:10: warning: wants: no service named \"metrics\"; ignored\n\
             web.toml:4:10: warning: after: no service named \"log\"; ignored\n\
             web.toml:5:14: warning: conflicts: no service named \"old\"; ignored\n\
             error: 3 errors in 2 files, 4 warnings\n"
                .into()
        )
    );
}

#[test]
fn user_names_warn_in_check_and_fail_with_root() {
    let t = Tmp::new("users");
    t.file("svc/web.toml", "command = \"/bin/true\"\nuser = \"no-such-user-ankh\"\n");
    assert_eq!(
        t.check(&["svc"], None),
        (
            0,
            "svc/web.toml:2:8: warning: user: no user \"no-such-user-ankh\" in /etc/passwd\n\
             ok: 1 service, 0 targets, 1 warning\n"
                .into()
        )
    );
    t.file("root/etc/passwd", "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/srv:/bin/false\n");
    t.file("root/etc/group", "www:x:33:\n");
    let root = t.path("root");
    assert_eq!(
        t.check(&["svc"], Some(&root)),
        (
            1,
            "svc/web.toml:2:8: user: no user \"no-such-user-ankh\" in root/etc/passwd\n\
             error: 1 error in 1 file\n"
                .into()
        )
    );
    t.file("svc/web.toml", "command = \"/bin/true\"\nuser = \"www\"\n");
    assert_eq!(t.check(&["svc"], Some(&root)), (0, "ok: 1 service, 0 targets\n".into()));
}

// ---- run-time semantics of load ----------------------------------------------------------------

#[test]
fn a_bad_file_refuses_only_its_service_and_its_dependents() {
    let t = Tmp::new("runtime");
    t.file("bad.toml", "command = \"/bin/true\"\n[restart]\nstrategy = \"alway\"\n");
    t.file("dep.toml", "command = \"/bin/true\"\nrequires = [\"bad\"]\n");
    t.file("dep2.toml", "command = \"/bin/true\"\nstart-after = [\"dep\"]\n");
    t.file("soft.toml", "command = \"/bin/true\"\nwants = [\"bad\"]\n");
    t.file("zz.toml", "command = \"/bin/true\"\n");
    t.file("grp.toml", "[target]\nname = \"grp\"\n[dependencies]\nrequires = [\"zz\"]\n");
    let l = t.load();
    let names: Vec<&str> = l.config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["grp", "soft", "zz"]);
    assert_eq!(l.targets, 1);
    assert_eq!(l.config.services[0].kind, Kind::Target);
    assert_eq!(l.errors, 3);
    let msgs: Vec<String> =
        l.diagnostics.iter().map(|d| d.to_string().replace(&format!("{}/", t.0.display()), "")).collect();
    assert_eq!(
        msgs,
        [
            "bad.toml:3:12: restart.strategy: expected one of always, on-failure, never, found \"alway\"; did you mean \"always\"?",
            "dep.toml:2:13: requires: service \"bad\" has errors and is not loaded",
            "dep2.toml:2:16: start-after: service \"dep\" has errors and is not loaded",
            "soft.toml:2:10: warning: wants: service \"bad\" has errors and is not loaded; ignored",
        ]
    );
    assert_eq!(l.diagnostics[3].severity, Severity::Warning);
}

#[test]
fn services_are_sorted_by_name_and_names_come_from_the_file() {
    let t = Tmp::new("names");
    t.file("b.toml", "command = \"/bin/true\"\n");
    t.file("a.toml", "name = \"zed.toml\"\ncommand = \"/bin/true\"\n");
    t.file("z.toml", "[service]\nname = \"middle\"\nexec = \"true\"\n");
    let l = t.load();
    assert_eq!(l.errors, 0);
    let names: Vec<&str> = l.config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["b", "middle", "zed"]);
}

#[test]
fn a_single_file_path_is_loaded_whatever_its_extension() {
    let t = Tmp::new("single");
    let p = t.file("web.conf", "command = \"/bin/true\"\n");
    let l = config::load(&[p], &LoadOptions::default());
    assert_eq!(l.errors, 0);
    assert_eq!(l.config.services[0].name, "web.conf");
}
