//! A call-counting wrapper of any `Coordinator`, written as an author outside the project would write it:
//! an [`Interceptor`] that counts each call by method, and [`Intercepted`] that runs it around every call of
//! the wrapped coordinator. Its tests (`tests/it/`) run the conformance suite through it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use campanile::CoordError;
use campanile_adapters::{Call, Intercepted, Interceptor, Method};

/// Counts calls per method; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<Method, u64>>>);

impl Interceptor for CallCounter {
    fn after(&self, call: Call, _error: Option<&CoordError>) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(call.method).or_default() += 1;
    }
}

impl CallCounter {
    /// Calls of `method` answered so far.
    pub fn of(&self, method: Method) -> u64 {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(&method).copied().unwrap_or(0)
    }

    /// Calls answered so far.
    pub fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

/// `inner`, with every call counted by `counter`.
pub type Counted<C> = Intercepted<C, CallCounter>;

/// Wraps `inner` (any `Coordinator`, or an `Arc<dyn Coordinator>`) so that `counter` counts its calls.
pub fn counted<C>(inner: C, counter: CallCounter) -> Counted<C> {
    Intercepted::new(inner, counter)
}
