//! Long jobs (hashing a shared file, downloading) and their progress, shared
//! between the tasks that do the work and the API that reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::error::NodeError;
use crate::types::{JobKind, JobState, JobStatus};

/// Finished jobs kept for the API to report; older ones are forgotten.
const KEEP_FINISHED: usize = 256;

pub(crate) type JobId = u64;

#[derive(Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next: JobId,
    jobs: BTreeMap<JobId, JobStatus>,
    /// What each running job works on (a download's output path), so a
    /// second request for the same thing joins the first instead of racing it.
    keys: BTreeMap<String, JobId>,
}

impl Jobs {
    /// Registers a new running job of `kind` working on `key`, and returns
    /// its id; if a job on `key` is running already, returns that one.
    pub fn start_or_join(&self, kind: JobKind, phase: &str, key: &str) -> (JobId, bool) {
        let inner = self.lock();
        if let Some(&job) = inner.keys.get(key)
            && inner
                .jobs
                .get(&job)
                .is_some_and(|s| s.state == JobState::Running)
        {
            return (job, false);
        }
        drop(inner);
        let job = self.start(kind, phase);
        self.lock().keys.insert(key.to_owned(), job);
        (job, true)
    }

    /// Registers a new running job of `kind` and returns its id.
    pub fn start(&self, kind: JobKind, phase: &str) -> JobId {
        let mut inner = self.lock();
        inner.next += 1;
        let job = inner.next;
        inner.jobs.insert(
            job,
            JobStatus {
                job,
                kind,
                state: JobState::Running,
                phase: phase.to_owned(),
                done_bytes: 0,
                total_bytes: None,
                providers: Vec::new(),
                error: None,
                error_kind: None,
                share: None,
                get: None,
            },
        );
        inner.forget_old();
        job
    }

    /// Every job still remembered, oldest first.
    pub fn list(&self) -> Vec<JobStatus> {
        self.lock().jobs.values().cloned().collect()
    }

    pub fn get(&self, job: JobId) -> Option<JobStatus> {
        self.lock().jobs.get(&job).cloned()
    }

    /// Changes a job's status in place (a no-op for an unknown job).
    pub fn update(&self, job: JobId, change: impl FnOnce(&mut JobStatus)) {
        if let Some(status) = self.lock().jobs.get_mut(&job) {
            change(status);
        }
    }

    /// Marks `job` failed with `error`'s text and kind.
    pub fn fail(&self, job: JobId, error: NodeError) {
        self.update(job, |s| {
            s.state = JobState::Failed;
            s.error = Some(error.to_string());
            s.error_kind = Some(error.kind());
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn forget_old(&mut self) {
        let finished: Vec<JobId> = self
            .jobs
            .values()
            .filter(|s| s.state != JobState::Running)
            .map(|s| s.job)
            .collect();
        for job in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED))
        {
            self.jobs.remove(job);
        }
        let jobs = &self.jobs;
        self.keys
            .retain(|_, job| jobs.get(job).is_some_and(|s| s.state == JobState::Running));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_start_update_and_fail() {
        let jobs = Jobs::default();
        let a = jobs.start(JobKind::Get, "probing");
        let b = jobs.start(JobKind::Share, "hashing");
        assert_ne!(a, b);
        let listed: Vec<JobId> = jobs.list().iter().map(|s| s.job).collect();
        assert_eq!(listed, [a, b]);
        jobs.update(a, |s| s.done_bytes = 10);
        assert_eq!(jobs.get(a).unwrap().done_bytes, 10);
        jobs.fail(a, NodeError::Storage("boom".into()));
        let status = jobs.get(a).unwrap();
        assert_eq!(status.state, JobState::Failed);
        assert_eq!(status.error.as_deref(), Some("boom"));
        assert_eq!(status.error_kind, Some(crate::error::ErrorKind::Storage));
    }

    #[test]
    fn a_second_job_on_the_same_key_joins_the_running_one() {
        let jobs = Jobs::default();
        let (a, new) = jobs.start_or_join(JobKind::Get, "x", "/out");
        assert!(new);
        assert_eq!(jobs.start_or_join(JobKind::Get, "x", "/out"), (a, false));
        jobs.fail(a, NodeError::Internal("x".into()));
        let (b, new) = jobs.start_or_join(JobKind::Get, "x", "/out");
        assert!(new);
        assert_ne!(a, b);
    }

    #[test]
    fn finished_jobs_are_forgotten_beyond_the_limit() {
        let jobs = Jobs::default();
        let first = jobs.start(JobKind::Get, "x");
        jobs.fail(first, NodeError::Internal("x".into()));
        for _ in 0..KEEP_FINISHED + 1 {
            let job = jobs.start(JobKind::Get, "x");
            jobs.fail(job, NodeError::Internal("x".into()));
        }
        assert!(jobs.get(first).is_none());
    }
}
