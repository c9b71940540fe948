//! Bounded parallel work for the lab: a closure over a list of items on a
//! few threads, results in the order of the items. Setting up, polling and
//! tearing down hundreds of hosts one after the other is slow; all at once
//! would start hundreds of processes together on a small machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many threads the lab uses for work over its hosts.
pub const WORKERS: usize = 8;

/// Runs `f` on every item with at most `workers` threads at a time and
/// returns the results in the order of `items`. A panic in `f` is passed on
/// once every thread has finished.
pub fn map<T, R, F>(items: &[T], workers: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    if items.len() <= 1 || workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let panicked = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(items.len()))
            .map(|_| {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(k) else { return };
                    let r = f(item);
                    out.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(r);
                })
            })
            .collect();
        // Joined by hand, so that the first panic's own message goes on.
        let errs: Vec<_> = handles.into_iter().filter_map(|h| h.join().err()).collect();
        errs.into_iter().next()
    });
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    out.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().map(|r| r.expect("every item was run")).collect()
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn results_keep_the_order_of_the_items() {
        let items: Vec<u64> = (0..100).collect();
        let out = map(&items, 7, |&x| {
            std::thread::sleep(std::time::Duration::from_micros(100 - x));
            x * x
        });
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(map(&[3u8], 4, |&x| x + 1), vec![4]);
        assert!(map(&[] as &[u8], 4, |&x| x).is_empty());
    }

    #[test]
    #[should_panic(expected = "item 5")]
    fn a_panic_is_passed_on() {
        let items: Vec<u32> = (0..10).collect();
        map(&items, 3, |&x| if x == 5 { panic!("item 5") } else { x });
    }
}
