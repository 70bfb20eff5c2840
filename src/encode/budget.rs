//! A byte budget for the rows in flight between readers and encoders. The channel between
//! them is bounded in batches; this bounds it in bytes too, so very large rows (tens of MB
//! of blob) do not multiply memory by the channel's length.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub struct ByteBudget {
    limit: usize,
    in_flight: Mutex<usize>,
    freed: Condvar,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Self {
        ByteBudget {
            limit,
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Blocks until `bytes` fit in the budget. A batch larger than the whole budget passes
    /// when nothing else is in flight, so progress never stops. Gives up when `cancelled`.
    pub fn acquire(&self, bytes: usize, cancelled: &dyn Fn() -> bool) {
        let mut in_flight = self.wait_while(cancelled, |in_flight| {
            in_flight > 0 && in_flight + bytes > self.limit
        });
        *in_flight += bytes;
    }

    /// After `acquire(bytes)` of a batch larger than the whole budget: blocks until that
    /// batch is released (everything else in flight is within the budget, so less than
    /// `bytes`). Returns at once for a batch within the budget.
    pub fn wait_released(&self, bytes: usize, cancelled: &dyn Fn() -> bool) {
        if bytes <= self.limit {
            return;
        }
        drop(self.wait_while(cancelled, |in_flight| in_flight >= bytes));
    }

    /// The bytes in flight, once `blocked` by them no longer (or once `cancelled`).
    fn wait_while(
        &self,
        cancelled: &dyn Fn() -> bool,
        blocked: impl Fn(usize) -> bool,
    ) -> MutexGuard<'_, usize> {
        let mut in_flight = self.in_flight.lock().expect("budget lock");
        while blocked(*in_flight) && !cancelled() {
            in_flight = self
                .freed
                .wait_timeout(in_flight, Duration::from_millis(100))
                .expect("budget lock")
                .0;
        }
        in_flight
    }

    pub fn release(&self, bytes: usize) {
        let mut in_flight = self.in_flight.lock().expect("budget lock");
        *in_flight = in_flight.saturating_sub(bytes);
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn an_oversized_batch_passes_alone_and_waits_for_room() {
        let budget = Arc::new(ByteBudget::new(10));
        budget.acquire(25, &|| false); // alone: passes
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.acquire(5, &|| false))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "no room until the big batch is released"
        );
        budget.release(25);
        waiter.join().unwrap();
    }
}
