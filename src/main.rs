//! `init`: parse the command line, then run the mode it names.
fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
