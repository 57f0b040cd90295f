//! The `otad` binary: everything is in the library; see `cli/mod.rs`.

fn main() -> std::process::ExitCode {
    otad::cli::main()
}
