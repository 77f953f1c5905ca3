//! Pure work spread over the cores.

/// `f` over `items` on every available core, results in input order. The calling thread
/// takes the first share: a short command starts one thread fewer per call.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < 16 {
        return items.iter().map(f).collect();
    }
    let mut chunks = items.chunks(items.len().div_ceil(threads));
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .map(|c| scope.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        let mut results: Vec<R> = first.iter().map(&f).collect();
        for h in handles {
            results.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        results
    })
}
