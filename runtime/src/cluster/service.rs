//! The `Node` gRPC service every cluster process serves: spawning hosted actors, the call
//! streams, object pulls, borrow updates, frees, tasks and stops.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Caller;
use super::hosted::reply_frame;
use super::node::{NodeCore, lock};
use super::proto::node_server::Node;
use super::proto::{self, CallFrame, ReplyFrame};
use super::{CHUNK_BYTES, error_status};
use crate::error::RuntimeError;
use crate::object_store::ObjectRef;

type ReplyStream = Pin<Box<dyn Stream<Item = std::result::Result<ReplyFrame, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = std::result::Result<proto::Chunk, Status>> + Send>>;

/// The `Node` service of this process; answers UNAVAILABLE until the node has joined.
pub(crate) struct NodeService {
    pub(crate) core: Arc<OnceLock<Arc<NodeCore>>>,
}

impl NodeService {
    fn core(&self) -> std::result::Result<Arc<NodeCore>, Status> {
        self.core.get().cloned().ok_or_else(|| Status::unavailable("this node has not joined its head yet"))
    }
}

/// `bytes` as a stream of chunks of at most [`CHUNK_BYTES`]; the first says the total length.
fn chunks(bytes: Bytes) -> ChunkStream {
    let total = bytes.len() as u64;
    let starts: Vec<usize> = if bytes.is_empty() { vec![0] } else { (0..bytes.len()).step_by(CHUNK_BYTES).collect() };
    let pieces = starts.into_iter().map(move |start| {
        let end = (start + CHUNK_BYTES).min(bytes.len());
        Ok(proto::Chunk { total_len: if start == 0 { total } else { 0 }, data: bytes.slice(start..end) })
    });
    Box::pin(tokio_stream::iter(pieces.collect::<Vec<_>>()))
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn spawn_actor(
        &self,
        req: Request<proto::NodeSpawnRequest>,
    ) -> std::result::Result<Response<proto::SpawnActorReply>, Status> {
        let core = self.core()?;
        core.host(req.into_inner()).await.map(Response::new).map_err(|e| error_status(&e))
    }

    type CallsStream = ReplyStream;

    async fn calls(&self, req: Request<Streaming<CallFrame>>) -> std::result::Result<Response<ReplyStream>, Status> {
        let core = self.core()?;
        let caller = req.extensions().get::<Caller>().map_or(0, |c| c.0);
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(frame)) => {
                        core.counters.calls_received.fetch_add(1, Ordering::Relaxed);
                        let hosted = lock(&core.hosted).get(&frame.actor_id).map(|(h, _)| h.clone());
                        match hosted {
                            Some(h) => h.serve(&core, frame, caller, &tx),
                            None if frame.want_reply => {
                                let e = RuntimeError::NotDelivered {
                                    actor: format!("actor {}", frame.actor_id),
                                    reason: format!("node {} hosts no such actor", core.node_id),
                                };
                                let _ = tx.send(Ok(reply_frame(frame.call_id, Err(e)))).await;
                            }
                            None => {}
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        // A peer that went away ends its stream with a transport error; a message
                        // over the size limit is refused here.
                        if matches!(status.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted) {
                            tracing::warn!(caller, error = %status.message(), "refused a message; closing the call stream");
                        } else {
                            tracing::debug!(caller, error = %status.message(), "a call stream ended");
                        }
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type PullStream = ChunkStream;

    async fn pull(&self, req: Request<proto::PullRequest>) -> std::result::Result<Response<ChunkStream>, Status> {
        let core = self.core()?;
        let req = req.into_inner();
        let r = ObjectRef::unowned(req.object_id);
        let get = core.store.get(&r);
        let bytes = if req.timeout_ms == 0 {
            get.await
        } else {
            let limit = Duration::from_millis(req.timeout_ms);
            tokio::time::timeout(limit, get)
                .await
                .unwrap_or_else(|_| Err(RuntimeError::Timeout(limit, format!("object {}", req.object_id))))
        }
        .map_err(|e| error_status(&e))?;
        core.counters.objects_served.fetch_add(1, Ordering::Relaxed);
        core.counters.bytes_served.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(Response::new(chunks(bytes)))
    }

    async fn update_refs(
        &self,
        req: Request<proto::RefUpdate>,
    ) -> std::result::Result<Response<proto::RefUpdateReply>, Status> {
        let core = self.core()?;
        let u = req.into_inner();
        if u.delta >= 0 {
            core.store.add_borrow(u.object_id, u.borrower, u.delta as u64).map_err(|e| error_status(&e))?;
        } else {
            core.store.release_borrow(u.object_id, u.borrower, u.delta.unsigned_abs());
        }
        Ok(Response::new(proto::RefUpdateReply {}))
    }

    async fn free(&self, req: Request<proto::FreeRequest>) -> std::result::Result<Response<proto::FreeReply>, Status> {
        let core = self.core()?;
        let refs: Vec<ObjectRef> = req.into_inner().object_ids.into_iter().map(ObjectRef::unowned).collect();
        core.store.free(&refs);
        Ok(Response::new(proto::FreeReply {}))
    }

    type RunTaskStream = ChunkStream;

    async fn run_task(
        &self,
        req: Request<proto::RunTaskRequest>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        let core = self.core()?;
        let rt = core.runtime.upgrade().ok_or_else(|| error_status(&RuntimeError::Shutdown))?;
        let req = req.into_inner();
        let name = req.name.clone();
        let out = tokio::task::spawn_blocking(move || rt.run_task_now(&req.name, req.args))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|message| error_status(&RuntimeError::ObjectFailed { id: 0, message }))?;
        tracing::debug!(task = %name, bytes = out.len(), "ran a task for another node");
        Ok(Response::new(chunks(out)))
    }

    async fn stop_actor(
        &self,
        req: Request<proto::StopActorRequest>,
    ) -> std::result::Result<Response<proto::StopActorReply>, Status> {
        let core = self.core()?;
        let req = req.into_inner();
        if let Some((h, _)) = lock(&core.hosted).get(&req.actor_id) {
            if req.force && super::process::is_worker() {
                // A worker process hosts one actor: killing the actor is ending the process,
                // which its node sees and reports like any other death of the worker.
                tracing::warn!(actor = h.name(), "killed on request");
                std::process::exit(super::process::KILLED_EXIT_CODE);
            }
            h.stop();
        }
        Ok(Response::new(proto::StopActorReply {}))
    }
}
