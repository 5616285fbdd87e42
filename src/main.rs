fn main() -> std::process::ExitCode {
    ssal::cli::main()
}
