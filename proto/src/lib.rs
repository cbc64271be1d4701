//! Vuoro's wire types, generated from `proto/vuoro/v1/*.proto`: the gRPC API (`vuoro.v1`
//! services and messages) and the records Vuoro writes to Kafka. This is the only place wire
//! types live.

/// Package `vuoro.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("vuoro.v1");

    /// The encoded file descriptor set of `vuoro.v1`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vuoro_v1_descriptor");
}
