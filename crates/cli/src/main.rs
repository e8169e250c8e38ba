//! The `loupe` binary: everything it does is in the `loupe_cli` library beside it, so the
//! end-to-end tests can drive the same command layer in-process.

fn main() -> std::process::ExitCode {
    loupe_cli::main()
}
