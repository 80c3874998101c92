//! A memory budget for segment builds in progress: a build holds its source bytes (the reads
//! its plan names) until its segment is cached, so many clients asking for different uncached
//! segments would otherwise hold an unbounded amount. Counting bytes rather than builds lets
//! hundreds of small audio segments build at once while 4K video segments take turns.

#[derive(Debug)]
pub(super) struct BuildBudget {
    /// One permit per KiB.
    kib: tokio::sync::Semaphore,
    total_kib: u32,
}

impl BuildBudget {
    pub(super) fn new(bytes: u64) -> Self {
        let total_kib = bytes.div_ceil(1024).clamp(1, u32::MAX as u64) as u32;
        BuildBudget { kib: tokio::sync::Semaphore::new(total_kib as usize), total_kib }
    }

    /// Waits until `bytes` fit the budget; a build larger than the whole budget waits for all
    /// of it, so it runs alone rather than never.
    pub(super) async fn reserve(
        &self,
        bytes: u64,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib as u64) as u32;
        self.kib.acquire_many(kib).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn build_budget_counts_bytes_and_lets_an_oversized_build_run_alone() {
        let budget = BuildBudget::new(4 * 1024 * 1024);
        let a = budget.reserve(3 * 1024 * 1024).await.unwrap();
        // 1.5 MiB more does not fit next to the first 3 MiB…
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1536 * 1024)).await;
        assert!(waiting.is_err(), "a build beyond the budget must wait");
        // …but many small ones do.
        let small: Vec<_> = futures::future::join_all((0..10).map(|_| budget.reserve(100 * 1024))).await;
        assert!(small.iter().all(|p| p.is_ok()));
        drop((a, small));
        // Larger than the whole budget: waits for all of it, then runs.
        let huge = tokio::time::timeout(Duration::from_secs(1), budget.reserve(64 * 1024 * 1024)).await;
        assert!(matches!(huge, Ok(Ok(_))));
    }
}
