//! The hand-off between the local backend and one execution environment:
//! a bounded queue of invocations the environment's `/next` takes from, and
//! the map of pending replies keyed by request id that `/response`, `/error`
//! and `/init/error` complete. Every invocation carries its deadline; the
//! backend forgets a request id when that passes, so a late reply is refused.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// One invocation handed to a function process.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Epoch milliseconds (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    /// Client context JSON (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
}

/// How a function answered one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`.
    Response(Bytes),
    /// `POST /invocation/{id}/error`: the error document the function sent.
    FunctionError(Bytes),
    /// `POST /init/error`: the function could not start.
    InitError(Bytes),
    /// The response was over the synchronous payload limit.
    ResponseTooLarge,
}

/// Why a reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// No invocation with this id is waiting (unknown, answered, or past its deadline).
    UnknownRequestId,
}

/// The queue holds as many invocations as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The invocations of one execution environment.
pub struct InvocationQueue {
    tx: mpsc::Sender<Invocation>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Set once `/init/error` was posted: every later submission fails with it.
    init_error: Mutex<Option<Bytes>>,
}

impl InvocationQueue {
    /// A queue holding at most `capacity` invocations not yet taken by `/next`.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        }
    }

    /// Queues an invocation; the receiver yields its outcome. Refused when
    /// the queue is full.
    pub fn submit(&self, invocation: Invocation) -> Result<oneshot::Receiver<Outcome>, QueueFull> {
        let (reply, outcome) = oneshot::channel();
        if let Some(body) = lock(&self.init_error).clone() {
            let _ = reply.send(Outcome::InitError(body));
            return Ok(outcome);
        }
        let id = invocation.request_id.clone();
        lock(&self.pending).insert(id.clone(), reply);
        match self.tx.try_send(invocation) {
            Ok(()) => Ok(outcome),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(QueueFull)
            }
        }
    }

    /// The next invocation, waiting for one (the `/next` long poll).
    pub async fn next(&self) -> Option<Invocation> {
        self.rx.lock().await.recv().await
    }

    /// Completes a pending invocation.
    pub fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), ReplyError> {
        let reply = lock(&self.pending)
            .remove(request_id)
            .ok_or(ReplyError::UnknownRequestId)?;
        // The waiter may have given up at this very moment; the reply is then moot.
        let _ = reply.send(outcome);
        Ok(())
    }

    /// Records an init error and fails every pending invocation with it.
    pub fn fail_init(&self, body: Bytes) {
        *lock(&self.init_error) = Some(body.clone());
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, reply) in pending {
            let _ = reply.send(Outcome::InitError(body.clone()));
        }
    }

    /// Forgets a request id whose deadline passed.
    pub fn forget(&self, request_id: &str) {
        lock(&self.pending).remove(request_id);
    }

    /// How many invocations wait for a reply.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }
}

/// A poisoned lock only means another thread panicked mid-update of a map
/// that stays consistent; keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.to_string(),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: 0,
            function_arn: "arn".into(),
            trace_id: "t".into(),
            client_context: None,
        }
    }

    #[tokio::test]
    async fn reply_reaches_the_waiter_once() {
        let q = InvocationQueue::new(1);
        let rx = q.submit(invocation("a")).unwrap();
        assert_eq!(q.next().await.unwrap().request_id, "a");
        q.complete("a", Outcome::Response(Bytes::from_static(b"1")))
            .unwrap();
        assert_eq!(
            rx.await.unwrap(),
            Outcome::Response(Bytes::from_static(b"1"))
        );
        assert_eq!(
            q.complete("a", Outcome::Response(Bytes::new())),
            Err(ReplyError::UnknownRequestId)
        );
    }

    #[tokio::test]
    async fn bounded_and_forgetful() {
        let q = InvocationQueue::new(1);
        let _a = q.submit(invocation("a")).unwrap();
        assert!(q.submit(invocation("b")).is_err());
        assert_eq!(q.pending(), 1);
        q.forget("a");
        assert_eq!(
            q.complete("a", Outcome::Response(Bytes::new())),
            Err(ReplyError::UnknownRequestId)
        );
    }

    #[tokio::test]
    async fn init_error_fails_pending_and_later_submissions() {
        let q = InvocationQueue::new(1);
        let a = q.submit(invocation("a")).unwrap();
        q.fail_init(Bytes::from_static(b"boom"));
        assert_eq!(
            a.await.unwrap(),
            Outcome::InitError(Bytes::from_static(b"boom"))
        );
        let b = q.submit(invocation("b")).unwrap();
        assert_eq!(
            b.await.unwrap(),
            Outcome::InitError(Bytes::from_static(b"boom"))
        );
    }
}
