//! Work spread across cores when there is enough of it to pay for the hand-off.
//!
//! Results keep the order of the input, so a parallel pass gives exactly what a sequential
//! one would: the engine stays deterministic whatever the number of threads.

use rayon::prelude::*;

/// Below this many items a pass stays on the calling thread: waking the pool costs more
/// than a small cluster's whole pass.
const MIN_PARALLEL: usize = 1024;

/// `items.iter().map(f).collect()`, on every core for big inputs.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    if items.len() < MIN_PARALLEL {
        items.iter().map(f).collect()
    } else {
        items
            .par_iter()
            .with_min_len(MIN_PARALLEL / 2)
            .map(f)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_is_kept_for_small_and_big_inputs() {
        for n in [3, 5000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                super::map(&items, |i| i * 2),
                (0..n).map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }
}
