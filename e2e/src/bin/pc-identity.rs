fn main() -> std::process::ExitCode {
    portcullis_identity::cli::main()
}
