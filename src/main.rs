//! The `otad` binary: everything is in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    otad::cli::main()
}
