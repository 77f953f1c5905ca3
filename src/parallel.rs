//! Pure work spread over the cores.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over `items` on every available core, results in input order. The calling thread
/// works too (a short command starts one thread fewer per call), and every thread takes
/// the next item left until none is: a new thread starts late and is slower at first (its
/// heap's pages are new to the kernel), so halves fixed in advance kept the calling thread
/// waiting for it.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < 16 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for h in handles {
            done.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn results_come_in_input_order_whichever_thread_took_an_item() {
        let items: Vec<u64> = (0..5_000).collect();
        // Uneven work, so that the threads take items out of turn.
        let slow = |x: &u64| {
            let spin = if x.is_multiple_of(7) { 2_000 } else { 1 };
            std::hint::black_box((0..spin).sum::<u64>());
            x * 2
        };
        let expected: Vec<u64> = items.iter().map(|x| x * 2).collect();
        assert_eq!(map(&items, slow), expected);
        assert_eq!(map(&items[..3], |x| x + 1), [1, 2, 3]);
    }
}
