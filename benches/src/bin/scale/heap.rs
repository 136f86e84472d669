//! A counting global allocator: the live heap bytes of the process, so that memory per job can be read
//! without the allocator's retained free memory that resident-set figures include.
//!
//! The harness's one piece of `unsafe`: `GlobalAlloc` is an unsafe trait. Each method forwards to the system
//! allocator unchanged and adjusts one relaxed atomic counter; it is not used by any library crate.
//!
//! Counting is off unless [`count`] turned it on (the `load` mode does): a shared counter costs every
//! allocation a contended atomic add between the runtime's threads, which would tax the lateness modes in
//! proportion to how much each system allocates, not how fast it fires.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Counts live bytes from now on, for the rest of the process (call it before anything is allocated that
/// is later freed, so the counter never goes below what it saw allocated).
pub fn count() {
    COUNTING.store(true, Ordering::Relaxed);
}

fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// The system allocator, counting live bytes.
pub struct Counting;

/// Bytes currently allocated on the heap by this process (requested sizes, not the allocator's overhead).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every method calls the system allocator with the caller's arguments, so its contract holds as the
// system allocator's does; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && counting() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() && counting() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) };
        if counting() {
            // Wrapping: a block allocated before counting began may be freed after it.
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() && counting() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        new
    }
}
