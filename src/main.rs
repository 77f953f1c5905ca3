// mimalloc: loading a large spec set allocates and frees millions of small YAML nodes,
// which glibc's allocator serves markedly slower (docs/planning.md has the figures).
// Without transparent huge pages (`no_thp`): with them, a small `quorate plan` held about
// twice glibc's resident memory.
#[global_allocator]
static ALLOCATOR: quorate::alloc::Mimalloc = quorate::alloc::Mimalloc;

fn main() -> std::process::ExitCode {
    quorate::cli::main()
}
