// mimalloc instead of glibc's malloc: fewer instructions per proxied request (see
// docs/benchmarks.md, "Gateway: load against ..."). The library leaves the choice to its users.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis_gateway::cli::main()
}
