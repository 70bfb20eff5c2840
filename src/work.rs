//! How the stages run their concurrent work, in one place so the rules cannot drift apart:
//! the first error of a run and the flag that stops every stage ([`Failure`]), N workers
//! over one queue where the first error cancels the rest ([`Workers`], [`Queue`]), the one
//! rule for trying again ([`Retry`]), and joining a task ([`join`]).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The first error of a run, and the flag that tells every stage to stop.
#[derive(Default)]
pub struct Failure {
    cancelled: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    pub fn new() -> Arc<Failure> {
        Arc::new(Failure::default())
    }

    pub fn fail(&self, error: Error) {
        let mut first = self.first.lock().expect("failure lock");
        // A cancellation is the echo of the real error in another stage.
        if first.is_none() || matches!(*first, Some(Error::Cancelled)) {
            *first = Some(error);
        }
        self.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// The run's outcome so far: its first error, taken, or `Ok`.
    pub fn result(&self) -> Result<()> {
        match self.first.lock().expect("failure lock").take() {
            Some(e) => Err(e),
            None if self.is_cancelled() => Err(Error::Cancelled),
            None => Ok(()),
        }
    }
}

/// Waits for a spawned task; a panic becomes an error naming `what` panicked.
pub async fn join<T>(task: JoinHandle<T>, what: &str) -> Result<T> {
    task.await
        .map_err(|e| Error::Environment(format!("{what} panicked: {e}")))
}

/// N workers running at once. A worker's error is recorded in the shared [`Failure`],
/// which stops the others at their next step (they check it between items).
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    failure: Arc<Failure>,
    what: &'static str,
}

impl Workers {
    /// Starts `n` workers; `worker(i)` is the loop of worker `i`.
    pub fn spawn<F, Fut>(
        n: usize,
        failure: &Arc<Failure>,
        what: &'static str,
        mut worker: F,
    ) -> Self
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let tasks = (0..n.max(1))
            .map(|i| {
                let (work, failure) = (worker(i), failure.clone());
                tokio::spawn(async move {
                    if let Err(e) = work.await {
                        failure.fail(e);
                    }
                })
            })
            .collect();
        Workers {
            tasks,
            failure: failure.clone(),
            what,
        }
    }

    /// Waits until every worker has stopped; the outcome stays in the shared [`Failure`]
    /// (other stages may share it).
    pub async fn join(self) -> Result<()> {
        for task in self.tasks {
            join(task, self.what).await?;
        }
        Ok(())
    }

    /// Waits until every worker has stopped; the first error of any is the result.
    pub async fn wait(self) -> Result<()> {
        let failure = self.failure.clone();
        self.join().await?;
        failure.result()
    }
}

/// Work items shared by workers: each takes the next until none is left or the run failed.
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    failure: Arc<Failure>,
}

impl<T> Queue<T> {
    pub fn new(items: impl IntoIterator<Item = T>, failure: &Arc<Failure>) -> Arc<Self> {
        Arc::new(Queue {
            items: Mutex::new(items.into_iter().collect()),
            failure: failure.clone(),
        })
    }

    pub fn next(&self) -> Option<T> {
        if self.failure.is_cancelled() {
            return None;
        }
        self.items.lock().expect("queue lock").pop_front()
    }
}

/// Deals items out group by group in turn (the first of every group, then the second …),
/// so that a group with a single slow item (a table whose one chunk parses jsonb, say)
/// starts at once instead of after every item of the groups before it.
pub fn interleave<T>(mut groups: Vec<VecDeque<T>>) -> Vec<T> {
    let mut dealt = Vec::new();
    while groups.iter().any(|q| !q.is_empty()) {
        for queue in groups.iter_mut() {
            dealt.extend(queue.pop_front());
        }
    }
    dealt
}

/// What a stage did so far in this run (chunks, rows, bytes), counted as each chunk is
/// done, for the progress line and the summary.
#[derive(Debug, Default)]
pub struct Tally {
    chunks: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

/// A snapshot of a [`Tally`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub chunks: u64,
    pub rows: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn add(&self, rows: u64, bytes: u64) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            chunks: self.chunks.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// A progress line every 10 seconds until the returned task is aborted.
    pub fn log_every_10s(self: &Arc<Self>, what: &'static str) -> JoinHandle<()> {
        let (tally, started) = (self.clone(), std::time::Instant::now());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            let mut rows_before = 0;
            loop {
                tick.tick().await;
                let now = tally.counts();
                tracing::info!(
                    chunks = now.chunks,
                    rows = now.rows,
                    mib = now.bytes >> 20,
                    rows_per_s = (now.rows - rows_before) / 10,
                    elapsed_s = started.elapsed().as_secs(),
                    "{what}"
                );
                rows_before = now.rows;
            }
        })
    }
}

/// The one rule for trying again: only after an error that [`Error::is_transient`] calls
/// transient (a broken connection, a restarting server, a serialization or deadlock
/// victim; never a timeout, never bad data), at most `tries` times, pausing 0.5 s, 1 s,
/// 2 s … in between. Callers use it only where a failed try left nothing behind (a chunk's
/// claim, COPY and ledger mark are one transaction; a reader's chunk is read again whole).
#[derive(Debug, Clone)]
pub struct Retry {
    tries: u32,
    attempt: u32,
    /// The table whose work is tried again, for the report.
    table: Option<String>,
}

impl Retry {
    const FIRST_PAUSE: Duration = Duration::from_millis(500);

    /// For a COPY writer's chunk: Postgres restarts take a few seconds.
    pub fn writer() -> Self {
        Retry::new(6)
    }

    /// For a reader's chunk after a lost MySQL connection.
    pub fn reader() -> Self {
        Retry::new(4)
    }

    pub fn new(tries: u32) -> Self {
        Retry {
            tries,
            attempt: 0,
            table: None,
        }
    }

    pub fn of_table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }

    /// How many tries failed so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The pause before trying again after `error`, or `None` when the error is permanent
    /// or the tries are used up.
    pub fn pause_after(&mut self, error: &Error) -> Option<Duration> {
        if !error.is_transient() || self.attempt >= self.tries {
            return None;
        }
        let pause = Self::FIRST_PAUSE * 2u32.pow(self.attempt);
        self.attempt += 1;
        Some(pause)
    }

    /// Runs `step` until it succeeds, trying again after each transient error by the rule
    /// above; `what` is the log's word for trying again.
    pub async fn run<T, F, Fut>(mut self, what: &str, mut step: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        loop {
            match step().await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    if !self.wait_after(&e, what).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Waits before the next try after `error` and says so in the log; `false` (at once)
    /// when there is to be no next try.
    pub async fn wait_after(&mut self, error: &Error, what: &str) -> bool {
        let Some(pause) = self.pause_after(error) else {
            return false;
        };
        let table = self.table.as_deref().unwrap_or("");
        tracing::warn!(table, attempt = self.attempt, pause_ms = pause.as_millis() as u64, error = %error, "{what}");
        crate::report::retried(self.table.as_deref());
        tokio::time::sleep(pause).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection_reset() -> Error {
        Error::Connect {
            side: "target",
            url: "postgres://x@y/z".into(),
            reason: "connection reset".into(),
        }
    }

    #[test]
    fn chunks_are_dealt_out_across_tables_in_turn() {
        let dealt = interleave(vec![
            VecDeque::from(["a0", "a1", "a2"]),
            VecDeque::from(["b0"]),
            VecDeque::new(),
            VecDeque::from(["c0", "c1"]),
        ]);
        assert_eq!(dealt, ["a0", "b0", "c0", "a1", "c1", "a2"]);
    }

    #[test]
    fn retries_double_their_pause_and_stop_when_the_tries_are_used_up() {
        let mut retry = Retry::new(3);
        let pauses: Vec<_> = std::iter::from_fn(|| retry.pause_after(&connection_reset()))
            .map(|p| p.as_millis())
            .collect();
        assert_eq!(pauses, [500, 1000, 2000]);
        assert_eq!(retry.attempt(), 3);
    }

    #[test]
    fn permanent_errors_and_timeouts_are_not_tried_again() {
        let mut retry = Retry::writer();
        assert_eq!(retry.pause_after(&Error::Data("bad value".into())), None);
        assert_eq!(
            retry.pause_after(&Error::Environment("no answer within 3 s".into())),
            None
        );
        assert_eq!(retry.attempt(), 0);
    }

    #[test]
    fn the_first_real_error_wins_over_cancellations() {
        let failure = Failure::new();
        failure.fail(Error::Cancelled);
        failure.fail(Error::Data("first".into()));
        failure.fail(Error::Data("second".into()));
        assert!(failure.is_cancelled());
        assert_eq!(failure.result().unwrap_err().to_string(), "first");
    }

    #[tokio::test]
    async fn the_first_error_stops_the_other_workers_at_their_next_item() {
        let failure = Failure::new();
        let queue = Queue::new(0..1000, &failure);
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = Workers::spawn(3, &failure, "a test worker", |_| {
            let (queue, taken) = (queue.clone(), taken.clone());
            async move {
                while let Some(n) = queue.next() {
                    taken.fetch_add(1, Ordering::Relaxed);
                    if n == 10 {
                        return Err(Error::Data("item 10".into()));
                    }
                    tokio::task::yield_now().await;
                }
                Ok(())
            }
        });
        assert_eq!(workers.wait().await.unwrap_err().to_string(), "item 10");
        assert!(taken.load(Ordering::Relaxed) < 100);
    }
}
