//! Coalescing: requests made at the same time by many tasks of a process, answered by one bulk
//! call. A single task takes whatever requests are waiting (up to a limit), makes one call for
//! all of them and answers each; under a trickle a request goes out at once, under load one
//! round trip serves many. Used to keep MongoDB round trips per job low when a worker runs many
//! jobs at once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::infra::error::{CoreError, CoreResult};

type Answer<Resp> = oneshot::Sender<Result<Resp, Arc<CoreError>>>;

/// A handle for making requests; clones share the batching task, which ends with the last one.
pub struct Coalescer<Req, Resp> {
    tx: mpsc::UnboundedSender<(Req, Answer<Resp>)>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Starts the batching task. `bulk` answers a batch with one response per request, in order.
    pub fn spawn<F, Fut>(max_batch: usize, bulk: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = CoreResult<Vec<Resp>>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Req, Answer<Resp>)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let (requests, answers): (Vec<Req>, Vec<Answer<Resp>>) = batch.into_iter().unzip();
                match bulk(requests).await {
                    Ok(responses) => {
                        for (answer, response) in answers.into_iter().zip(responses) {
                            let _ = answer.send(Ok(response));
                        }
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        for answer in answers {
                            let _ = answer.send(Err(Arc::clone(&error)));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Makes a request and waits for its answer.
    pub async fn call(&self, request: Req) -> CoreResult<Resp> {
        let (answer, answered) = oneshot::channel();
        self.tx
            .send((request, answer))
            .map_err(|_| CoreError::Coalescer("the batching task has stopped"))?;
        match answered.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(shared)) => Err(CoreError::Shared(shared)),
            Err(_) => Err(CoreError::Coalescer("the batching task dropped the request")),
        }
    }
}
