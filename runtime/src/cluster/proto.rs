//! The generated protobuf messages and gRPC stubs of `proto/cluster.proto`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("rl.cluster");
