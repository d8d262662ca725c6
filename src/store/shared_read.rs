//! One read serving every caller that waits for it: concurrent callers of a settled head (`settled`) share a
//! read instead of each sending its two statements and each taking the append lock exclusively, one after the
//! other (64 Subscribe calls at once took it 64 times in a row on PostgreSQL).
//!
//! A caller is only ever answered by a read that *started after it called*: the settled head promises that
//! every row acknowledged before the call is at or below it, which a read begun earlier may not show. Reads
//! take turns (a fair lock); a caller that finds, on its turn, that a read begun after its call has finished
//! takes that answer, else it reads itself. So a burst of callers costs at most two reads: the one in flight
//! when they came, and one more for all of them.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
};

use tokio::sync::Mutex;

/// Reads of one value shared by the callers waiting at the same time.
#[derive(Default)]
pub(super) struct SharedRead {
    /// Reads started so far; a read's number is its place in that count.
    started: AtomicU64,
    /// Whose turn it is to read (first come, first served), holding the newest finished read: its number and
    /// its answer.
    turn: Mutex<Option<(u64, i64)>>,
}

impl SharedRead {
    /// The answer of a read that started after this call: a shared one, or `read` run now.
    pub async fn get<E, F>(&self, read: impl FnOnce() -> F) -> Result<i64, E>
    where
        F: Future<Output = Result<i64, E>>,
    {
        // Any read numbered from here on starts after this point.
        let wanted = self.started.load(Ordering::SeqCst) + 1;
        let mut done = self.turn.lock().await;
        if let Some((number, answer)) = *done
            && number >= wanted
        {
            return Ok(answer);
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = read().await?;
        *done = Some((number, answer));
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicI64, Ordering},
        },
        time::Duration,
    };

    use super::SharedRead;

    /// A read that takes 10 ms and answers how many reads had started before it (so each answer names its
    /// read).
    async fn slow_read(reads: &AtomicI64) -> Result<i64, ()> {
        let number = reads.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(number)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_callers_costs_two_reads_and_each_gets_a_read_begun_after_its_call() {
        let shared = Arc::new(SharedRead::default());
        let reads = Arc::new(AtomicI64::new(0));
        let first = {
            let (shared, reads) = (shared.clone(), reads.clone());
            tokio::spawn(async move { shared.get(|| slow_read(&reads)).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the first read is in flight");
        // Fifty callers arrive while it runs: none may take its answer, one more read serves them all.
        let burst: Vec<_> = (0..50)
            .map(|_| {
                let (shared, reads) = (shared.clone(), reads.clone());
                tokio::spawn(async move { shared.get(|| slow_read(&reads)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(1));
        for caller in burst {
            assert_eq!(caller.await.unwrap(), Ok(2), "answered by the read begun after the call");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // Later, a caller alone reads again instead of taking an old answer.
        assert_eq!(shared.get(|| slow_read(&reads)).await, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_fails_its_caller_only() {
        let shared = SharedRead::default();
        assert_eq!(shared.get(|| async { Err::<i64, &str>("database down") }).await, Err("database down"));
        assert_eq!(shared.get(|| async { Ok::<i64, &str>(7) }).await, Ok(7));
    }
}
