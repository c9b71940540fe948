//! The sliding replay window for data-packet counters (RFC 6479 style).

/// Bits in the window: counters more than this far behind the highest seen
/// are rejected as too old.
pub const WINDOW_BITS: u64 = 2048;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Tracks which counters of one session were accepted.
///
/// Call [`ReplayWindow::check`] before decrypting (cheap rejection), and
/// [`ReplayWindow::accept`] only after the tag verified, so a forged packet
/// can never move the window.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Highest accepted counter plus one (0 = nothing accepted yet).
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow { next: 0, bits: [0; WORDS] }
    }

    /// Whether `counter` could still be accepted (not seen, not too old).
    pub fn check(&self, counter: u64) -> bool {
        if counter >= self.next {
            return true;
        }
        if self.next - counter > WINDOW_BITS - 64 {
            // Keep one word of slack so a word being recycled is never consulted.
            return false;
        }
        let (w, b) = Self::slot(counter);
        self.bits[w] & (1 << b) == 0
    }

    /// Records `counter` as accepted; returns false (and changes nothing) if
    /// it was a replay or too old.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            // Words past the current head are stale from a previous lap of
            // the ring: clear each word the head moves onto.
            let start = if self.next == 0 { 0 } else { (self.next - 1) / 64 + 1 };
            let new_word = counter / 64;
            if new_word >= start {
                let n = (new_word - start + 1).min(WORDS as u64);
                for i in 0..n {
                    self.bits[((new_word - i) % WORDS as u64) as usize] = 0;
                }
            }
            self.next = counter + 1;
        }
        let (w, b) = Self::slot(counter);
        self.bits[w] |= 1 << b;
        true
    }

    fn slot(counter: u64) -> (usize, u32) {
        (((counter / 64) % WORDS as u64) as usize, (counter % 64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_replay_and_old() {
        let mut w = ReplayWindow::new();
        for c in 0..5000 {
            assert!(w.accept(c));
            assert!(!w.accept(c));
        }
        assert!(!w.accept(0));
        assert!(!w.accept(4999 - WINDOW_BITS));
    }

    #[test]
    fn reordering_within_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(1000));
        assert!(w.accept(10));
        assert!(!w.accept(10));
        assert!(w.accept(999));
        assert!(w.accept(1_000_000));
        assert!(!w.accept(1000), "far behind the new head");
        assert!(w.accept(1_000_000 - 100));
    }

    proptest! {
        /// Against a model: every counter is accepted at most once, a fresh
        /// counter within the window is accepted, and anything accepted was
        /// never accepted before.
        #[test]
        fn matches_model(ops in proptest::collection::vec(0u64..6000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut max: Option<u64> = None;
            for c in ops {
                let fresh = !seen.contains(&c);
                let recent = max.is_none_or(|m| c + (WINDOW_BITS - 64) > m);
                let got = w.accept(c);
                if got {
                    prop_assert!(fresh, "counter {} accepted twice", c);
                    seen.insert(c);
                    max = Some(max.map_or(c, |m| m.max(c)));
                } else {
                    prop_assert!(!fresh || !recent, "fresh recent counter {} rejected", c);
                }
            }
        }
    }
}
