//! AdminService: matching's usage figures.

use tonic::{Request, Response, Status};
use tt_common::{auth::require_admin, clock::to_timestamp, outbox::consumed};
use tt_proto::{
    common::v1::{ResourceCount, ServiceUsage},
    matching::v1::{self as pb, admin_service_server::AdminService},
};

use super::Api;

#[tonic::async_trait]
impl AdminService for Api {
    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        require_admin(&request)?;
        let counts = self.store.usage().await?;
        let outbox = consumed::outbox_figures(self.store.db()).await?;
        Ok(Response::new(pb::GetUsageResponse {
            usage: Some(ServiceUsage {
                service: "matching".to_owned(),
                resources: counts.into_iter().map(|(name, count)| ResourceCount { name, count }).collect(),
                outbox_pending: outbox.pending,
                outbox_dead_letters: outbox.dead_letters,
                oldest_pending_time: outbox.oldest_pending.map(to_timestamp),
            }),
        }))
    }
}
