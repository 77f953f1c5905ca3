/// mimalloc instead of glibc's allocator: it gives freed memory back to the system
/// (glibc kept about 30 MB of freed memory in its arenas after a large pass), and it
/// allocates faster for a YAML parser and planner that allocate per value.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quorate::cli::main()
}
