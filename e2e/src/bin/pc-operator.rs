fn main() -> std::process::ExitCode {
    portcullis_operator::cli::main()
}
