//! The `warroom` binary: a thin shell around `warroom::cli`.

fn main() -> std::process::ExitCode {
    warroom::cli::run()
}
