// mimalloc instead of glibc's malloc: a whoami allocates a few hundred small objects (rows,
// JSON values, the response), and glibc's malloc/free was about a sixth of identity's CPU per
// whoami (docs/benchmarks.md, "Identity"). The library leaves the choice to its users.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis_identity::cli::main()
}
