//! Batched acknowledgements: many finished jobs completed in one script call.
//!
//! Each caller awaits its own acknowledgement; one task takes whatever acks are waiting (up to
//! 256) and completes them together, so under load a round trip serves many jobs and under a
//! trickle an ack goes out at once.

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use crate::maintenance::{Leases, forget, retry_unavailable};
use crate::queue::{Ack, Queue};

const MAX_BATCH: usize = 256;

type Request = (Ack, oneshot::Sender<bool>);

#[derive(Clone)]
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<Request>,
}

impl Acker {
    /// Starts the batching task; it ends when every `Acker` clone is dropped.
    pub(crate) fn spawn(queue: Queue, leases: Leases) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batch_loop(queue, leases, rx));
        Self { tx }
    }

    /// Completes the job; true once persisted, false if its lease was lost or Redis stayed away
    /// (the job then runs again when its lease expires: at least once).
    pub(crate) async fn complete(&self, ack: Ack) -> bool {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send((ack, done_tx)).is_err() {
            return false;
        }
        done_rx.await.unwrap_or(false)
    }
}

async fn batch_loop(queue: Queue, leases: Leases, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let acks: Vec<Ack> = batch.iter().map(|(ack, _)| ack.clone()).collect();
        let completed: HashSet<String> = retry_unavailable(|| queue.complete(&acks))
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (ack, done) in batch.drain(..) {
            forget(&leases, &ack.id, ack.token);
            let _ = done.send(completed.contains(&ack.id));
        }
    }
}
