fn main() -> std::process::ExitCode {
    portcullis_gateway::cli::main()
}
