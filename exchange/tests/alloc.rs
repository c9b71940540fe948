//! Matching allocates nothing per order once the book's storage has grown:
//! resting, trading, cancelling and reducing at existing price levels, with
//! the output buffers reused, make no heap allocation at all.

use aex::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_matching_does_not_allocate() {
    let config = EngineConfig { dedup_capacity: 1 << 16, ..EngineConfig::default() };
    let mut e = Engine::new([1], config);
    let mut out = Outputs::default();
    let mut seq = 0;
    let mut client_id = 0;
    let mut run = |e: &mut Engine, out: &mut Outputs, input: Input| {
        seq += 1;
        e.apply_into(&SequencedInput { seq, epoch: 1, time: seq, input }, out).unwrap();
    };
    let order = |client_id, side, price, qty, kind, tif| {
        Input::Enter(NewOrder { session: 1, client_id, symbol: 1, side, price, qty, kind, tif })
    };
    let round = |e: &mut Engine,
                 out: &mut Outputs,
                 client_id: &mut u64,
                 run: &mut dyn FnMut(&mut Engine, &mut Outputs, Input)| {
        // Two resting orders on standing levels, a reduce, a partial IOC
        // take, a market take, two cancels.
        for (side, price) in [(Side::Sell, 101), (Side::Buy, 99)] {
            *client_id += 1;
            run(e, out, order(*client_id, side, price, 10, OrderType::Limit, TimeInForce::Day));
        }
        run(e, out, Input::Reduce { session: 1, client_id: *client_id, symbol: 1, qty: 6 });
        *client_id += 1;
        run(e, out, order(*client_id, Side::Buy, 101, 7, OrderType::Limit, TimeInForce::Ioc));
        *client_id += 1;
        run(e, out, order(*client_id, Side::Sell, 0, 3, OrderType::Market, TimeInForce::Ioc));
        for back in [2, 3] {
            run(e, out, Input::Cancel { session: 1, client_id: *client_id - back, symbol: 1 });
        }
    };
    // Standing levels that never empty, and a warm-up that grows every
    // structure (slab, maps, output buffers) to its steady size.
    run(&mut e, &mut out, order(1_000_000_000, Side::Sell, 101, 1_000_000, OrderType::Limit, TimeInForce::Gtc));
    run(&mut e, &mut out, order(1_000_000_001, Side::Buy, 99, 1_000_000, OrderType::Limit, TimeInForce::Gtc));
    for _ in 0..2_000 {
        round(&mut e, &mut out, &mut client_id, &mut run);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..2_000 {
        round(&mut e, &mut out, &mut client_id, &mut run);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(allocations, 0, "14,000 inputs in steady state allocated {allocations} times");
    assert!(!e.book(1).unwrap().is_crossed());
}
