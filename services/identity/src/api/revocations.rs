//! RevocationService: the revocation feed every verifier follows (public; subjects hashed).

use futures::stream::BoxStream;
use tonic::{Request, Response, Status};
use tt_proto::identity::v1::{self as pb, revocation_service_server::RevocationService};

use super::Api;

#[tonic::async_trait]
impl RevocationService for Api {
    type WatchRevocationsStream = BoxStream<'static, Result<pb::WatchRevocationsResponse, Status>>;

    async fn watch_revocations(
        &self,
        _request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        Ok(Response::new(self.hub.clone().watch().await?))
    }
}
